"""Pyodide adapters: IndexedDB for the store, onnxruntime-web for inference, fetch for HTTP.

The worker registers ``py_agent_js`` (web/src/bridge.js) before importing py_agent;
this is the only module that touches it or ``js``/``pyodide``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import py_agent_js
from numpy.typing import NDArray
from pyodide.ffi import JsException, JsProxy, to_js

from .integrity import check_sha256
from .interfaces import (
    Delete,
    HttpResponse,
    InferenceError,
    IntegrityError,
    JsonObject,
    JsonValue,
    ResourceError,
    StoreError,
    TransportError,
    Write,
)
from .store_schema import check_collection, check_collections

PLATFORM_NAME = "browser"

# ONNX tensor type names as onnxruntime-web spells them.
_ORT_TYPES: dict[np.dtype[Any], str] = {
    np.dtype(np.float32): "float32",
    np.dtype(np.int64): "int64",
    np.dtype(np.int32): "int32",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.bool_): "bool",
}
_NUMPY_TYPES: dict[str, np.dtype[Any]] = {name: dtype for dtype, name in _ORT_TYPES.items()}


def _to_js_object(value: JsonValue) -> Any:
    return to_js(value, dict_converter=py_agent_js.fromEntries)


async def load_resource(location: str, sha256: str | None = None) -> bytes:
    """The bytes at URL ``location`` (relative to the worker); checked against ``sha256``."""
    try:
        data = await py_agent_js.http.fetchBytes(location)
    except JsException as exc:
        raise ResourceError(f"cannot fetch {location}: {exc}") from exc
    content = bytes(data.to_bytes())
    if sha256 is not None:
        check_sha256(location, content, sha256)
    return content


class IndexedDBStore:
    """Each call is one IndexedDB transaction opened and finished inside JS; records cross
    as JSON text, their bytes fields as one buffer beside it.

    A transaction cannot span Python awaits: IndexedDB commits it as soon as
    the event loop turns with no request pending, which happens whenever
    Pyodide yields. So ``commit`` hands all its writes to JS at once.
    """

    def __init__(self, db: JsProxy, collections: tuple[str, ...]) -> None:
        self._db = db
        self.collections = collections

    async def get(self, collection: str, key: str) -> JsonObject | None:
        check_collection(self.collections, collection)
        try:
            read = await py_agent_js.idb.getPacked(self._db, collection, key)
        except JsException as exc:
            raise _store_error(exc, f"reading {collection}/{key} failed") from exc
        records = _unpack(collection, read)
        return records[0] if records else None

    async def get_all(self, collection: str) -> list[JsonObject]:
        check_collection(self.collections, collection)
        try:
            read = await py_agent_js.idb.getAllPacked(self._db, collection)
        except JsException as exc:
            raise _store_error(exc, f"reading {collection} failed") from exc
        return _unpack(collection, read)

    async def commit(self, writes: Sequence[Write]) -> None:
        batch: list[JsonObject] = []
        data = bytearray()  # the bytes fields of every put, one after the other
        for write in writes:
            check_collection(self.collections, write.collection)
            if isinstance(write, Delete):
                batch.append({"op": "delete", "store": write.collection, "key": write.key})
                continue
            item: JsonObject = {
                "op": "put",
                "store": write.collection,
                "key": write.key,
                "value": write.value,
            }
            binary = {name: v for name, v in write.value.items() if isinstance(v, bytes)}
            if binary:
                item["value"] = {k: v for k, v in write.value.items() if k not in binary}
                item["bytes"] = {}
                for name, value in binary.items():
                    item["bytes"][name] = [len(data), len(value)]
                    data += value
            batch.append(item)
        try:
            await py_agent_js.idb.commit(self._db, json.dumps(batch), to_js(memoryview(data)))
        except JsException as exc:
            raise _store_error(exc, f"commit of {len(writes)} writes failed") from exc

    async def close(self) -> None:
        self._db.close()


def _store_error(exc: JsException, what: str) -> StoreError:
    """A failed IndexedDB call as a StoreError. When another tab's newer version (or the
    browser) closed the connection, the bridge's message says what to do (reload), and
    is the whole message."""
    if getattr(exc, "name", "") == "StoreClosed":
        return StoreError(str(exc.message))
    return StoreError(f"{what}: {exc}")


def _unpack(collection: str, read: JsProxy) -> list[JsonObject]:
    """Records as ``idb.getAllPacked`` sends them: JSON text, and their bytes fields as one
    buffer (one copy across the FFI, not one per record) with where each one lies."""
    records = json.loads(str(read.json))
    for record in records:
        if not isinstance(record, dict):
            raise StoreError(f"a stored {collection} record is not an object: {record!r:.80}")
    fields = json.loads(str(read.fields))
    if fields:
        # Views into the one copy: 10,000 embeddings are not copied again one by one.
        data = memoryview(read.bytes.to_bytes())
        for index, name, offset, length in fields:
            records[index][name] = data[offset : offset + length]
    return records  # type: ignore[no-any-return]


async def open_store(location: str, collections: Sequence[str]) -> IndexedDBStore:
    """Open (creating if needed) the IndexedDB database named ``location``."""
    names = check_collections(collections)
    try:
        db = await py_agent_js.idb.open(location, to_js(list(names)))
    except JsException as exc:
        raise StoreError(f"cannot open IndexedDB database {location!r}: {exc}") from exc
    return IndexedDBStore(db, names)


class OrtWebSession:
    def __init__(self, session: JsProxy) -> None:
        self._session = session
        self.input_names = tuple(session.inputNames)
        self.output_names = tuple(session.outputNames)

    async def run(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        tensors = {}
        for name, array in feeds.items():
            contiguous = np.ascontiguousarray(array)
            ort_type = _ORT_TYPES.get(contiguous.dtype)
            if ort_type is None:
                raise InferenceError(f"input {name!r}: dtype {contiguous.dtype} is not supported")
            # A flat byte view crosses the FFI as one Uint8Array copy; a numpy
            # array would become a nested JS Array of boxed numbers.
            tensors[name] = {
                "type": ort_type,
                "dims": list(contiguous.shape),
                "bytes": contiguous.data.cast("B"),
            }
        try:
            result = await py_agent_js.ort.run(self._session, _to_js_object(tensors))
        except JsException as exc:
            raise InferenceError(str(exc)) from exc
        outputs: dict[str, NDArray[Any]] = {}
        for tensor in result:
            name = str(tensor.name)
            dtype = _NUMPY_TYPES.get(str(tensor.type))
            if dtype is None:
                raise InferenceError(f"output {name!r}: tensor type {tensor.type} is not supported")
            outputs[name] = np.frombuffer(tensor.bytes.to_bytes(), dtype=dtype).reshape(
                tuple(tensor.dims)
            )
        return outputs


class OrtWebRuntime:
    """onnxruntime-web as the worker configured it; its thread count is fixed at boot."""

    def __init__(self) -> None:
        self.name = f"onnxruntime-web {py_agent_js.ort.version}"

    @property
    def threads(self) -> int:
        # ORT falls back to 1 thread when the page is not crossOriginIsolated;
        # this reads what it settled on, not what was asked for.
        return int(py_agent_js.ort.numThreads())

    async def create_session(self, model: bytes) -> OrtWebSession:
        try:
            session = await py_agent_js.ort.createSession(to_js(memoryview(model)))
        except JsException as exc:
            raise InferenceError(f"cannot load model: {exc}") from exc
        return OrtWebSession(session)

    async def load_session(self, location: str, sha256: str) -> OrtWebSession:
        # Fetching, hashing and session creation happen in JS so the model's bytes
        # never cross into Python; the worker may already have started this very
        # call at boot, in which case it joins that promise.
        try:
            session = await py_agent_js.ort.loadSession(location, sha256)
        except JsException as exc:
            if getattr(exc, "name", "") == "IntegrityError":
                raise IntegrityError(str(exc.message)) from exc
            raise InferenceError(f"cannot load model {location}: {exc}") from exc
        return OrtWebSession(session)


def inference_runtime(threads: int = 1) -> OrtWebRuntime:
    del threads  # set once by the worker before the first session (web/src/worker.js)
    return OrtWebRuntime()


class FetchTransport:
    def __init__(self, base_url: str) -> None:
        self._base_url = base_url

    async def request(
        self,
        method: str,
        url: str,
        body: JsonValue = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> HttpResponse:
        try:
            response = await py_agent_js.http.request(
                method,
                self._base_url + url,
                None if body is None else json.dumps(body),
                _to_js_object(dict(headers or {})),
                int(timeout_s * 1000),
            )
        except JsException as exc:
            # AbortSignal.timeout rejects with a DOMException named TimeoutError.
            timed_out = "TimeoutError" in str(exc)
            raise TransportError(f"{method} {url}: {exc}", timed_out=timed_out) from exc
        text = str(response.text)
        try:
            parsed: JsonValue = json.loads(text)
        except ValueError:
            parsed = text
        return HttpResponse(int(response.status), parsed, dict(response.headers.to_py()))


def http_transport(base_url: str) -> FetchTransport:
    return FetchTransport(base_url)
