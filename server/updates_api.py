"""GET /api/v1/updates/{metadata,targets}/…: the TUF repository of model releases.

The repository is made and signed by `py-agent release` (tools/release.py); the server hands
out its files, and needs a key only to renew the timestamp (below). A TUF client trusts the
signatures, not this server: whoever controls these files can withhold an update, never
forge one.

- metadata/: ``Cache-Control: no-cache``: ``timestamp.json`` changes under the same name, and
  a stale one is how a freeze attack starts.
- timestamp.json: re-signed here, with the repository's online timestamp key, when a request
  finds it within RESIGN_WITHIN of expiry; a stale timestamp would stop every device's updates.
- targets/: every name carries its sha256 (consistent snapshots), so a file never changes
  under its name: cached for a year, immutable. Range requests (206, 416) come from
  Starlette's FileResponse, so a device on a bad link resumes a download.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from tuf.api.metadata import Metadata, Timestamp
from tuf.api.serialization.json import JSONSerializer

log = logging.getLogger("py_agent.server.updates")

METADATA_CACHE = "no-cache"
TARGETS_CACHE = "public, max-age=31536000, immutable"
HOW_TO_CREATE = (
    "no model updates are published here: create them with `py-agent release init --repo DIR` "
    "and `py-agent release publish --repo DIR --models MODELS_DIR`, and serve DIR with "
    "--updates-dir"
)
# python-tuf's timestamp lifetime (tools/release.py's too), renewed this long before its end.
TIMESTAMP_LIFETIME = timedelta(days=1)
RESIGN_WITHIN = timedelta(hours=6)


class UpdatesRepository:
    """The files under ``root`` (``metadata/``, ``targets/``), and nothing outside them."""

    def __init__(self, root: Path, wall_clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._wall_clock = wall_clock
        # One re-signing at a time: two would write two timestamps of the same version.
        self._signing = asyncio.Lock()

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
        if path.name == "timestamp.json":
            async with self._signing:
                await asyncio.to_thread(self._renew_timestamp, path)
        return FileResponse(
            path, media_type="application/json", headers={"cache-control": METADATA_CACHE}
        )

    def _renew_timestamp(self, path: Path) -> None:
        now = datetime.fromtimestamp(self._wall_clock(), UTC).replace(microsecond=0)
        metadata = Metadata[Timestamp].from_file(str(path))
        if metadata.signed.expires - now > RESIGN_WITHIN:
            return
        key_file = self.root / "keys" / "timestamp.pem"
        try:
            key = load_pem_private_key(key_file.read_bytes(), None)
        except (OSError, TypeError, ValueError) as exc:
            # Served as it is: a client refuses it once expired, and says so.
            log.warning(
                "%s expires at %s and cannot be renewed: %s needs to be an unencrypted key "
                "(%s); or run `py-agent release timestamp --repo %s`",
                path, metadata.signed.expires, key_file, exc, self.root,
            )  # fmt: skip
            return
        if not isinstance(key, Ed25519PrivateKey):
            log.warning("%s: not an Ed25519 key; timestamp.json not renewed", key_file)
            return
        metadata.signed.version += 1
        metadata.signed.expires = now + TIMESTAMP_LIFETIME
        metadata.sign(CryptoSigner(key, SSlibKey.from_crypto(key.public_key())))
        partial = path.with_name(".timestamp.json.partial")
        partial.write_bytes(metadata.to_bytes(JSONSerializer(compact=False)))
        partial.replace(path)

    async def targets(self, request: Request) -> Response:
        path = self.file("targets", request.path_params["name"])
        return FileResponse(
            path,
            media_type="application/octet-stream",
            headers={"cache-control": TARGETS_CACHE},
        )


def routes(root: Path, wall_clock: Callable[[], float] = time.time) -> list[Route]:
    repository = UpdatesRepository(root, wall_clock)
    return [
        Route("/updates/metadata/{name:path}", repository.metadata, methods=["GET", "HEAD"]),
        Route("/updates/targets/{name:path}", repository.targets, methods=["GET", "HEAD"]),
    ]
