"""task.edit: rename, reschedule, clear the due date, move to a list, repeat or stop repeating.

The task is found like a completion's (`tasks.find`: by meaning, "which one?" when unclear),
among open tasks; no target, or "it"/"that", is the task the conversation last touched.

The rules of a change:

- a new date keeps the task's time of day unless the request gives one; a time alone
  ("the dentist is now at 10am") keeps the task's date, or takes the one the request's
  time falls on when the task had none;
- "no deadline" clears both date and time;
- a repeat rule without a date in the request starts at the rule's first occurrence from
  today (or from the task's own due date, when it has one later than today).

The reply says exactly what changed, one sentence per change.
"""

from __future__ import annotations

from datetime import date, datetime

from ..platform import JsonObject, Put
from ..recurrence import first_occurrence
from ..slots import EditSlots, TargetSlots, edit_slots
from ..state import State
from .editing import describe_edit
from .matching import Embed
from .outcome import Outcome
from .tasks import describe_due, describe_repeat, find

ASK = (
    "What should I change? For example: “rename buy milk to buy oat milk”, "
    "“move the dentist to friday” or “make it repeat every monday”."
)


def asks_for_a_change(slots: EditSlots) -> bool:
    return bool(
        slots.title
        or slots.due
        or slots.clear_due
        or slots.list
        or slots.to_main_list
        or slots.repeat
        or slots.stop_repeat
    )


async def edit(
    state: State,
    text: str,
    now: datetime,
    embed: Embed,
    slots: EditSlots | None = None,
    last: str | None = None,
) -> Outcome:
    """``slots``: the server's reading of ``text``; None reads it here."""
    slots = slots or edit_slots(text, now)
    if not asks_for_a_change(slots):
        return Outcome(ASK)
    found = await find(state, text, "edit", embed, TargetSlots(slots.target), last, edit=slots)
    if isinstance(found, Outcome):
        return found
    return await change(found, slots, now, embed)


def _rescheduled(task: JsonObject, slots: EditSlots, today: date) -> JsonObject:
    if slots.clear_due:
        return {**task, "due_date": None, "due_time": None}
    updated = dict(task)
    if slots.due is not None:
        time = slots.due.time.strftime("%H:%M") if slots.due.time else None
        if slots.time_only:
            updated["due_date"] = task.get("due_date") or slots.due.date.isoformat()
            updated["due_time"] = time
        else:
            updated["due_date"] = slots.due.date.isoformat()
            updated["due_time"] = time or task.get("due_time")
    if slots.repeat and slots.due is None:
        current = date.fromisoformat(str(task["due_date"])) if task.get("due_date") else None
        start = current if current is not None and current > today else None
        updated["due_date"] = first_occurrence(slots.repeat, today, start).isoformat()
    return updated


async def change(task: JsonObject, slots: EditSlots, now: datetime, embed: Embed) -> Outcome:
    """``task`` changed as ``slots`` ask (see the module docstring)."""
    today = now.date()
    updated = _rescheduled(task, slots, today)
    if slots.title:
        updated["title"] = slots.title
    if slots.to_main_list or slots.list:
        updated["list"] = None if slots.to_main_list else slots.list
    if slots.stop_repeat or slots.repeat:
        updated["repeat"] = None if slots.stop_repeat else slots.repeat
    changed = {name for name, value in updated.items() if task.get(name) != value}
    old, new = task["title"], updated["title"]
    if not changed:
        return Outcome(f"Nothing to change: “{old}” is already like that.", touched=task["id"])
    said = []
    if "title" in changed:
        said.append(f"Renamed “{old}” to “{new}”.")
    if "repeat" in changed and updated["repeat"] is None:
        said.append(f"“{new}” no longer repeats.")
    elif "repeat" in changed:
        repeat, due = describe_repeat(updated["repeat"]), describe_due(updated, today)
        said.append(f"“{new}” now repeats {repeat}, next due {due}.")
    elif changed & {"due_date", "due_time"}:
        due = describe_due(updated, today)
        said.append(f"Moved “{new}” to {due}." if due else f"“{new}” has no due date now.")
    if "list" in changed:
        where = f"your {updated['list']} list" if updated["list"] else "your main list"
        said.append(f"Moved “{new}” to {where}.")
    vectors = [("tasks", str(task["id"]), await embed(str(new)))] if "title" in changed else []
    return Outcome(
        " ".join(said),
        writes=[Put("tasks", task["id"], updated)],
        vectors=vectors,
        changed=["tasks"],
        touched=str(task["id"]),
        did=describe_edit(task, updated),
    )
