"""Answers to the agent's questions about a target: "which one?" and "did you mean …?".

The answer picks a record (`matching.pick`) and the action asked about is carried out on
it -- an edit with the change the request asked for. "no" (or "neither", "cancel") leaves
everything as it is; anything else is not an answer, and the agent reads it as a new request.
"""

from __future__ import annotations

from datetime import datetime

from ..platform import JsonObject
from ..state import State
from . import notes, task_edit, tasks
from .matching import Embed, declines, pick
from .outcome import Outcome, Pending


async def carry_out(
    state: State, pending: Pending, record: JsonObject, now: datetime, embed: Embed
) -> Outcome:
    if pending.edit is not None:
        return await task_edit.change(record, pending.edit, now, embed)
    if pending.action == "complete":
        return await tasks.complete(state, record, now, embed)
    if pending.action == "delete":
        return tasks.delete_task(record)
    return notes.forget_note(record)


async def answer(
    state: State, text: str, now: datetime, pending: Pending, embed: Embed
) -> Outcome | None:
    """The outcome of answering ``pending`` with ``text``, or None if ``text`` is no answer."""
    chosen = pick(state, pending, text)
    if chosen is None:
        if declines(text):
            return Outcome(
                f"OK, I left {'it as it is' if pending.confirm else 'them as they are'}."
            )
        return None
    return await carry_out(state, pending, state.records[pending.collection][chosen], now, embed)
