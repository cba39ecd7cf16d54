"""The small interfaces py_agent's core needs from its host.

Each has a browser implementation (``browser.py``: IndexedDB, onnxruntime-web,
fetch) and a native one (``native.py``: SQLite, onnxruntime, httpx). The core
imports only these names, so it runs unchanged in Pyodide and CPython.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from numpy.typing import NDArray

JsonValue = Any
JsonObject = dict[str, JsonValue]


@dataclass(frozen=True)
class Put:
    collection: str
    key: str
    value: JsonObject


@dataclass(frozen=True)
class Delete:
    collection: str
    key: str


Write = Put | Delete


class StoreError(Exception):
    """A store operation failed; nothing of the failed commit was written."""


class Store(Protocol):
    """Keyed JSON records in named collections (IndexedDB object stores, SQLite tables).
    A record's top-level field may also hold ``bytes``, stored as such (embeddings: a
    load reads them without decoding text); it reads back as ``bytes`` or a ``memoryview``.

    ``commit`` applies all its writes in one transaction or none of them: a
    caller acknowledges a change only after ``commit`` returned.
    """

    collections: tuple[str, ...]

    async def get(self, collection: str, key: str) -> JsonObject | None: ...

    async def get_all(self, collection: str) -> list[JsonObject]: ...

    async def commit(self, writes: Sequence[Write]) -> None: ...

    async def close(self) -> None: ...


class InferenceError(Exception):
    """The runtime refused a model or failed to run it."""


class InferenceSession(Protocol):
    """One loaded ONNX model."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    async def run(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]: ...


class InferenceRuntime(Protocol):
    """Creates sessions; ``threads`` is how many threads the runtime runs an op with."""

    @property
    def name(self) -> str: ...

    @property
    def threads(self) -> int: ...

    async def create_session(self, model: bytes) -> InferenceSession: ...

    async def load_session(self, location: str, sha256: str) -> InferenceSession:
        """The model at ``location`` (a path natively, a URL in the browser), refused
        with ``IntegrityError`` unless its bytes hash to ``sha256``."""
        ...


class ResourceError(Exception):
    """A file or URL could not be read."""


class IntegrityError(ResourceError):
    """A resource's bytes do not match the sha256 its manifest promised."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: JsonValue
    # Lower-case names: HTTP header names are case-insensitive.
    headers: Mapping[str, str] = field(default_factory=dict)


class TransportError(Exception):
    """The request did not get an HTTP answer: offline, refused, or past its deadline
    (``timed_out``)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class Transport(Protocol):
    """JSON over HTTP to the py_agent server."""

    async def request(
        self,
        method: str,
        url: str,
        body: JsonValue = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> HttpResponse: ...
