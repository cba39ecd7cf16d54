"""Direct edits from the page's lists: checked against what each field may hold.

A task's ``list`` is a list name, normalised like one said in the chat (`slots.list_name`:
"Groceries" and "grocery list" are one list), or None for the main list; its ``repeat`` is
an RRULE (`recurrence.canonical_rule`) or None. Setting a repeat on a task with no due date
gives it the rule's first occurrence from today.
"""

from __future__ import annotations

import json
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


# The fields of EDITABLE as the page's user knows them.
_ONLY = {
    "tasks": "Only a task's title, due date and time, list, repeat and whether it's done "
    "can be changed.",
    "notes": "Only a note's text can be changed.",
}


class EditError(ValueError):
    """The edit cannot be applied as given; the message says what is wrong in the words
    of the page (it is shown there as it is)."""


def _quoted(value: object) -> str:
    """A value the user gave, as a message quotes it: text as typed, anything else as JSON."""
    return f"“{value if isinstance(value, str) else json.dumps(value)}”"


def _text(value: object, limit: int, *, empty: str, long: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EditError(empty)
    if len(value.strip()) > limit:
        raise EditError(f"{long} {limit} characters (this one has {len(value.strip())}).")
    return value.strip()


def _due_date(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise EditError(f"{_quoted(value)} isn't a date: use one like 2026-11-23.")


def _list(value: object) -> str | None:
    if value is None:
        return None
    name = list_name(value) if isinstance(value, str) else None
    if name is None and isinstance(value, str) and not value.strip():
        raise EditError("A list needs a name, like “groceries”.")
    if name is None:
        raise EditError(f"{_quoted(value)} can't be a list's name: use words, like “groceries”.")
    return name


def _repeat(value: object) -> str | None:
    if value is None:
        return None
    try:
        return canonical_rule(value)
    except RecurrenceError:
        raise EditError("That repeat isn't one I can follow.") from None


def apply_edit(collection: str, record: JsonObject, changes: object, now: datetime) -> JsonObject:
    """``record`` with ``changes`` applied, or ``EditError`` saying what is wrong."""
    if not isinstance(changes, dict) or not changes:
        raise EditError("There's nothing to change.")
    if any(name not in EDITABLE[collection] for name in changes):
        raise EditError(_ONLY[collection])
    updated = dict(record)
    for field, value in changes.items():
        if field == "title":
            updated["title"] = _text(
                value, TITLE_MAX, empty="A task needs a title.", long="A title can be at most"
            )
        elif field == "text":
            updated["text"] = _text(
                value, NOTE_MAX, empty="A note can't be empty.", long="A note can be at most"
            )
        elif field == "done":
            if not isinstance(value, bool):
                raise EditError(f"A task is either done or not ({_quoted(value)} is neither).")
            if value != record.get("done"):
                updated["done"] = value
                updated["done_at"] = now.isoformat() if value else None
        elif field == "due_date":
            updated["due_date"] = _due_date(value)
        elif field == "due_time":
            if value is not None and not (isinstance(value, str) and _TIME.fullmatch(value)):
                raise EditError(f"{_quoted(value)} isn't a time: use one like 17:30.")
            updated["due_time"] = value
        elif field == "list":
            updated["list"] = _list(value)
        elif field == "repeat":
            updated["repeat"] = _repeat(value)
    if updated.get("due_time") and not updated.get("due_date"):
        raise EditError("A task with a time needs a due date too.")
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
