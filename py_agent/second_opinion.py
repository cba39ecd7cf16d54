"""Requests answered tentatively because the server could not be asked: queued with
the turn, asked again once it can be, and -- when the server reads one differently --
answered again in the chat, linked to the original turn. An action the server would
have taken instead is only ever offered ("Apply"), never carried out unasked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .intents import IntentPrediction
from .platform import JsonObject, Put
from .state import new_id

# Intents that change the user's data: a refined reading is offered, not applied.
ACTIONS = frozenset(
    {"task.add", "task.complete", "task.delete", "task.edit", "note.add", "note.delete", "undo"}
)
DESCRIPTIONS = {
    "task.add": "a new task",
    "task.list": "a question about your tasks",
    "task.complete": "marking a task done",
    "task.delete": "deleting a task",
    "note.add": "a note to save",
    "note.search": "a search of your notes",
    "note.list": "a request to list your notes",
    "sync.now": "a request to sync",
    "help": "a request for help",
    "greeting": "small talk",
    "out_of_scope": "something I can't do on this device",
    "task.edit": "a change to a task",
    "note.delete": "deleting a note",
    "undo": "undoing your last change",
    "history": "a question about what you've done",
}
RETRY_BASE_S = 5.0
RETRY_MAX_S = 600.0


def queued(text: str, now: datetime, message_id: str, local: IntentPrediction) -> Put:
    item: JsonObject = {
        "id": new_id(),
        "text": text,
        "now": now.isoformat(),
        "message_id": message_id,
        "local_intent": local.intent,
        "local_confidence": round(local.confidence, 4),
        "attempts": 0,
        "next_at": 0.0,
    }
    return Put("queue", item["id"], item)


def due(queue: dict[str, JsonObject], wall_s: float) -> list[JsonObject]:
    """Items whose next attempt is due, oldest turn first."""
    ready = [item for item in queue.values() if float(item["next_at"]) <= wall_s]
    return sorted(ready, key=lambda item: str(item["message_id"]))


def retry_later(item: JsonObject, wall_s: float, random: Callable[[], float]) -> Put:
    """Full-jitter exponential backoff, like sync's."""
    attempts = int(item["attempts"]) + 1
    ceiling = min(RETRY_MAX_S, RETRY_BASE_S * 2.0 ** min(attempts, 32))
    return Put(
        "queue",
        str(item["id"]),
        {**item, "attempts": attempts, "next_at": wall_s + random() * ceiling},
    )


class Schedule:
    """When the queue is next worth a look (the worker's timer follows ``next_at``).

    Each request keeps its own backoff in the queue (``retry_later``). On top of it, the
    queue waits ``RETRY_BASE_S`` after the server could not be reached -- a turn that was
    queued for that reason, or a look that stopped at a failure with requests still due --
    so that unreachable server is not asked once per queued request in a row. Coming
    back online lifts that wait.
    """

    def __init__(self) -> None:
        self.hold_until = 0.0
        self.running = False  # a look is under way: it decides what comes next

    def next_at(self, queue: dict[str, JsonObject]) -> float | None:
        if self.running or not queue:
            return None
        earliest = min(float(item["next_at"]) for item in queue.values())
        return max(earliest, self.hold_until)

    def unreachable(self, wall_s: float) -> None:
        self.hold_until = wall_s + RETRY_BASE_S

    def looked(self, queue: dict[str, JsonObject], wall_s: float) -> None:
        """After a look at ``wall_s``: requests still due mean it stopped at a failure."""
        if due(queue, wall_s):
            self.unreachable(wall_s)

    def online(self) -> None:
        self.hold_until = 0.0
