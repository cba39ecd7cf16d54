"""The agent's data on the device: tasks, notes, conversation, embeddings, and sync.

Tasks and notes sync between a user's devices, so their truth is the set of sync
ops (``py_agent.sync``): every change to one is ops appended to ``ops`` and to the
``outbox`` in the same commit as the rest of the change, and the records the agent
reads are the merge of those ops (``State.tasks``/``State.notes``). The conversation
and the embeddings stay on the device.

Replaying every op at each start costs seconds with 10,000 notes, so each commit also
keeps, per record (key ``<collection>:<record id>``), its merged state in ``replica``
(``{"collection", "record_id", "record", "conflict", "pending"}``: the record as shown, or
None once deleted, whether a field is in conflict, and its ops waiting in the outbox, op id
-> hlc) and its ops in ``record_ops`` (``{"collection", "record_id", "ops"}``, compact JSON
text). ``load`` reads ``replica`` alone, not the outbox (an entry per op); a record's ops
are merged into ``State.replica`` only when something needs them (a change to it, ops
pulled for it, pushing its pending ops, a conflict on it). Fields merge independently, so
this gives the replica that replaying everything would. It relies on one writer at a time
(``web/src/tabs.js``: only the leader tab's worker writes).

The page shows tasks and notes before Python starts, from ``tasks`` and ``notes``: each
record's view (``RecordViews``: the worker gives the agent's ``py_agent.agent.PAGE_VIEWS``),
kept in step in the same commit as every change and removed with the record. A change to
what a view holds needs a migration that rebuilds them.

Every change is one ``commit``, so a change the UI acknowledges has been durably
written. ``meta/schema`` holds the schema version; ``open_state`` migrates older
data forward, one version at a time. Other meta records:

- ``meta/device``: ``{"device_id", "clock"}`` -- the id this device stamps its ops
  with, and its clock's last timestamp, saved with every op so the clock never
  repeats a timestamp after a restart, whatever the wall clock did meanwhile;
- ``meta/sync``: ``{"account", "cursor", "space_id", "pairing_code"}`` -- the pairing
  (None for a local-only device), how far this device has pulled, and the last
  space it was paired into;
- ``meta/settings`` (the user's choices, e.g. cloud help), ``meta/stats`` (the agent's
  counters), ``meta/install`` (the token an unpaired device asks the server with),
  ``meta/undo`` (this device's recent changes, newest last, for "undo": see
  ``py_agent.skills.undo``; never synced), ``meta/conflict_notes`` (the chat's follow-ups
  on contested deletes awaiting the user's choice: ``py_agent.skills.conflicts``).

A task's fields are listed in ``py_agent.skills.tasks``; ``list`` and ``repeat`` came later,
so older records lack them, which reads as None.

``outbox`` entries ``{"op_id", "hlc"}`` are the ops waiting to be pushed. ``queue`` holds
requests answered tentatively while the server could not be asked.

A chat message's id is ``<wall ms, 13 digits>-<sequence, 3 digits>-<6 random hex>``: ids
sort in the order the messages were made (never going back, even when the wall clock
does, since ``load`` resumes after the newest id stored), and two agents writing to the
same store at once (two tabs before one of them took the lead) still never make the same
id. Messages from before this scheme have ids ``00000001``, … which sort before all of them.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from base64 import b64decode
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .platform import Delete, JsonObject, JsonValue, Put, Store, StoreError, Write, open_store
from .sync.client import SyncAccount
from .sync.hlc import HybridClock, Timestamp, system_wall_ms
from .sync.merge import Conflict, Replica
from .sync.ops import MAX_PARENTS, TOMBSTONE, Op, OpError, canonical_json, new_op
from .vectors import VectorIndex, decode_vectors, encode_vector

COLLECTIONS = (
    "tasks",
    "notes",
    "messages",
    "embeddings",
    "meta",
    "ops",
    "outbox",
    "queue",
    "replica",
    "record_ops",
)
# The collections that sync between devices, and the field of each that is embedded.
SYNCED = {"tasks": "title", "notes": "text"}
SCHEMA_VERSION = 5

# A synced record as the page shows it, from the record as merged (with its "id").
RecordView = Callable[[JsonObject], JsonObject]
RecordViews = Mapping[str, RecordView]
Key = tuple[str, str]  # (collection, record id)
# Records merged with a read each, concurrently; more are merged from one read of them all.
MERGE_ONE_BY_ONE = 64

WallMs = Callable[[], int]
# meta records State keeps in memory (``State.meta``) and updates on save.
KEPT_META = ("settings", "stats", "install", "undo", "conflict_notes")
# Message ids made in one millisecond before the id moves on to the next one.
MESSAGES_PER_MS = 1000
MESSAGE_ID = re.compile(r"(\d{13})-(\d{3})-[0-9a-f]{6}")


def new_id() -> str:
    return uuid.uuid4().hex


def creation_order(record: JsonObject) -> tuple[str, str]:
    """The sort key for records in the order they were made: ``created_at`` alone ties within
    a millisecond, and every device must show the same order, so the id breaks ties."""
    return str(record.get("created_at", "")), str(record["id"])


def new_device_id() -> str:
    """A device's id until it is paired (the server then assigns one)."""
    return uuid.uuid4().hex[:16]


def embedding_key(collection: str, record_id: str) -> str:
    return f"{collection}:{record_id}"


# Where no page shows the records (the command line, tests): no views are kept.
NO_VIEWS: RecordViews = MappingProxyType({})


@dataclass(frozen=True)
class SetField:
    """Write one field of a synced record even when the value does not change: keeping
    the displayed side of a conflict still needs an op that supersedes the other side."""

    collection: str
    record_id: str
    field: str
    value: JsonValue


Change = Write | SetField


def _op_writes(op: Op) -> list[Write]:
    return [
        Put("ops", op.op_id, op.to_json()),
        Put("outbox", op.op_id, {"op_id": op.op_id, "hlc": op.hlc}),
    ]


def _keys(ops: Iterable[Op]) -> set[Key]:
    return {(op.collection, op.record_id) for op in ops}


def _damaged(problem: object) -> StoreError:
    return StoreError(f"this device's sync data is damaged: {problem}")


def _row_ops(collection: str, record_id: str, text: str) -> list[Op]:
    try:
        return [
            Op(
                op_id=op_id,
                device_id=device_id,
                collection=collection,
                record_id=record_id,
                field=field,
                value=value,
                hlc=hlc,
                parents=tuple(parents),
            )
            for op_id, device_id, field, value, hlc, parents in json.loads(text)
        ]
    except (OpError, TypeError, ValueError) as exc:
        raise _damaged(f"the ops of {collection}/{record_id}: {exc}") from None


def _record_writes(
    replica: Replica,
    views: RecordViews,
    keys: Iterable[Key],
    shown: Mapping[str, Mapping[str, JsonObject]],
    pending: Mapping[Key, Mapping[str, str]],
    ops_changed: bool = True,
) -> list[Write]:
    """Each record's merged state with its ``pending`` ops, its ops unless they are as
    they were (module docstring), and its view wherever it differs from ``shown`` (the
    records as the page showed them until now)."""
    writes: list[Write] = []
    for collection, record_id in sorted(keys):
        key, fields = embedding_key(collection, record_id), replica.record(collection, record_id)
        record = None if fields is None else {"id": record_id, **fields}
        where = {"collection": collection, "record_id": record_id}
        state = {
            "record": record,
            "conflict": replica.in_conflict(collection, record_id),
            "pending": dict(pending.get((collection, record_id), {})),
        }
        writes.append(Put("replica", key, {**where, **state}))
        if ops_changed:
            ops = [
                [op.op_id, op.device_id, op.field, op.value, op.hlc, list(op.parents)]
                for op in replica.record_ops(collection, record_id)
            ]
            text = json.dumps(ops, ensure_ascii=False, separators=(",", ":"))
            writes.append(Put("record_ops", key, {**where, "ops": text}))
        view = views.get(collection)
        if view is None or record == shown.get(collection, {}).get(record_id):
            continue
        if record is None:
            writes.append(Delete(collection, record_id))
        else:
            writes.append(Put(collection, record_id, view(record)))
    return writes


async def _stored_ops(store: Store) -> list[Op]:
    ops = []
    for record in await store.get_all("ops"):
        try:
            ops.append(Op.from_json(record, where=f"stored op {record.get('op_id')!r}"))
        except OpError as exc:
            raise _damaged(exc) from None
    return ops


def _device_record(clock: HybridClock) -> Put:
    last = clock.last
    return Put(
        "meta",
        "device",
        {"device_id": clock.device_id, "clock": None if last is None else last.encode()},
    )


async def _v1_to_v2(store: Store, views: RecordViews) -> list[Write]:
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


async def _v2_to_v3(store: Store, views: RecordViews) -> list[Write]:
    """Version 3 syncs: tasks and notes become ops, all waiting in the outbox, so the
    device's existing data reaches its other devices once it is paired."""
    clock = HybridClock(new_device_id(), system_wall_ms)
    replica = Replica()
    writes: list[Write] = []
    for collection in SYNCED:
        for record in await store.get_all(collection):
            record_id = str(record["id"])
            for name, value in record.items():
                if name != "id":
                    replica.write(
                        clock, collection=collection, record_id=record_id, field=name, value=value
                    )
            writes.append(Delete(collection, record_id))
    for op in replica.ops():
        writes.extend(_op_writes(op))
    writes.append(_device_record(clock))
    return writes


async def _v3_to_v4(store: Store, views: RecordViews) -> list[Write]:
    """Version 4 keeps each record's merged state in ``replica`` and its view for the page
    in ``tasks``/``notes`` (module docstring), made here by replaying the ops one last
    time; outbox entries name their record, so pushing them merges only those; and
    embeddings are bytes instead of base64 text, read without decoding."""
    replica = Replica()
    replica.apply(await _stored_ops(store))
    writes = _record_writes(replica, views, _keys(replica.ops()), {}, {})
    for record in await store.get_all("embeddings"):
        vector = record.get("vector")
        if isinstance(vector, str):  # base64 text until now
            writes.append(
                Put("embeddings", str(record["key"]), {**record, "vector": b64decode(vector)})
            )
    for entry in await store.get_all("outbox"):
        if replica.op(str(entry.get("op_id"))) is None:  # its op is gone: never pushed
            writes.append(Delete("outbox", str(entry.get("op_id"))))
    return writes


async def _v4_to_v5(store: Store, views: RecordViews) -> list[Write]:
    """Version 5 keeps each record's pending ops in its merged state too, so a start does
    not read the outbox, an entry per op."""
    records = {
        str(op.get("op_id")): (str(op.get("collection")), str(op.get("record_id")))
        for op in await store.get_all("ops")
    }
    pending: dict[Key, dict[str, str]] = {}
    for entry in await store.get_all("outbox"):
        key = records.get(str(entry.get("op_id")))
        if key is not None:
            pending.setdefault(key, {})[str(entry["op_id"])] = str(entry.get("hlc"))
    return [
        Put(
            "replica",
            embedding_key(key[0], key[1]),
            {**row, "pending": pending.get(key, {})},
        )
        for row in await store.get_all("replica")
        for key in [(str(row.get("collection")), str(row.get("record_id")))]
    ]


# MIGRATIONS[n] upgrades version n to n + 1, given the page's views of records.
MIGRATIONS: dict[int, Callable[[Store, RecordViews], Awaitable[list[Write]]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
}


class State:
    """The device's data in memory, written through to the store.

    It is also the device's ``SyncLog`` (``py_agent.sync.client``): its outbox,
    cursor and the merge of pulled ops. A failed commit reloads memory from the
    store, so memory never shows what the store does not hold. ``views`` make the
    page's ``tasks`` and ``notes`` (module docstring).
    """

    def __init__(
        self,
        store: Store,
        model: str,
        wall_ms: WallMs = system_wall_ms,
        views: RecordViews = NO_VIEWS,
    ) -> None:
        self.store = store
        self.model = model
        self.views = views
        self._wall_ms = wall_ms
        self.replica = Replica()
        self._unmerged: set[Key] = set()  # records whose ops are not in the replica yet
        self.clock = HybridClock(new_device_id(), wall_ms)
        self.outbox: dict[str, str] = {}  # op id -> hlc
        self._outbox_records: dict[str, Key] = {}  # op id -> its record
        self._pending_of: dict[Key, dict[str, str]] = {}  # the outbox by record
        self.sync_meta: JsonObject = {}
        self.tasks: dict[str, JsonObject] = {}
        self.notes: dict[str, JsonObject] = {}
        self.records = {"tasks": self.tasks, "notes": self.notes}
        self.vectors = {"tasks": VectorIndex(), "notes": VectorIndex()}
        self.message_count = 0
        self._message_clock = (0, -1)  # (wall ms, sequence) of the newest message id
        self.revision = 0  # counts changes that arrived from other devices
        self.queue: dict[str, JsonObject] = {}
        self.meta: dict[str, JsonObject] = {}  # settings, stats, install: small, read often

    # -- loading -----------------------------------------------------------------------

    async def load(self) -> None:
        """Read the device's data: each record as its row holds it (module docstring),
        with the ops of records in conflict merged at once."""
        store = self.store
        device, sync_meta, *kept = await asyncio.gather(
            *(store.get("meta", name) for name in ("device", "sync", *KEPT_META))
        )
        rows, messages, queue, embeddings = await asyncio.gather(
            *(store.get_all(name) for name in ("replica", "messages", "queue", "embeddings"))
        )
        if device is None:
            clock = HybridClock(new_device_id(), self._wall_ms)
            await store.commit([_device_record(clock)])
        else:
            last = device.get("clock")
            clock = HybridClock(
                str(device["device_id"]),
                self._wall_ms,
                None if last is None else Timestamp.decode(str(last)),
            )
        self.clock = clock
        try:
            conflicts = self._load_records(rows)
        except (AttributeError, KeyError, TypeError) as exc:
            raise _damaged(f"a stored record lacks {exc}") from None
        await self._merge(conflicts)
        self.sync_meta = sync_meta or {
            "account": None,
            "cursor": None,
            "space_id": None,
            "pairing_code": None,
        }
        self.message_count = len(messages)
        self._message_clock = _newest_message_clock(str(m.get("id", "")) for m in messages)
        self.queue = {str(item["id"]): item for item in queue}
        self.meta = {
            name: value for name, value in zip(KEPT_META, kept, strict=True) if value is not None
        }
        self._load_vectors(embeddings)

    def _load_records(self, rows: list[JsonObject]) -> list[Key]:
        """The records and the outbox as their merged states show them, none merged yet;
        answers the records in conflict."""
        self.replica, self._unmerged = Replica(), set()
        self.outbox, self._outbox_records, self._pending_of = {}, {}, {}
        for table in self.records.values():
            table.clear()
        conflicts = []
        for row in rows:
            key = (str(row["collection"]), str(row["record_id"]))
            self._unmerged.add(key)
            record = row["record"]
            if isinstance(record, dict) and key[0] in self.records:
                self.records[key[0]][key[1]] = record
            if row["conflict"]:
                conflicts.append(key)
            pending = row["pending"]
            if pending:
                self._pending_of[key] = pending
                for op_id, hlc in pending.items():
                    self.outbox[op_id] = hlc
                    self._outbox_records[op_id] = key
        return conflicts

    def _load_vectors(self, embeddings: list[JsonObject]) -> None:
        """The current model's vectors of the records shown, one matrix per collection."""
        self.vectors = {collection: VectorIndex() for collection in SYNCED}
        found: dict[str, list[tuple[str, bytes | memoryview]]] = {c: [] for c in SYNCED}
        for record in embeddings:
            collection, _, record_id = str(record.get("key", "")).partition(":")
            vector = record.get("vector")
            if (
                collection in found
                and record.get("model") == self.model
                and record_id in self.records[collection]
                and isinstance(vector, (bytes, memoryview))
            ):
                found[collection].append((record_id, vector))
        for collection, vectors in found.items():
            lengths = Counter(len(data) for _, data in vectors if data and len(data) % 4 == 0)
            if not lengths:
                continue
            # A vector of another length is damaged: left out, its record is embedded again.
            [(length, _)] = lengths.most_common(1)
            usable = [(record_id, data) for record_id, data in vectors if len(data) == length]
            self.vectors[collection].add_many(
                [record_id for record_id, _ in usable],
                decode_vectors([data for _, data in usable]),
            )

    async def _reload(self) -> None:
        """After a failed commit: memory as the store holds it, with the records merged
        until now merged again."""
        merged = _keys(self.replica.ops())
        await self.load()
        await self._merge(merged)

    async def _merge(self, keys: Iterable[Key]) -> None:
        """Bring the ops of ``keys`` into the replica where they are not yet (see load)."""
        wanted = sorted(self._unmerged.intersection(keys))
        if not wanted:
            return
        if len(wanted) <= MERGE_ONE_BY_ONE:
            found = await asyncio.gather(
                *(self.store.get("record_ops", embedding_key(*key)) for key in wanted)
            )
            rows = dict(zip(wanted, found, strict=True))
        else:
            rows = {
                (str(row.get("collection")), str(row.get("record_id"))): row
                for row in await self.store.get_all("record_ops")
            }
        ops: list[Op] = []
        for key in wanted:
            row = rows.get(key)
            if row is None:
                raise _damaged(f"the ops of {key[0]}/{key[1]} are missing")
            ops += _row_ops(*key, str(row.get("ops")))
        self.replica.apply(ops)
        self._unmerged.difference_update(wanted)

    def _record_writes(
        self,
        keys: Iterable[Key],
        pending: Mapping[Key, Mapping[str, str]] | None = None,
        ops_changed: bool = True,
    ) -> list[Write]:
        """See ``_record_writes``; ``pending``: the records' pending ops after the commit,
        for those it changes."""
        now = self._pending_of if pending is None else {**self._pending_of, **pending}
        return _record_writes(self.replica, self.views, keys, self.records, now, ops_changed)

    def _pending_after(
        self, added: Iterable[Op] = (), acknowledged: Iterable[str] = ()
    ) -> dict[Key, dict[str, str]]:
        """The pending ops, op id -> hlc, of each record ``added``/``acknowledged`` change,
        as they will be."""
        after: dict[Key, dict[str, str]] = {}
        for op_id in acknowledged:
            key = self._outbox_records[op_id]
            after.setdefault(key, dict(self._pending_of.get(key, {}))).pop(op_id, None)
        for op in added:
            key = (op.collection, op.record_id)
            after.setdefault(key, dict(self._pending_of.get(key, {})))[op.op_id] = op.hlc
        return after

    def _set_pending(self, after: Mapping[Key, Mapping[str, str]]) -> None:
        """The outbox in memory, with these records' pending ops as given."""
        for key, ops in after.items():
            for op_id in self._pending_of.pop(key, {}):
                del self.outbox[op_id], self._outbox_records[op_id]
            if ops:
                self._pending_of[key] = {str(i): str(hlc) for i, hlc in ops.items()}
                for op_id, hlc in self._pending_of[key].items():
                    self.outbox[op_id] = hlc
                    self._outbox_records[op_id] = key

    # -- embeddings --------------------------------------------------------------------

    def missing_vectors(self, collection: str) -> list[JsonObject]:
        """Records with no embedding from the current model (new model, migrated data,
        or a record changed on another device)."""
        have = set(self.vectors[collection].ids)
        return [r for record_id, r in self.records[collection].items() if record_id not in have]

    def vector_write(self, collection: str, record_id: str, vector: NDArray[np.float32]) -> Put:
        key = embedding_key(collection, record_id)
        return Put(
            "embeddings",
            key,
            {"key": key, "model": self.model, "vector": encode_vector(vector)},
        )

    # -- local changes -----------------------------------------------------------------

    async def save(
        self,
        changes: Sequence[Change],
        vectors: Sequence[tuple[str, str, NDArray[np.float32]]] = (),
    ) -> None:
        """Commit ``changes`` plus embeddings in one transaction, then update memory.

        A ``Put``/``Delete`` on a synced collection becomes ops for the fields that
        changed (a delete sets the tombstone), stored and queued for sync in the
        same transaction.
        """
        try:
            ops: list[Op] = []
            plain: list[Write] = []
            await self._merge(
                (c.collection, c.record_id if isinstance(c, SetField) else c.key) for c in changes
            )
            for change in changes:
                if isinstance(change, SetField):
                    ops += self._write(
                        change.collection, change.record_id, change.field, change.value
                    )
                elif change.collection in SYNCED:
                    ops += self._ops_for(change)
                else:
                    plain.append(change)
            keys, pending = _keys(ops), self._pending_after(added=ops)
            op_writes = [write for op in ops for write in _op_writes(op)]
            meta = [_device_record(self.clock)] if ops else []
            vector_writes = [self.vector_write(c, i, v) for c, i, v in vectors]
            records = self._record_writes(keys, pending)
            await self.store.commit([*plain, *op_writes, *records, *meta, *vector_writes])
        except BaseException:
            await self._reload()  # the replica may hold ops the store does not
            raise
        self._set_pending(pending)
        self._materialize(keys)
        for write in plain:
            kept = {"queue": self.queue, "meta": self.meta}.get(write.collection)
            if kept is None or (write.collection == "meta" and write.key not in KEPT_META):
                continue
            if isinstance(write, Put):
                kept[write.key] = write.value
            else:
                kept.pop(write.key, None)
        for collection, record_id, vector in vectors:
            if record_id in self.records[collection]:
                self.vectors[collection].add(record_id, vector)

    def _write(self, collection: str, record_id: str, field: str, value: JsonValue) -> list[Op]:
        return self.replica.write(
            self.clock, collection=collection, record_id=record_id, field=field, value=value
        )

    def _ops_for(self, write: Write) -> list[Op]:
        collection, record_id = write.collection, write.key
        current = self.replica.record(collection, record_id)
        if isinstance(write, Delete):
            return [] if current is None else self._write(collection, record_id, TOMBSTONE, True)
        ops: list[Op] = []
        if current is None:
            current = {}
            if self.replica.heads(collection, record_id, TOMBSTONE):  # deleted: restore it
                ops += self._write(collection, record_id, TOMBSTONE, False)
        for name, value in write.value.items():
            if name == "id":
                continue
            if name in current and canonical_json(current[name]) == canonical_json(value):
                continue
            ops += self._write(collection, record_id, name, value)
        return ops

    def _materialize(self, keys: Iterable[tuple[str, str]]) -> None:
        """Bring ``records`` and the vector index up to the replica for ``keys``."""
        for collection, record_id in keys:
            table = self.records.get(collection)
            if table is None:
                continue  # a collection a newer app syncs: kept as ops, not shown
            fields = self.replica.record(collection, record_id)
            if fields is None:
                table.pop(record_id, None)
                self.vectors[collection].remove(record_id)
            else:
                table[record_id] = {"id": record_id, **fields}

    def new_message_id(self) -> str:
        """A chat message id no message ever had (see the module docstring)."""
        last_ms, last_seq = self._message_clock
        ms = max(self._wall_ms(), last_ms)
        seq = last_seq + 1 if ms == last_ms else 0
        if seq >= MESSAGES_PER_MS:
            ms, seq = ms + 1, 0
        self._message_clock = (ms, seq)
        return f"{ms:013d}-{seq:03d}-{secrets.token_hex(3)}"

    def message(self, role: str, text: str, at: datetime, **details: Any) -> Put:
        self.message_count += 1
        record = {
            "id": self.new_message_id(),
            "role": role,
            "text": text,
            "at": at.isoformat(),
            **details,
        }
        return Put("messages", record["id"], record)

    async def history(self, limit: int = 200) -> list[JsonObject]:
        messages = await self.store.get_all("messages")
        return sorted(messages, key=lambda m: str(m["id"]))[-limit:]

    # -- conflicts ---------------------------------------------------------------------

    def conflicts(self) -> list[Conflict]:
        """Fields of tasks and notes edited differently on two devices."""
        return [c for c in self.replica.conflicts() if c.collection in SYNCED]

    def conflict(self, conflict_id: str) -> Conflict | None:
        return next((c for c in self.conflicts() if c.id == conflict_id), None)

    def delete_conflict(self, collection: str, record_id: str) -> Conflict | None:
        """The record's contested delete (deleted on one device, changed or restored on
        another: ``py_agent.sync.merge``), if it has one."""
        if not self.replica.in_conflict(collection, record_id):
            return None
        key = (collection, record_id, TOMBSTONE)
        return next(
            (c for c in self.conflicts() if (c.collection, c.record_id, c.field) == key), None
        )

    # -- the SyncLog -------------------------------------------------------------------

    async def pending(self, limit: int) -> list[Op]:
        oldest = sorted(self.outbox, key=self.outbox.__getitem__)[:limit]
        await self._merge(self._outbox_records[op_id] for op_id in oldest)
        return [op for op in map(self.replica.op, oldest) if op is not None]

    async def pending_count(self) -> int:
        return len(self.outbox)

    async def acknowledge(self, op_ids: Sequence[str]) -> None:
        known = [op_id for op_id in op_ids if op_id in self.outbox]
        if known:
            pending = self._pending_after(acknowledged=known)
            await self._merge(pending)  # their merged state is written again
            records = self._record_writes(pending, pending, ops_changed=False)
            await self.store.commit([*(Delete("outbox", op_id) for op_id in known), *records])
            self._set_pending(pending)

    async def cursor(self) -> str | None:
        cursor = self.sync_meta.get("cursor")
        return None if cursor is None else str(cursor)

    async def receive(self, ops: Sequence[Op], cursor: str) -> None:
        """Merge pulled ops, storing them, the records' new state and ``cursor`` in one
        commit. Raises ``HLCError`` (nothing applied) if an op's clock is too far ahead."""
        for op in ops:
            self.clock.observe(Timestamp.decode(op.hlc))
        try:
            await self._merge(_keys(ops))
            fresh_ids = set(self.replica.apply(ops))
            fresh = [op for op in ops if op.op_id in fresh_ids]
            keys = _keys(fresh)
            stale = self._stale_embeddings(keys)
            meta = {**self.sync_meta, "cursor": cursor}
            await self.store.commit(
                [
                    *(Put("ops", op.op_id, op.to_json()) for op in fresh),
                    *self._record_writes(keys),
                    *(Delete("embeddings", embedding_key(c, i)) for c, i in stale),
                    Put("meta", "sync", meta),
                    _device_record(self.clock),
                ]
            )
        except BaseException:
            await self._reload()
            raise
        self.sync_meta = meta
        for collection, record_id in stale:
            self.vectors[collection].remove(record_id)
        self._materialize(keys)
        if any(collection in SYNCED for collection, _ in keys):
            self.revision += 1

    def _stale_embeddings(self, keys: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """Records among ``keys`` whose embedded text the merge changed or removed."""
        stale = []
        for collection, record_id in keys:
            embedded = SYNCED.get(collection)
            old = self.records.get(collection, {}).get(record_id)
            if embedded is None or old is None:
                continue
            new = self.replica.record(collection, record_id)
            if new is None or new.get(embedded) != old.get(embedded):
                stale.append((collection, record_id))
        return stale

    # -- pairing -----------------------------------------------------------------------

    @property
    def account(self) -> SyncAccount | None:
        data = self.sync_meta.get("account")
        return None if data is None else SyncAccount.from_json(data)

    async def pair(self, account: SyncAccount, pairing_code: str | None) -> None:
        """Start syncing as ``account.device_id``, the id the server gave this device.

        The server accepts only ops stamped with that id, so what waits in the outbox
        is stamped again. Into the space it was last paired with, each pending change
        is re-written with the same value, superseding only the pending op (a conflict
        it is part of stays a conflict). Into a new space (a first pairing, or a move),
        the device brings everything it shows: every field of every record, one op
        each -- conflicts from the old space are settled to their displayed value.
        """
        previous = self.clock.last
        clock = HybridClock(account.device_id, self._wall_ms)
        if previous is not None:
            clock.observe(previous)
        try:
            if account.space_id == self.sync_meta.get("space_id"):
                await self._merge(self._outbox_records.values())
                ops = self._restamp_pending(clock)
            else:
                await self._merge(list(self._unmerged))
                ops = self._carry_everything(clock)
            keys = _keys(ops)
            # The outbox is these ops alone now.
            pending: dict[Key, dict[str, str]] = {key: {} for key in self._pending_of}
            for op in ops:
                pending.setdefault((op.collection, op.record_id), {})[op.op_id] = op.hlc
            meta = {
                "account": account.to_json(),
                "cursor": None,
                "space_id": account.space_id,
                "pairing_code": pairing_code,
            }
            self.clock = clock
            await self.store.commit(
                [
                    *(Delete("outbox", op_id) for op_id in self.outbox),
                    *(write for op in ops for write in _op_writes(op)),
                    *self._record_writes(pending, pending),
                    Put("meta", "sync", meta),
                    _device_record(clock),
                ]
            )
        except BaseException:
            await self._reload()
            raise
        self.sync_meta = meta
        self._set_pending(pending)
        self._materialize(keys)

    def _restamp_pending(self, clock: HybridClock) -> list[Op]:
        fields = {
            (op.collection, op.record_id, op.field)
            for op in map(self.replica.op, self.outbox)
            if op is not None
        }
        ops: list[Op] = []
        for collection, record_id, field in sorted(fields):
            mine = [h for h in self.replica.heads(collection, record_id, field) if h in self.outbox]
            if not mine:
                continue  # superseded already: nothing of it is shown
            pending = [op for op in map(self.replica.op, mine) if op is not None]
            latest = max(pending, key=lambda op: op.hlc)
            # The pending ops never reach the server, so the new op also lists what
            # they superseded: elsewhere it must supersede exactly that.
            parents = dict.fromkeys([*mine, *(p for op in pending for p in op.parents)])
            op = new_op(
                clock,
                collection=collection,
                record_id=record_id,
                field=field,
                value=latest.value,
                parents=list(parents)[:MAX_PARENTS],
            )
            self.replica.apply([op])
            ops.append(op)
        return ops

    def _carry_everything(self, clock: HybridClock) -> list[Op]:
        ops: list[Op] = []
        for collection in SYNCED:
            for record_id, fields in self.replica.records(collection).items():
                for name, value in fields.items():
                    ops += self.replica.write(
                        clock, collection=collection, record_id=record_id, field=name, value=value
                    )
        return ops

    async def set_pairing_code(self, code: str) -> None:
        meta = {**self.sync_meta, "pairing_code": code}
        await self.store.commit([Put("meta", "sync", meta)])
        self.sync_meta = meta

    async def leave(self) -> None:
        """Stop syncing; the data stays, and this device keeps working on its own."""
        meta = {**self.sync_meta, "account": None, "pairing_code": None}
        await self.store.commit([Put("meta", "sync", meta)])
        self.sync_meta = meta


def _newest_message_clock(ids: Iterable[str]) -> tuple[int, int]:
    """The (wall ms, sequence) of the newest id in ``ids`` made by ``new_message_id``."""
    newest = (0, -1)
    for message_id in ids:
        match = MESSAGE_ID.fullmatch(message_id)
        if match:
            newest = max(newest, (int(match[1]), int(match[2])))
    return newest


async def migrate(store: Store, views: RecordViews = NO_VIEWS) -> int:
    """Bring the store to SCHEMA_VERSION; returns the version it found. ``views``: how the
    page shows records (see State)."""
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
        writes = await MIGRATIONS[version](store, views)
        version += 1
        await store.commit([*writes, Put("meta", "schema", {"version": version})])
    if meta is None and found == SCHEMA_VERSION:
        await store.commit([Put("meta", "schema", {"version": SCHEMA_VERSION})])
    return found


async def open_state(
    location: str,
    model: str,
    wall_ms: WallMs = system_wall_ms,
    views: RecordViews = NO_VIEWS,
) -> State:
    store = await open_store(location, COLLECTIONS)
    await migrate(store, views)
    state = State(store, model, wall_ms, views)
    await state.load()
    return state
