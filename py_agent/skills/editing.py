"""Direct edits from the page's lists: checked against what each field may hold.

A task's ``list`` is a list name, normalised like one said in the chat (`slots.list_name`:
"Groceries" and "grocery list" are one list), or None for the main list; its ``repeat`` is
an RRULE (`recurrence.canonical_rule`) or None. Setting a repeat on a task with no due date
gives it the rule's first occurrence from today.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from ..platform import JsonObject
from ..recurrence import RecurrenceError, canonical_rule, first_occurrence
from ..slots import list_name
from .matching import label

TITLE_MAX = 500
NOTE_MAX = 2000
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
EDITABLE = {
    "tasks": ("title", "done", "due_date", "due_time", "list", "repeat"),
    "notes": ("text",),
}


class EditError(ValueError):
    """The edit cannot be applied as given; the message names the field."""


def _text(field: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EditError(f"{field} must be non-empty text")
    if len(value.strip()) > limit:
        raise EditError(f"{field} is {len(value.strip())} characters; the limit is {limit}")
    return value.strip()


def _due_date(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise EditError(f"due_date must be a date like 2026-11-23 or null, got {value!r}")


def _list(value: object) -> str | None:
    if value is None:
        return None
    name = list_name(value) if isinstance(value, str) else None
    if name is None:
        raise EditError(f"list must be a list's name like “groceries”, or null, got {value!r}")
    return name


def _repeat(value: object) -> str | None:
    if value is None:
        return None
    try:
        return canonical_rule(value)
    except RecurrenceError as exc:
        raise EditError(
            f"repeat must be an RRULE like FREQ=WEEKLY;BYDAY=MO or null: {exc}"
        ) from None


def apply_edit(collection: str, record: JsonObject, changes: object, now: datetime) -> JsonObject:
    """``record`` with ``changes`` applied, or ``EditError`` saying what is wrong."""
    if not isinstance(changes, dict) or not changes:
        raise EditError("changes must be a non-empty object of field: value")
    allowed = EDITABLE[collection]
    unknown = sorted(str(name) for name in changes if name not in allowed)
    if unknown:
        raise EditError(
            f"{', '.join(unknown)} cannot be edited; a {collection[:-1]} has {', '.join(allowed)}"
        )
    updated = dict(record)
    for field, value in changes.items():
        if field == "title":
            updated["title"] = _text("title", value, TITLE_MAX)
        elif field == "text":
            updated["text"] = _text("text", value, NOTE_MAX)
        elif field == "done":
            if not isinstance(value, bool):
                raise EditError(f"done must be true or false, got {value!r}")
            if value != record.get("done"):
                updated["done"] = value
                updated["done_at"] = now.isoformat() if value else None
        elif field == "due_date":
            updated["due_date"] = _due_date(value)
        elif field == "due_time":
            if value is not None and not (isinstance(value, str) and _TIME.fullmatch(value)):
                raise EditError(f"due_time must be a time like 17:30 or null, got {value!r}")
            updated["due_time"] = value
        elif field == "list":
            updated["list"] = _list(value)
        elif field == "repeat":
            updated["repeat"] = _repeat(value)
    if updated.get("due_time") and not updated.get("due_date"):
        raise EditError("a due_time needs a due_date")
    if updated.get("repeat") and not updated.get("due_date"):
        updated["due_date"] = first_occurrence(str(updated["repeat"]), now.date()).isoformat()
    return updated


def describe_edit(record: JsonObject, updated: JsonObject) -> str:
    """What a direct edit did, as undo names it: "completing “buy milk”"."""
    if updated.get("done") != record.get("done"):
        verb = "completing" if updated.get("done") else "reopening"
        return f"{verb} “{label(record)}”"
    if "title" in record and updated.get("title") != record.get("title"):
        return f"renaming “{label(record)}” to “{label(updated)}”"
    what = "the note " if "text" in record else ""
    return f"changing {what}“{label(record)}”"
