"""The built web app (web/dist), with the media types browsers insist on."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePath

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

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
    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = MEDIA_TYPES.get(PurePath(full_path).suffix.lower())
        if media_type is not None:
            response.headers["content-type"] = media_type
        # Revalidate every time (cheap: ETag → 304) so a new build is never
        # mixed with cached files of the old one.
        response.headers["cache-control"] = "no-cache"
        return response


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
