"""CPython adapters: SQLite for the store, onnxruntime for inference, httpx for HTTP."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from .integrity import check_sha256
from .interfaces import (
    Delete,
    HttpResponse,
    InferenceError,
    JsonObject,
    JsonValue,
    Put,
    ResourceError,
    StoreError,
    TransportError,
    Write,
)
from .store_schema import check_collection, check_collections

PLATFORM_NAME = "native"


class SQLiteStore:
    """One table per collection; ``commit`` is one SQLite transaction."""

    def __init__(self, connection: sqlite3.Connection, collections: tuple[str, ...]) -> None:
        self._db = connection
        self.collections = collections

    async def get(self, collection: str, key: str) -> JsonObject | None:
        check_collection(self.collections, collection)
        row = self._db.execute(f'SELECT value FROM "{collection}" WHERE key = ?', (key,)).fetchone()
        return None if row is None else _loads(row[0])

    async def get_all(self, collection: str) -> list[JsonObject]:
        check_collection(self.collections, collection)
        rows = self._db.execute(f'SELECT value FROM "{collection}" ORDER BY key').fetchall()
        return [_loads(row[0]) for row in rows]

    async def commit(self, writes: Sequence[Write]) -> None:
        for write in writes:
            check_collection(self.collections, write.collection)
        try:
            with self._db:
                for write in writes:
                    if isinstance(write, Put):
                        text = json.dumps(write.value, separators=(",", ":"))
                        self._db.execute(
                            f'INSERT OR REPLACE INTO "{write.collection}" VALUES (?, ?)',
                            (write.key, text),
                        )
                    elif isinstance(write, Delete):
                        self._db.execute(
                            f'DELETE FROM "{write.collection}" WHERE key = ?', (write.key,)
                        )
        except (sqlite3.Error, TypeError, ValueError) as exc:
            raise StoreError(f"commit of {len(writes)} writes failed: {exc}") from exc

    async def close(self) -> None:
        self._db.close()


def _loads(text: str) -> JsonObject:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise StoreError(f"stored record is not a JSON object: {text[:80]!r}")
    return value


async def open_store(location: str, collections: Sequence[str]) -> SQLiteStore:
    """Open (creating if needed) the SQLite file at ``location`` (``:memory:`` for tests)."""
    names = check_collections(collections)
    try:
        db = sqlite3.connect(location)
        db.execute("PRAGMA journal_mode=WAL")
        for name in names:
            db.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}" (key TEXT PRIMARY KEY, value TEXT NOT NULL)'
            )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {location!r}: {exc}") from exc
    return SQLiteStore(db, names)


async def load_resource(location: str, sha256: str | None = None) -> bytes:
    """The bytes of the file at ``location``; checked against ``sha256`` when given."""
    try:
        data = await asyncio.to_thread(Path(location).read_bytes)
    except OSError as exc:
        raise ResourceError(f"cannot read {location}: {exc.strerror}") from exc
    if sha256 is not None:
        check_sha256(location, data, sha256)
    return data


class OrtSession:
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.output_names = tuple(o.name for o in session.get_outputs())

    async def run(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        try:
            outputs = self._session.run(list(self.output_names), dict(feeds))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise InferenceError(str(exc)) from exc
        return {
            name: np.asarray(value) for name, value in zip(self.output_names, outputs, strict=True)
        }


class OrtRuntime:
    name = f"onnxruntime {ort.__version__}"

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads

    async def create_session(self, model: bytes) -> OrtSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InferenceError(f"cannot load model: {exc}") from exc
        return OrtSession(session)

    async def load_session(self, location: str, sha256: str) -> OrtSession:
        return await self.create_session(await load_resource(location, sha256))


def inference_runtime(threads: int = 1) -> OrtRuntime:
    return OrtRuntime(threads)


class HttpxTransport:
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
        async with httpx.AsyncClient(base_url=self._base_url, timeout=timeout_s) as client:
            try:
                response = await client.request(method, url, json=body, headers=dict(headers or {}))
            except httpx.HTTPError as exc:
                timed_out = isinstance(exc, httpx.TimeoutException)
                raise TransportError(f"{method} {url}: {exc!r}", timed_out=timed_out) from exc
        headers = {name.lower(): value for name, value in response.headers.items()}
        return HttpResponse(response.status_code, _json_or_text(response.text), headers)


def _json_or_text(text: str) -> JsonValue:
    try:
        return json.loads(text)
    except ValueError:
        return text


def http_transport(base_url: str) -> HttpxTransport:
    return HttpxTransport(base_url)
