"""Tasks: add (with a due date, a list, a repeat rule), list with filters, complete and
delete by meaning.

A task record has ``title``, ``due_date`` ("YYYY-MM-DD" or None), ``due_time`` ("HH:MM" or
None, only with a date), ``done``, ``done_at``, ``created_at``, ``list`` (a normalised list
name, None for the main list) and ``repeat`` (an RRULE, None for a one-off task); records
written before lists and repeats existed have neither field, which reads as None.

Completing a repeating task keeps the completion and moves the task on: a new, done copy of
the occurrence (its title, list and due date, ``occurrence_of`` the repeating task's id,
``repeat`` None) is written, and the repeating task's due date moves to the next occurrence
after it (it stays open). The copies are history: they are not candidates for "delete".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

from ..platform import Delete, JsonObject, Put
from ..recurrence import RecurrenceError, describe_rule, first_occurrence, next_occurrence
from ..slots import EditSlots, TargetSlots, TaskSlots, target_slots, task_slots
from ..state import State, creation_order, embedding_key, new_id
from .matching import TASK_FLOORS, Embed, refers_back, resolve
from .outcome import Outcome, TargetAction


def new_task(
    title: str,
    now: datetime,
    *,
    due_date: str | None = None,
    due_time: str | None = None,
    list_name: str | None = None,
    repeat: str | None = None,
) -> JsonObject:
    return {
        "id": new_id(),
        "title": title,
        "due_date": due_date,
        "due_time": due_time,
        "done": False,
        "created_at": now.isoformat(),
        "done_at": None,
        "list": list_name,
        "repeat": repeat,
    }


def describe_due(task: JsonObject, today: date) -> str:
    due = task.get("due_date")
    if not due:
        return ""
    day = date.fromisoformat(str(due))
    names = {today: "today", today + timedelta(days=1): "tomorrow"}
    label = names.get(day, day.strftime("%a %d %b"))
    if task.get("due_time"):
        label += f" {task['due_time']}"
    return label


def describe_repeat(rule: object) -> str:
    """ "every Monday" for a task's rule; a rule this version cannot read (written by a newer
    one, on another device) is shown as it is."""
    try:
        return describe_rule(str(rule))
    except RecurrenceError:
        return f"repeats ({rule})"


def line(task: JsonObject, today: date, *, show_list: bool = True) -> str:
    """ "• ✓ title — due tomorrow 17:00, every Monday, grocery list"."""
    details = []
    if due := describe_due(task, today):
        details.append(f"due {due}")
    if task.get("repeat"):
        details.append(describe_repeat(task["repeat"]))
    if show_list and task.get("list"):
        details.append(f"{task['list']} list")
    mark = "✓ " if task.get("done") else ""
    return f"• {mark}{task['title']}" + (f" — {', '.join(details)}" if details else "")


async def add(
    state: State, text: str, now: datetime, embed: Embed, slots: TaskSlots | None = None
) -> Outcome:
    """``slots``: the server's reading of ``text``; None reads it here."""
    slots = slots or task_slots(text, now)
    if not slots.title:
        return Outcome(
            "What should the task say? For example: “remind me to call Mom tomorrow at 5pm”."
        )
    due_date = slots.due.date if slots.due else None
    if slots.repeat and due_date is None:
        due_date = first_occurrence(slots.repeat, now.date())
    task = new_task(
        slots.title,
        now,
        due_date=due_date.isoformat() if due_date else None,
        due_time=slots.due.time.strftime("%H:%M") if slots.due and slots.due.time else None,
        list_name=slots.list,
        repeat=slots.repeat,
    )
    reply = f"Added “{task['title']}”"
    if slots.list:
        reply += f" to your {slots.list} list"
    due = describe_due(task, now.date())
    if slots.repeat:
        reply += f", {describe_repeat(slots.repeat)}, first due {due}"
    elif due:
        reply += f", due {due}"
    return Outcome(
        reply + ".",
        writes=[Put("tasks", task["id"], task)],
        vectors=[("tasks", task["id"], await embed(str(task["title"])))],
        changed=["tasks"],
        touched=task["id"],
        did=f"adding “{task['title']}”",
    )


FILTERS: list[tuple[str, re.Pattern[str]]] = [
    ("overdue", re.compile(r"\b(overdue|late|missed|past due)\b")),
    ("done", re.compile(r"\b(done|completed|finished|ticked|checked)\b")),
    ("tomorrow", re.compile(r"\btomorrow\b")),
    ("today", re.compile(r"\b(today|tonight)\b")),
    ("week", re.compile(r"\b(this week|week)\b")),
    ("all", re.compile(r"\b(all|every|everything)\b")),
]


def list_filter(text: str) -> str:
    lowered = text.lower()
    for name, pattern in FILTERS:
        if pattern.search(lowered):
            return name
    return "open"


def select(tasks: list[JsonObject], kind: str, today: date) -> list[JsonObject]:
    def due(task: JsonObject) -> date | None:
        return date.fromisoformat(str(task["due_date"])) if task.get("due_date") else None

    week_end = today + timedelta(days=6 - today.weekday())
    tests: dict[str, Callable[[JsonObject], bool]] = {
        "open": lambda t: not t["done"],
        "all": lambda t: True,
        "done": lambda t: bool(t["done"]),
        "today": lambda t: not t["done"] and due(t) == today,
        "tomorrow": lambda t: not t["done"] and due(t) == today + timedelta(days=1),
        "week": lambda t: not t["done"] and (d := due(t)) is not None and today <= d <= week_end,
        "overdue": lambda t: not t["done"] and (d := due(t)) is not None and d < today,
    }
    chosen = [task for task in tasks if tests[kind](task)]
    return sorted(chosen, key=lambda t: (str(t.get("due_date") or "9999"), *creation_order(t)))


TITLES = {
    "open": "Your open tasks",
    "all": "All your tasks",
    "done": "Done",
    "today": "Due today",
    "tomorrow": "Due tomorrow",
    "week": "Due this week",
    "overdue": "Overdue",
}


def _nothing(kind: str, named: str | None) -> str:
    if named is None:
        empty = {"open": "You have no open tasks.", "done": "Nothing is marked done yet."}
        return empty.get(kind, f"Nothing {TITLES[kind].lower()}.")
    if kind == "open":
        return f"Your {named} list is empty."
    return f"Nothing {TITLES[kind].lower()} on your {named} list."


async def list_tasks(state: State, text: str, now: datetime, named: str | None) -> Outcome:
    """The tasks ``text`` asks for with a filter (open, due today, …), only those on the
    list ``named`` when the request names one ("what's on my shopping list")."""
    kind = list_filter(text)
    tasks = [t for t in state.tasks.values() if named is None or t.get("list") == named]
    chosen = select(tasks, kind, now.date())
    if not chosen:
        return Outcome(_nothing(kind, named))
    if named is None:
        heading = TITLES[kind]
    else:
        heading = f"Your {named} list" if kind == "open" else f"{TITLES[kind]} on your {named} list"
    lines = "\n".join(line(task, now.date(), show_list=named is None) for task in chosen)
    return Outcome(
        f"{heading}:\n{lines}", touched=str(chosen[0]["id"]) if len(chosen) == 1 else None
    )


def _mark_done(task: JsonObject, now: datetime) -> Outcome:
    done = {**task, "done": True, "done_at": now.isoformat()}
    return Outcome(
        f"Marked “{task['title']}” as done.",
        writes=[Put("tasks", task["id"], done)],
        changed=["tasks"],
        touched=str(task["id"]),
        did=f"completing “{task['title']}”",
    )


async def complete(state: State, task: JsonObject, now: datetime, embed: Embed) -> Outcome:
    """Mark ``task`` done; a repeating task moves on to its next occurrence instead."""
    rule = task.get("repeat")
    if not rule or task.get("done"):
        return _mark_done(task, now)
    today = now.date()
    due = date.fromisoformat(str(task["due_date"])) if task.get("due_date") else today
    try:
        following = next_occurrence(str(rule), due, today)
    except RecurrenceError:
        return _mark_done(task, now)  # a rule this version cannot read: done for good
    occurrence = {
        **new_task(
            str(task["title"]),
            now,
            due_date=due.isoformat(),
            due_time=task.get("due_time"),
            list_name=task.get("list"),
        ),
        "done": True,
        "done_at": now.isoformat(),
        "occurrence_of": task["id"],
    }
    moved = {**task, "due_date": following.isoformat()}
    return Outcome(
        f"Done: “{task['title']}”. Next: {describe_due(moved, today)}.",
        writes=[Put("tasks", occurrence["id"], occurrence), Put("tasks", task["id"], moved)],
        vectors=[("tasks", occurrence["id"], await embed(str(task["title"])))],
        changed=["tasks"],
        touched=str(task["id"]),
        did=f"completing “{task['title']}”",
    )


def delete_task(task: JsonObject) -> Outcome:
    return Outcome(
        f"Deleted “{task['title']}”.",
        writes=[
            Delete("tasks", task["id"]),
            Delete("embeddings", embedding_key("tasks", task["id"])),
        ],
        changed=["tasks"],
        did=f"deleting “{task['title']}”",
    )


def candidates(state: State, action: TargetAction, list_name: str | None) -> set[str]:
    """Tasks an action can be about: open ones, or for a delete any but the completion
    copies of a repeating task; only those on ``list_name`` when the request names a list."""

    def fits(task: JsonObject) -> bool:
        if list_name is not None and task.get("list") != list_name:
            return False
        return not task.get("occurrence_of") if action == "delete" else not task["done"]

    return {task_id for task_id, task in state.tasks.items() if fits(task)}


async def find(
    state: State,
    text: str,
    action: TargetAction,
    embed: Embed,
    target: TargetSlots,
    last: str | None,
    edit: EditSlots | None = None,
) -> JsonObject | Outcome:
    """The task ``target`` means for ``action`` ("it"/"that": ``last``, the task the
    conversation last touched), or an outcome that asks or explains."""
    among = candidates(state, action, target.list)
    where = f" on your {target.list} list" if target.list else ""
    if not among:
        if target.list:
            return Outcome(f"There's nothing{where}.")
        return Outcome("You have no open tasks." if action != "delete" else "You have no tasks.")
    if refers_back(target.target) or (action == "edit" and not target.target):
        if last in among:
            return state.tasks[str(last)]
        return Outcome("Which task do you mean? Name it, for example “the dentist”.")
    query = target.target or text
    return await resolve(
        state,
        "tasks",
        query,
        among,
        action,
        embed,
        floors=TASK_FLOORS,
        not_found=f"I couldn't find a task like “{query}”{where}. Say “list tasks” to see them.",
        edit=edit,
    )


async def act_on(
    state: State,
    text: str,
    now: datetime,
    action: TargetAction,
    embed: Embed,
    slots: TargetSlots | None = None,
    last: str | None = None,
) -> Outcome:
    """Complete or delete the task ``text`` names (see `find`)."""
    found = await find(state, text, action, embed, slots or target_slots(text), last)
    if isinstance(found, Outcome):
        return found
    return await complete(state, found, now, embed) if action == "complete" else delete_task(found)
