"""The built web app (web/dist): the media types browsers insist on, and each file in the
smallest coding the request accepts of those the build precompressed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
from pathlib import Path, PurePath

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from .accept_encoding import choose_coding
from .precompressed import Precompressed, sibling

# The platform's mimetypes table varies by OS and lacks most of these;
# WebAssembly.instantiateStreaming refuses anything but application/wasm and
# a module worker refuses .mjs unless it is served as JavaScript.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".onnx": "application/octet-stream",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


class StaticSite(StaticFiles):
    """The dist, each file sent in the smallest coding the request accepts of those the
    build precompressed (server/precompressed.py), else as it is."""

    def __init__(self, *, directory: str | os.PathLike[str], html: bool = False) -> None:
        super().__init__(directory=directory, html=html)
        self.root = directory
        self.precompressed = Precompressed(directory)

    async def get_response(self, path: str, scope: Scope) -> Response:
        # A copy is a representation of its file, not a file of the app: served under its
        # own URL it would carry its file's media type with compressed bytes.
        if self.precompressed.is_copy(PurePath(path).as_posix()):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        request = Headers(scope=scope)
        rel = Path(full_path).relative_to(os.path.realpath(self.root)).as_posix()
        codings = self.precompressed.codings(rel)
        # Revalidate every time (cheap: ETag → 304) so a new build is never mixed with
        # cached files of the old one.
        headers = {"cache-control": "no-cache"}
        if codings:
            headers["vary"] = "Accept-Encoding"
        path, stat = full_path, stat_result
        # A range counts bytes of the representation sent; ranges of a compressed copy
        # would be spliced by the client as if they were ranges of the file.
        if "range" not in request and (
            coding := choose_coding(request.get("accept-encoding"), codings)
        ):
            copy = sibling(os.fspath(full_path), coding)
            # A copy gone since the listing was read: the file as it is will do.
            with contextlib.suppress(OSError):
                path, stat = copy, os.stat(copy)
                headers["content-encoding"] = coding
                headers["etag"] = coded_etag(stat, coding)
        response = FileResponse(
            path,
            status_code=status_code,
            headers=headers,
            media_type=media_type(full_path),
            stat_result=stat,
        )
        if self.is_not_modified(response.headers, request):
            return NotModifiedResponse(response.headers)
        return response


def media_type(path: str | os.PathLike[str]) -> str:
    return (
        MEDIA_TYPES.get(PurePath(path).suffix.lower())
        or mimetypes.guess_type(path)[0]
        or "text/plain"
    )


def coded_etag(stat: os.stat_result, coding: str) -> str:
    """Starlette's ETag (the copy's mtime and size) tagged with the coding, so no two
    representations of a file share an ETag even if their sizes and times agree."""
    stamp = f"{stat.st_mtime}-{stat.st_size}".encode()
    return f'"{hashlib.md5(stamp, usedforsecurity=False).hexdigest()}-{coding}"'


def describe_build(dist: Path) -> str:
    """The versions a build's build.json records ("py_agent 0.1.0, Pyodide 0.27.7,
    onnxruntime-web 1.30.0"), for `py-agent serve` to say at start-up; "" without them."""
    try:
        build = json.loads((dist / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(build, dict):
        return ""
    names = {"version": "py_agent", "pyodide": "Pyodide", "ort": "onnxruntime-web"}
    return ", ".join(f"{name} {build[key]}" for key, name in names.items() if key in build)
