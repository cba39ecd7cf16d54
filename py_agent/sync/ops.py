"""Operations: every local change is one ``Op`` that sets one field of one record.

An op is immutable and identified by ``op_id``. It carries its HLC timestamp and the
op ids of the field's heads its writer had seen (``parents``), which is all the merge
needs. Deleting a record sets its field ``TOMBSTONE`` (``"_deleted"``) to ``True``; that op
also lists the heads of the record's other fields it had seen, so an edit it did not see
is told apart as concurrent with it (``py_agent.sync.merge``).

Values are stored in one canonical form so that an op reads back identically after any
trip through JSON, JavaScript or IndexedDB (which could otherwise turn ``1.0`` into ``1``
and make a re-sent op look like a different one):

- integral floats become ints (``1.0`` -> ``1``, ``-0.0`` -> ``0``); tuples become lists;
- integers must be JavaScript-safe (``|n| <= 2**53 - 1``); NaN and infinities, non-string
  object keys, lone surrogates and nesting deeper than 64 levels are refused;
- the compact UTF-8 JSON of a value is at most 64 KiB.

Ops compare by content with JSON semantics (``True`` is not ``1``) and are hashable.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .hlc import EXAMPLE, HLCError, HybridClock, Timestamp, device_id_problem

JsonValue = Any
TOMBSTONE = "_deleted"

MAX_ID = 64
MAX_NAME = 64
MAX_VALUE_BYTES = 64 * 1024
MAX_PARENTS = 32
MAX_DEPTH = 64
MAX_SAFE_INTEGER = 2**53 - 1
FIELDS = ("op_id", "device_id", "collection", "record_id", "field", "value", "hlc", "parents")
_COLLECTION = re.compile(r"[a-z][a-z0-9_]*")


class OpError(ValueError):
    """An op is malformed, or an op id was reused for a different op. The message names
    the field path, e.g. ``ops[3].hlc must be a string like 000001700000000:00000:device-a``."""


class _Invalid(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


def canonical_json(value: JsonValue) -> str:
    """Compact JSON with sorted keys: equal texts <=> equal JSON values."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _normalise(value: object, path: str, depth: int = 0) -> JsonValue:
    if depth > MAX_DEPTH:
        raise _Invalid(path, f"must not nest deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise _Invalid(
                path, f"must be within +-(2**53 - 1) so JavaScript keeps it exact, got {value}"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(path, f"must be a finite number, got {value}")
        if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, (list, tuple)):
        return [_normalise(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        result: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Invalid(path, f"must have string keys, got {key!r}")
            result[key] = _normalise(item, f"{path}[{key!r}]", depth + 1)
        return result
    raise _Invalid(path, f"must be a JSON value, got {type(value).__name__}")


def _check_name(path: str, value: object, limit: int = MAX_ID) -> None:
    what = f"a non-empty printable string of at most {limit} characters"
    if not isinstance(value, str):
        raise _Invalid(path, f"must be {what}, got {type(value).__name__}")
    if not value or len(value) > limit or not value.isprintable():
        raise _Invalid(path, f"must be {what}, got {value!r}")


@dataclass(frozen=True, eq=False)
class Op:
    """Set ``collection/record_id.field`` to ``value``. Validated on construction."""

    op_id: str
    device_id: str
    collection: str
    record_id: str
    field: str
    value: JsonValue
    hlc: str
    parents: tuple[str, ...]
    # The value's canonical JSON, computed once: equality, hashing, size limit.
    value_json: str = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._validate()
        except _Invalid as error:
            raise OpError(f"op.{error.path} {error.problem}") from None

    def _validate(self) -> None:
        _check_name("op_id", self.op_id)
        problem = device_id_problem(self.device_id)
        if problem is not None:
            raise _Invalid("device_id", problem)
        if not isinstance(self.collection, str) or not (
            len(self.collection) <= MAX_NAME and _COLLECTION.fullmatch(self.collection)
        ):
            raise _Invalid(
                "collection",
                f"must be a lowercase identifier of at most {MAX_NAME} characters "
                f'like "tasks", got {self.collection!r}',
            )
        _check_name("record_id", self.record_id)
        _check_name("field", self.field, MAX_NAME)
        value = _normalise(self.value, "value")
        try:
            text = canonical_json(value)
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise _Invalid("value", "must not contain lone surrogates (not UTF-8)") from None
        if size > MAX_VALUE_BYTES:
            raise _Invalid("value", f"must be at most {MAX_VALUE_BYTES} bytes as JSON, got {size}")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "value_json", text)
        if not isinstance(self.hlc, str):
            raise _Invalid("hlc", f"must be a string like {EXAMPLE}, got {type(self.hlc).__name__}")
        try:
            stamp = Timestamp.decode(self.hlc)
        except HLCError as error:
            raise _Invalid("hlc", f"must be a string like {EXAMPLE}: {error}") from None
        if stamp.device_id != self.device_id:
            raise _Invalid(
                "hlc",
                f"must carry the op's device_id {self.device_id!r}, got {stamp.device_id!r}",
            )
        parents = self.parents
        if not isinstance(parents, (list, tuple)):
            raise _Invalid("parents", f"must be a list of op ids, got {type(parents).__name__}")
        if len(parents) > MAX_PARENTS:
            raise _Invalid("parents", f"must list at most {MAX_PARENTS} op ids, got {len(parents)}")
        for i, parent in enumerate(parents):
            _check_name(f"parents[{i}]", parent)
            if parent == self.op_id:
                raise _Invalid(f"parents[{i}]", "must not be the op itself")
        if len(set(parents)) != len(parents):
            raise _Invalid("parents", "must not list an op id twice")
        object.__setattr__(self, "parents", tuple(parents))

    @property
    def _content(self) -> tuple[str, ...]:
        return (
            self.op_id,
            self.device_id,
            self.collection,
            self.record_id,
            self.field,
            self.value_json,
            self.hlc,
            *self.parents,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Op):
            return NotImplemented
        return self._content == other._content

    def __hash__(self) -> int:
        return hash(self._content)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "op_id": self.op_id,
            "device_id": self.device_id,
            "collection": self.collection,
            "record_id": self.record_id,
            "field": self.field,
            # A fresh copy: the caller may mutate what it gets.
            "value": json.loads(self.value_json),
            "hlc": self.hlc,
            "parents": list(self.parents),
        }

    @classmethod
    def from_json(cls, data: object, where: str = "op") -> Op:
        """Parse and validate a JSON object (as ``to_json`` makes it). Every problem raises
        ``OpError`` naming ``where.field``, e.g. ``ops[3].hlc``."""
        if not isinstance(data, dict):
            raise OpError(f"{where} must be a JSON object, got {type(data).__name__}")
        missing = [name for name in FIELDS if name not in data]
        if missing:
            raise OpError(f"{where} is missing {', '.join(missing)}")
        unknown = sorted(str(name) for name in data if name not in FIELDS)
        if unknown:
            raise OpError(f"{where} has unknown fields {', '.join(unknown)}")
        try:
            return cls(**{name: data[name] for name in FIELDS})
        except OpError as error:
            raise OpError(f"{where}.{str(error).removeprefix('op.')}") from None


def new_op(
    clock: HybridClock,
    *,
    collection: str,
    record_id: str,
    field: str,
    value: JsonValue,
    parents: Iterable[str] = (),
) -> Op:
    """A new local op: a fresh uuid4 op id, stamped ``clock.now()``.

    ``parents`` should be the field's current heads (``Replica.heads``); the clock must
    have observed their timestamps (it has, if every received op went through
    ``clock.observe``) -- ``Replica.write`` does both.
    """
    return Op(
        op_id=uuid.uuid4().hex,
        device_id=clock.device_id,
        collection=collection,
        record_id=record_id,
        field=field,
        value=value,
        hlc=clock.now().encode(),
        parents=tuple(parents),
    )
