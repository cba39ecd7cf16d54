"""The one seam between py_agent and its host.

Inside Pyodide (``sys.platform == "emscripten"``) the browser adapters are used, elsewhere
the native ones; both provide the interfaces in ``interfaces.py``. An adapter is imported on
first use, never with this package: the core imports in a Python holding only numpy, and
the browser never looks for sqlite3, onnxruntime or httpx. Nothing outside this package
imports ``js``, ``pyodide``, ``sqlite3``, ``onnxruntime`` or ``httpx``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .interfaces import (
    Delete,
    HttpResponse,
    InferenceError,
    InferenceRuntime,
    InferenceSession,
    IntegrityError,
    JsonObject,
    JsonValue,
    Put,
    ResourceError,
    Store,
    StoreError,
    Transport,
    TransportError,
    Write,
)

IN_BROWSER = sys.platform == "emscripten"
PLATFORM_NAME = "browser" if IN_BROWSER else "native"


async def open_store(location: str, collections: Sequence[str]) -> Store:
    """The user's data: an IndexedDB database in the browser, a SQLite file natively."""
    if IN_BROWSER:
        from . import browser

        return await browser.open_store(location, collections)
    from . import native_store

    return await native_store.open_store(location, collections)


async def load_resource(location: str, sha256: str | None = None) -> bytes:
    """A file's bytes (fetched in the browser), checked against ``sha256`` when given."""
    if IN_BROWSER:
        from . import browser

        return await browser.load_resource(location, sha256)
    from . import native_files

    return await native_files.load_resource(location, sha256)


def inference_runtime(threads: int = 1) -> InferenceRuntime:
    """onnxruntime-web in the browser, onnxruntime natively."""
    if IN_BROWSER:
        from . import browser

        return browser.inference_runtime(threads)
    from . import native_inference

    return native_inference.inference_runtime(threads)


def http_transport(base_url: str) -> Transport:
    """fetch in the browser, httpx natively."""
    if IN_BROWSER:
        from . import browser

        return browser.http_transport(base_url)
    from . import native_http

    return native_http.http_transport(base_url)


__all__ = [
    "IN_BROWSER",
    "PLATFORM_NAME",
    "Delete",
    "HttpResponse",
    "InferenceError",
    "InferenceRuntime",
    "InferenceSession",
    "IntegrityError",
    "JsonObject",
    "JsonValue",
    "Put",
    "ResourceError",
    "Store",
    "StoreError",
    "Transport",
    "TransportError",
    "Write",
    "http_transport",
    "inference_runtime",
    "load_resource",
    "open_store",
]
