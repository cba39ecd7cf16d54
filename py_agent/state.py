"""The agent's data on the device: tasks, notes, conversation, embeddings, meta.

Records are plain JSON objects in the platform store (IndexedDB in the browser,
SQLite natively). Every change is one ``commit``, so a change the UI
acknowledges has been durably written. ``meta/schema`` holds the schema
version; ``open_state`` migrates older data forward, one version at a time.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .platform import Delete, JsonObject, Put, Store, StoreError, Write, open_store

COLLECTIONS = ("tasks", "notes", "messages", "embeddings", "meta")
SCHEMA_VERSION = 2


def new_id() -> str:
    return uuid.uuid4().hex


def embedding_key(collection: str, record_id: str) -> str:
    return f"{collection}:{record_id}"


def encode_vector(vector: NDArray[np.float32] | list[float]) -> str:
    """float32 bytes as base64: one string per record, which IndexedDB and SQLite both
    store as is, and which loads without boxing each number through the FFI."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> NDArray[np.float32]:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


async def _v1_to_v2(store: Store) -> list[Write]:
    """Version 1 kept each note's embedding inside the note. Version 2 keeps
    embeddings in their own collection, tagged with the model that made them, so
    notes stay small and a new model can re-embed without touching them."""
    writes: list[Write] = []
    for note in await store.get_all("notes"):
        vector = note.pop("embedding", None)
        if vector is not None:
            key = embedding_key("notes", note["id"])
            model = note.pop("embedding_model", "unknown")
            record = {"key": key, "vector": encode_vector(vector), "model": model}
            writes.append(Put("embeddings", key, record))
        writes.append(Put("notes", note["id"], note))
    return writes


# MIGRATIONS[n] upgrades version n to n + 1.
MIGRATIONS: dict[int, Callable[[Store], Awaitable[list[Write]]]] = {1: _v1_to_v2}


class VectorIndex:
    """Unit vectors of one collection in one matrix, so a search is one matmul.

    Rows grow by doubling and a removal moves the last row into the hole, so
    loading or adding n vectors costs O(n) copies, not O(n^2).
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._data = np.zeros((0, 0), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, record_id: str, vector: NDArray[np.float32]) -> None:
        row = np.asarray(vector, dtype=np.float32).ravel()
        if record_id in self._rows:
            self._data[self._rows[record_id]] = row
            return
        count = len(self.ids)
        if count == self._data.shape[0]:
            grown = np.zeros((max(16, 2 * count), row.size), dtype=np.float32)
            if count:
                grown[:count] = self._data[:count]
            self._data = grown
        self._data[count] = row
        self._rows[record_id] = count
        self.ids.append(record_id)

    def remove(self, record_id: str) -> None:
        index = self._rows.pop(record_id, None)
        if index is None:
            return
        last = len(self.ids) - 1
        if index != last:
            moved = self.ids[last]
            self._data[index] = self._data[last]
            self.ids[index] = moved
            self._rows[moved] = index
        self.ids.pop()

    def nearest(
        self, query: NDArray[np.float32], k: int, among: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """The k most similar ids with their cosine (vectors are normalised)."""
        if not self.ids:
            return []
        scores = self._data[: len(self.ids)] @ np.asarray(query, dtype=np.float32)
        if among is not None:
            allowed = np.array([record_id in among for record_id in self.ids])
            scores = np.where(allowed, scores, -np.inf)
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[int(i)], float(scores[i])) for i in top if np.isfinite(scores[i])]


class State:
    def __init__(self, store: Store, model: str) -> None:
        self.store = store
        self.model = model
        self.tasks: dict[str, JsonObject] = {}
        self.notes: dict[str, JsonObject] = {}
        self.vectors = {"tasks": VectorIndex(), "notes": VectorIndex()}
        self.message_count = 0

    async def load(self) -> None:
        self.tasks = {task["id"]: task for task in await self.store.get_all("tasks")}
        self.notes = {note["id"]: note for note in await self.store.get_all("notes")}
        self.message_count = len(await self.store.get_all("messages"))
        for key_and_record in await self._embeddings():
            collection, record_id, record = key_and_record
            if collection in self.vectors and record.get("model") == self.model:
                self.vectors[collection].add(record_id, decode_vector(record["vector"]))

    async def _embeddings(self) -> list[tuple[str, str, JsonObject]]:
        found = []
        for record in await self.store.get_all("embeddings"):
            collection, _, record_id = str(record.get("key", "")).partition(":")
            found.append((collection, record_id, record))
        return found

    def missing_vectors(self, collection: str) -> list[JsonObject]:
        """Records with no embedding from the current model (new model, or migrated data)."""
        records = self.tasks if collection == "tasks" else self.notes
        have = set(self.vectors[collection].ids)
        return [record for record_id, record in records.items() if record_id not in have]

    def vector_write(self, collection: str, record_id: str, vector: NDArray[np.float32]) -> Put:
        key = embedding_key(collection, record_id)
        return Put(
            "embeddings",
            key,
            {"key": key, "model": self.model, "vector": encode_vector(vector)},
        )

    async def save(
        self,
        writes: Sequence[Write],
        vectors: Sequence[tuple[str, str, NDArray[np.float32]]] = (),
    ) -> None:
        """Commit ``writes`` plus embeddings in one transaction, then update memory."""
        all_writes = [*writes, *(self.vector_write(c, i, v) for c, i, v in vectors)]
        await self.store.commit(all_writes)
        for write in writes:
            table = {"tasks": self.tasks, "notes": self.notes}.get(write.collection)
            if table is None:
                continue
            if isinstance(write, Put):
                table[write.key] = write.value
            elif isinstance(write, Delete):
                table.pop(write.key, None)
                self.vectors[write.collection].remove(write.key)
        for collection, record_id, vector in vectors:
            self.vectors[collection].add(record_id, vector)

    def message(self, role: str, text: str, at: datetime, **details: Any) -> Put:
        self.message_count += 1
        record = {
            "id": f"{self.message_count:08d}",
            "role": role,
            "text": text,
            "at": at.isoformat(),
            **details,
        }
        return Put("messages", record["id"], record)

    async def history(self, limit: int = 200) -> list[JsonObject]:
        messages = await self.store.get_all("messages")
        return sorted(messages, key=lambda m: str(m["id"]))[-limit:]


async def migrate(store: Store) -> int:
    """Bring the store to SCHEMA_VERSION; returns the version it found."""
    meta = await store.get("meta", "schema")
    found = int(meta["version"]) if meta else SCHEMA_VERSION
    if meta is None and (await store.get_all("notes") or await store.get_all("tasks")):
        found = 1  # data written before the schema record existed
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"this data has schema version {found}, newer than this py_agent "
            f"({SCHEMA_VERSION}): update the app instead of opening it with an old one"
        )
    version = found
    while version < SCHEMA_VERSION:
        writes = await MIGRATIONS[version](store)
        version += 1
        await store.commit([*writes, Put("meta", "schema", {"version": version})])
    if meta is None and found == SCHEMA_VERSION:
        await store.commit([Put("meta", "schema", {"version": SCHEMA_VERSION})])
    return found


async def open_state(location: str, model: str) -> State:
    store = await open_store(location, COLLECTIONS)
    await migrate(store)
    state = State(store, model)
    await state.load()
    return state
