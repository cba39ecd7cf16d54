"""The merge: a multi-value register per field, the same on every device and the server.

For each ``(collection, record_id, field)`` a ``Replica`` keeps every op it received.

- An op is **dominated** when another op of the same field lists it in ``parents`` and
  is later in ``(hlc, op_id)`` order. (A writer's clock has observed every op it saw, so
  an honest child is always later than its parents; ignoring the other edges keeps a
  buggy or hostile cycle from hiding every value.) Only direct parents are needed:
  writers list all the heads they see, so every superseded op is some op's parent.
- The **heads** are the ops that are not dominated -- never empty once the field has an
  op, since the greatest op can't be dominated.
- The **displayed value** is the head with the greatest ``(hlc, op_id)`` (latest wins;
  the hlc ends with the device id, so this is ``(hlc, device_id)`` with op_id breaking
  exact ties). For the ``TOMBSTONE`` field a head with value ``True`` goes first, so
  ``state()`` shows a record that any head deletes as ``_deleted: true``.
- Two or more heads with different values (compared as JSON: ``true`` is not ``1``)
  make a **conflict**, listing every head so the user can pick one. Writing the field
  with ``parents`` = all heads (``Replica.write`` does) supersedes them all and resolves it.

**Deletes.** A delete writes ``TOMBSTONE = True`` and lists as parents, besides the
tombstone's heads, the heads of every other field of the record it had seen
(``Replica.write`` does). A head of another field is **seen** by the deletion when a
``True`` head of the tombstone -- or a ``True`` tombstone op of the same device that this
head lists, recursively (a chain of ops when there are more than ``MAX_PARENTS`` heads, or
the device deleting again) -- lists it and is later in ``(hlc, op_id)`` order. A head
nobody deleting had seen is an edit **concurrent with the delete**. A ``True`` tombstone
that lists no op of another field was written before deletes said what they had seen; it
is taken to have seen every op of its record that is earlier than it (all a clock can say).

The record is **hidden** by ``record``/``records`` (its fields are kept: ``state()`` shows
them) when a ``True`` head exists and the deletion is not contested. It is contested -- a
conflict on ``TOMBSTONE``, and the record stays shown so the user sees what they would
lose -- when a ``False`` head (a concurrent restore) or an edit concurrent with the delete
exists. The conflict's versions are its tombstone heads and, for the concurrent edits, one
more ``False`` version (the latest edit's op, with ``changes``: the fields the edits set).
Keeping a ``True`` version writes a new delete that sees everything ("keep deleted");
keeping a ``False`` one writes ``_deleted = False`` over the tombstone heads ("restore with
the edit": the edits are their fields' heads already). Both are ops that sync like any
other; an edit concurrent with *that* choice contests it again, so nothing is lost
silently whatever order the ops arrive in.

The state is a function of the set of ops only: any order, any batching, any
duplicates give equal ``state()``. An op id reused for a different op is refused.
Writing ``_deleted = False`` restores a deleted record.

Cost: applying an op is O(its parents + the field's heads); reads are O(what they return),
after each record a delete touched was summarised again in O(its ops). ``page`` reads the
state a slice at a time, so a server can answer a large space in parts.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .hlc import HybridClock, Timestamp
from .ops import MAX_PARENTS, TOMBSTONE, JsonValue, Op, OpError, new_op

_FieldKey = tuple[str, str, str]
RecordKey = tuple[str, str]  # (collection, record_id): the order of state() and its pages


def _order(op: Op) -> tuple[str, str]:
    return (op.hlc, op.op_id)


def _fresh(op: Op) -> JsonValue:
    """The op's value, as a copy the caller may mutate without touching the op."""
    if isinstance(op.value, (dict, list)):
        return json.loads(op.value_json)
    return op.value


@dataclass(frozen=True)
class Version:
    """One head of a field: a value some device wrote and nobody has superseded."""

    value: JsonValue
    hlc: str
    device_id: str
    op_id: str
    # Only on the version that restores a record with the edits concurrent with its
    # delete: field -> the value those edits set (the latest edit's, per field).
    changes: dict[str, JsonValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, JsonValue]:
        data: dict[str, JsonValue] = {
            "value": self.value,
            "hlc": self.hlc,
            "device_id": self.device_id,
            "op_id": self.op_id,
        }
        if self.changes:
            data["changes"] = dict(self.changes)
        return data


@dataclass(frozen=True)
class Conflict:
    """A field whose heads hold different values: the winner is displayed, all are kept."""

    collection: str
    record_id: str
    field: str
    # All heads: the displayed one first, then latest first; a contested delete's
    # "restore with the edits" last.
    versions: tuple[Version, ...]
    # A contested delete: the op ids of the edits concurrent with it (module docstring).
    edits: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Stable for the same heads (and concurrent edits) on every device: sha1 of the
        field and those op ids."""
        heads = sorted({version.op_id for version in self.versions} | set(self.edits))
        text = json.dumps([self.collection, self.record_id, self.field, heads])
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "id": self.id,
            "collection": self.collection,
            "record_id": self.record_id,
            "field": self.field,
            "versions": [version.to_json() for version in self.versions],
        }


@dataclass(frozen=True)
class StatePage:
    """A slice of ``Replica.state()``: some records, in (collection, record_id) order, and
    the conflicts of those records."""

    records: dict[str, dict[str, dict[str, JsonValue]]]  # as in state()
    conflicts: list[Conflict]
    # The key of the page's last record when records follow it (the next page starts
    # after it); None on the last page.
    last: RecordKey | None


class _Field:
    """The ops of one field, its heads, and who listed which op as a parent."""

    __slots__ = ("conflict", "heads", "listed", "ops", "ordered")

    def __init__(self) -> None:
        self.ops: dict[str, Op] = {}
        self.heads: set[str] = set()
        # op id -> the greatest (hlc, op_id) of an op of this field listing it as a parent.
        # Kept for op ids not received yet, so an op arriving after its child is dominated.
        self.listed: dict[str, tuple[str, str]] = {}
        self.ordered: tuple[Op, ...] = ()  # heads, displayed first (see summarise)
        self.conflict = False

    def add(self, op: Op) -> None:
        order = _order(op)
        self.ops[op.op_id] = op
        lister = self.listed.get(op.op_id)
        if lister is None or lister <= order:
            self.heads.add(op.op_id)
        for parent in op.parents:
            previous = self.listed.get(parent)
            if previous is None or previous < order:
                self.listed[parent] = order
            known = self.ops.get(parent)
            if known is not None and _order(known) < order:
                self.heads.discard(parent)

    def summarise(self, name: str) -> None:
        ordered = sorted((self.ops[op_id] for op_id in self.heads), key=_order, reverse=True)
        if name == TOMBSTONE:
            # The latest head that deletes goes first (module docstring).
            deleting = next((i for i, op in enumerate(ordered) if op.value is True), 0)
            ordered.insert(0, ordered.pop(deleting))
        self.ordered = tuple(ordered)
        self.conflict = len({op.value_json for op in ordered}) > 1


def _deleted(fields: dict[str, _Field]) -> bool:
    """Whether a head of the record's tombstone deletes it."""
    tombstone = fields.get(TOMBSTONE)
    return tombstone is not None and tombstone.ordered[0].value is True


def _concurrent_edits(fields: dict[str, _Field]) -> tuple[Op, ...]:
    """The heads of the record's other fields that no deletion had seen, latest first;
    empty unless the record is deleted (module docstring). Needs summarised fields."""
    if not _deleted(fields):
        return ()
    tombstone = fields[TOMBSTONE]
    others = {op_id for name, state in fields.items() if name != TOMBSTONE for op_id in state.ops}
    seen: dict[str, tuple[str, str]] = {}  # op id -> the latest deletion listing it
    before: tuple[str, str] | None = None  # ops earlier than this: seen (old deletes)
    for head in tombstone.ordered:
        if head.value is not True:
            continue
        # The head, and the same device's deletes it lists: what that device had seen.
        chain, todo, listed = {head.op_id}, [head], False
        while todo:
            delete = todo.pop()
            for parent in delete.parents:
                if parent in others:
                    listed = True
                    seen[parent] = max(seen.get(parent, _order(delete)), _order(delete))
                known = tombstone.ops.get(parent)
                if (
                    known is not None
                    and known.value is True
                    and known.device_id == head.device_id
                    and parent not in chain
                ):
                    chain.add(parent)
                    todo.append(known)
        if not listed and (before is None or _order(head) > before):
            before = _order(head)
    edits = [
        op
        for name, state in fields.items()
        if name != TOMBSTONE
        for op in state.ordered
        if not (op.op_id in seen and _order(op) < seen[op.op_id])
        and not (before is not None and _order(op) < before)
    ]
    return tuple(sorted(edits, key=_order, reverse=True))


class Replica:
    """Every op one participant (a device or the server) has received, merged.

    Pure and synchronous: feed it ops with ``apply``, read the merged view back. It does
    not persist anything; store the ops and ``apply`` them again on start.
    """

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}
        self._fields: dict[str, dict[str, dict[str, _Field]]] = {}
        self._dirty: set[_FieldKey] = set()
        self._conflicts: set[_FieldKey] = set()
        # Deleted records with edits concurrent with the delete (see _concurrent_edits).
        self._contested: dict[RecordKey, tuple[Op, ...]] = {}
        self._sorted: list[Op] | None = None
        self._keys: list[RecordKey] | None = None  # every record, sorted: for page()

    def __len__(self) -> int:
        return len(self._ops)

    def __contains__(self, op_id: object) -> bool:
        return op_id in self._ops

    def op(self, op_id: str) -> Op | None:
        return self._ops.get(op_id)

    def apply(self, ops: Iterable[Op]) -> list[str]:
        """Merge ``ops``; return the op ids that were new, in the order given.

        Idempotent: ops already received are skipped. All or nothing: if any op reuses
        a known op id for different content, ``OpError`` is raised and nothing is applied.
        """
        batch: dict[str, Op] = {}
        for i, op in enumerate(ops):
            if not isinstance(op, Op):
                raise OpError(f"ops[{i}] must be an Op, got {type(op).__name__}")
            known = self._ops.get(op.op_id) or batch.get(op.op_id)
            if known is None:
                batch[op.op_id] = op
            elif known != op:
                raise OpError(
                    f"ops[{i}].op_id {op.op_id!r} was already used for a different op "
                    f"({known.collection}/{known.record_id}.{known.field} at {known.hlc})"
                )
        for op in batch.values():
            self._ops[op.op_id] = op
            records = self._fields.setdefault(op.collection, {})
            if op.record_id not in records:
                self._keys = None
            fields = records.setdefault(op.record_id, {})
            state = fields.get(op.field)
            if state is None:
                state = fields[op.field] = _Field()
            state.add(op)
            self._dirty.add((op.collection, op.record_id, op.field))
        if batch:
            self._sorted = None
        return list(batch)

    def _field(self, collection: str, record_id: str, field: str) -> _Field | None:
        self._refresh()
        return self._fields.get(collection, {}).get(record_id, {}).get(field)

    def _refresh(self) -> None:
        records: set[RecordKey] = set()
        for key in self._dirty:
            collection, record_id, name = key
            self._fields[collection][record_id][name].summarise(name)
            records.add((collection, record_id))
        self._dirty.clear()
        # Whether a delete is contested depends on every field of its record.
        for collection, record_id in records:
            fields = self._fields[collection][record_id]
            edits = _concurrent_edits(fields)
            if edits:
                self._contested[(collection, record_id)] = edits
            else:
                self._contested.pop((collection, record_id), None)
            for name, state in fields.items():
                key = (collection, record_id, name)
                if state.conflict or (name == TOMBSTONE and edits):
                    self._conflicts.add(key)
                else:
                    self._conflicts.discard(key)

    def heads(self, collection: str, record_id: str, field: str) -> tuple[str, ...]:
        """The field's head op ids, displayed one first: what a local writer passes as
        ``parents``. Empty for a field nobody wrote."""
        state = self._field(collection, record_id, field)
        return () if state is None else tuple(op.op_id for op in state.ordered)

    def _displayed(self, collection: str, record_id: str) -> dict[str, JsonValue] | None:
        """The record's fields, or None when it is deleted and nobody contests that."""
        fields = self._fields[collection][record_id]
        if _deleted(fields) and (collection, record_id, TOMBSTONE) not in self._conflicts:
            return None
        return {
            name: _fresh(fields[name].ordered[0]) for name in sorted(fields) if name != TOMBSTONE
        }

    def record(self, collection: str, record_id: str) -> dict[str, JsonValue] | None:
        """Field -> displayed value (without ``_deleted``); None if unknown or deleted."""
        self._refresh()
        known = record_id in self._fields.get(collection, {})
        return self._displayed(collection, record_id) if known else None

    def record_ops(self, collection: str, record_id: str) -> list[Op]:
        """Every op received for one record, sorted by (hlc, op_id): applied to an empty
        replica, they give this record exactly as it is here (fields merge independently)."""
        fields = self._fields.get(collection, {}).get(record_id, {})
        return sorted((op for state in fields.values() for op in state.ops.values()), key=_order)

    def in_conflict(self, collection: str, record_id: str) -> bool:
        """Whether any field of the record (deleted or not) is in conflict."""
        self._refresh()
        fields = self._fields.get(collection, {}).get(record_id, {})
        return any((collection, record_id, name) in self._conflicts for name in fields)

    def records(self, collection: str) -> dict[str, dict[str, JsonValue]]:
        """Every record of ``collection`` that is shown (not deleted, or a contested
        delete), by record id."""
        self._refresh()
        result: dict[str, dict[str, JsonValue]] = {}
        for record_id in sorted(self._fields.get(collection, {})):
            shown = self._displayed(collection, record_id)
            if shown is not None:
                result[record_id] = shown
        return result

    def conflicts(self) -> list[Conflict]:
        """Every field in conflict (deleted records included), by collection, record, field."""
        self._refresh()
        return [self._conflict(key) for key in sorted(self._conflicts)]

    def _conflict(self, key: _FieldKey) -> Conflict:
        """The conflict on a field of ``self._conflicts``; call it refreshed."""
        collection, record_id, name = key
        state = self._fields[collection][record_id][name]
        versions = [Version(_fresh(op), op.hlc, op.device_id, op.op_id) for op in state.ordered]
        edits = self._contested.get((collection, record_id), ()) if name == TOMBSTONE else ()
        if edits:
            latest = edits[0]
            changes: dict[str, JsonValue] = {}
            for op in reversed(edits):  # the latest edit of a field last: it stays
                changes[op.field] = _fresh(op)
            versions.append(Version(False, latest.hlc, latest.device_id, latest.op_id, changes))
        edit_ids = tuple(op.op_id for op in edits)
        return Conflict(collection, record_id, name, tuple(versions), edit_ids)

    def state(self) -> dict[str, Any]:
        """Everything, canonically: ``{"records": {collection: {record_id: {field: value}}},
        "conflicts": [...]}``, deleted records included with their ``_deleted`` field.
        Equal on every replica that received the same set of ops."""
        whole = self.page(None, max(1, len(self._ops)))  # a record has an op at least
        return {
            "records": whole.records,
            "conflicts": [conflict.to_json() for conflict in whole.conflicts],
        }

    def page(self, after: RecordKey | None, limit: int) -> StatePage:
        """Up to ``limit`` (at least 1) records of ``state()`` that come after the record
        ``after`` (from the first when None), with their conflicts. Following ``last``
        from None until it is None again reads ``state()`` exactly once: each record on
        one page, each conflict with its record. O(log records + what it returns)."""
        if limit < 1:
            raise ValueError(f"a page holds at least one record, not {limit}")
        self._refresh()
        if self._keys is None:
            self._keys = sorted((c, r) for c, records in self._fields.items() for r in records)
        start = 0 if after is None else bisect.bisect_right(self._keys, after)
        keys = self._keys[start : start + limit]
        records: dict[str, dict[str, dict[str, JsonValue]]] = {}
        conflicts: list[Conflict] = []
        for collection, record_id in keys:
            fields = self._fields[collection][record_id]
            names = sorted(fields)
            shown = {name: _fresh(fields[name].ordered[0]) for name in names}
            records.setdefault(collection, {})[record_id] = shown
            conflicts += [
                self._conflict((collection, record_id, name))
                for name in names
                if (collection, record_id, name) in self._conflicts
            ]
        more = start + limit < len(self._keys)
        return StatePage(records, conflicts, keys[-1] if more else None)

    def ops(self) -> list[Op]:
        """Every op received, sorted by (hlc, op_id)."""
        if self._sorted is None:
            self._sorted = sorted(self._ops.values(), key=_order)
        return list(self._sorted)

    def write(
        self,
        clock: HybridClock,
        *,
        collection: str,
        record_id: str,
        field: str,
        value: JsonValue,
    ) -> list[Op]:
        """Set a field locally, superseding all its current heads (which resolves a
        conflict), and return the new ops to sync -- one, unless the field has more than
        ``MAX_PARENTS`` heads, when a chain of ops supersedes them 32 at a time.

        A delete (``TOMBSTONE`` = True) also lists the heads of the record's other fields:
        it has seen them, so they are not edits concurrent with it (module docstring).
        The clock first observes the latest parent, so the new op is later than its parents
        even if this device received them without calling ``clock.observe``.
        """
        heads = list(self.heads(collection, record_id, field))
        if field == TOMBSTONE and value is True:
            fields = self._fields.get(collection, {}).get(record_id, {})
            heads += [
                op_id
                for name in sorted(fields)
                if name != TOMBSTONE
                for op_id in self.heads(collection, record_id, name)
            ]
        if heads:
            latest = max(Timestamp.decode(self._ops[op_id].hlc) for op_id in heads)
            if clock.last is None or latest > clock.last:
                clock.observe(latest)
        written: list[Op] = []
        parents, rest = heads[:MAX_PARENTS], heads[MAX_PARENTS:]
        while True:
            op = new_op(
                clock,
                collection=collection,
                record_id=record_id,
                field=field,
                value=value,
                parents=parents,
            )
            written.append(op)
            if not rest:
                break
            parents = [op.op_id, *rest[: MAX_PARENTS - 1]]
            rest = rest[MAX_PARENTS - 1 :]
        self.apply(written)
        return written
