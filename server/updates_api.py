"""GET /api/v1/updates/{metadata,targets}/…: the TUF repository of model releases, read-only.

The repository is made and signed offline by `py-agent release` (tools/release.py); the
server only hands out its files, so it needs no key to serve them. A TUF client trusts the
signatures, not this server: whoever controls these files can withhold an update, never
forge one.

- metadata/: ``Cache-Control: no-cache``: ``timestamp.json`` changes under the same name, and
  a stale one is how a freeze attack starts.
- targets/: every name carries its sha256 (consistent snapshots), so a file never changes
  under its name: cached for a year, immutable. Range requests (206, 416) come from
  Starlette's FileResponse, so a device on a bad link resumes a download.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

METADATA_CACHE = "no-cache"
TARGETS_CACHE = "public, max-age=31536000, immutable"
HOW_TO_CREATE = (
    "no model updates are published here: create them with `py-agent release init --repo DIR` "
    "and `py-agent release publish --repo DIR --models MODELS_DIR`, and serve DIR with "
    "--updates-dir"
)


class UpdatesRepository:
    """The files under ``root`` (``metadata/``, ``targets/``), and nothing outside them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def file(self, folder: str, name: str) -> Path:
        base = self.root / folder
        if not base.is_dir():
            raise HTTPException(404, HOW_TO_CREATE)
        # Resolved, then checked to be inside: '..', absolute paths and symlinks out all end
        # here. Hidden names (the writer's '.…partial' files) are never served.
        path = (base / name).resolve()
        if (
            not path.is_relative_to(base.resolve())
            or any(part.startswith(".") for part in Path(name).parts)
            or not path.is_file()
        ):
            raise HTTPException(404, f"no such {folder} file: {name}")
        return path

    async def metadata(self, request: Request) -> Response:
        path = self.file("metadata", request.path_params["name"])
        return FileResponse(
            path, media_type="application/json", headers={"cache-control": METADATA_CACHE}
        )

    async def targets(self, request: Request) -> Response:
        path = self.file("targets", request.path_params["name"])
        return FileResponse(
            path,
            media_type="application/octet-stream",
            headers={"cache-control": TARGETS_CACHE},
        )


def routes(root: Path) -> list[Route]:
    repository = UpdatesRepository(root)
    return [
        Route("/updates/metadata/{name:path}", repository.metadata, methods=["GET", "HEAD"]),
        Route("/updates/targets/{name:path}", repository.targets, methods=["GET", "HEAD"]),
    ]
