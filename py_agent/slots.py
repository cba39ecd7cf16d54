"""What a task request says besides its intent: the task's title and due date.

"Remind me to call Mom tomorrow at 5pm" → title "call Mom", due tomorrow 17:00. The title is
the request with the date phrase cut out, then the words of asking around it: command and
filler phrases in front ("remind me to", "please add", "todo:"), filler at the end
("please", "on my list"), and a preposition the date phrase left dangling ("by", "due on").
The remaining words keep the user's casing.

`completion_target` does the same for "mark call mom as done" / "delete the dentist task":
it leaves the words naming the task, which the agent then matches against task titles by
embedding, so it errs on the side of keeping words.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .dates import DueMatch, find_due


@dataclass(frozen=True)
class TaskSlots:
    title: str  # "" when the request names no task ("remind me tomorrow")
    due: DueMatch | None


def task_slots(text: str, now: dt.datetime) -> TaskSlots:
    """The title and due date of the task that ``text`` asks for (see `dates.find_due`)."""
    due = find_due(text, now)
    if due is None:
        title = text
    else:
        before = _strip_ends(_tidy(text[: due.start]), None, _DANGLING)
        title = f"{before} {text[due.end :]}"
    title = _strip_ends(_tidy(title), _TASK_LEADING, _TASK_TRAILING)
    return TaskSlots(_tidy(title), due)


def completion_target(text: str) -> str:
    """The words of a complete/delete request that name the task: "mark call mom as done" →
    "call mom", "delete the dentist task" → "dentist", "never mind the bike thing" →
    "bike thing", "I paid the rent" → "paid the rent" (the verb is kept: it is what matches
    a title like "pay rent"). "" when nothing is left."""
    target = _strip_ends(_tidy(text), _DONE_LEADING, _DONE_TRAILING)
    target = _tidy(_strip_ends(target, _DETERMINER, None))
    return _tidy(_strip_ends(target, None, _TASK_NOUN)) or target


def _phrases(phrases: Iterable[str]) -> str:
    """A regex alternation of phrases, longest first. A space matches any run of spaces, an
    apostrophe a typographic one (U+2019) or none ("don't", "dont")."""
    ordered = sorted(phrases, key=len, reverse=True)
    return "|".join(phrase.replace(" ", r"\s+").replace("'", "['\u2019]?") for phrase in ordered)


_LIST = (
    r"(?:(?:to-?do|to\s+do|task|tasks|shopping|grocery|reminders?)\s+)?"
    r"(?:list|tasks|to-?dos|reminders)"
)
_TASK_WORD = r"(?:task|to-?do|to\s+do|reminder|item)"

_POLITE = (
    "hey", "hi", "hello", "ok", "okay", "so", "um", "uh", "yo", "please", "pls", "plz", "kindly",
    "can you", "could you", "would you", "will you", "can u", "could u", "would you mind",
    "i want you to", "i'd like you to",
)  # fmt: skip

_ASKING = (
    "remind me to", "remind me that i need to", "remind me that i have to",
    "remind me that i should", "remind me that i must", "remind me that", "remind me about",
    "remind me of", "remind me", "remind us to", "remind us", "reminder to",
    "set a reminder to", "set a reminder for", "set a reminder", "set reminder",
    "don't let me forget to", "do not let me forget to", "don't let me forget",
    "don't forget to", "dont forget to", "do not forget to", "remember to",
    "help me remember to", "make sure i", "make sure to", "make sure that i",
    "i need to", "i have to", "i've got to", "i got to", "i gotta", "i must", "i should",
    "i want to", "i'd like to", "i would like to", "i'll need to", "i will need to",
    "we need to", "we have to", "we should", "we must", "need to", "have to", "gotta",
    "got to", "put", "add", "jot down", "write down", "note down",
)  # fmt: skip

_TASK_FILLER = (
    "please", "pls", "plz", "thanks", "thank you", "thx", "ty", "for me", "ok", "okay", "asap",
)  # fmt: skip

# What a cut-out date phrase leaves at the end of the words before it: "renew it by", "due on".
_PREPOSITIONS = (
    "no later than", "due", "by", "on", "at", "before", "until", "till", "til", "for",
    "around", "from", "starting", "sometime", "some time",
)  # fmt: skip

_DONE_ASKING = (
    "i", "i've", "i have", "we", "we've", "we have", "i'm", "i am", "just", "already",
    "finally", "all", "now", "done with", "finished with", "through with", "done", "finished",
    "completed", "did", "complete", "finish", "mark", "marked", "check off", "checked off",
    "tick off", "ticked off", "cross off", "crossed off", "check", "tick", "strike",
    "delete", "remove", "erase", "drop", "cancel", "clear", "scrap", "scratch", "get rid of",
    "trash", "discard", "forget about", "forget", "never mind", "nevermind", "nvm", "skip",
    "don't need to", "no need to", "no longer need to", "don't have to", "no longer have to",
)  # fmt: skip

_DONE_FILLER = (
    "please", "pls", "thanks", "thank you", "for me", "now", "already", "anymore", "any more",
    "done", "finished", "complete", "completed", "cancelled", "canceled", "off", "is done",
    "is finished", "is complete", "is completed", "is sorted", "is taken care of", "are done",
    "has been done", "it's done",
)  # fmt: skip

_TASK_LEADING = re.compile(
    # The phrases that name a task come first: "add a task:" before "add".
    r"^[\s\W]*(?:"
    rf"(?:add|create|make|set\s+up|new|put|schedule)\s+(?:a\s+)?(?:new\s+)?{_TASK_WORD}"
    r"(?:\s+(?:to|for|called|named|titled|that\s+says|saying))?"
    rf"|(?:add|put)\s+(?:to|on|onto)\s+(?:my|the|our)\s+{_LIST}"
    rf"|{_TASK_WORD}\s*(?::|$)|note\s*:"
    rf"|{_phrases((*_POLITE, *_ASKING))}"
    r")(?![\w'])[\s:,.!\-\u2013\u2014]*",
    re.IGNORECASE,
)
_TASK_TRAILING = re.compile(
    rf"(?:^|(?<=\W))(?:{_phrases(_TASK_FILLER)}"
    rf"|(?:to|on|onto|in|into)\s+(?:my|the|our)\s+{_LIST}"
    rf"|as\s+an?\s+(?:new\s+)?{_TASK_WORD}"
    r")[\s\W]*$",
    re.IGNORECASE,
)
_DANGLING = re.compile(
    rf"(?:^|(?<=[\s,]))(?:(?:is|are)\s+)?(?:{_phrases(_PREPOSITIONS)})[\s,:\-]*$",
    re.IGNORECASE,
)
_DONE_LEADING = re.compile(
    rf"^[\s\W]*(?:{_phrases((*_POLITE, *_DONE_ASKING))})(?![\w'])[\s:,.!\-\u2013\u2014]*",
    re.IGNORECASE,
)
_DONE_TRAILING = re.compile(
    rf"(?:^|(?<=\W))(?:{_phrases(_DONE_FILLER)}"
    r"|as\s+(?:done|complete|completed|finished|read|cancelled|canceled)"
    rf"|(?:from|off)\s+(?:of\s+)?(?:my|the|our)\s+{_LIST}"
    r")[\s\W]*$",
    re.IGNORECASE,
)
_DETERMINER = re.compile(r"^(?:the|my|that|this|those|these|a|an|our)\s+", re.IGNORECASE)
_TASK_NOUN = re.compile(rf"(?<=\w)\s+(?:{_TASK_WORD}|entry|one)s?[\s\W]*$", re.IGNORECASE)

# Punctuation a title does not start or end with (a closing ")" or "?" inside stays).
_EDGE_PUNCTUATION = " \t\r\n.,;:!?-\u2013\u2014\"'\u201c\u201d\u2018\u2019"
_SPACES = re.compile(r"\s+")
# What "call Mom (tomorrow)" leaves once the date is cut out.
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")
# Longer than any trailing phrase with the punctuation around it.
_TAIL = 80


def _tidy(text: str) -> str:
    return _SPACES.sub(" ", _EMPTY_BRACKETS.sub(" ", text)).strip(_EDGE_PUNCTUATION)


def _strip_ends(
    text: str, leading: re.Pattern[str] | None, trailing: re.Pattern[str] | None
) -> str:
    """Cut ``leading``'s matches from the start and ``trailing``'s from the end of ``text``
    until neither matches. ``trailing`` is searched for in the last `_TAIL` characters only:
    its phrases are short, and a search of the whole text per cut would be quadratic."""
    while True:
        before = text
        while leading is not None and (match := leading.match(text)) and match.end():
            text = text[match.end() :].strip()
        while trailing is not None and (match := trailing.search(text, max(0, len(text) - _TAIL))):
            if match.start() == len(text):
                break
            text = text[: match.start()].strip()
        if text == before:
            return text
