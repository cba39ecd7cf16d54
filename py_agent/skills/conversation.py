"""Replies that need no data: help, greetings, sync, out of scope."""

from __future__ import annotations

import re

from .outcome import Outcome

HELP = """Here is what I can do, on this device, even offline:
• “remind me to call Mom tomorrow at 5pm” — add a task (with a due date)
• “remind me every monday to take out the trash” — a repeating task
• “add avocados to my grocery list” / “what's on my grocery list?” — lists
• “what's due this week?” / “show overdue tasks” — list tasks
• “I paid the rent” / “delete the dentist task” — complete or delete one
• “rename buy milk to buy oat milk” / “move the dentist to friday” — change one
• “undo” — take back my last change
• “what did I finish this week?” / “when did I last call mom?” — what you've done
• “note that the wifi password is hunter2” — save a note
• “what's the wifi password?” — search your notes
• “show my notes” / “forget the wifi note” — list or delete notes
• “sync now” — sync with your other devices (pair them under Sync)"""

THANKS = re.compile(r"\b(thanks|thank you|thx|cheers|ty)\b", re.IGNORECASE)
BYE = re.compile(r"\b(bye|goodbye|see you|good night|later)\b", re.IGNORECASE)

# Abilities py_agent does not have, by the words that ask for them, first match wins
# (devices before media and weather: "turn on the tv", "set the thermostat temperature").
REFUSALS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"\b(timers?|count ?down|stopwatch)\b", re.IGNORECASE),
        "I can't set timers. Want a reminder instead? Say “remind me in 10 minutes to …”.",
    ),
    (
        re.compile(r"\b(alarms?|wake me|snooze)\b", re.IGNORECASE),
        "I can't set alarms. Want a reminder instead? Say “remind me tomorrow at 7am to …”.",
    ),
    (
        re.compile(
            r"\b(turn|switch)(ed)?\s+(on|off|up|down)\b|\b(lights?|lamps?|thermostat|heating|"
            r"air ?con\w*|tv|television|blinds|vacuum|roomba|smart plug|garage door|"
            r"(un)?lock the)\b",
            re.IGNORECASE,
        ),
        "I can't control devices in your home. I look after your tasks and notes.",
    ),
    (
        re.compile(
            r"\b(play|music|songs?|playlist|podcasts?|spotify|radio|volume|track|album|"
            r"pause|movies?|netflix|youtube)\b",
            re.IGNORECASE,
        ),
        "I can't play music or media. I look after your tasks and notes.",
    ),
    (
        re.compile(
            r"\b(weather|forecast|rain\w*|snow\w*|sunny|temperature|umbrella)\b", re.IGNORECASE
        ),
        "I can't check the weather: I only know your tasks and notes.",
    ),
    (
        re.compile(r"\b(call|phone|dial|ring|facetime)\b", re.IGNORECASE),
        "I can't make calls. Want a reminder to call? Say “remind me to call … at 5pm”.",
    ),
    (
        re.compile(r"\b(text|message|sms|e-?mail|whatsapp|send|dm)\b", re.IGNORECASE),
        "I can't send messages or email. Want a reminder instead? "
        "Say “remind me to text … tonight”.",
    ),
    (
        re.compile(
            r"\b(order|purchase|buy online|book (a|an|me)|reserve|reservation|tickets?|uber|"
            r"taxi|cab|deliver\w*|amazon|checkout)\b",
            re.IGNORECASE,
        ),
        "I can't order or book things. I can keep a list (“add … to my shopping list”) "
        "or remind you (“remind me to book …”).",
    ),
]
GENERIC_REFUSAL = (
    "I can't help with that on this device. I manage your tasks and notes — "
    "type “help” for examples."
)


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


def refusal(text: str) -> str | None:
    """The specific "I can't …" for an ability ``text`` asks for, if `REFUSALS` knows it."""
    return next((reply for pattern, reply in REFUSALS if pattern.search(text)), None)


def out_of_scope(text: str, answer: str | None = None) -> Outcome:
    """A request py_agent cannot carry out; it changes nothing. An ability it does not have
    (`REFUSALS`) gets its specific reply, whatever the server said. Otherwise ``answer``,
    the server's generative answer when it gave one, is shown as such -- a small language
    model states wrong things as confidently as right ones."""
    specific = refusal(text)
    if specific is not None:
        return Outcome(specific)
    if answer:
        return Outcome(f"{answer}\n(Answered by the server's language model: it can be wrong.)")
    return Outcome(GENERIC_REFUSAL)
