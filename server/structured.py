"""Structured readings: the generative backend reads an utterance the server model is unsure
of into py_agent's own terms, an intent and its slots as JSON.

    server model confident (>= READING_BELOW)  → its own reading, no backend call
    unsure, backend gives a valid reading      → the backend's intent and slots
    unsure, anything else                      → the server model's reading

What is sent: the utterance, the device's local time (with its weekday) and its time zone
name, under a system prompt that defines the intents and the slot shapes. Never the user's
tasks, notes or locale. The request asks for a JSON object (``response_format``), and a reply
fenced as a ```json block is taken too, since many OpenAI-compatible servers ignore that
field. Nothing else is: the reply is validated strictly (`parse_reading`), and a reading that
does not fit is a failure, never half used.

One backend call per /infer request at most: for an unsure out_of_scope reading the same
reply carries the free-text ``answer``, so the route never asks `GenerativeClient.answer`
after a structured reading, whether it was used, failed or never sent.

Readings in flight are bounded (``READING_CONCURRENCY``): past the bound a request does not
wait, it keeps the server model's reading (reason ``busy``), so a slow backend costs each
request at most ``READING_TIMEOUT_S`` and never piles up. Failures are logged with the
backend's URL and a reason, never the user's words nor the backend's reading of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Any, cast

from py_agent.intents import INTENTS
from py_agent.slots import (
    EditSlots,
    JsonValue,
    SlotsError,
    TargetSlots,
    TaskSlots,
    parse_slots_json,
)

from .generative import MAX_ANSWER_CHARS, BackendError, GenerativeClient, cap

# Why a reading was not used: the label of py_agent_structured_readings_failed_total.
FAILURE_REASONS = (
    "busy",  # READING_CONCURRENCY readings already in flight: not sent
    "timeout",  # no full reply within READING_TIMEOUT_S
    "connection",  # refused, reset, DNS …
    "status",  # an HTTP status other than 200
    "unusable",  # not a chat completion (not JSON, no choices, no text, over 1 MiB)
    "not_json",  # the message is not one JSON object (alone or in one ```json fence)
    "bad_shape",  # not exactly {intent, slots[, confidence][, answer]}
    "bad_intent",  # intent is not one of INTENTS
    "bad_slots",  # slots do not have the intent's shape (py_agent.slots.parse_slots_json)
    "error",  # a bug on this side (logged with where, not what)
)

# What each intent means (per data/intents/GUIDE.md) and the slots it reads, as the prompt
# gives them. One line each: the prompt is paid for on every reading.
INTENT_GUIDE: dict[str, tuple[str, str]] = {
    "task.add": (
        "add a task, reminder or list item, maybe with a due date, repeat rule or list "
        '("remind me to call Mom tomorrow at 5pm", "milk", "add avocados to my groceries list")',
        '{"title": str, "due_date": DATE|null, "due_time": TIME|null, "repeat": RRULE|null, '
        '"list": LIST|null}',
    ),
    "task.list": (
        'see tasks: open, due, overdue, done, or one list ("what\'s due this week?", '
        '"what\'s on my shopping list")',
        '{"list": LIST|null}',
    ),
    "task.complete": (
        'mark a task done, also said as having done it ("I paid the rent", "check off eggs")',
        '{"target": str, "list": LIST|null}',
    ),
    "task.delete": (
        'remove a task without doing it ("delete the dentist task", '
        '"remove milk from the shopping list")',
        '{"target": str, "list": LIST|null}',
    ),
    "task.edit": (
        "change an existing task: rename it, move its date or time, clear its due date, move "
        'it to a list, make it repeat or stop ("rename buy milk to buy oat milk", '
        '"move the dentist to friday", "the report has no deadline")',
        '{"target": str, "title": str|null, "due_date": DATE|null, "due_time": TIME|null, '
        '"time_only": bool, "clear_due": bool, "list": LIST|null, "to_main_list": bool, '
        '"repeat": RRULE|null, "stop_repeat": bool}',
    ),
    "note.add": (
        'keep a fact ("note that the wifi password is hunter2", "parked on level 3")',
        '{"text": str}',
    ),
    "note.search": (
        'ask about something they noted ("what\'s the wifi password?", "where did I park?")',
        "{}",
    ),
    "note.list": ('see their notes ("show my notes")', "{}"),
    "note.delete": (
        'remove a note ("forget the wifi note", "delete the note about the gate code")',
        '{"target": str}',
    ),
    "sync.now": ('sync with their other devices now ("sync now")', "{}"),
    "help": ('know what py_agent can do or how to use it ("what can you do?")', "{}"),
    "greeting": ('greet, thank, say bye, small talk ("hi", "thanks!", "how are you?")', "{}"),
    "undo": ('reverse the change py_agent just made ("undo", "oops, put it back")', "{}"),
    "history": (
        'ask what they did or finished, or when they last did something ("what did I do '
        'yesterday?", "when did I last call mom?")',
        '{"start": DATE|null, "end": DATE|null, "target": str, "period": "yesterday"|"today"|'
        '"this week"|"last week"|"this month"|""}',
    ),
    "out_of_scope": (
        "anything else, including commands py_agent cannot carry out: timers, alarms, smart "
        "home, music, weather, news, calls, messages, orders, bookings, general questions "
        '("set a timer for 5 minutes", "call mom", "what\'s 17 times 23?")',
        "{}",
    ),
}

_RULES = """\
Slot rules:
- DATE is "YYYY-MM-DD", TIME is "HH:MM" (24-hour), read against the user's local time "now": \
"friday" is the first Friday after today, "next friday" the Friday of next week, "at 5" is \
17:00, morning 09:00, evening 19:00, tonight 20:00.
- title (task.add, task.edit: the new title or null): the task in the user's own words, \
without command or filler words ("remind me to", "add", "please", "todo:"), misspelled ones \
too, and without the date, time, repeat and list phrases.
- text (note.add): the fact, without "note:", "note that", "remember that".
- target: the words naming the existing task or note, or "" when there are none.
- RRULE: an RFC 5545 rule without "RRULE:", parts in the order FREQ, INTERVAL, BYDAY, \
BYMONTHDAY, BYMONTH ("every monday" is "FREQ=WEEKLY;BYDAY=MO", "every 2 weeks" is \
"FREQ=WEEKLY;INTERVAL=2"); due_date is then the first occurrence.
- LIST: the list's name in lower case, without "my"/"the" and the word "list", last word \
singular ("groceries list" is "grocery"); null for the main to-do list.
- due_time only with a due_date. time_only: only the time changes (with due_date and \
due_time); clear_due: the due date is removed (due_date null); to_main_list: back to the \
main list (list null); stop_repeat: no longer repeats (repeat null).
- history: start and end are the inclusive dates asked about, null for any time.

Answer with ONLY a JSON object, no other text:
{"intent": INTENT, "slots": {...}, "confidence": NUMBER, "answer": STRING|null}
- slots has exactly the keys listed for the intent ({} when none).
- confidence is your probability, 0 to 1, that the intent is right.
- answer is null, except for an out_of_scope question: then a brief plain-text reply, at \
most three sentences. You have no live information (weather, news, prices) and cannot see \
the user's tasks, notes or any personal data: never make them up. For a command py_agent \
cannot carry out (a timer, a call, a device), answer is null."""


_UNDESCRIBED = [intent for intent in INTENTS if intent not in INTENT_GUIDE]
if _UNDESCRIBED:  # at import, so the server refuses to start rather than ask blind
    raise RuntimeError(f"server/structured.py: INTENT_GUIDE has no line for {_UNDESCRIBED}")


def system_prompt() -> str:
    """The instructions of every structured reading: the intents, their slots, the rules."""
    lines = [
        "You read requests to py_agent, a private assistant for tasks (to-dos, reminders, "
        "shopping-list items) and notes (facts to keep). Classify the user's utterance as "
        "exactly one intent and read its slots.",
        "",
        "Intents (name: the user wants to … ; slots):",
    ]
    for intent in INTENTS:
        meaning, slots = INTENT_GUIDE[intent]
        lines.append(f"- {intent}: {meaning}; slots {slots}")
    return "\n".join([*lines, "", _RULES])


SYSTEM_PROMPT = system_prompt()


def user_message(text: str, now: dt.datetime, tz: str | None) -> str:
    """The utterance and its time, as JSON: the user's words cannot pass for instructions
    about the format, and nothing else of theirs is in it."""
    message: dict[str, str] = {"now": now.isoformat(), "weekday": now.strftime("%A")}
    if tz is not None:
        message["time_zone"] = tz
    message["utterance"] = text
    return json.dumps(message, ensure_ascii=False)


@dataclass(frozen=True)
class Reading:
    intent: str
    slots: dict[str, JsonValue]
    """Validated by py_agent.slots.parse_slots_json; list and repeat in canonical form."""
    confidence: float | None
    """The backend's own, when it gave a number in [0, 1]."""
    answer: str | None
    """The free-text reply, for out_of_scope only; capped like GenerativeClient.answer's."""


class ReadingFailed(Exception):
    """No usable reading; ``reason`` is one of FAILURE_REASONS, the message names what was
    wrong without quoting the user's words or the backend's reading of them."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# The whole message is one fenced block, ```json or bare; nothing may sit outside it.
_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL | re.IGNORECASE)
_KEYS, _OPTIONAL_KEYS = frozenset({"intent", "slots"}), frozenset({"confidence", "answer"})


def parse_reading(content: str) -> Reading:
    """The reading in a backend's message; raises ReadingFailed for anything but one JSON
    object (alone or fenced) of exactly the asked-for shape."""
    text = content.strip()
    fenced = _FENCE.fullmatch(text)
    if fenced is not None:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except ValueError:
        raise ReadingFailed("not_json", "the message is not a JSON object") from None
    if not isinstance(value, dict):
        raise ReadingFailed(
            "not_json", f"the message is JSON {type(value).__name__}, not an object"
        )
    keys = set(value)
    if not (_KEYS <= keys <= _KEYS | _OPTIONAL_KEYS):
        raise ReadingFailed(
            "bad_shape",
            f"the object has {len(keys)} keys; expected intent, slots and optionally "
            "confidence and answer",
        )
    intent = value["intent"]
    if not isinstance(intent, str) or intent not in INTENTS:
        raise ReadingFailed("bad_intent", f"'intent' is not one of py_agent's {len(INTENTS)}")
    slots = value["slots"]
    if not isinstance(slots, dict):
        raise ReadingFailed("bad_slots", f"'slots' of {intent} is not an object")
    try:
        parsed = parse_slots_json(intent, slots)
    except (SlotsError, ValueError):  # the message may quote the values: not logged
        raise ReadingFailed("bad_slots", f"'slots' do not have {intent}'s shape") from None
    answer = value.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise ReadingFailed("bad_shape", "'answer' is neither text nor null")
    if intent != "out_of_scope" or answer is None or not answer.strip():
        answer = None
    else:
        answer = cap(answer.strip(), MAX_ANSWER_CHARS, cut_off=False)
    return Reading(
        intent, canonical(cast(dict[str, JsonValue], slots), parsed),
        _probability(value.get("confidence")), answer,
    )  # fmt: skip


def canonical(slots: dict[str, JsonValue], parsed: object) -> dict[str, JsonValue]:
    """``slots`` with the list name and repeat rule as parse_slots_json read them
    ("Groceries list" → "grocery", "BYDAY=MO;FREQ=WEEKLY" → "FREQ=WEEKLY;BYDAY=MO"), so
    that the backend's slots are in the form py_agent's own reading gives."""
    out = dict(slots)
    if isinstance(parsed, TaskSlots | TargetSlots | EditSlots):
        out["list"] = parsed.list
    elif "list" in out:  # task.list: parsed is the list name itself (or None)
        out["list"] = cast(str | None, parsed)
    if isinstance(parsed, TaskSlots | EditSlots):
        out["repeat"] = parsed.repeat
    return out


def _probability(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


class StructuredReader:
    """Structured readings from the app's one GenerativeClient, bounded and deadlined."""

    def __init__(self, client: GenerativeClient) -> None:
        settings = client.settings
        self.client = client
        self.model = settings.model
        self.below = settings.reading_below
        self.timeout_s = settings.reading_timeout_s
        self.concurrency = settings.reading_concurrency
        # Never waited on (see `read`), so it binds to no event loop.
        self._in_flight = asyncio.Semaphore(self.concurrency)

    def wanted(self, confidence: float) -> bool:
        """Whether the server model's ``confidence`` is low enough to ask."""
        return confidence < self.below

    def request_body(self, text: str, now: dt.datetime, tz: str | None) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_message(text, now, tz)},
            ],
            # Room for the answer of an out_of_scope question, plus the JSON around it.
            "max_tokens": self.client.settings.max_tokens + 128,
            "temperature": 0,  # a reading, not writing
            "response_format": {"type": "json_object"},
            "stream": False,
        }

    async def read(self, text: str, now: dt.datetime, tz: str | None) -> Reading:
        """The backend's reading of ``text``; raises ReadingFailed (with the reason) when
        there is none to use within ``timeout_s``."""
        if self._in_flight.locked():  # waiting would spend the deadline on the queue
            raise ReadingFailed("busy", f"{self.concurrency} readings already in flight")
        async with self._in_flight:  # not locked: acquired without suspending
            try:
                content, _ = await self.client.complete(
                    self.request_body(text, now, tz), self.timeout_s
                )
            except BackendError as exc:
                raise ReadingFailed(exc.reason, str(exc)) from None
        return parse_reading(content)
