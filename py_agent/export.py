"""All of a user's tasks and notes as one JSON document: what ``py-agent export`` prints
and ``py-agent import`` reads, and what the page's Export downloads and Import reads.

The format (every key is always written; ``null`` where there is no value)::

    {"tasks": [{"id": "3f2a…",
                "title": "call Mom",
                "due": "2026-11-19T17:00",         # "YYYY-MM-DD", "YYYY-MM-DDTHH:MM" or null
                "done": false,
                "list": "groceries",               # normalised list name, or null
                "repeat": "FREQ=WEEKLY;BYDAY=MO",  # RFC 5545 RRULE, or null
                "completed_at": null}],            # ISO time with offset, or null
     "notes": [{"id": "9c41…", "text": "the wifi password is hunter2"}]}

Rules:

- Export lists every task (done ones too) and every note, each collection sorted by
  ``created_at`` then ``id``. Tasks hold ``due_date`` + ``due_time`` and ``done_at``;
  export joins them into ``due`` and calls ``done_at`` ``completed_at``.
- Import reads the whole file and checks all of it before anything is written: a file that
  is not UTF-8 JSON, larger than ``MAX_BYTES``, has an unknown key, a duplicate id, or a
  value a field cannot hold is refused with every problem said where it is and what would
  fix it ("Task 4's “due” is "2026-13-40", which isn't a date: write it like …"). In a
  record only ``id`` and ``title``/``text`` are required; a missing optional key means
  null (``done``: false).
- Import merges: a record whose id exists is updated to the file's values, others are
  added, nothing is deleted. Every write is one ``State.save`` -- one commit, with the
  embeddings of the new and changed titles and texts -- and, like any change, becomes sync
  ops waiting in the outbox, so it reaches the user's other devices.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .platform import JsonObject, Put
from .recurrence import RecurrenceError, canonical_rule
from .skills.editing import NOTE_MAX, TITLE_MAX
from .state import State, creation_order

MAX_BYTES = 20_000_000  # 20 MB
ID_MAX = 64
LIST_MAX = 100
# At most this many problems are listed; the rest are counted.
MAX_PROBLEMS = 10

TASK_KEYS = ("id", "title", "due", "done", "list", "repeat", "completed_at")
NOTE_KEYS = ("id", "text")
TOP_KEYS = ("tasks", "notes")

_DUE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}))?")
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")

Embed = Callable[[str], Awaitable[NDArray[np.float32]]]


class DataFormatError(ValueError):
    """A file that is not a py_agent export; the message says where each problem is."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        super().__init__("\n".join(shown) + (f"\n…and {more} more problems." if more else ""))


@dataclass(frozen=True)
class TaskRecord:
    id: str
    title: str
    due: str | None = None
    done: bool = False
    list: str | None = None
    repeat: str | None = None
    completed_at: str | None = None

    @classmethod
    def from_stored(cls, task: JsonObject) -> TaskRecord:
        due = task.get("due_date") or None
        if due is not None and task.get("due_time"):
            due = f"{due}T{task['due_time']}"
        return cls(
            id=str(task["id"]),
            title=str(task.get("title", "")),
            due=due,
            done=bool(task.get("done")),
            list=task.get("list") or None,
            repeat=task.get("repeat") or None,
            completed_at=task.get("done_at") or None,
        )

    def stored_fields(self) -> JsonObject:
        """The fields a task holds in the State (``id`` and ``created_at`` aside)."""
        due_date, _, due_time = (self.due or "").partition("T")
        return {
            "title": self.title,
            "due_date": due_date or None,
            "due_time": due_time or None,
            "done": self.done,
            "done_at": self.completed_at,
            "list": self.list,
            "repeat": self.repeat,
        }

    def to_json(self) -> JsonObject:
        return {key: getattr(self, key) for key in TASK_KEYS}


@dataclass(frozen=True)
class NoteRecord:
    id: str
    text: str

    @classmethod
    def from_stored(cls, note: JsonObject) -> NoteRecord:
        return cls(id=str(note["id"]), text=str(note.get("text", "")))

    def stored_fields(self) -> JsonObject:
        return {"text": self.text}

    def to_json(self) -> JsonObject:
        return {key: getattr(self, key) for key in NOTE_KEYS}


@dataclass(frozen=True)
class UserData:
    """The document: every task and note, in the export format."""

    tasks: tuple[TaskRecord, ...] = ()
    notes: tuple[NoteRecord, ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "tasks": [task.to_json() for task in self.tasks],
            "notes": [note.to_json() for note in self.notes],
        }

    def to_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class ImportSummary:
    tasks: int
    tasks_updated: int
    notes: int
    notes_updated: int

    def __str__(self) -> str:
        def count(n: int, noun: str, updated: int) -> str:
            text = f"{n} {noun}{'' if n == 1 else 's'}"
            return text + (f" ({updated} updated)" if updated else "")

        tasks = count(self.tasks, "task", self.tasks_updated)
        return f"imported {tasks} and {count(self.notes, 'note', self.notes_updated)}"

    def to_json(self) -> JsonObject:
        return {
            "summary": str(self),
            "tasks": self.tasks,
            "tasks_updated": self.tasks_updated,
            "notes": self.notes,
            "notes_updated": self.notes_updated,
        }


# -- export ----------------------------------------------------------------------------


def _in_order(records: Iterable[JsonObject]) -> list[JsonObject]:
    return sorted(records, key=creation_order)


def export_data(state: State) -> UserData:
    return UserData(
        tasks=tuple(TaskRecord.from_stored(task) for task in _in_order(state.tasks.values())),
        notes=tuple(NoteRecord.from_stored(note) for note in _in_order(state.notes.values())),
    )


# -- reading a file --------------------------------------------------------------------


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {_show(key)} appears twice in one object")
        seen[key] = value
    return seen


def _show(value: object) -> str:
    """A value as a problem quotes it: as the file writes it (JSON), cut short."""
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 60 else shown[:57] + "…"


def _kind(value: object) -> str:
    """A JSON value's type as the file calls it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return {dict: "an object", list: "a list", str: "text", int: "a number", float: "a number"}[
        type(value)
    ]


class _Reader:
    """Checks a parsed document, collecting every problem as a sentence that says where
    it is ("Task 2's “due”": the record's place in its list, counted from 1, and the
    key) and what would fix it."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def record(
        self, where: str, value: object, noun: str, keys: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, Any] | None:
        """``value`` if it is an object with only ``keys`` and all of ``required``."""
        if not isinstance(value, dict):
            needs = " and ".join(f"“{key}”" for key in required)
            self.problem(f"{where} is {_kind(value)}; a {noun} is an object with {needs}.")
            return None
        for key in value:
            if key not in keys:
                self.problem(
                    f"{where} has “{key}”, which a {noun} doesn't have (it has {', '.join(keys)})."
                )
        missing = [key for key in required if key not in value]
        for key in missing:
            self.problem(f"{where} has no “{key}”.")
        return None if missing else value

    def id(self, where: str, value: object) -> str | None:
        if isinstance(value, str) and 1 <= len(value) <= ID_MAX and value.isprintable():
            return value
        self.problem(f"{where} is {_show(value)}; an id is 1 to {ID_MAX} printable characters.")
        return None

    def text(self, where: str, value: object, limit: int) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(f"{where} is {_show(value)}; it needs some text.")
            return None
        text = value.strip()
        if len(text) > limit:
            self.problem(f"{where} is {len(text)} characters long; at most {limit} fit.")
            return None
        return text

    def due(self, where: str, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) and (match := _DUE.fullmatch(value)):
            day, time = match.groups()
            try:
                date.fromisoformat(day)
            except ValueError:
                pass
            else:
                if time is None or _TIME.fullmatch(time):
                    return value
        self.problem(
            f"{where} is {_show(value)}, which isn't a date: write it like 2026-11-19, or "
            "2026-11-19T17:00 with a time (or null for none)."
        )
        return None

    def done(self, where: str, value: object) -> bool:
        if isinstance(value, bool):
            return value
        self.problem(f"{where} is {_show(value)}; it is true or false.")
        return False

    def list_name(self, where: str, value: object) -> str | None:
        if value is None:
            return None
        if (
            isinstance(value, str)
            and 0 < len(value) <= LIST_MAX
            and value.isprintable()
            and value == " ".join(value.lower().split())
        ):
            return value
        self.problem(
            f"{where} is {_show(value)}; a list's name is written in lower case with single "
            f'spaces, like "groceries", in at most {LIST_MAX} characters (or null for none).'
        )
        return None

    def repeat(self, where: str, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(
                f'{where} is {_show(value)}; a repeat is a rule like "FREQ=WEEKLY;BYDAY=MO" '
                "(or null for none)."
            )
            return None
        try:
            return canonical_rule(value)
        except RecurrenceError as exc:
            self.problem(f"{where} is {_show(value)}, a rule I can't follow: {exc}.")
            return None

    def moment(self, where: str, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) and "T" in value:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if parsed.tzinfo is not None:
                    return value
        self.problem(
            f"{where} is {_show(value)}; write it as a time with its UTC offset, like "
            "2026-11-18T10:00:00+00:00 (or null for none)."
        )
        return None

    def unique(self, noun: str, ids: list[str | None]) -> None:
        first: dict[str, int] = {}
        for index, record_id in enumerate(ids):
            if record_id is None:
                continue
            if record_id in first:
                self.problem(
                    f"{noun} {index + 1} has the same id as {noun.lower()} "
                    f"{first[record_id] + 1} ({_show(record_id)}); each needs its own."
                )
            else:
                first[record_id] = index

    def task(self, index: int, value: object) -> TaskRecord | None:
        where = f"Task {index + 1}"
        record = self.record(where, value, "task", TASK_KEYS, ("id", "title"))
        if record is None:
            return None
        before = len(self.problems)
        task = TaskRecord(
            id=self.id(f"{where}'s “id”", record.get("id")) or "",
            title=self.text(f"{where}'s “title”", record.get("title"), TITLE_MAX) or "",
            due=self.due(f"{where}'s “due”", record.get("due")),
            done=self.done(f"{where}'s “done”", record.get("done", False)),
            list=self.list_name(f"{where}'s “list”", record.get("list")),
            repeat=self.repeat(f"{where}'s “repeat”", record.get("repeat")),
            completed_at=self.moment(f"{where}'s “completed_at”", record.get("completed_at")),
        )
        return task if len(self.problems) == before else None

    def note(self, index: int, value: object) -> NoteRecord | None:
        where = f"Note {index + 1}"
        record = self.record(where, value, "note", NOTE_KEYS, ("id", "text"))
        if record is None:
            return None
        before = len(self.problems)
        note = NoteRecord(
            id=self.id(f"{where}'s “id”", record.get("id")) or "",
            text=self.text(f"{where}'s “text”", record.get("text"), NOTE_MAX) or "",
        )
        return note if len(self.problems) == before else None

    def items(self, document: dict[str, Any], collection: str) -> list[object]:
        items = document.get(collection, [])
        if isinstance(items, list):
            return items
        self.problem(f"“{collection}” is {_kind(items)}; it should be a list of {collection}.")
        return []


def _raw_ids(items: list[object]) -> list[str | None]:
    return [
        item["id"] if isinstance(item, dict) and isinstance(item.get("id"), str) else None
        for item in items
    ]


def parse_user_data(data: str | bytes) -> UserData:
    """The document in ``data`` (a file's bytes or text), checked in full; raises
    ``DataFormatError`` listing every problem."""
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > MAX_BYTES:
        raise DataFormatError(
            [f"The file is {size / 1e6:.1f} MB; at most {MAX_BYTES / 1e6:.0f} MB can be imported."]
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                [f"The file is not text: it isn't UTF-8 (at byte {exc.start})."]
            ) from None
    try:
        document = json.loads(data, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            [f"The file is not JSON: {exc.msg.lower()} at line {exc.lineno}, column {exc.colno}."]
        ) from None
    except (ValueError, RecursionError) as exc:
        raise DataFormatError([f"The file is not JSON: {exc}."]) from None
    if not isinstance(document, dict):
        raise DataFormatError(
            [
                f"The file holds {_kind(document)}, not an export: an export is a JSON object "
                'with "tasks" and "notes".'
            ]
        )
    reader = _Reader()
    for key in document:
        if key not in TOP_KEYS:
            reader.problem(
                f'The file has {_show(key)}, which an export doesn\'t have (it has "tasks" and '
                '"notes").'
            )
    task_items, note_items = reader.items(document, "tasks"), reader.items(document, "notes")
    tasks = [reader.task(i, item) for i, item in enumerate(task_items)]
    notes = [reader.note(i, item) for i, item in enumerate(note_items)]
    reader.unique("Task", _raw_ids(task_items))
    reader.unique("Note", _raw_ids(note_items))
    if reader.problems:
        raise DataFormatError(reader.problems)
    return UserData(
        tasks=tuple(t for t in tasks if t is not None),
        notes=tuple(n for n in notes if n is not None),
    )


# -- writing into the State ------------------------------------------------------------


async def import_data(state: State, data: UserData, embed: Embed, now: datetime) -> ImportSummary:
    """Merge ``data`` into ``state`` in one commit (see the module docstring).

    A new record's ``created_at`` is ``now`` plus its position in the file in
    microseconds, so the records keep the file's order (export sorts by ``created_at``).
    """
    puts: list[Put] = []
    embedded: list[tuple[str, str, str]] = []  # collection, id, text to embed
    updated = {"tasks": 0, "notes": 0}
    records: list[tuple[str, str, TaskRecord | NoteRecord]] = [
        *(("tasks", "title", task) for task in data.tasks),
        *(("notes", "text", note) for note in data.notes),
    ]
    for position, (collection, key, record) in enumerate(records):
        fields = record.stored_fields()
        existing = state.records[collection].get(record.id)
        if existing is None:
            created = (now + timedelta(microseconds=position)).isoformat(timespec="microseconds")
            puts.append(
                Put(collection, record.id, {"id": record.id, **fields, "created_at": created})
            )
            embedded.append((collection, record.id, str(fields[key])))
            continue
        updated[collection] += 1
        # A field the record lacks reads as null, so a null in the file writes nothing.
        changed = {name: value for name, value in fields.items() if existing.get(name) != value}
        if changed:
            puts.append(Put(collection, record.id, {**existing, **changed}))
            if key in changed:
                embedded.append((collection, record.id, str(fields[key])))
    vectors = [
        (collection, record_id, await embed(text)) for collection, record_id, text in embedded
    ]
    if puts:
        await state.save(puts, vectors)
    return ImportSummary(
        tasks=len(data.tasks),
        tasks_updated=updated["tasks"],
        notes=len(data.notes),
        notes_updated=updated["notes"],
    )
