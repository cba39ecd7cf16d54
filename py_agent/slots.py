"""What a request says besides its intent: titles, dates, repeat rules, lists, targets.

Pure functions of the text (and of ``now``, the user's local time), the same in CPython and
Pyodide; each takes any string and returns a value (non-strings raise TypeError). The
labelling guide (data/intents/GUIDE.md, "Slots") is the specification; the rules below are
how this module reads it, and tests/test_slots.py pins each.

Titles (`task_slots`). "Remind me to call Mom tomorrow at 5pm" → title "call Mom", due
tomorrow 17:00. The title is the request with its phrases cut out -- the list phrase ("to
my groceries list", "on costco list", a "shopping list:" prefix), the repeat phrase (see
`recurrence.find_repeat`), the date/time phrase (see `dates.find_due`) and the preposition
each leaves dangling ("by", "due on", "starting") -- then the words of asking around it:
command and filler phrases in front ("remind me to", "please add", "can you put", "todo:"),
filler at the end ("please", "on my list"). The remaining words keep the user's casing and
punctuation. "shopping list: eggs, bread" is one task, "eggs, bread", on the shopping list.

Misspelt command words. The first few words are compared with the command vocabulary
("remind", "remember", "please", "task", "note", "delete", ...) by edit distance, so "remnd
me to", "add taks", "remeber that", "pls", "ad" are read as typed right. A word is only
respelt when it is one edit away (two for words of 8+ letters), never when it is itself a
word that could be the user's ("rewind", "lease", "remote", "movie"); for command words of
4-5 letters the edit must be a dropped, added or swapped letter, not a different one ("mask"
is not "task"), and "add" is only respelt from a few known typos ("ad", "addd"). A respelt
word is only cut when the command phrase around it matches, so "adopt a cat" and "taks email
boss" keep their first word.

Repeats. A repeat phrase gives `repeat` (a canonical RRULE) and the first due date: the
first date of the series on or after today, or on or after the date a "starting …",
"from …" phrase gives; a time ("every day at 8", "every morning") is the due time, read as
said (a bare "at 8" is 08:00 here, not the next 8 o'clock on the clock), and when the first
date is today and that time has passed, the series' next date is taken instead. A date
after "until" ("every day until friday") is no start, and no rule can say it: it stays in
the title.

Lists (`list_name`): lower case, without "my/the/our" and the word "list", the last word
singular by simple English rules ("groceries" → "grocery", "boxes" → "box", with a few
exceptions: "christmas", "clothes", "movies" → "movie"). "to-do list", "todo list", "task
list", "reminders", "tasks", "my list" are the main list: None. A list phrase needs a
preposition ("to my shopping list", "on costco list", "off the shopping list"), "list"
(or "groceries" alone), and no ordinary word after it ("talk to the list manager" has no
list).

Targets (`target_slots`, `completion_target`): the words naming the task, which the agent
matches against titles by meaning, so they err on the side of keeping words ("I paid the
rent" → "paid the rent": the verb is what matches "pay rent").

Edits (`edit_slots`), tried in this order: "call it Y (instead)" → title Y, target "";
"rename X to Y" / "change the name of X to Y" → title; "stop repeating X", "X is a one-off
now" → stop_repeat; "X has no deadline", "remove the due date from X" → clear_due;
"change X to Y" → a reschedule when Y is wholly a date/time phrase, a list move when Y is
a list, a repeat when Y is a repeat phrase, else a rename; "move X to the costco list",
"take X off the shopping list" (→ the main list); "make X repeat every week"; "move X to
friday", "push X to next week", "X is now at 10am" (time only: keep the date), "make that
thursday". Words that refer back ("it", "that", "this one") give target "". When a
"to"/"as" split is ambiguous ("rename go to gym to go to the gym"), the middle "to" of
an odd number splits, the first of the two middle ones of an even number.

History (`history_slots`): yesterday, today, this/last week (Monday to Sunday), this/last
month, this/last year, "in the past week" / "in the last N days" (today and the N-1 days
before), "since monday" (from the last Monday before today), "on friday" / "last friday"
(the last Friday before today). "when did I last call mom" → target "call mom"; "what did
I do …" and other questions about everything → target "".
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

from .dates import _WEEKDAYS, DueMatch, find_due
from .recurrence import (
    RecurrenceError,
    RepeatMatch,
    canonical_rule,
    find_repeat,
    first_occurrence,
    next_occurrence,
)

JsonValue = str | bool | None
"""What a slot's value is in JSON: a string, a boolean or null."""

MAX_SLOT_CHARS = 500
"""Longest string slot; `slots_json` cuts longer ones, `parse_slots_json` refuses them."""


class SlotsError(ValueError):
    """Slots from outside (the server, the page) that do not have their intent's shape."""


@dataclass(frozen=True)
class TaskSlots:
    title: str  # "" when the request names no task ("remind me tomorrow")
    due: DueMatch | None  # for a repeat: the first occurrence (date, and time if any)
    repeat: str | None = None  # canonical RRULE
    list: str | None = None  # normalised list name; None: the main list


@dataclass(frozen=True)
class TargetSlots:
    target: str  # the words naming the task ("" when none)
    list: str | None = None  # "remove milk from the shopping list" -> ("milk", "shopping")


@dataclass(frozen=True)
class EditSlots:
    target: str  # "" when the request refers back ("call it X instead", "make that thursday")
    title: str | None = None  # new title
    due: DueMatch | None = None  # new due date and/or time
    time_only: bool = False  # only a time was given ("the dentist is now at 10am"): keep the date
    clear_due: bool = False  # "X has no deadline"
    list: str | None = None  # move to this list
    to_main_list: bool = False  # "take X off the shopping list"
    repeat: str | None = None  # make it repeat (canonical RRULE)
    stop_repeat: bool = False  # "stop repeating X"


@dataclass(frozen=True)
class HistorySlots:
    start: dt.date | None  # inclusive period asked about; None: any time
    end: dt.date | None
    target: str  # "when did I last call mom" -> "call mom"; "" for "what did I do yesterday"
    period: str  # "yesterday", "today", "this week", "last week", "this month", "" for any time


def _require_text(name: str, text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name}: 'text' must be a string, got {type(text).__name__}")
    return text


def _require_now(name: str, now: object) -> dt.datetime:
    if not isinstance(now, dt.datetime):
        raise TypeError(f"{name}: 'now' must be a datetime, got {type(now).__name__}")
    return now


# --- text helpers ----------------------------------------------------------------------------


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
    "i want you to", "i'd like you to", "you can", "go ahead and", "quickly", "just",
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
    "got to", "put", "add", "jot down", "write down", "note down", "add in", "throw in",
)  # fmt: skip

_TASK_FILLER = (
    "please", "pls", "plz", "thanks", "thank you", "thx", "ty", "for me", "ok", "okay", "asap",
)  # fmt: skip

# What a cut-out date phrase leaves at the end of the words before it: "renew it by", "due on".
_PREPOSITIONS = (
    "no later than", "due", "by", "on", "at", "before", "until", "till", "for",
    "around", "from", "starting", "starting on", "starting from", "beginning", "as of",
    "effective", "commencing", "sometime", "some time",
)  # fmt: skip

_DONE_ASKING = (
    "i", "i've", "i have", "we", "we've", "we have", "i'm", "i am", "just", "already",
    "finally", "all", "now", "done with", "finished with", "through with", "done", "finished",
    "completed", "did", "complete", "finish", "mark", "marked", "check off", "checked off",
    "tick off", "ticked off", "cross off", "crossed off", "cross out", "check", "tick", "cross",
    "strike", "strike off", "delete", "remove", "erase", "drop", "cancel", "clear", "scrap",
    "scratch", "get rid of", "trash", "discard", "forget about", "forget", "never mind",
    "nevermind", "nvm", "skip", "take off", "take", "don't need to", "no need to",
    "no longer need to", "don't have to", "no longer have to",
)  # fmt: skip

_DONE_FILLER = (
    "please", "pls", "thanks", "thank you", "for me", "now", "already", "anymore", "any more",
    "done", "finished", "complete", "completed", "cancelled", "canceled", "off", "is done",
    "is finished", "is complete", "is completed", "is sorted", "is taken care of", "are done",
    "has been done", "it's done",
)  # fmt: skip

_END = r"(?![\w'])[\s:,.!\-\u2013\u2014]*"
_TASK_LEADING = re.compile(
    # The phrases that name a task come first: "add a task:" before "add". No "^": these
    # patterns are applied with .match(text, pos) (see `_cut_leading`).
    r"[\s\W]*(?:"
    rf"(?:add|create|make|set\s+up|new|put|schedule)\s+(?:a\s+)?(?:new\s+)?{_TASK_WORD}"
    r"(?:\s+(?:to|for|called|named|titled|that\s+says|saying))?"
    rf"|(?:add|put)\s+(?:to|on|onto)\s+(?:my|the|our)\s+{_LIST}"
    rf"|{_TASK_WORD}\s*(?::|$)|note\s*:"
    rf"|{_phrases((*_POLITE, *_ASKING))}"
    rf"){_END}",
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
    rf"[\s\W]*(?:{_phrases((*_POLITE, *_DONE_ASKING))}){_END}",
    re.IGNORECASE,
)
_DONE_TRAILING = re.compile(
    rf"(?:^|(?<=\W))(?:{_phrases(_DONE_FILLER)}"
    r"|as\s+(?:done|complete|completed|finished|read|cancelled|canceled)"
    rf"|(?:from|off)\s+(?:of\s+)?(?:my|the|our)\s+{_LIST}"
    r")[\s\W]*$",
    re.IGNORECASE,
)
_DETERMINER = re.compile(r"(?:the|my|that|this|those|these|a|an|our)\s+", re.IGNORECASE)
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
    """Cut ``leading``'s matches from the start (reading misspelt command words right, see
    `_respelled`) and ``trailing``'s from the end of ``text`` until neither matches.
    ``trailing`` is searched for in the last `_TAIL` characters only: its phrases are
    short, and a search of the whole text per cut would be quadratic."""
    while True:
        before = text
        if leading is not None:
            text = _cut_leading(text, leading)
        while trailing is not None and (match := trailing.search(text, max(0, len(text) - _TAIL))):
            if match.start() == len(text):
                break
            text = text[: match.start()].strip()
        if text == before:
            return text


def _cut_leading(text: str, leading: re.Pattern[str]) -> str:
    shadow, original = _respelled(text)
    position = 0
    while (match := leading.match(shadow, position)) and match.end() > position:
        position = match.end()
    return text[original(position) :].strip() if position else text


# --- misspelt command words ------------------------------------------------------------------

_VOCABULARY = (
    "remind", "remember", "reminder", "please", "task", "todo", "note", "memo", "create",
    "schedule", "reschedule", "delete", "remove", "complete", "cancel", "forget", "could",
    "would", "rename", "change", "move", "mark", "postpone", "finished",
)  # fmt: skip
# Short misspellings no edit-distance rule would allow without eating real words.
_TYPOS = {
    "ad": "add", "addd": "add", "pls": "please", "plz": "please", "plse": "please",
    "plez": "please", "pleez": "please", "u": "you", "jott": "jot", "remindme": "remind me",
}  # fmt: skip
# Real words one edit from a command word: never respelt.
_REAL_WORDS = frozenset({
    "rewind", "remand", "remainder", "remainders", "reminded", "remembered", "lease",
    "pleased", "pleaser", "pleat", "crate", "remote", "cancer", "compete", "completely",
    "cloud", "cold", "forgot", "forged", "movie", "moved", "mover", "chance", "charge",
    "changed", "noted", "furnished", "marked", "wold", "tasked", "moves", "notes", "memos",
})  # fmt: skip
_RESPELL_WORDS = 6
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?")


@cache
def _one_edit_variants() -> dict[str, str]:
    """Every spelling one edit from a command word, to the word: dropped, doubled, swapped
    or (for 6+ letters) replaced letters. Built on first use (~10k entries)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    variants: dict[str, str] = {}
    for word in _VOCABULARY:
        edits = {word[:i] + word[i + 1 :] for i in range(len(word))}
        edits |= {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}
        edits |= {word[:i] + c + word[i:] for i in range(len(word) + 1) for c in letters}
        if len(word) >= 6:
            edits |= {word[:i] + c + word[i + 1 :] for i in range(len(word)) for c in letters}
        for edit in edits:
            if len(edit) >= 4 and edit not in _REAL_WORDS and edit not in _VOCABULARY:
                variants.setdefault(edit, word)
    return variants


@lru_cache(maxsize=4096)
def _respell_word(word: str) -> str | None:
    """The command word ``word`` (lower case) is a misspelling of, or None."""
    if word in _TYPOS:
        return _TYPOS[word]
    if word in _VOCABULARY or word in _REAL_WORDS or len(word) < 4:
        return None
    if (hit := _one_edit_variants().get(word)) is not None:
        return hit
    if len(word) >= 7:
        for command in _VOCABULARY:
            close = len(command) >= 8 and command[0] == word[0]
            if close and abs(len(command) - len(word)) <= 2 and _distance(word, command) <= 2:
                return command
    return None


def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, swaps."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[-1]


def _respelled(text: str) -> tuple[str, Callable[[int], int]]:
    """``text`` with its first `_RESPELL_WORDS` words respelt where they are misspelt
    command words, and a map from a position in it back to one in ``text``."""
    pieces: list[str] = []
    replaced: list[tuple[int, int, int]] = []  # (start, end) in the respelt text, end in text
    last = length = 0
    for index, match in enumerate(_WORD.finditer(text)):
        if index >= _RESPELL_WORDS:
            break
        fixed = _respell_word(match.group().lower())
        if fixed is None:
            continue
        pieces.append(text[last : match.start()])
        length += match.start() - last
        replaced.append((length, length + len(fixed), match.end()))
        pieces.append(fixed)
        length += len(fixed)
        last = match.end()
    if not replaced:
        return text, lambda position: position
    pieces.append(text[last:])

    def original(position: int) -> int:
        delta = 0
        for start, end, text_end in replaced:
            if position >= end:
                delta = text_end - end
            elif position > start:
                return text_end
            else:
                break
        return position + delta

    return "".join(pieces), original


# --- lists -----------------------------------------------------------------------------------

_MAIN_LISTS = frozenset({
    "to-do", "todo", "to do", "to-dos", "todos", "to dos", "task", "reminder", "main",
    "default", "whole", "entire",
    "full", "usual", "regular", "normal", "general",
})  # fmt: skip
# Last words that stay as they are: not plurals, or plurals whose singular reads wrong.
_KEEP_WORDS = frozenset({
    "christmas", "xmas", "news", "clothes", "series", "species", "pants", "jeans", "shorts",
    "glasses", "electronics", "logistics", "kudos", "thanks", "this", "bus", "gas", "plus",
    "canvas", "atlas", "chaos", "lens", "always", "sales", "whereas", "dallas", "texas",
    "paris", "athens", "brussels", "vegas", "los angeles", "costas", "wales",
})  # fmt: skip
# Plurals of words ending in "ie" ("movies" → "movie", not "movy").
_IE_PLURALS = frozenset({
    "movies", "cookies", "pies", "ties", "brownies", "zombies", "selfies", "smoothies",
    "goodies", "hoodies", "lies", "rookies", "calories", "freebies", "veggies", "aunties",
    "sweeties", "besties", "boogies", "birdies", "genies", "eyries",
})  # fmt: skip
_LIST_DETERMINERS = re.compile(r"^(?:(?:my|the|our|your|a|an|this|that)\s+)+")
_LIST_WORDS_AT_END = re.compile(r"(?:\s*(?<![\w'-])(?:list|lists|checklist)(?![\w'-]))+$")


def _singular(word: str) -> str:
    if "'" in word or len(word) <= 3 or word in _KEEP_WORDS:
        return word
    if word.endswith("ies"):
        return word[:-1] if word in _IE_PLURALS else word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is", "os")):
        return word
    return word[:-1] if word.endswith("s") else word


def list_name(words: str) -> str | None:
    """The list ``words`` name, normalised: "my Groceries list" → "grocery", "the shopping
    list" → "shopping", "costco" → "costco"; None for the main list ("to-do list", "my
    list", "reminders", "tasks", ""). Idempotent: list_name(list_name(x)) == list_name(x)."""
    _require_text("list_name", words)
    text = " ".join(words.lower().replace("\u2019", "'").split()).strip(_EDGE_PUNCTUATION)
    text = _LIST_DETERMINERS.sub("", text)
    text = _LIST_WORDS_AT_END.sub("", text).strip(_EDGE_PUNCTUATION)
    if not text:
        return None
    *head, last = text.split(" ")
    name = " ".join([*head, _singular(last)])
    return None if name in _MAIN_LISTS else name


_NAME_WORD = (
    r"(?:to[\s-]do|(?!(?:my|the|our|your|a|an|to|on|onto|in|into|for|from|off|of|and|or|at|by"
    r"|list|lists|what|what's|whats|show|me|is|are|was|do|did|have|has|i)(?![\w'-]))"
    r"[^\W\d_][\w'&.\-]*)"
)
_LIST_PHRASE = re.compile(
    rf"""(?<![\w'-])(?P<prep>back\s+to|over\s+to|onto|into|to|on|in|for|from|off|under)\s+
    (?:of\s+)?(?P<det>(?:my|the|our|your|this|that|a)\s+)?
    (?:(?P<name>(?:{_NAME_WORD}\s+){{0,3}}?)(?:list|lists|checklist)
      |(?P<grocery>groceries|grocery)
      |(?P<bare>shopping|to-?dos|todos|to\s+dos|reminders|tasks)
    )(?![\w'-])""",
    re.IGNORECASE | re.VERBOSE,
)
_LIST_PREFIX = re.compile(
    rf"""[\s\W]*(?:(?:add|put)\s+(?:(?:this|these|it|them)\s+)?(?:to|on|onto)\s+)?
    (?:(?:my|the|our)\s+)?(?P<name>(?:{_NAME_WORD}\s+){{0,3}}?)(?:list|checklist)\s*[:\-\u2013\u2014]\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_NEXT_WORD = re.compile(r"[^\S\n]*([\w'-]+)")
# Words that may follow a list phrase: anything else makes it part of a name
# ("talk to the list manager").
_LIST_FOLLOWERS = frozenset({
    "at", "around", "by", "before", "after", "in", "on", "from", "for", "to", "and", "or",
    "so", "then", "until", "till", "please", "pls", "plz", "thanks", "thank", "thx", "too",
    "also", "as", "now", "asap", "later", "instead", "again", "first", "starting", "due",
    "today", "tonight", "tomorrow", "tmrw", "tmr", "next", "this", "every", "each", "daily",
    "weekly", "monthly", "yearly", "when", "if", "because", "since", "i", "we", "with",
    "morning", "afternoon", "evening", "night", "noon", "midnight", "the", "end",
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "either", "anymore", "any", "is", "are", "was",
    "right", "ok", "okay", "yeah", "k",
    *_WEEKDAYS, *(day + "s" for day in _WEEKDAYS),
})  # fmt: skip
_ADD_PREPOSITIONS = frozenset({"to", "on", "onto", "in", "into", "under", "for"})
_TARGET_PREPOSITIONS = frozenset({"from", "off", "on", "in", "under"})


@dataclass(frozen=True)
class _ListPhrase:
    start: int
    end: int
    prep: str
    name: str | None  # normalised; None: the main list


def _list_phrase(text: str, prepositions: frozenset[str] | None = None) -> _ListPhrase | None:
    """The first list phrase in ``text`` (with one of ``prepositions``, if given)."""
    for match in _LIST_PHRASE.finditer(text):
        prep = " ".join(match.group("prep").lower().split())
        if prepositions is not None and prep not in prepositions:
            continue
        if match.group("bare") and not match.group("det"):
            continue  # "go to shopping"; but "add it to my shopping", "add eggs to groceries"
        following = _NEXT_WORD.match(text, match.end())
        if following is not None and following.group(1).lower() not in _LIST_FOLLOWERS:
            continue
        words = match.group("name") or match.group("grocery") or match.group("bare") or ""
        return _ListPhrase(match.start(), match.end(), prep, list_name(words))
    return None


def list_query(text: str) -> str | None:
    """The list a task.list request asks about: "what's on my shopping list" → "shopping",
    "show my groceries" → "grocery"; None for the main list or all tasks ("what's on my
    list", "what's due today")."""
    _require_text("list_query", text)
    for match in _LIST_QUERY.finditer(text):
        words = match.group("name") or match.group("bare") or ""
        if (name := list_name(words)) is not None:
            return name
    return None


_LIST_QUERY = re.compile(
    rf"""(?<![\w'-])(?:
        (?P<name>(?:{_NAME_WORD}\s+){{1,3}}?)(?:list|lists|checklist)(?![\w'-])
      | (?:my|the|our)\s+(?P<bare>groceries|grocery|shopping)(?![\w'-])
    )""",
    re.IGNORECASE | re.VERBOSE,
)


# --- task.add ----------------------------------------------------------------------------


def task_slots(text: str, now: dt.datetime) -> TaskSlots:
    """The title, due date, repeat rule and list of the task that ``text`` asks for (see
    the module docstring, `dates.find_due` and `recurrence.find_repeat`)."""
    _require_text("task_slots", text)
    _require_now("task_slots", now)
    cuts: list[tuple[int, int]] = []
    body, name = 0, None
    if prefix := _LIST_PREFIX.match(text):
        body, name = prefix.end(), list_name(prefix.group("name") or "")
    elif phrase := _list_phrase(text, _ADD_PREPOSITIONS):
        cuts.append((phrase.start, phrase.end))
        name = phrase.name
    masked = _masked(text, cuts, body)
    repeat = find_repeat(masked)
    rule, due = None, None
    if repeat is not None:
        try:
            due, due_cuts = _first_due(masked, repeat, now)
        except RecurrenceError:  # no date left before the year 10000
            repeat = None
        else:
            rule = repeat.rule
            cuts += [(repeat.start, repeat.end), *due_cuts]
    if repeat is None and (due := find_due(masked, now)) is not None:
        cuts.append((due.start, due.end))
    title = _title(text, cuts, body, _TASK_LEADING, _TASK_TRAILING)
    return TaskSlots(title, due, rule, name)


def _masked(text: str, cuts: Iterable[tuple[int, int]], body: int = 0) -> str:
    """``text`` with the cut spans (and what is before ``body``) blanked, positions kept."""
    chars = list(text)
    for start, end in ((0, body), *cuts):
        chars[start:end] = " " * (end - start)
    return "".join(chars)


_PART_WORDS = {dt.time(9): "morning", dt.time(15): "afternoon", dt.time(19): "evening",
               dt.time(20): "night"}  # fmt: skip
_UNTIL_BEFORE = re.compile(r"(?<![\w'])(?:until|till|til|through|thru|ending|up\s+to)\s*$", re.I)


def _first_due(
    text: str, repeat: RepeatMatch, now: dt.datetime
) -> tuple[DueMatch, list[tuple[int, int]]]:
    """The first due date (and time) of a repeating task, and the spans of the date/time
    phrases it came from, if any (to cut from the title)."""
    chars = list(text)
    chars[repeat.start : repeat.end] = " " * (repeat.end - repeat.start)
    if part := _PART_WORDS.get(repeat.time) if repeat.time else None:
        # Keep "evening" beside "at 7" for dates.py: "every evening at 7" is 19:00.
        chars[repeat.start : repeat.start + len(part)] = part
    due_text = "".join(chars)
    due = find_due(due_text, now)
    start_date, time, cuts = None, repeat.time, []
    if due is not None and not _UNTIL_BEFORE.search(due_text, max(0, due.start - 20), due.start):
        cuts.append((due.start, due.end))
        if due.dated:
            start_date = due.date
        if due.time is not None:
            time = due.time if due.dated else _stated_time(due_text, now)
        elif (clock := find_due(_masked(due_text, cuts), now)) is not None and not clock.dated:
            # "starting tomorrow, run every day at 7am": the start and the time apart.
            cuts.append((clock.start, clock.end))
            time = _stated_time(_masked(due_text, cuts[:1]), now)
    today = now.date()
    first = first_occurrence(repeat.rule, today, start_date)
    if start_date is None and time is not None and first == today and time <= now.time():
        first = next_occurrence(repeat.rule, first, today)
    start, end = cuts[0] if cuts else (repeat.start, repeat.end)
    return DueMatch(start, end, first, time, text[start:end]), cuts


def _stated_time(text: str, now: dt.datetime) -> dt.time | None:
    """The time of day ``text`` says, as said: "at 8" is 08:00 even at 10:00, when
    `find_due` takes the next 8 o'clock on the clock (20:00) for a one-off task."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    match = find_due(text, midnight)
    return None if match is None else match.time


def _title(
    text: str,
    cuts: list[tuple[int, int]],
    body: int,
    leading: re.Pattern[str],
    trailing: re.Pattern[str],
) -> str:
    """``text`` from ``body`` on without the ``cuts``, each piece before a cut without the
    preposition the cut leaves dangling, then without ``leading`` and ``trailing`` words."""
    pieces: list[str] = []
    position = body
    for start, end in sorted(cuts):
        if end <= position:
            continue
        pieces.append(_strip_ends(_tidy(text[position : max(start, position)]), None, _DANGLING))
        position = end
    pieces.append(text[position:])
    title = _strip_ends(_tidy(" ".join(pieces)), leading, trailing)
    return _tidy(title)


# --- task.complete / task.delete ---------------------------------------------------------


def completion_target(text: str) -> str:
    """The words of a complete/delete request that name the task: "mark call mom as done" →
    "call mom", "delete the dentist task" → "dentist", "never mind the bike thing" →
    "bike thing", "I paid the rent" → "paid the rent" (the verb is kept: it is what matches
    a title like "pay rent"). "" when nothing is left."""
    _require_text("completion_target", text)
    target = _strip_ends(_tidy(text), _DONE_LEADING, _DONE_TRAILING)
    target = _tidy(_strip_ends(target, _DETERMINER, None))
    return _tidy(_strip_ends(target, None, _TASK_NOUN)) or target


def target_slots(text: str) -> TargetSlots:
    """The task a task.complete / task.delete request names, and the list it names it on:
    "check off eggs" → ("eggs", None), "remove milk from the shopping list" → ("milk",
    "shopping"), "cross eggs off my costco list" → ("eggs", "costco")."""
    _require_text("target_slots", text)
    phrase = _list_phrase(text, _TARGET_PREPOSITIONS)
    if phrase is None:
        return TargetSlots(completion_target(text))
    rest = f"{text[: phrase.start]} {text[phrase.end :]}"
    return TargetSlots(completion_target(rest), phrase.name)


# --- task.edit ---------------------------------------------------------------------------

_EDIT_FILLER = (
    "actually", "oh", "ah", "wait", "sorry", "oops", "hmm", "hm", "and", "also", "well",
    "i mean", "on second thought", "on second thoughts", "scratch that", "i want to",
    "i'd like to", "i would like to", "i need to", "let's", "lets", "please just", "now",
)  # fmt: skip
_EDIT_LEADING = re.compile(
    rf"[\s\W]*(?:{_phrases((*_POLITE, *_EDIT_FILLER))}|no\s*[,.!]|nope\s*[,.!]?){_END}",
    re.IGNORECASE,
)
_EDIT_VERBS = (
    "move", "push", "push back", "postpone", "reschedule", "bump", "shift", "delay", "change",
    "update", "set", "make", "put", "put off", "switch", "transfer", "defer", "rename",
    "retitle", "edit", "modify", "alter", "turn", "have", "let", "repeat", "mark", "take",
    "bring", "send", "file", "place", "move back", "move up", "pull", "pull in", "bring forward",
)  # fmt: skip
_EDIT_VERB_LEADING = re.compile(rf"[\s\W]*(?:{_phrases(_EDIT_VERBS)}){_END}", re.IGNORECASE)
_EDIT_TRAILING_WORDS = (
    "to", "until", "till", "for", "on", "at", "by", "back", "back to", "forward", "forward to",
    "out", "out to", "over to", "up to", "is now", "are now", "is", "are", "now", "instead",
    "please", "pls", "plz", "thanks", "due", "should be", "will be", "has been moved",
    "is moved", "was moved", "got moved", "moved", "has moved", "pushed", "is pushed",
    "rescheduled", "is rescheduled", "has been rescheduled", "happens", "is happening",
    "repeat", "repeats", "recur", "recurs", "to repeat", "to recur", "repeating", "recurring",
    "should repeat", "should recur", "will repeat", "a", "an", "be", "should", "from now on",
    "going forward", "then", "too", "the", "into", "task", "reminder", "'s", "s",
)  # fmt: skip
_EDIT_TRAILING = re.compile(
    rf"(?:^|(?<=[\s,]))(?:{_phrases(_EDIT_TRAILING_WORDS)})[\s\W]*$", re.IGNORECASE
)
_REFERS_BACK = re.compile(
    r"(?:it|that|this|those|them|these|(?:that|this|the\s+last|the\s+latest|the\s+previous)"
    r"\s+(?:one|task|reminder|item|to-?do|thing)|the\s+one\s+i\s+just\s+(?:added|made|created)"
    r"|the\s+last\s+one|that\s+last\s+one|the\s+new\s+one)",
    re.IGNORECASE,
)
_TAIL_FILLER = re.compile(
    r"(?:[\s,]+(?:instead|please|pls|plz|then|thanks|thank\s+you|now|for\s+me))+[\s\W]*$",
    re.IGNORECASE,
)

_CALL_IT = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"(?:let'?s\s+)?(?:call|name|title|rename|retitle)\s+(?:it|that|this)(?:\s+one)?"
        r"\s+(?:to\s+|as\s+)?(?P<y>.+)",
        r"(?:it|that|this)(?:\s+one)?\s+should\s+(?:be\s+)?(?:called|named|titled|say)\s+(?P<y>.+)",
        r"(?:change|update|set|make)\s+(?:the|its)\s+(?:name|title)\s+to\s+(?P<y>.+)",
    )
]
_RENAME = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"(?:change|update|set|edit)\s+(?:the\s+)?(?:name|title)\s+of\s+(?P<x>.+?)\s+"
        r"(?:to|as)\s+(?P<y>.+)",
        r"(?:change|update|set|edit)\s+(?P<x>.+?)['\u2019]s\s+(?:name|title)\s+(?:to|as)\s+(?P<y>.+)",
    )
]
_RENAME_VERB = re.compile(r"(?:rename|retitle|re-name|re-title)\s+(?P<rest>.+)", re.IGNORECASE)
_SEPARATOR = re.compile(r"\s+(?:to|as|into)\s+", re.IGNORECASE)
_ONE_OFF = r"(?:a\s+)?(?:one[\s-]?(?:off|time)|non[\s-]?recurring|not\s+(?:recurring|repeating))"
_STOP_TAIL = r"(?:[\s,]+(?:anymore|any\s+more|now|please|instead|from\s+now\s+on))*[\s\W]*"
_STOP_REPEAT = [
    re.compile(p + _STOP_TAIL, re.IGNORECASE)
    for p in (
        r"stop\s+(?:repeating|recurring)\s+(?P<x>.+?)",
        r"(?:don'?t|do\s+not|no\s+longer|never)\s+repeat\s+(?P<x>.+?)",
        r"stop\s+(?P<x>.+?)\s+(?:from\s+)?(?:repeating|recurring)",
        rf"(?:make|set|turn|change)\s+(?P<x>.+?)\s+(?:into\s+|to\s+)?{_ONE_OFF}"
        r"(?:\s+(?:task|thing|reminder|item|event))?",
        rf"(?P<x>.+?)\s+(?:is|should\s+be|'s|is\s+just|is\s+only|becomes)\s+{_ONE_OFF}"
        r"(?:\s+(?:task|thing|reminder|item|event))?",
        r"(?P<x>.+?)\s+(?:doesn'?t|does\s+not|shouldn'?t|should\s+not|won'?t|will\s+not"
        r"|no\s+longer|don'?t|do\s+not|needn'?t)\s+(?:need\s+to\s+)?(?:repeat|recur)s?",
        r"(?:turn\s+off|remove|cancel|clear|delete|drop|stop)\s+(?:the\s+)?(?:repeat|repetition"
        r"|recurrence|repeating|repeat\s+rule)\s+(?:for|on|from|of)\s+(?P<x>.+?)",
    )
]
_DEADLINE = r"(?:deadline|due\s+date|due\s+time|due\s+day|date|due)"
_CLEAR_TAIL = r"(?:[\s,]+(?:anymore|any\s+more|now|please|at\s+all|after\s+all))*[\s\W]*"
_CLEAR_DUE = [
    re.compile(p + _CLEAR_TAIL, re.IGNORECASE)
    for p in (
        rf"(?P<x>.+?)\s+(?:has|have|'s\s+got|has\s+got|gets)\s+no\s+{_DEADLINE}",
        rf"(?P<x>.+?)\s+(?:doesn'?t|does\s+not|don'?t|do\s+not)\s+(?:have|need)\s+(?:a\s+)?{_DEADLINE}",
        r"(?P<x>.+?)\s+(?:is\s+not|isn'?t|is\s+no\s+longer|'s\s+not)\s+due(?:\s+on\s+any\s+day)?",
        rf"(?:remove|clear|delete|drop|take\s+off|take\s+away|get\s+rid\s+of|unset|erase|cancel)"
        rf"\s+(?:the\s+)?{_DEADLINE}\s+(?:from|of|on|for|off(?:\s+of)?)\s+(?P<x>.+?)",
        rf"(?:remove|clear|take|delete|drop)\s+(?P<x>.+?)['\u2019]s\s+{_DEADLINE}",
        rf"(?:take|remove|get)\s+(?:the\s+)?{_DEADLINE}\s+off\s+(?P<x>.+?)",
        rf"no\s+{_DEADLINE}\s+(?:for|on)\s+(?P<x>.+?)",
        r"(?:unschedule|undate)\s+(?P<x>.+?)",
        rf"(?:make|set|leave)\s+(?P<x>.+?)\s+(?:undated|unscheduled|(?:without|with\s+no)\s+(?:a\s+)?"
        rf"{_DEADLINE})",
    )
]
_CHANGE_VERB = re.compile(
    r"(?:change|update|switch|edit|modify|set|make|turn|alter)\s+(?P<rest>.+)", re.IGNORECASE
)
_REPEAT_WORDS = re.compile(r"^(?:to\s+)?(?:repeat|recur|repeating|recurring|be)\s+", re.I)
_DUE_LEAD = re.compile(r"^(?:on|at|for|by|the)\s+", re.IGNORECASE)
_BARE_HOUR = re.compile(r"\d{1,2}(?::\d{2})?", re.IGNORECASE)
_TO_HOUR = re.compile(r"(?<![\w'])to(?=\s+\d{1,2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?(?![\w:]))", re.I)


def edit_slots(text: str, now: dt.datetime) -> EditSlots:
    """What a task.edit request changes, and the words naming the task (see the module
    docstring for the forms, in the order they are tried)."""
    _require_text("edit_slots", text)
    _require_now("edit_slots", now)
    body = _cut_leading(_tidy(text), _EDIT_LEADING)
    for pattern in _RENAME:
        if match := pattern.fullmatch(body):
            return EditSlots(_edit_target(match.group("x")), title=_new_title(match.group("y")))
    for pattern in _CALL_IT:
        if match := pattern.fullmatch(body):
            return EditSlots("", title=_new_title(match.group("y")) or None)
    if match := _RENAME_VERB.fullmatch(body):
        target, title = _split(match.group("rest"))
        return EditSlots(_edit_target(target), title=_new_title(title or "") or None)
    for pattern in _STOP_REPEAT:
        if match := pattern.fullmatch(body):
            return EditSlots(_edit_target(match.group("x")), stop_repeat=True)
    for pattern in _CLEAR_DUE:
        if match := pattern.fullmatch(body):
            return EditSlots(_edit_target(match.group("x")), clear_due=True)
    if (match := _CHANGE_VERB.fullmatch(body)) and (changed := _change_to(match, now)):
        return changed
    return _move_or_reschedule(body, now)


def _split(rest: str) -> tuple[str, str | None]:
    """ "X to Y" at its middle "to" (see the module docstring)."""
    separators = list(_SEPARATOR.finditer(rest))
    if not separators:
        return rest, None
    middle = separators[(len(separators) - 1) // 2]
    return rest[: middle.start()], rest[middle.end() :]


def _new_title(words: str) -> str:
    title = _tidy(_TAIL_FILLER.sub("", words))
    if len(title) >= 2 and title[0] in "\"'\u201c\u2018" and title[-1] in "\"'\u201d\u2019":
        title = title[1:-1].strip()
    return title


def _edit_target(words: str) -> str:
    """The words naming the task to edit: no verbs, determiners or task nouns; "" for
    words that refer back ("it", "that one")."""
    words = _tidy(words)
    if _REFERS_BACK.fullmatch(words):
        return ""
    target = _strip_ends(words, _EDIT_VERB_LEADING, _EDIT_TRAILING)
    if _REFERS_BACK.fullmatch(target):
        return ""
    target = _tidy(_strip_ends(target, _DETERMINER, None))
    return _tidy(_strip_ends(target, None, _TASK_NOUN)) or target


def _change_to(match: re.Match[str], now: dt.datetime) -> EditSlots | None:
    """ "change X to Y": a reschedule, list move or repeat when Y is wholly one (the last
    "to" that makes it one splits), else a rename (the middle "to" splits)."""
    rest = match.group("rest")
    separators = list(_SEPARATOR.finditer(rest))
    for separator in reversed(separators):
        target = rest[: separator.start()]
        value = _tidy(_TAIL_FILLER.sub("", rest[separator.end() :]))
        if (read := _whole_value(value, now)) is not None:
            return _with_target(read, _edit_target(target))
    if not separators:
        return None
    target, title = _split(rest)
    verb = match.group().split(None, 1)[0].lower()
    if verb in ("make", "turn", "set", "switch") and not title:
        return None
    return EditSlots(_edit_target(target), title=_new_title(title or "") or None)


def _whole_value(value: str, now: dt.datetime) -> EditSlots | None:
    """``value`` as a new due date/time, list or repeat, when it is wholly one."""
    if not value:
        return None
    bare = _DUE_LEAD.sub("", value)
    if _BARE_HOUR.fullmatch(bare):
        bare = "at " + bare  # "change the dentist to 9": a time
    due = find_due(bare, now)
    if due is not None and not _tidy(bare[: due.start] + bare[due.end :]):
        return _due_edit(bare, due, now)
    if (phrase := _list_phrase("to " + value)) is not None and phrase.end == len(value) + 3:
        return EditSlots("", list=phrase.name, to_main_list=phrase.name is None)
    repeat_text = _REPEAT_WORDS.sub("", value)
    if (repeat := find_repeat(repeat_text)) is not None:
        due, cuts = _repeat_due(repeat_text, repeat, now)
        left = _masked(repeat_text, [(repeat.start, repeat.end), *cuts])
        if not _strip_ends(_tidy(left), None, _DANGLING):
            return EditSlots("", repeat=repeat.rule, due=due)
    return None


def _due_edit(text: str, due: DueMatch, now: dt.datetime) -> EditSlots:
    if due.dated:
        return EditSlots("", due=due)
    time = _stated_time(text, now) or due.time
    stated = DueMatch(due.start, due.end, due.date, time, due.phrase, dated=False)
    return EditSlots("", due=stated, time_only=True)


def _repeat_due(
    text: str, repeat: RepeatMatch, now: dt.datetime
) -> tuple[DueMatch | None, list[tuple[int, int]]]:
    """A repeat edit's new first due date, only when the words give a date or a time, and
    the spans of the date/time phrases."""
    try:
        due, cuts = _first_due(text, repeat, now)
    except RecurrenceError:
        return None, []
    return (due if cuts or repeat.time is not None else None), cuts


def _with_target(slots: EditSlots, target: str) -> EditSlots:
    return EditSlots(
        target, slots.title, slots.due, slots.time_only, slots.clear_due, slots.list,
        slots.to_main_list, slots.repeat, slots.stop_repeat,
    )  # fmt: skip


_MOVE_PREPOSITIONS = frozenset({"to", "onto", "into", "over to", "back to", "off", "from", "on"})


def _move_or_reschedule(body: str, now: dt.datetime) -> EditSlots:
    phrase = _list_phrase(body, _MOVE_PREPOSITIONS)
    rest = body if phrase is None else _masked(body, [(phrase.start, phrase.end)])
    repeat = find_repeat(rest)
    # "move the dentist to 9": after a verb, "to" + a bare hour is a time ("at 9").
    due_text = _TO_HOUR.sub("at", rest)
    due = None if repeat is not None else find_due(due_text, now)
    if phrase is not None and (due is None or phrase.prep not in ("on", "from")):
        to_main = phrase.prep in ("off", "from") or phrase.name is None
        target = _edit_target(_tidy(rest[: phrase.start] + " " + rest[phrase.end :]))
        return EditSlots(target, list=None if to_main else phrase.name, to_main_list=to_main)
    if repeat is not None:
        first, due_cuts = _repeat_due(rest, repeat, now)
        cuts = [(repeat.start, repeat.end), *due_cuts]
        target = _title(rest, cuts, 0, _EDIT_VERB_LEADING, _EDIT_TRAILING)
        return _with_target(EditSlots("", repeat=repeat.rule, due=first), _edit_target(target))
    if due is not None:
        target = _title(rest, [(due.start, due.end)], 0, _EDIT_VERB_LEADING, _EDIT_TRAILING)
        return _with_target(_due_edit(due_text, due, now), _edit_target(target))
    return EditSlots(_edit_target(body))


# --- notes -------------------------------------------------------------------------------

_NOTE_NOUN = r"(?:note|notes|memo|reminder)"
_NOTE_LEADING = re.compile(
    r"[\s\W]*(?:"
    rf"(?:make|take|save|add|create|write|leave|jot|put|keep|start)\s+(?:me\s+)?(?:a\s+|an\s+|this\s+)?"
    rf"(?:quick\s+|new\s+|short\s+)?{_NOTE_NOUN}(?:\s+(?:that|saying|to\s+self|of|about|down|:))*"
    rf"|{_NOTE_NOUN}\s+to\s+self|{_NOTE_NOUN}\s*[:\-\u2013\u2014]|new\s+{_NOTE_NOUN}"
    r"|note\s+(?:that|down|this)(?:\s+that)?|note(?=\s)"
    r"|(?:jot|write|put|take)\s+(?:this\s+|it\s+|that\s+)?down(?:\s+that)?"
    r"|remember\s+(?:that|this)|remember(?=\s|:)|keep\s+in\s+mind(?:\s+that)?"
    r"|don'?t\s+forget\s+that|for\s+the\s+record|fyi|just\s+so\s+you\s+know(?:\s+that)?"
    r"|(?:save|store|record|log|keep)\s+(?:this|that)(?:\s+for\s+me)?(?=\s*[:\-])"
    r"|(?:save|store|record|log)\s+that"
    rf"|{_phrases(_POLITE)}"
    rf"){_END}",
    re.IGNORECASE,
)


def note_text(text: str) -> str:
    """The fact a note.add request keeps, as typed, without the words asking to keep it:
    "note: wifi password is hunter2" → "wifi password is hunter2"; "note that", "remember
    that", "jot down", "save a note:", "make a memo that", "please", "can you" and their
    misspellings ("remeber that", "noet:") are cut from the front; nothing else changes."""
    _require_text("note_text", text)
    return _cut_leading(text.strip(), _NOTE_LEADING).strip()


_NOTE_VERBS = (
    "forget", "delete", "remove", "erase", "drop", "clear", "trash", "scrap", "discard",
    "get rid of", "throw away", "throw out", "lose", "wipe", "ditch", "bin", "kill", "nuke",
    "forget about", "i don't need", "i no longer need", "no need for",
)  # fmt: skip
_NOTE_TARGET_LEADING = re.compile(
    rf"[\s\W]*(?:{_phrases((*_POLITE, *_NOTE_VERBS))}){_END}", re.IGNORECASE
)
_NOTE_ABOUT = re.compile(
    r"^(?:(?:the|my|that|this|a|an|our)\s+)?(?:"
    r"(?:notes?|memos?|info|information|entry|details|reminder)\s+"
    r"(?:about|on|regarding|re|for|with|saying|that\s+says|which\s+says|called|titled|of|:)"
    r"|what\s+i\s+(?:wrote|noted|saved|jotted|put|kept)(?:\s+down)?\s+(?:about|on|regarding|for)"
    r"|(?:notes?|memos?)\s*:"
    r")\s+",
    re.IGNORECASE,
)
_NOTE_NOUN_AT_END = re.compile(
    r"(?<=\w)(?:\s+(?:notes?|memos?|info|information|details|entry|entries))+[\s\W]*$",
    re.IGNORECASE,
)


def note_target(text: str) -> str:
    """The words naming the note a note.delete request means: "forget the wifi note" →
    "wifi", "delete the note about the gate code" → "gate code", "remove my parking
    info" → "parking"; "" when nothing is left."""
    _require_text("note_target", text)
    words = _strip_ends(_tidy(text), _NOTE_TARGET_LEADING, _DONE_TRAILING)
    words = _NOTE_ABOUT.sub("", words)
    words = _NOTE_NOUN_AT_END.sub("", words)
    return _tidy(_strip_ends(_tidy(words), _DETERMINER, None))


# --- history ----------------------------------------------------------------------------

_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_HISTORY_PERIOD = re.compile(
    rf"""(?<![\w'])(?:
        (?P<since>since|from)\s+(?:(?:last|this|past)\s+)?(?P<since_day>{"|".join(_WEEKDAYS)})
      | (?P<since_yesterday>since\s+yesterday)
      | (?P<since_last_week>since\s+last\s+week)
      | (?:(?:in|over|during)\s+)?(?:the\s+)?(?:last|past)\s+
        (?P<days>\d{{1,3}}|two|three|four|five|six|seven|ten|fourteen|thirty)\s+days
      | (?:(?:in|over|during)\s+)?the\s+(?:last|past)\s+(?P<past_week>week|7\s+days|seven\s+days)
      | (?P<yesterday>yesterday|last\s+night)
      | (?P<today>(?:so\s+far\s+)?today|this\s+morning|this\s+afternoon|this\s+evening|tonight)
      | (?:(?:so\s+far\s+)?this|the\s+current)\s+(?P<this>week|month|year)
      | (?P<last>last|past|previous)\s+(?P<last_unit>week|month|year)
      | (?:(?:on|last|past|this\s+past)\s+)(?P<on_day>{"|".join(_WEEKDAYS)})
    )(?![\w'])""",
    re.IGNORECASE | re.VERBOSE,
)
_HISTORY_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                    "ten": 10, "fourteen": 14, "thirty": 30}  # fmt: skip
_HISTORY_QUESTIONS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"when\s+(?:did|have|had)\s+(?:i|we)\s+(?:last|ever|actually|most\s+recently)?\s*(?P<x>.+)",
        r"when\s+was\s+the\s+(?:last|latest|most\s+recent)\s+time\s+(?:that\s+)?(?:i|we)\s+(?P<x>.+)",
        r"when\s+(?:i|we)\s+last\s+(?P<x>.+)",
        r"what\s+(?:day|date|time)\s+did\s+(?:i|we)\s+(?:last\s+)?(?P<x>.+)",
        r"how\s+long\s+(?:has\s+it\s+been\s+|is\s+it\s+)?since\s+(?:i|we)\s+(?:last\s+)?(?P<x>.+)",
        r"how\s+long\s+ago\s+did\s+(?:i|we)\s+(?:last\s+)?(?P<x>.+)",
        r"(?:did|have|has|had)\s+(?:i|we)\s+(?:already|ever|actually|really|even)?\s*(?P<x>.+)",
        r"(?:is|was|are|were)\s+(?P<x>.+?)\s+(?:done|finished|completed|taken\s+care\s+of|sorted)",
        r"(?:i\s+wonder\s+if|do\s+you\s+know\s+if|tell\s+me\s+if|check\s+if|remind\s+me\s+if"
        r"|remind\s+me\s+whether|did\s+you\s+see\s+if)\s+(?:i|we)\s+(?:already\s+)?(?P<x>.+)",
        r"last\s+time\s+(?:i|we)\s+(?P<x>.+)",
    )
]
_HISTORY_TRAILING = re.compile(
    r"(?:^|(?<=[\s,]))(?:yet|already|so\s+far|recently|lately|ever|at\s+all|or\s+not"
    r"|this\s+time|before|last|please|the\s+last\s+time|by\s+now)[\s\W]*$",
    re.IGNORECASE,
)
_HISTORY_GENERIC_VERB = re.compile(
    r"^(?:get\s+done|gotten\s+done|got\s+done|done|completed|complete|finished\s+with)\s+",
    re.IGNORECASE,
)


def history_slots(text: str, now: dt.datetime) -> HistorySlots:
    """The period and the activity a history question asks about (see the module
    docstring): "what did I do yesterday?" → (yesterday, yesterday, "", "yesterday"),
    "when did I last call mom?" → (None, None, "call mom", "")."""
    _require_text("history_slots", text)
    _require_now("history_slots", now)
    today = now.date()
    start: dt.date | None = None
    end: dt.date | None = None
    period = ""
    words = _tidy(text)
    if match := _HISTORY_PERIOD.search(words):
        start, end, period = _history_period(match, today)
        words = _tidy(f"{words[: match.start()]} {words[match.end() :]}")
    words = _cut_leading(words, _EDIT_LEADING)
    target = ""
    for pattern in _HISTORY_QUESTIONS:
        if question := pattern.fullmatch(words):
            target = _strip_ends(_tidy(question.group("x")), None, _HISTORY_TRAILING)
            target = _HISTORY_GENERIC_VERB.sub("", target)
            break
    return HistorySlots(start, end, _tidy(target), period)


def _history_period(match: re.Match[str], today: dt.date) -> tuple[dt.date, dt.date, str]:
    monday = today - dt.timedelta(days=today.weekday())
    if day := match.group("since_day") or match.group("on_day"):
        weekday = _WEEKDAYS[day.lower()]
        date = today - dt.timedelta(days=(today.weekday() - weekday - 1) % 7 + 1)
        name = _WEEKDAY_NAMES[weekday]
        if match.group("since_day"):
            return date, today, f"since {name}"
        return date, date, f"on {name}"
    if match.group("since_yesterday"):
        return today - dt.timedelta(days=1), today, "since yesterday"
    if match.group("since_last_week"):
        return monday - dt.timedelta(days=7), today, "since last week"
    if days := match.group("days"):
        count = int(days) if days.isdigit() else _HISTORY_NUMBERS[days.lower()]
        count = max(1, count)
        return today - dt.timedelta(days=count - 1), today, f"in the last {count} days"
    if match.group("past_week"):
        return today - dt.timedelta(days=6), today, "in the past week"
    if match.group("yesterday"):
        yesterday = today - dt.timedelta(days=1)
        return yesterday, yesterday, "yesterday"
    if match.group("today"):
        return today, today, "today"
    unit = (match.group("this") or match.group("last_unit")).lower()
    ago = 1 if match.group("last") else 0
    which = "last" if ago else "this"
    if unit == "week":
        first = monday - dt.timedelta(days=7 * ago)
        return first, first + dt.timedelta(days=6), f"{which} week"
    if unit == "month":
        year, month = divmod(today.year * 12 + today.month - 1 - ago, 12)
        month += 1
        last_day = calendar.monthrange(year, month)[1]
        return dt.date(year, month, 1), dt.date(year, month, last_day), f"{which} month"
    year = today.year - ago
    return dt.date(year, 1, 1), dt.date(year, 12, 31), f"{which} year"


# --- slots as JSON -------------------------------------------------------------------------

_TARGET_INTENTS = frozenset({"task.complete", "task.delete"})
_KEYS: dict[str, tuple[str, ...]] = {
    "task.add": ("title", "due_date", "due_time", "repeat", "list"),
    "task.list": ("list",),
    "task.complete": ("target", "list"),
    "task.delete": ("target", "list"),
    "task.edit": (
        "target", "title", "due_date", "due_time", "time_only", "clear_due", "list",
        "to_main_list", "repeat", "stop_repeat",
    ),
    "note.add": ("text",),
    "note.delete": ("target",),
    "history": ("start", "end", "target", "period"),
}  # fmt: skip


def _cut(text: str) -> str:
    return text[:MAX_SLOT_CHARS].rstrip() if len(text) > MAX_SLOT_CHARS else text


def _due_json(due: DueMatch | None) -> dict[str, JsonValue]:
    return {
        "due_date": due.date.isoformat() if due is not None else None,
        "due_time": due.time.strftime("%H:%M") if due is not None and due.time else None,
    }


def slots_json(intent: str, text: str, now: dt.datetime) -> dict[str, JsonValue]:
    """The slots of ``text`` read as ``intent``, as the JSON object that crosses the network
    (one shape per intent; see `parse_slots_json`). Strings longer than `MAX_SLOT_CHARS`
    are cut to it, so that the object always passes `parse_slots_json`."""
    _require_text("slots_json", text)
    _require_now("slots_json", now)
    if intent == "task.add":
        task = task_slots(text, now)
        return {"title": _cut(task.title), **_due_json(task.due), "repeat": task.repeat,
                "list": _cut_list(task.list)}  # fmt: skip
    if intent == "task.list":
        return {"list": _cut_list(list_query(text))}
    if intent in _TARGET_INTENTS:
        target = target_slots(text)
        return {"target": _cut(target.target), "list": _cut_list(target.list)}
    if intent == "task.edit":
        edit = edit_slots(text, now)
        return {
            "target": _cut(edit.target),
            "title": None if edit.title is None else _cut(edit.title) or None,
            **_due_json(edit.due),
            "time_only": edit.time_only and edit.due is not None,
            "clear_due": edit.clear_due,
            "list": _cut_list(edit.list),
            "to_main_list": edit.to_main_list,
            "repeat": edit.repeat,
            "stop_repeat": edit.stop_repeat,
        }
    if intent == "note.add":
        return {"text": _cut(note_text(text))}
    if intent == "note.delete":
        return {"target": _cut(note_target(text))}
    if intent == "history":
        history = history_slots(text, now)
        return {
            "start": None if history.start is None else history.start.isoformat(),
            "end": None if history.end is None else history.end.isoformat(),
            "target": _cut(history.target),
            "period": _cut(history.period),
        }
    return {}


def _cut_list(name: str | None) -> str | None:
    return None if name is None else list_name(_cut(name))


def parse_slots_json(
    intent: str, value: object
) -> TaskSlots | TargetSlots | EditSlots | HistorySlots | str | None:
    """The slots a JSON object from outside gives for ``intent`` -- the inverse of
    `slots_json` -- or `SlotsError` naming the field that is wrong. The object must have
    exactly its intent's keys; strings are at most `MAX_SLOT_CHARS` long, dates ISO
    ("2026-11-18"), times "HH:MM" (and only with a date), rules pass `canonical_rule`,
    list names are normalised with `list_name`. Returns TaskSlots (task.add; its due has
    an empty phrase at 0-0), the list name or None (task.list), TargetSlots
    (task.complete/delete), EditSlots (task.edit), the text (note.add), the target
    (note.delete), HistorySlots (history) and None for every other intent ({})."""
    if not isinstance(value, dict):
        raise SlotsError(f"slots for {intent} must be an object, got {type(value).__name__}")
    keys = _KEYS.get(intent, ())
    if unknown := sorted(str(key) for key in value if key not in keys):
        raise SlotsError(f"slots for {intent}: unexpected field {unknown[0]!r}")
    if missing := [key for key in keys if key not in value]:
        raise SlotsError(f"slots for {intent}: missing field {missing[0]!r}")
    read = _Reader(intent, value)
    if intent == "task.add":
        title = read.text("title")
        return TaskSlots(title, read.due(), read.rule("repeat"), read.list("list"))
    if intent == "task.list":
        return read.list("list")
    if intent in _TARGET_INTENTS:
        return TargetSlots(read.text("target"), read.list("list"))
    if intent == "task.edit":
        return read.edit()
    if intent == "note.add":
        return read.text("text")
    if intent == "note.delete":
        return read.text("target")
    if intent == "history":
        start, end = read.date("start"), read.date("end")
        if start is not None and end is not None and start > end:
            raise SlotsError("slots for history: 'start' is after 'end'")
        return HistorySlots(start, end, read.text("target"), read.text("period"))
    return None


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HH_MM = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")


class _Reader:
    """Typed reads of one slots object; each failure names the field."""

    def __init__(self, intent: str, value: dict[object, object]) -> None:
        self.intent, self.value = intent, value

    def error(self, key: str, expected: str) -> SlotsError:
        got = self.value[key]
        shown = type(got).__name__ if not isinstance(got, str) else f"{got[:40]!r}"
        return SlotsError(f"slots for {self.intent}: {key!r} must be {expected}, got {shown}")

    def optional_text(self, key: str) -> str | None:
        value = self.value[key]
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > MAX_SLOT_CHARS:
            raise self.error(key, f"a string of at most {MAX_SLOT_CHARS} characters or null")
        return value

    def text(self, key: str) -> str:
        value = self.value[key]
        if not isinstance(value, str) or len(value) > MAX_SLOT_CHARS:
            raise self.error(key, f"a string of at most {MAX_SLOT_CHARS} characters")
        return value

    def flag(self, key: str) -> bool:
        value = self.value[key]
        if not isinstance(value, bool):
            raise self.error(key, "true or false")
        return value

    def date(self, key: str) -> dt.date | None:
        value = self.value[key]
        if value is None:
            return None
        if isinstance(value, str) and _ISO_DATE.fullmatch(value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(key, 'a date like "2026-11-18" or null')

    def time(self, key: str) -> dt.time | None:
        value = self.value[key]
        if value is None:
            return None
        if isinstance(value, str) and _HH_MM.fullmatch(value):
            return dt.time.fromisoformat(value)
        raise self.error(key, 'a time like "17:30" or null')

    def due(self) -> DueMatch | None:
        date, time = self.date("due_date"), self.time("due_time")
        if date is None:
            if time is not None:
                raise SlotsError(f"slots for {self.intent}: 'due_time' needs a 'due_date'")
            return None
        return DueMatch(0, 0, date, time, "")

    def rule(self, key: str) -> str | None:
        value = self.value[key]
        if value is None:
            return None
        try:
            return canonical_rule(value)
        except RecurrenceError as exc:
            raise SlotsError(f"slots for {self.intent}: {key!r}: {exc}") from None

    def list(self, key: str) -> str | None:
        name = self.optional_text(key)
        return None if name is None else list_name(name)

    def edit(self) -> EditSlots:
        title = self.optional_text("title")
        if title is not None and not title.strip():
            raise self.error("title", "a non-empty string or null")
        due, time_only = self.due(), self.flag("time_only")
        clear_due, to_main = self.flag("clear_due"), self.flag("to_main_list")
        name, rule, stop = self.list("list"), self.rule("repeat"), self.flag("stop_repeat")
        if time_only and (due is None or due.time is None):
            raise SlotsError(f"slots for {self.intent}: 'time_only' needs a 'due_time'")
        if clear_due and due is not None:
            raise SlotsError(f"slots for {self.intent}: 'clear_due' with a 'due_date'")
        if to_main and name is not None:
            raise SlotsError(f"slots for {self.intent}: 'to_main_list' with a 'list'")
        if stop and rule is not None:
            raise SlotsError(f"slots for {self.intent}: 'stop_repeat' with a 'repeat'")
        return EditSlots(
            self.text("target"), title, due, time_only, clear_due, name, to_main, rule, stop
        )
