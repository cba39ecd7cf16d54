"""Repeating tasks: RFC 5545 RRULEs read out of what the user types, and their occurrences.

A repeating task carries its rule as an RRULE string without the ``RRULE:`` prefix
(``FREQ=WEEKLY;BYDAY=MO``) and its next due date; the rule is a synced field, so every copy
of py_agent (and anything reading an export) computes the same dates. Occurrences come from
python-dateutil's `dateutil.rrule`, the reference implementation of RFC 5545.

Rules py_agent accepts (`canonical_rule`), a subset of RFC 5545 that covers what people say
and never describes an empty series:

- Parts FREQ (DAILY, WEEKLY, MONTHLY or YEARLY; required), INTERVAL (1-366), BYDAY,
  BYMONTHDAY and BYMONTH. COUNT, UNTIL, BYHOUR, WKST, BYSETPOS and the rest are refused: a
  task repeats until it is stopped, and its time of day is the task's own due time.
- FREQ=DAILY takes INTERVAL only; FREQ=DAILY;BYDAY=… (interval 1) is the same series as
  FREQ=WEEKLY;BYDAY=…, and is written that way.
- FREQ=WEEKLY takes BYDAY without positions ("1MO" is monthly talk).
- FREQ=MONTHLY takes BYMONTHDAY (1 to 31, or -1 for the last day back to -31) or BYDAY, with
  positions 1-5 or -1 to -5 ("1MO" the first Monday, "-1FR" the last Friday), not both; BYDAY
  items all have positions or none has.
- FREQ=YEARLY takes BYMONTH, and BYMONTHDAY or BYDAY (positions within the month) only with
  BYMONTH; at least one month/day pair must exist ("BYMONTH=2;BYMONTHDAY=30" is refused).
- Canonical form: parts in the order FREQ, INTERVAL, BYDAY, BYMONTHDAY, BYMONTH, upper case,
  INTERVAL=1 left out, each list sorted and without repeats. Lower case, an ``RRULE:``
  prefix and a trailing ``;`` are accepted on the way in.

The series of a rule is anchored at a date (RFC 5545's DTSTART): the anchor fixes the
phase of INTERVAL and stands in for the parts a rule leaves out, as the RFC says
("FREQ=MONTHLY" anchored on the 18th is the 18th of every month; anchored on the 31st it
skips the months without a 31st; "FREQ=WEEKLY;INTERVAL=2" anchored on a Wednesday is every
other Wednesday). BYMONTHDAY=31 skips short months too; BYMONTHDAY=-1 is the last day.
Dates are local and naive: a task due daily at 08:00 stays at 08:00 across a DST change,
because only dates repeat here and the time of day stays the task's.

- `first_occurrence(rule, today, start)`: the first date of the series anchored at
  ``start`` (else today) on or after it. A new repeating task is due then.
- `next_occurrence(rule, due, today)`: where a repeating task goes when it is completed: the
  first date after both its due date and today of the series anchored at its due date. Done
  early or on time, it moves to the next date after its due date; done weeks late, to the
  first date after today, keeping the series' phase ("every other friday" stays on the
  same Fridays).

What `find_repeat` reads (case and extra spaces do not matter):

- "every day", "daily", "each day", "everyday" → FREQ=DAILY; "every morning" / "each morning"
  (09:00), "every afternoon" (15:00), "every evening" (19:00), "every night" / "nightly"
  (20:00) → FREQ=DAILY with that time.
- "every 3 days", "every other day", "every second day", "every couple of days" → INTERVAL.
- "every weekday", "on weekdays", "every workday", "every monday to friday" →
  FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR; "every weekend", "on weekends" → BYDAY=SA,SU.
- "every monday", "each monday", "mondays", "on mondays", "weekly on monday",
  "every monday and thursday", "every mon, wed and fri", "monday mornings" →
  FREQ=WEEKLY;BYDAY=…; a part of day after the days gives the time.
  A single "monday" or "on monday" is a date, not a repeat.
- "every week", "weekly", "once a week"; "every 2 weeks", "every other week", "biweekly",
  "fortnightly", "every fortnight" → INTERVAL=2; "every other friday", "every 2 weeks on
  friday", "biweekly on fridays" → FREQ=WEEKLY;INTERVAL=2;BYDAY=FR.
- "every month", "monthly"; "every 3 months", "quarterly", "every quarter" → INTERVAL=3.
- "every month on the 1st", "monthly on the 15th", "on the 1st of every month", "the 15th
  of each month", "every 15th", "every 1st of the month", "on the 1st and 15th of every
  month" → FREQ=MONTHLY;BYMONTHDAY=…; "the last day of every month", "every last day of the
  month", "at the end of every month" → BYMONTHDAY=-1.
- "the first monday of every month", "every first monday of the month", "every month on the
  last friday", "monthly on the 2nd tuesday" → FREQ=MONTHLY;BYDAY=1MO / -1FR / 2TU. Without
  "every", "each" or "monthly", "the first monday of the month" is no repeat.
- "every year", "yearly", "annually"; "every year on march 3", "every march 3rd", "every 3rd
  of march", "on march 3 every year", "annually on 3 march" →
  FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=3. "every year on my birthday" names no date: no repeat.
- "daily", "weekly", "monthly", "yearly" and the like are adjectives, not repeats, before
  a noun or after a determiner: "the weekly report", "send weekly updates".
- Not understood, on purpose: "every few days", "twice a week", "3 times a day" (no days
  to repeat on), "every hour" (tasks repeat by date).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from dateutil import rrule as _rrule

from .dates import _DAY_FOLLOWERS, _MONTHS, _PART_TIMES, _WEEKDAYS, _alternation

MAX_RULE_CHARS: Final = 200
MAX_INTERVAL: Final = 366


class RecurrenceError(ValueError):
    """A repeat rule that py_agent does not accept; the message names the part."""


@dataclass(frozen=True)
class RepeatMatch:
    """A repeat phrase found in a text."""

    start: int  # text[start:end] is the repeat phrase, to cut out of a title
    end: int
    rule: str  # canonical RRULE without "RRULE:", parts in order FREQ, INTERVAL, BYDAY, ...
    time: dt.time | None  # a time the phrase itself implies ("every morning" -> 09:00)
    phrase: str


# --- rules -----------------------------------------------------------------------------

_Freq = Literal["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]
_FREQS: Final[dict[str, Literal[0, 1, 2, 3]]] = {
    "DAILY": _rrule.DAILY,
    "WEEKLY": _rrule.WEEKLY,
    "MONTHLY": _rrule.MONTHLY,
    "YEARLY": _rrule.YEARLY,
}
_DAY_CODES: Final = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_NAMES: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_PARTS: Final = ("FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH")
# The fewest days each month has in any year (February: 28; 29 only in leap years).
_MIN_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MAX_DAYS: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_BYDAY_ITEM = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_NUMBER = re.compile(r"[+-]?\d{1,3}")


@dataclass(frozen=True)
class _Rule:
    freq: _Freq
    interval: int = 1
    byday: tuple[tuple[int, int], ...] = ()  # (weekday 0-6, position or 0), sorted
    bymonthday: tuple[int, ...] = ()
    bymonth: tuple[int, ...] = ()

    def text(self) -> str:
        parts = [f"FREQ={self.freq}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.byday:
            days = (f"{n or ''}{_DAY_CODES[day]}" for day, n in self.byday)
            parts.append("BYDAY=" + ",".join(days))
        if self.bymonthday:
            parts.append("BYMONTHDAY=" + ",".join(map(str, self.bymonthday)))
        if self.bymonth:
            parts.append("BYMONTH=" + ",".join(map(str, self.bymonth)))
        return ";".join(parts)


def canonical_rule(rule: object) -> str:
    """``rule`` (from an import, the page or the server) checked against the rules in this
    module's docstring and written in canonical form; `RecurrenceError` naming the part
    that is wrong otherwise."""
    return _parse(rule).text()


def _parse(rule: object) -> _Rule:
    if not isinstance(rule, str):
        raise RecurrenceError(f"repeat rule must be a string, got {type(rule).__name__}")
    if len(rule) > MAX_RULE_CHARS:
        raise RecurrenceError(f"repeat rule is longer than {MAX_RULE_CHARS} characters")
    return _parse_text(rule)


@lru_cache(maxsize=256)
def _parse_text(rule: str) -> _Rule:
    text = rule.strip()
    if text[:6].upper() == "RRULE:":
        text = text[6:]
    values: dict[str, str] = {}
    for raw in text.split(";"):
        part = raw.strip()
        if not part:
            continue
        name, equals, value = part.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not equals or not name:
            raise RecurrenceError(f"repeat rule part {part!r} is not NAME=VALUE")
        if name not in _PARTS:
            raise RecurrenceError(
                f"repeat rule part {name} is not supported (only {', '.join(_PARTS)})"
            )
        if name in values:
            raise RecurrenceError(f"repeat rule gives {name} twice")
        values[name] = value
    if "FREQ" not in values:
        raise RecurrenceError("repeat rule has no FREQ" if values else "repeat rule is empty")
    freq = values["FREQ"]
    if freq not in _FREQS:
        raise RecurrenceError(f"FREQ={freq} is not supported (DAILY, WEEKLY, MONTHLY or YEARLY)")
    interval = 1
    if "INTERVAL" in values:
        value = values["INTERVAL"]
        if not value.isdigit() or not 1 <= int(value) <= MAX_INTERVAL:
            raise RecurrenceError(
                f"INTERVAL must be a whole number from 1 to {MAX_INTERVAL}, got {value!r}"
            )
        interval = int(value)
    byday = _byday(values["BYDAY"]) if "BYDAY" in values else ()
    bymonthday = _numbers("BYMONTHDAY", values.get("BYMONTHDAY"), 31, negative=True)
    bymonth = _numbers("BYMONTH", values.get("BYMONTH"), 12, negative=False)
    return _checked(_Rule(freq, interval, byday, bymonthday, bymonth))  # type: ignore[arg-type]


def _byday(value: str) -> tuple[tuple[int, int], ...]:
    days: set[tuple[int, int]] = set()
    for item in value.split(","):
        match = _BYDAY_ITEM.fullmatch(item.strip())
        if match is None:
            raise RecurrenceError(
                f"BYDAY item {item!r} is not a day like MO or a position like 1MO"
            )
        position = int(match.group(1)) if match.group(1) else 0
        if match.group(1) and not 1 <= abs(position) <= 5:
            raise RecurrenceError(f"BYDAY item {item!r}: the position must be 1 to 5 or -1 to -5")
        days.add((_DAY_CODES.index(match.group(2)), position))
    return tuple(sorted(days, key=lambda d: (d[0], d[1] < 0, abs(d[1]))))


def _numbers(name: str, value: str | None, top: int, *, negative: bool) -> tuple[int, ...]:
    if value is None:
        return ()
    numbers: set[int] = set()
    for item in value.split(","):
        item = item.strip()
        number = int(item) if _NUMBER.fullmatch(item) else 0
        if not (1 <= number <= top or (negative and -top <= number <= -1)):
            allowed = f"1 to {top}" + (f" or -1 to -{top}" if negative else "")
            raise RecurrenceError(f"{name} item {item!r} must be {allowed}")
        numbers.add(number)
    return tuple(sorted(numbers, key=lambda n: (n < 0, abs(n))))


def _checked(rule: _Rule) -> _Rule:
    """The combinations of parts py_agent supports (see the module docstring)."""
    freq = rule.freq
    if rule.bymonth and freq != "YEARLY":
        raise RecurrenceError(f"BYMONTH is supported only with FREQ=YEARLY, not FREQ={freq}")
    if rule.byday and rule.bymonthday:
        raise RecurrenceError("BYDAY and BYMONTHDAY together are not supported")
    positioned = any(n for _, n in rule.byday)
    if positioned and not all(n for _, n in rule.byday):
        # dateutil would take the days with and without positions as both required.
        raise RecurrenceError("BYDAY mixes days with positions (1MO) and without (MO)")
    if freq == "DAILY":
        if rule.bymonthday:
            raise RecurrenceError("BYMONTHDAY is not supported with FREQ=DAILY")
        if rule.byday:
            if rule.interval != 1 or positioned:
                raise RecurrenceError(
                    "BYDAY with FREQ=DAILY is supported only as FREQ=WEEKLY;BYDAY=…"
                )
            return _Rule("WEEKLY", 1, rule.byday)
    if freq == "WEEKLY":
        if rule.bymonthday:
            raise RecurrenceError("BYMONTHDAY is not allowed with FREQ=WEEKLY (RFC 5545)")
        if positioned:
            raise RecurrenceError(
                "BYDAY positions like 1MO need FREQ=MONTHLY or YEARLY, not FREQ=WEEKLY"
            )
    if freq == "YEARLY":
        if (rule.byday or rule.bymonthday) and not rule.bymonth:
            part = "BYDAY" if rule.byday else "BYMONTHDAY"
            raise RecurrenceError(f"{part} with FREQ=YEARLY needs BYMONTH")
        if rule.bymonthday and not any(
            abs(day) <= _MAX_DAYS[month - 1] for month in rule.bymonth for day in rule.bymonthday
        ):
            raise RecurrenceError(f"no date matches {rule.text().partition(';')[2]}")
    return rule


# --- occurrences -----------------------------------------------------------------------


def first_occurrence(rule: str, today: dt.date, start: dt.date | None = None) -> dt.date:
    """The first date on or after ``start`` (else ``today``) of ``rule``'s series anchored
    there: when a new repeating task is first due. `RecurrenceError` for a rule
    `canonical_rule` refuses, or when the series has no date before the year 10000."""
    anchor = _date("today", today) if start is None else _date("start", start)
    return _after(_parse(rule), anchor, anchor, inclusive=True)


def next_occurrence(rule: str, due: dt.date, today: dt.date) -> dt.date:
    """Where a repeating task due on ``due`` goes when it is completed on ``today``: the
    first date of the series anchored at ``due`` strictly after both ``due`` and ``today``."""
    due, today = _date("due", due), _date("today", today)
    return _after(_parse(rule), due, max(due, today), inclusive=False)


def _date(name: str, value: object) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise TypeError(f"'{name}' must be a date, got {type(value).__name__}")
    return value


def _after(rule: _Rule, anchor: dt.date, ref: dt.date, *, inclusive: bool) -> dt.date:
    if rule.freq in ("DAILY", "WEEKLY"):
        # Same phase, fewer steps for dateutil: whole periods of the interval, up to ref.
        step = rule.interval * (1 if rule.freq == "DAILY" else 7)
        anchor += dt.timedelta(days=(ref - anchor).days // step * step)
    elif _sparse(rule, anchor) and not _occurs_after(rule, anchor, ref, inclusive):
        # dateutil would look until the year 9999 for a date that never comes.
        raise RecurrenceError(f"{rule.text()} from {anchor} has no date after {ref}")
    series = _rrule.rrule(
        _FREQS[rule.freq],
        dtstart=anchor,
        interval=rule.interval,
        byweekday=[_rrule.weekdays[day](n) if n else _rrule.weekdays[day] for day, n in rule.byday]
        or None,
        bymonthday=rule.bymonthday or None,
        bymonth=rule.bymonth or None,
        cache=False,
    )
    try:
        found = series.after(dt.datetime.combine(ref, dt.time()), inc=inclusive)
    except (OverflowError, ValueError):
        found = None
    if found is None:
        raise RecurrenceError(f"{rule.text()} has no date after {ref} before the year 10000")
    return found.date()


def _sparse(rule: _Rule, anchor: dt.date) -> bool:
    """Whether some month (MONTHLY) or year (YEARLY) of the series can hold no date at all:
    only 31sts, fifth Mondays or February 29ths. Other series have a date in every period."""
    if rule.byday:
        return all(abs(n) == 5 for _, n in rule.byday)
    days = rule.bymonthday or (anchor.day,)
    if rule.freq == "MONTHLY":
        return all(abs(day) > min(_MIN_DAYS) for day in days)
    months = rule.bymonth or (anchor.month,)
    return not any(abs(day) <= _MIN_DAYS[month - 1] for month in months for day in days)


def _month_days(rule: _Rule, anchor: dt.date, year: int, month: int) -> list[int]:
    """The days of ``month`` in ``year`` that a MONTHLY or YEARLY series holds."""
    first_weekday, length = calendar.monthrange(year, month)
    if rule.byday:
        days: set[int] = set()
        for weekday, n in rule.byday:
            matching = list(range(1 + (weekday - first_weekday) % 7, length + 1, 7))
            if not n:
                days.update(matching)
            elif -len(matching) <= (n - 1 if n > 0 else n) < len(matching):
                days.add(matching[n - 1 if n > 0 else n])
        return sorted(days)
    wanted = rule.bymonthday or (anchor.day,)
    return sorted({d if d > 0 else length + 1 + d for d in wanted if abs(d) <= length})


def _occurs_after(rule: _Rule, anchor: dt.date, ref: dt.date, inclusive: bool) -> bool:
    """Whether a sparse MONTHLY or YEARLY series has a date after ``ref`` (or on it, if
    ``inclusive``). The calendar repeats every 400 years (4,800 months, a whole number of
    weeks), so that many steps of the interval decide it."""
    monthly = rule.freq == "MONTHLY"
    origin = anchor.year * 12 + anchor.month - 1 if monthly else anchor.year
    current = ref.year * 12 + ref.month - 1 if monthly else ref.year
    first = max(0, (current - origin) // rule.interval)
    for k in range(first, first + (4800 if monthly else 400) + 1):
        index = origin + k * rule.interval
        months: tuple[int, ...]
        if monthly:
            year, months = index // 12, (index % 12 + 1,)
        else:
            year, months = index, rule.bymonth or (anchor.month,)
        if year > dt.MAXYEAR:
            return False
        for month in months:
            for day in _month_days(rule, anchor, year, month):
                date = dt.date(year, month, day)
                if date >= anchor and (date > ref or (inclusive and date == ref)):
                    return True
    return False


# --- reading a repeat phrase ---------------------------------------------------------------


def find_repeat(text: str) -> RepeatMatch | None:
    """The repeat phrase in ``text`` and its rule (see the module docstring), or None.

    When several phrases match, the longest wins, then the first. The span covers the
    whole phrase, "on" and a part of day included ("on mondays", "every monday morning"),
    so that cutting it out of a title leaves nothing of it behind.
    """
    if not isinstance(text, str):
        raise TypeError(f"find_repeat: 'text' must be a string, got {type(text).__name__}")
    if not _TRIGGER.search(text):
        return None
    best: tuple[int, int, _Rule | None, dt.time | None] | None = None
    for pattern, build in _READERS:
        for match in pattern.finditer(text):
            read = build(match)
            if read is None:
                continue
            rule, time, end = read
            start = match.start()
            if best is None or (end - start, -start) > (best[1] - best[0], -best[0]):
                best = (start, end, rule, time)
    if best is None or best[2] is None:
        return None  # nothing, or "every year on my birthday": a repeat without its date
    start, end, rule, time = best
    assert rule is not None
    try:
        canonical = _checked(rule).text()
    except RecurrenceError:
        return None
    return RepeatMatch(start, end, canonical, time, text[start:end])


_F = re.IGNORECASE | re.VERBOSE
_WEEKDAY_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_ITEM = (
    rf"(?:(?:{'|'.join(_WEEKDAY_FULL)})s?"
    rf"|(?:{_alternation(w for w in _WEEKDAYS if w not in _WEEKDAY_FULL)})\.?)(?!\w)"
)
_JOIN = r"(?:\s*,\s*(?:and\s+|&\s*)?|\s*[&+/]\s*|\s+(?:and|n)\s+)"
_DAYS = rf"{_DAY_ITEM}(?:{_JOIN}{_DAY_ITEM})*"
_DAY_RANGE = rf"{_DAY_ITEM}\s*(?:-|\u2013|to|through|thru|till|until)\s*{_DAY_ITEM}"
_PART = r"(?:morning|afternoon|evening|night)s?(?!\w)"

_UNIT_WORDS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
               "ninth")  # fmt: skip
_TEEN_WORDS = ("tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
               "sixteenth", "seventeenth", "eighteenth", "nineteenth")  # fmt: skip
_DAY_WORDS: Final[dict[str, int]] = {
    **{word: i + 1 for i, word in enumerate(_UNIT_WORDS)},
    **{word: i + 10 for i, word in enumerate(_TEEN_WORDS)},
    "twentieth": 20,
    **{f"twenty {word}": i + 21 for i, word in enumerate(_UNIT_WORDS)},
    **{f"twenty-{word}": i + 21 for i, word in enumerate(_UNIT_WORDS)},
    "thirtieth": 30,
    "thirty first": 31,
    "thirty-first": 31,
}
_POSITION_WORDS: Final[dict[str, int]] = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "last": -1, "second to last": -2, "second-to-last": -2,
    "penultimate": -2,
}  # fmt: skip
_NUMBERS: Final[dict[str, int]] = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "other": 2, "alternate": 2, "second": 2, "third": 3,
    "fourth": 4, "fifth": 5, "sixth": 6, "couple of": 2, "couple": 2,
}  # fmt: skip

_LAST_DAY = r"(?:(?:second[\s-]+to[\s-]+last|penultimate|last)(?:\s+day)?)"
_MONTH_DAY_ITEM = (
    rf"(?:the\s+)?(?:{_LAST_DAY}|\d{{1,2}}(?:st|nd|rd|th)?(?!\w)"
    rf"|(?:{_alternation(_DAY_WORDS)})(?!\w))"
)
_MONTH_DAYS = rf"{_MONTH_DAY_ITEM}(?:{_JOIN}{_MONTH_DAY_ITEM})*"
_POSITION = rf"(?:{_alternation(_POSITION_WORDS)})(?!\w)"
_POSITIONS = rf"{_POSITION}(?:{_JOIN}(?:the\s+)?{_POSITION})*"
_MONTH = rf"(?:{_alternation(_MONTHS)})(?!\w)"
_MONTH_DATE = rf"""(?:
    (?P<m1>{_MONTH})\.?\s+(?:the\s+)?(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?(?![\w:/.-])
  | (?:the\s+)?(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m2>{_MONTH})\.?
)"""
_EVERY = r"(?:every|each)\s+(?:single\s+)?"
_UNITS_RE = r"(?P<unit>days?|weeks?|wks?|fortnights?|months?|mos?|years?|yrs?)(?!\w)"

# Cheap first test: a text without any of these words holds no repeat phrase.
_TRIGGER = re.compile(
    r"every|each|daily|weekly|monthly|yearly|annually|nightly|quarterly|fortnightly"
    r"|days\b|weekdays|weekends|weeknights|once|(?:morning|afternoon|evening|night)s\b",
    re.IGNORECASE,
)

_INTERVAL = re.compile(
    rf"""(?<!\w)(?:once\s+)?(?:every|each)\s+
    (?:(?P<n>\d{{1,3}})(?:st|nd|rd|th)?|(?P<word>{_alternation(_NUMBERS)}))\s+{_UNITS_RE}""",
    _F,
)
_EVERY_DAYS = re.compile(
    rf"""(?<!\w)(?:on\s+)?{_EVERY}(?:(?P<other>other|alternate|second|2nd)\s+)?
    (?:(?P<range>{_DAY_RANGE})|(?P<days>{_DAYS}))(?:\s+(?P<part>{_PART}))?""",
    _F,
)
_PLURAL_DAYS = re.compile(
    rf"(?<!\w)(?:on\s+)?(?P<days>{_DAYS})(?:\s+(?P<part>{_PART}))?",
    _F,
)
_POSITIONED = re.compile(
    rf"""(?<!\w)(?:(?P<every>every|each)\s+)?(?:on\s+)?(?:the\s+)?(?P<pos>{_POSITIONS})\s+
    (?P<days>{_DAYS})(?:\s+(?P<part>{_PART}))?\s+(?:of|in)\s+(?P<which>every|each|the|a)\s+month(?!\w)""",
    _F,
)
_MONTH_DAYS_OF = re.compile(
    rf"""(?<!\w)(?:(?P<every>every|each)\s+)?(?:on\s+)?(?P<mdays>{_MONTH_DAYS})(?:\s+day)?\s+
    (?:of\s+(?P<which>every|each|the|a)\s+month|(?P<which2>every|each)\s+month)(?!\w)""",
    _F,
)
_EVERY_MONTH_DAY = re.compile(
    rf"(?<!\w)(?:every|each)\s+(?:the\s+)?(?P<mdays>\d{{1,2}}(?:st|nd|rd|th)(?!\w)(?:{_JOIN}(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)(?!\w))*)",
    _F,
)
_END_OF_MONTH = re.compile(
    r"(?<!\w)(?:at\s+)?(?:the\s+)?end\s+of\s+(?:every|each)\s+month(?!\w)"
    r"|(?<!\w)(?:every|each)\s+month[\s-]end(?!\w)",
    re.IGNORECASE,
)
_EVERY_DATE = re.compile(rf"(?<!\w)(?:every|each)\s+(?:year\s+on\s+)?{_MONTH_DATE}(?!\w)", _F)
_DATE_EVERY_YEAR = re.compile(rf"(?<!\w)(?:on\s+)?{_MONTH_DATE}\s+(?:every|each)\s+year(?!\w)", _F)
_NAMED = re.compile(
    r"""(?<!\w)(?:once\s+(?:a|per)\s+|(?:on\s+)?(?:every|each)\s+(?:single\s+)?|each\s+and\s+every\s+)
    (?P<unit>day|week|month|year|fortnight|quarter|weekday|weekend|weeknight|workday|work\s+day
      |working\s+day|business\s+day|morning|afternoon|evening|night)(?!\w)
    (?:\s+(?P<part>(?:morning|afternoon|evening|night)s?)(?!\w))?""",
    _F,
)
_PLURAL_NAMED = re.compile(
    r"""(?<!\w)(?:on\s+)?(?:(?P<unit>weekdays|weekends|weeknights)(?!\w)
      |(?P<single>weekday|weekend)\s+(?=(?:morning|afternoon|evening|night)s(?!\w)))
    (?:\s*(?P<part>(?:morning|afternoon|evening|night)s?)(?!\w))?""",
    _F,
)
_ADVERB = re.compile(
    r"""(?<!\w)(?P<adverb>daily|everyday|weekly|bi-?weekly|fortnightly|monthly|bi-?monthly
      |quarterly|yearly|annually|nightly)(?!\w)""",
    _F,
)
_TAIL_DAYS = re.compile(
    rf"\s+(?:on\s+)?(?:every\s+)?(?P<days>{_DAYS})(?:\s+(?P<part>{_PART}))?", _F
)
_TAIL_MONTH = re.compile(
    rf"""\s+on\s+(?:the\s+)?(?:(?P<pos>{_POSITIONS})\s+(?P<days>{_DAYS})|(?P<mdays>{_MONTH_DAYS}))
    (?:\s+day)?(?:\s+of\s+(?:the|each|every)\s+month(?!\w))?""",
    _F,
)
_TAIL_YEAR = re.compile(rf"\s+on\s+(?:(?:the\s+)?{_MONTH_DATE}(?!\w))?", _F)
_NEXT_WORD = re.compile(r"[^\S\n]*([\w'-]+)")
# Words an adverb ("weekly") may stand before and still be the repeat, not an adjective.
_ADVERB_FOLLOWERS = _DAY_FOLLOWERS | {
    "starting", "beginning", "every", "each", "reminder", "reminders", "task", "tasks",
    "forever", "from", "now", "please", "plz", "pls", "basis", "also", "too", "as",
}  # fmt: skip

_Read = tuple[_Rule | None, dt.time | None, int]


def _weekday_numbers(text: str) -> tuple[int, ...]:
    days: list[int] = []
    for item in re.finditer(_DAY_ITEM, text, re.IGNORECASE):
        word = item.group().lower().rstrip(".")
        day = _WEEKDAYS.get(word, _WEEKDAYS.get(word[:-1]) if word.endswith("s") else None)
        if day is not None and day not in days:
            days.append(day)
    return tuple(sorted(days))


def _day_range(text: str) -> tuple[int, ...]:
    """ "monday to friday" → MO-FR; "fri-mon" → FR, SA, SU, MO."""
    ends = [_weekday_numbers(m.group()) for m in re.finditer(_DAY_ITEM, text, re.IGNORECASE)]
    first, last = ends[0][0], ends[-1][0]
    return tuple(sorted({(first + i) % 7 for i in range((last - first) % 7 + 1)}))


def _month_day_numbers(text: str) -> tuple[int, ...] | None:
    days: list[int] = []
    for item in re.finditer(_MONTH_DAY_ITEM, text, re.IGNORECASE):
        words = " ".join(item.group().lower().replace("the ", "", 1).split())
        words = words.removesuffix(" day")
        if words in ("last", "second to last", "second-to-last", "penultimate"):
            day = -1 if words == "last" else -2
        elif words[:1].isdigit():
            day = int(re.match(r"\d+", words).group())  # type: ignore[union-attr]
        else:
            day = _DAY_WORDS.get(words.replace("-", " "), _DAY_WORDS.get(words, 0))
        if not (1 <= day <= 31 or day in (-1, -2)):
            return None
        days.append(day)
    return tuple(days) or None


def _positions(text: str) -> tuple[int, ...]:
    return tuple(
        _POSITION_WORDS[" ".join(m.group().lower().split())]
        for m in re.finditer(_POSITION, text, re.IGNORECASE)
    )


def _time(part: str | None) -> dt.time | None:
    if not part:
        return None
    return _PART_TIMES[part.lower().rstrip("s")]


def _month_date(match: re.Match[str]) -> tuple[int, int] | None:
    month_name, day = match.group("m1") or match.group("m2"), match.group("d1") or match.group("d2")
    month = _MONTHS[month_name.lower()]
    if not 1 <= int(day) <= _MAX_DAYS[month - 1]:
        return None
    return month, int(day)


def _with_tail(rule: _Rule, time: dt.time | None, text: str, end: int) -> _Read:
    """Extend a bare "every week", "monthly", "every year" with what it says right after:
    "on mondays", "on the 15th", "on the first monday", "on march 3". A yearly phrase
    followed by "on" and no date ("every year on my birthday") reads as no repeat."""
    if rule.freq == "WEEKLY" and not rule.byday and (tail := _TAIL_DAYS.match(text, end)):
        days = _weekday_numbers(tail.group("days"))
        return (
            _Rule("WEEKLY", rule.interval, tuple((d, 0) for d in days)),
            _time(tail.group("part")) or time,
            tail.end(),
        )
    if rule.freq == "MONTHLY" and (tail := _TAIL_MONTH.match(text, end)):
        if tail.group("mdays"):
            mdays = _month_day_numbers(tail.group("mdays"))
            if mdays is not None:
                return _Rule("MONTHLY", rule.interval, bymonthday=mdays), time, tail.end()
        else:
            days = _weekday_numbers(tail.group("days"))
            byday = tuple((d, n) for d in days for n in _positions(tail.group("pos")))
            return _Rule("MONTHLY", rule.interval, byday), time, tail.end()
    if rule.freq == "YEARLY" and (tail := _TAIL_YEAR.match(text, end)):
        date = _month_date(tail) if tail.group("m1") or tail.group("m2") else None
        if date is None:
            return None, None, tail.end()
        month, day = date
        return _Rule("YEARLY", rule.interval, (), (day,), (month,)), time, tail.end()
    return rule, time, end


_UNIT_FREQ: Final[dict[str, tuple[_Freq, int]]] = {
    "day": ("DAILY", 1), "week": ("WEEKLY", 1), "wk": ("WEEKLY", 1), "fortnight": ("WEEKLY", 2),
    "month": ("MONTHLY", 1), "mo": ("MONTHLY", 1), "quarter": ("MONTHLY", 3),
    "year": ("YEARLY", 1), "yr": ("YEARLY", 1),
}  # fmt: skip


def _read_interval(match: re.Match[str]) -> _Read | None:
    unit = match.group("unit").lower()
    freq, per = _UNIT_FREQ[unit.rstrip("s")]
    if match.group("n"):
        count = int(match.group("n"))
    else:
        count = _NUMBERS[" ".join(match.group("word").lower().split())]
    interval = count * per
    if not 1 <= interval <= MAX_INTERVAL:
        return None
    return _with_tail(_Rule(freq, interval), None, match.string, match.end())


def _read_every_days(match: re.Match[str]) -> _Read | None:
    if match.group("range"):
        days = _day_range(match.group("range"))
    else:
        days = _weekday_numbers(match.group("days"))
    interval = 2 if match.group("other") else 1
    rule = _Rule("WEEKLY", interval, tuple((d, 0) for d in days))
    return rule, _time(match.group("part")), match.end()


def _read_plural_days(match: re.Match[str]) -> _Read | None:
    items = [m.group().lower() for m in re.finditer(_DAY_ITEM, match.group("days"), re.IGNORECASE)]
    part = match.group("part")
    plural = any(item.endswith("s") and item.rstrip("s") in _WEEKDAY_FULL for item in items)
    if not plural and not (part and part.lower().endswith("s")):
        return None  # "on monday", "mon and wed": dates, not repeats
    if not plural and len(items) > 1:
        return None
    days = _weekday_numbers(match.group("days"))
    return _Rule("WEEKLY", 1, tuple((d, 0) for d in days)), _time(part), match.end()


def _read_positioned(match: re.Match[str]) -> _Read | None:
    if not (match.group("every") or match.group("which").lower() in ("every", "each")):
        return None  # "the first monday of the month": which month is not said
    days = _weekday_numbers(match.group("days"))
    byday = tuple((d, n) for d in days for n in _positions(match.group("pos")))
    return _Rule("MONTHLY", 1, byday), _time(match.group("part")), match.end()


def _read_month_days_of(match: re.Match[str]) -> _Read | None:
    which = (match.group("which") or match.group("which2") or "").lower()
    if not (match.group("every") or which in ("every", "each")):
        return None  # "the 15th of the month" is one date (see dates.py)
    mdays = _month_day_numbers(match.group("mdays"))
    if mdays is None:
        return None
    return _Rule("MONTHLY", 1, bymonthday=mdays), None, match.end()


def _read_every_month_day(match: re.Match[str]) -> _Read | None:
    if _followed_by_other_word(match.string, match.end()):
        return None  # "every 2nd try"
    mdays = _month_day_numbers(match.group("mdays"))
    if mdays is None:
        return None
    return _Rule("MONTHLY", 1, bymonthday=mdays), None, match.end()


def _read_end_of_month(match: re.Match[str]) -> _Read:
    return _Rule("MONTHLY", 1, bymonthday=(-1,)), None, match.end()


def _read_yearly_date(match: re.Match[str]) -> _Read | None:
    date = _month_date(match)
    if date is None:
        return None
    month, day = date
    return _Rule("YEARLY", 1, (), (day,), (month,)), None, match.end()


_WEEKDAYS_ONLY = tuple((d, 0) for d in range(5))
_WEEKEND_ONLY = ((5, 0), (6, 0))


def _read_named(match: re.Match[str]) -> _Read | None:
    unit = " ".join(match.group("unit").lower().split())
    part = match.group("part")
    if unit in ("morning", "afternoon", "evening", "night"):
        if part:
            return None  # "every morning evening"
        return _Rule("DAILY"), _time(unit), match.end()
    if unit in ("weekday", "workday", "work day", "working day", "business day", "weeknight"):
        time = _time(part) or (_time("night") if unit == "weeknight" else None)
        return _Rule("WEEKLY", 1, _WEEKDAYS_ONLY), time, match.end()
    if unit == "weekend":
        return _Rule("WEEKLY", 1, _WEEKEND_ONLY), _time(part), match.end()
    freq, interval = _UNIT_FREQ[unit]
    if part and freq != "DAILY":
        return None  # "every week night"
    return _with_tail(_Rule(freq, interval), _time(part), match.string, match.end())


def _read_plural_named(match: re.Match[str]) -> _Read | None:
    unit = (match.group("unit") or match.group("single")).lower().rstrip("s")
    time = _time(match.group("part")) or (_time("night") if unit == "weeknight" else None)
    days = _WEEKEND_ONLY if unit == "weekend" else _WEEKDAYS_ONLY
    return _Rule("WEEKLY", 1, days), time, match.end()


_ADVERBS: Final[dict[str, tuple[_Freq, int, str | None]]] = {
    "daily": ("DAILY", 1, None), "everyday": ("DAILY", 1, None), "nightly": ("DAILY", 1, "night"),
    "weekly": ("WEEKLY", 1, None), "biweekly": ("WEEKLY", 2, None),
    "bi-weekly": ("WEEKLY", 2, None), "fortnightly": ("WEEKLY", 2, None),
    "monthly": ("MONTHLY", 1, None), "bimonthly": ("MONTHLY", 2, None),
    "bi-monthly": ("MONTHLY", 2, None), "quarterly": ("MONTHLY", 3, None),
    "yearly": ("YEARLY", 1, None), "annually": ("YEARLY", 1, None),
}  # fmt: skip


def _read_adverb(match: re.Match[str]) -> _Read | None:
    freq, interval, part = _ADVERBS[match.group("adverb").lower()]
    rule, time, end = _with_tail(_Rule(freq, interval), _time(part), match.string, match.end())
    if end == match.end() and _followed_by_other_word(match.string, end):
        return None  # an adjective: "the weekly report", "daily standup"
    return rule, time, end


def _followed_by_other_word(text: str, end: int) -> bool:
    match = _NEXT_WORD.match(text, end)
    return match is not None and match.group(1).lower() not in _ADVERB_FOLLOWERS


_READERS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], _Read | None]], ...] = (
    (_INTERVAL, _read_interval),
    (_EVERY_DAYS, _read_every_days),
    (_PLURAL_DAYS, _read_plural_days),
    (_POSITIONED, _read_positioned),
    (_MONTH_DAYS_OF, _read_month_days_of),
    (_EVERY_MONTH_DAY, _read_every_month_day),
    (_END_OF_MONTH, _read_end_of_month),
    (_EVERY_DATE, _read_yearly_date),
    (_DATE_EVERY_YEAR, _read_yearly_date),
    (_NAMED, _read_named),
    (_PLURAL_NAMED, _read_plural_named),
    (_ADVERB, _read_adverb),
)


# --- describing a rule -------------------------------------------------------------------

_ORDINAL_WORDS: Final = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}


def describe_rule(rule: str) -> str:
    """``rule`` in words for a reply: "every Monday", "every weekday", "every 2 weeks",
    "every other Friday", "every month on the 1st", "every month on the last day",
    "every month on the first Monday", "every year on 3 March", "every day".
    `RecurrenceError` for a rule `canonical_rule` refuses."""
    r = _parse(rule)
    unit = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}[r.freq]
    days = [d for d, _ in r.byday]
    if r.freq == "WEEKLY" and r.byday:
        if days == [0, 1, 2, 3, 4]:
            named = "weekday"
        elif days == [5, 6]:
            named = "Saturday and Sunday"
        else:
            named = _join([_DAY_NAMES[d] for d in days])
        if r.interval == 1:
            return f"every {named}"
        if r.interval == 2:
            return f"every other {named}"
        return f"every {r.interval} weeks on {_join([_DAY_NAMES[d] for d in days])}"
    every = f"every {unit}" if r.interval == 1 else f"every {r.interval} {unit}s"
    if r.freq == "YEARLY" and r.bymonth:
        months = _join([calendar.month_name[m] for m in r.bymonth])
        if r.bymonthday and all(d > 0 for d in r.bymonthday):
            return f"{every} on {_join([str(d) for d in r.bymonthday])} {months}"
        if r.bymonthday:
            named_days = _join([_day_of_month(d) for d in r.bymonthday])
            return f"{every} on {named_days} of {months}"
        if r.byday:
            return f"{every} on {_join([_position(d, n) for d, n in r.byday])} of {months}"
        return f"{every} in {months}"
    if r.bymonthday:
        return f"{every} on {_join([_day_of_month(d) for d in r.bymonthday])}"
    if r.byday:
        return f"{every} on {_join([_position(d, n) for d, n in r.byday])}"
    return every


def _day_of_month(day: int) -> str:
    if day == -1:
        return "the last day"
    if day < 0:
        return f"the {_ordinal(-day)} to last day"
    return f"the {_ordinal(day)}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _position(day: int, n: int) -> str:
    if n == 0:
        return f"every {_DAY_NAMES[day]}"
    if n == -1:
        return f"the last {_DAY_NAMES[day]}"
    if n < 0:
        return f"the {_ORDINAL_WORDS[-n]} to last {_DAY_NAMES[day]}"
    return f"the {_ORDINAL_WORDS[n]} {_DAY_NAMES[day]}"


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
