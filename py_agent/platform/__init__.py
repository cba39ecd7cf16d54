"""The one seam between py_agent and its host.

Inside Pyodide (``sys.platform == "emscripten"``) the browser adapters are
used, elsewhere the native ones; both provide the interfaces in
``interfaces.py``. Nothing outside this package imports ``js``, ``pyodide``,
``sqlite3``, ``onnxruntime`` or ``httpx``.
"""

from __future__ import annotations

import sys

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

if sys.platform == "emscripten":
    from .browser import (
        PLATFORM_NAME,
        http_transport,
        inference_runtime,
        load_resource,
        open_store,
    )
else:
    from .native import (
        PLATFORM_NAME,
        http_transport,
        inference_runtime,
        load_resource,
        open_store,
    )

__all__ = [
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
