"""undo: reverse this device's last change to tasks or notes, as ordinary new ops that sync.

Every change this device makes -- a chat turn's writes, or the page's direct edit or
removal -- pushes an `UndoEntry` onto a stack kept in the device-local ``meta/undo`` (not
synced; the newest `DEPTH` are kept). An entry holds, per record it touched, only what the
change itself altered: a record it created, a record it deleted (every field, to restore
it), or the previous and new values of the fields it wrote. "undo" pops the newest entry
and writes the previous values back through `State.save`, so the reversal is new ops like
any edit; undoing twice undoes two changes. Undo itself is not pushed (there is no redo).
The page's "Undo" on its own delete (`restore`) reverses just that deletion, wherever it
is on the stack, and takes it off: changes made since stay, and stay undoable.

What another device did in between is kept -- an undo after a sync reverses only this
device's own change:

- a field is reverted only while it still holds what the change wrote: a field another
  device changed since keeps their value;
- a record the change created is deleted (whatever was done to it since);
- a record the change deleted is restored by writing its fields (restoring the tombstone,
  see `State._ops_for`) unless it already exists again; if it is shown because another
  device changed it while it was being deleted here (a conflict, see `py_agent.sync.merge`),
  undo leaves that to the user's choice on the task;
- a record the change edited that was deleted elsewhere since stays deleted: only the
  change that deleted a record brings it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ..platform import Delete, JsonObject, JsonValue, Put, Write
from ..state import SYNCED, State, embedding_key
from ..sync.ops import canonical_json
from .matching import Embed
from .outcome import Outcome

DEPTH = 20
META_KEY = "undo"
Kind = Literal["created", "deleted", "edited"]
NOTHING = "There's nothing to undo."


@dataclass(frozen=True)
class RecordChange:
    """What one change did to one record."""

    collection: str
    record_id: str
    kind: Kind
    before: JsonObject  # deleted: every field; edited: the written fields' previous values
    after: JsonObject  # edited: what the change wrote to those fields

    def to_json(self) -> JsonObject:
        return {
            "collection": self.collection,
            "id": self.record_id,
            "kind": self.kind,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class UndoEntry:
    did: str  # what the change did: "adding “buy milk”"
    changes: tuple[RecordChange, ...]

    def to_json(self) -> JsonObject:
        return {"did": self.did, "changes": [change.to_json() for change in self.changes]}

    @staticmethod
    def from_json(value: JsonValue) -> UndoEntry | None:
        """The entry ``value`` stored, or None when it is not one (a damaged or newer
        record: undo is a convenience, so it skips what it cannot read)."""
        if not isinstance(value, dict) or not isinstance(value.get("changes"), list):
            return None
        changes = []
        for item in value["changes"]:
            if not (
                isinstance(item, dict)
                and item.get("collection") in SYNCED
                and isinstance(item.get("id"), str)
                and item.get("kind") in ("created", "deleted", "edited")
                and isinstance(item.get("before"), dict)
                and isinstance(item.get("after"), dict)
            ):
                return None
            kind, before, after = item["kind"], item["before"], item["after"]
            changes.append(RecordChange(item["collection"], item["id"], kind, before, after))
        return UndoEntry(str(value.get("did") or "your last change"), tuple(changes))


def _same(a: JsonValue, b: JsonValue) -> bool:
    return canonical_json(a) == canonical_json(b)


def changes_of(state: State, writes: Sequence[Write]) -> list[RecordChange]:
    """What ``writes`` would do to tasks and notes, against the records as they are now."""
    changes = []
    for write in writes:
        if write.collection not in SYNCED:
            continue
        current = state.records[write.collection].get(write.key)
        fields = {} if current is None else {k: v for k, v in current.items() if k != "id"}
        if isinstance(write, Delete):
            if current is not None:
                changes.append(RecordChange(write.collection, write.key, "deleted", fields, {}))
        elif current is None:
            changes.append(RecordChange(write.collection, write.key, "created", {}, {}))
        else:
            after = {
                name: value
                for name, value in write.value.items()
                if name != "id" and not _same(fields.get(name), value)
            }
            if after:
                before = {name: fields.get(name) for name in after}
                changes.append(RecordChange(write.collection, write.key, "edited", before, after))
    return changes


def stack(state: State) -> list[UndoEntry]:
    stored = state.meta.get(META_KEY, {}).get("entries", [])
    entries = [UndoEntry.from_json(item) for item in stored] if isinstance(stored, list) else []
    return [entry for entry in entries if entry is not None]


def _stored(entries: Sequence[UndoEntry]) -> Put:
    return Put("meta", META_KEY, {"entries": [entry.to_json() for entry in entries[-DEPTH:]]})


def push(state: State, writes: Sequence[Write], did: str | None) -> list[Write]:
    """The write that puts the change ``writes`` make on top of the stack, to commit with
    them; none when they change no task or note."""
    changes = changes_of(state, writes)
    if not changes:
        return []
    return [_stored([*stack(state), UndoEntry(did or "your last change", tuple(changes))])]


Vector = tuple[str, str, NDArray[np.float32]]


async def _revert(
    state: State, change: RecordChange, embed: Embed
) -> tuple[list[Write], list[Vector], bool]:
    """The writes (and embeddings) that reverse ``change``, and whether any of it is left
    as another device has changed it since (see the module docstring)."""
    name, key = change.collection, change.record_id
    current = state.records[name].get(key)
    embedded = SYNCED[name]
    if change.kind == "created":
        if current is None:
            return [], [], False
        return [Delete(name, key), Delete("embeddings", embedding_key(name, key))], [], False
    if change.kind == "deleted":
        if current is not None:
            # Back already -- or shown only because another device changed it meanwhile,
            # a conflict the user settles on the task itself (keep deleted / restore).
            return [], [], state.delete_conflict(name, key) is not None
        vector = (name, key, await embed(str(change.before.get(embedded))))
        return [Put(name, key, {"id": key, **change.before})], [vector], False
    if current is None:
        return [], [], True  # edited here, deleted elsewhere since: it stays deleted
    reverted = {
        field: change.before[field]
        for field, value in change.after.items()
        if _same(current.get(field), value)
    }
    kept = len(reverted) < len(change.after)
    if not reverted:
        return [], [], kept
    vectors = [(name, key, await embed(str(reverted[embedded])))] if embedded in reverted else []
    return [Put(name, key, {**current, **reverted})], vectors, kept


async def reverse(
    state: State, changes: Sequence[RecordChange], embed: Embed
) -> tuple[list[Write], list[Vector], bool]:
    """The writes (and embeddings) that reverse ``changes``, and whether any of it is left
    as another device has changed it since: what both "undo" and restoring one deleted
    record from the page commit."""
    writes: list[Write] = []
    vectors: list[Vector] = []
    kept = False
    for change in changes:
        change_writes, change_vectors, change_kept = await _revert(state, change, embed)
        writes += change_writes
        vectors += change_vectors
        kept = kept or change_kept
    return writes, vectors, kept


async def undo(state: State, embed: Embed) -> Outcome:
    """Reverse the newest entry on the stack (see the module docstring)."""
    entries = stack(state)
    if not entries:
        return Outcome(NOTHING, undoable=False)
    entry = entries[-1]
    writes, vectors, kept = await reverse(state, entry.changes, embed)
    if not writes and kept:
        reply = f"I couldn't undo {entry.did}: it was changed on another device since."
    elif kept:
        reply = f"Undid {entry.did}, except what was changed on another device since."
    else:
        reply = f"Undid {entry.did}."
    return Outcome(
        reply,
        writes=[*writes, _stored(entries[:-1])],
        vectors=vectors,
        changed=sorted({write.collection for write in writes if write.collection in SYNCED}),
        undoable=False,
    )


async def restore(
    state: State, collection: str, record_id: str, embed: Embed
) -> tuple[list[Write], list[Vector]] | None:
    """The writes (and embedding) that bring back the record the newest entry deleting it
    deleted, with that change taken off the stack -- whatever this device changed since:
    the page's "Undo" on its own delete. None when no entry on the stack deleted it."""
    entries = stack(state)
    for index in reversed(range(len(entries))):
        entry = entries[index]
        deleted = [
            change
            for change in entry.changes
            if (change.collection, change.record_id, change.kind)
            == (collection, record_id, "deleted")
        ]
        if not deleted:
            continue
        writes, vectors, _ = await reverse(state, deleted, embed)
        # The entry's other changes (none, for the page's own deletes) stay undoable.
        rest = tuple(change for change in entry.changes if change not in deleted)
        kept = [UndoEntry(entry.did, rest)] if rest else []
        return [*writes, _stored([*entries[:index], *kept, *entries[index + 1 :]])], vectors
    return None
