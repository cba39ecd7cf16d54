"""Tasks: add with a title and due date, list with filters, complete and delete by meaning."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from ..platform import Delete, JsonObject, Put
from ..slots import completion_target, task_slots
from ..state import State, embedding_key, new_id
from .outcome import Outcome

Embed = Callable[[str], Awaitable[NDArray[np.float32]]]

# Below this cosine the best task is not taken to be the one meant.
MATCH_FLOOR = 0.3
# Two candidates closer than this are ambiguous: the agent asks which one.
AMBIGUITY_MARGIN = 0.06


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


def line(task: JsonObject, today: date) -> str:
    due = describe_due(task, today)
    mark = "✓ " if task.get("done") else ""
    return f"• {mark}{task['title']}" + (f" — due {due}" if due else "")


async def add(state: State, text: str, now: datetime, embed: Embed) -> Outcome:
    slots = task_slots(text, now)
    if not slots.title:
        return Outcome(
            "What should the task say? For example: “remind me to call Mom tomorrow at 5pm”."
        )
    task: JsonObject = {
        "id": new_id(),
        "title": slots.title,
        "due_date": slots.due.date.isoformat() if slots.due else None,
        "due_time": slots.due.time.strftime("%H:%M") if slots.due and slots.due.time else None,
        "done": False,
        "created_at": now.isoformat(),
        "done_at": None,
    }
    due = describe_due(task, now.date())
    return Outcome(
        f"Added “{task['title']}”" + (f", due {due}." if due else "."),
        writes=[Put("tasks", task["id"], task)],
        vectors=[("tasks", task["id"], await embed(str(task["title"])))],
        changed=["tasks"],
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
    return sorted(chosen, key=lambda t: (str(t.get("due_date") or "9999"), str(t["created_at"])))


TITLES = {
    "open": "Your open tasks",
    "all": "All your tasks",
    "done": "Done",
    "today": "Due today",
    "tomorrow": "Due tomorrow",
    "week": "Due this week",
    "overdue": "Overdue",
}


async def list_tasks(state: State, text: str, now: datetime) -> Outcome:
    kind = list_filter(text)
    chosen = select(list(state.tasks.values()), kind, now.date())
    if not chosen:
        empty = {"open": "You have no open tasks.", "done": "Nothing is marked done yet."}
        return Outcome(empty.get(kind, f"Nothing {TITLES[kind].lower()}."))
    lines = "\n".join(line(task, now.date()) for task in chosen)
    return Outcome(f"{TITLES[kind]}:\n{lines}")


async def resolve_target(
    state: State, text: str, action: str, embed: Embed
) -> tuple[JsonObject | None, Outcome | None]:
    """The task meant by ``text``, or an outcome asking or explaining why there is none."""
    candidates = {i for i, t in state.tasks.items() if action == "delete" or not t["done"]}
    if not candidates:
        return None, Outcome(
            "You have no open tasks." if action == "complete" else "You have no tasks."
        )
    query = await embed(completion_target(text) or text)
    ranked = state.vectors["tasks"].nearest(query, 2, among=candidates)
    if not ranked or ranked[0][1] < MATCH_FLOOR:
        return None, Outcome(f"I couldn't find a task like “{text}”. Say “list tasks” to see them.")
    if len(ranked) == 2 and ranked[0][1] - ranked[1][1] < AMBIGUITY_MARGIN:
        first, second = (state.tasks[i]["title"] for i, _ in ranked)
        return None, Outcome(
            f"Which one do you mean: 1. “{first}” or 2. “{second}”?",
            pending={"action": action, "ids": [i for i, _ in ranked]},
        )
    return state.tasks[ranked[0][0]], None


def complete_task(task: JsonObject, now: datetime) -> Outcome:
    done = {**task, "done": True, "done_at": now.isoformat()}
    return Outcome(
        f"Marked “{task['title']}” as done.",
        writes=[Put("tasks", task["id"], done)],
        changed=["tasks"],
    )


def delete_task(task: JsonObject) -> Outcome:
    return Outcome(
        f"Deleted “{task['title']}”.",
        writes=[
            Delete("tasks", task["id"]),
            Delete("embeddings", embedding_key("tasks", task["id"])),
        ],
        changed=["tasks"],
    )


async def act_on(state: State, text: str, now: datetime, action: str, embed: Embed) -> Outcome:
    task, outcome = await resolve_target(state, text, action, embed)
    if outcome is not None:
        return outcome
    assert task is not None
    return complete_task(task, now) if action == "complete" else delete_task(task)


ORDINALS = re.compile(r"^\W*(?:the\s+|number\s+|#)?(?:(1|one|first)|(2|two|second))\b")
DECLINE = re.compile(r"^\W*(no|neither|none|cancel|never ?mind|forget it)\b")


def answer_pending(
    state: State, text: str, now: datetime, pending: dict[str, object]
) -> Outcome | None:
    """Apply the answer to a “which one?” question, or None if ``text`` is not an answer."""
    ids = (
        [i for i in pending["ids"] if i in state.tasks] if isinstance(pending["ids"], list) else []
    )
    lowered = text.lower().strip()
    chosen: str | None = None
    if match := ORDINALS.match(lowered):
        index = 0 if match.group(1) else 1
        chosen = ids[index] if index < len(ids) else None
    else:
        named = [i for i in ids if str(state.tasks[i]["title"]).lower() in lowered]
        chosen = named[0] if len(named) == 1 else None
    if chosen is None:
        return Outcome("OK, I left them as they are.") if DECLINE.match(lowered) else None
    task = state.tasks[chosen]
    return complete_task(task, now) if pending["action"] == "complete" else delete_task(task)
