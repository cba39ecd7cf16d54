"""Replies that need no data: help, greetings, sync, out of scope."""

from __future__ import annotations

import re

from .outcome import Outcome

HELP = """Here is what I can do, on this device, even offline:
• “remind me to call Mom tomorrow at 5pm” — add a task (with a due date)
• “what's due this week?” / “show overdue tasks” — list tasks
• “I paid the rent” / “delete the dentist task” — complete or delete one
• “note that the wifi password is hunter2” — save a note
• “what's the wifi password?” — search your notes
• “show my notes” — list notes
• “sync now” — sync with your other devices (pair them under Sync)"""

THANKS = re.compile(r"\b(thanks|thank you|thx|cheers|ty)\b", re.IGNORECASE)
BYE = re.compile(r"\b(bye|goodbye|see you|good night|later)\b", re.IGNORECASE)


def help_reply() -> Outcome:
    return Outcome(HELP)


def greeting(text: str) -> Outcome:
    if THANKS.search(text):
        return Outcome("You're welcome!")
    if BYE.search(text):
        return Outcome("Bye! Your tasks and notes stay on this device.")
    return Outcome("Hi! What can I do for you? Type “help” for examples.")


def sync_now(report: str | None) -> Outcome:
    """``report`` says how the sync went; None where this agent has no sync at all."""
    if report is None:
        return Outcome("This agent does not sync: everything stays here, on this device.")
    return Outcome(report)


def out_of_scope(answer: str | None = None) -> Outcome:
    """``answer`` is the server's generative answer, when it gave one: shown as such,
    because a small language model states wrong things as confidently as right ones."""
    if answer:
        return Outcome(f"{answer}\n(Answered by the server's language model: it can be wrong.)")
    return Outcome(
        "I can't help with that on this device. I manage your tasks and notes — "
        "type “help” for examples."
    )
