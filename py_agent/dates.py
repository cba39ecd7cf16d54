"""Due dates and times in what the user types: "tomorrow at 5pm", "next tuesday", "in 2 hours",
"dec 14th", "end of the month", "2026-12-01T09:30".

Pure Python on `re`, `datetime` and `calendar`, so it runs the same in CPython and Pyodide.
`find_due` finds every date, time and part-of-day phrase in the text, joins neighbours that
stand side by side ("tomorrow" + "at 5pm", "9am" + "friday", "tonight" + "at 9") into one
phrase, and resolves it against ``now``, the user's local time. The first phrase that names a
date wins; a phrase with only a time comes second. Matching ignores case, extra spaces and the
punctuation around a phrase.

Rules for the phrases that could mean more than one thing (tests/test_dates.py pins each):

- Weeks run Monday to Sunday.
- "friday", "on friday", "by friday", "coming friday": the first Friday *after* today (1-7
  days ahead): said on a Friday, it means next week's.
- "this friday": Friday on or after today (0-6 days ahead): said on a Friday, it means today.
- "next friday", "friday next week": Friday of next week (1-13 days ahead). Said on a Wednesday,
  "next friday" is 9 days ahead while "friday" is 2; said on a Tuesday, "next tuesday" is 7 days
  ahead; said on a Sunday, "next monday" is tomorrow.
- "next week": Monday of next week. "next month": its 1st. "next year": January 1st.
- "this weekend", "the weekend": Saturday of this week, or today on a Saturday or Sunday.
  "next weekend": Saturday of next week.
- "end of the week": the first Friday on or after today (the end of the working week; on a
  weekend, the coming Friday). "end of next week": Friday of next week. "end of the month" /
  "end of next month" / "end of the year": the last day of that month or year.
- "the 14th", "on the 14th", "on 14": the next 14th on or after today, skipping months that are
  too short ("the 31st" said in November is December 31st). "december 14", "14th of december":
  the next December 14th on or after today when no year is given ("feb 29" finds the next leap
  year). A date with a year is taken as written, even in the past; an impossible one
  ("feb 30", "2026-02-29") is no date.
- A day of the month without a month name must not be followed by an ordinary word, so
  "the 2nd amendment" and "on the 3rd floor" are no dates; neither is a bare "3rd" without
  "the" or "on". The same holds for "may" and "march" ("march 5 miles").
- Numbers like "12/01" or "1.12." are no dates: the day/month order is ambiguous. ISO dates
  ("2026-12-01", "2026-12-01T09:30", "2026-12-01 09:30") are; a UTC offset after an ISO time is
  ignored (the time is read as local).
- Times: "5pm", "5:30 p.m.", "17:30", "noon", "midnight" (00:00 of the day named: "by midnight"
  alone is tonight's, i.e. tomorrow 00:00), "end of day"/"eod" (17:00). A bare hour needs
  "at"/"@"/"by"/"around"/"before"/"until" or a part of day next to it ("at 5", "9 in the
  morning"): "at home" and "room 5" are no times. Without am/pm an hour 1-6 is afternoon and
  7-12 is morning/noon ("at 5" = 17:00, "at 9" = 09:00), a leading zero or 13-23 is 24-hour
  ("at 09" = 09:00), and a part of day decides ("at 9 tonight" = 21:00).
- Parts of day: morning 09:00, afternoon 15:00, evening 19:00, night/tonight 20:00. A bare
  "morning" counts only beside a date or time ("friday morning"); "in the morning", "at night",
  "this evening" and "tonight" stand alone.
- A time without a date is today if it is still ahead, else tomorrow. A bare hour with no
  am/pm takes its other half when that is the next one on the clock: "at 9" said at 10:00 is
  21:00 today, said at 22:00 it is 09:00 tomorrow. A time with a date is kept as written even
  when it has passed ("today at 9am" said at 10:00).
- "in N minutes/hours" gives a date and time (seconds dropped, computed in UTC so a DST change
  does not shift it); "in N days/weeks/months/years" gives a date only ("in a month" from
  January 31st is the last day of February). N is digits (hours and minutes may be decimal,
  "1.5 hours"), one to twelve and a few larger words in letters, "a"/"an" (1), "a couple (of)"
  (2) or "a few" (3); "half an hour" and "an hour and a half" work too. "2 days from now" is
  "in 2 days".
- Not understood, on purpose: month names without a day ("in december"), ordinal words
  ("the first"), past weekdays ("last friday" is no date, not next Friday), "5-6pm" (in
  "5pm to 6pm" the first time is taken). Recurrence is not either: "every monday" gives
  the next Monday (py_agent/recurrence.py reads repeats; py_agent/slots.py cuts them out
  before asking for a date).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class DueMatch:
    """A due date (and maybe time) found in a text, with where its phrase is."""

    start: int  # text[start:end] is the date/time phrase, e.g. to cut it out of a title
    end: int
    date: dt.date
    time: dt.time | None  # None when the phrase gives no time
    phrase: str
    # False when the phrase gives only a time ("at 5pm", "tonight" is dated) and the date
    # is the one the rules infer: today if the time is still ahead, else tomorrow.
    dated: bool = True


# The clock the agent reasons about: every date it computes from "now" ("in 30 years",
# "every year" for a while) stays inside what datetime can hold (year 1 to 9999).
EARLIEST_NOW = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST_NOW = dt.datetime(9000, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
NOW_EXAMPLE = "2026-11-18T10:00:00+01:00"


class NowError(ValueError):
    """A request's "now" that is not a usable local time; the message says what is wanted."""


def parse_now(raw: object) -> dt.datetime:
    """A request's "now": the device's local time, in ISO 8601 with its UTC offset, between
    1900 and 9000 (so no date computed from it overflows). Raises `NowError`."""
    wanted = f"the device's local time in ISO 8601 with its UTC offset, like {NOW_EXAMPLE}"
    if not isinstance(raw, str) or len(raw) > 64:
        raise NowError(f"must be {wanted}")
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise NowError(f"must be {wanted}, got {raw!r}") from None
    if parsed.tzinfo is None:
        raise NowError(f"must carry its UTC offset (like {NOW_EXAMPLE}), got {raw!r}")
    try:
        in_range = EARLIEST_NOW <= parsed <= LATEST_NOW
    except OverflowError:  # its UTC time is outside datetime's range
        in_range = False
    if not in_range:
        raise NowError(f"must be a time between the years 1900 and 9000, got {raw!r}")
    return parsed


def find_due(text: str, now: dt.datetime) -> DueMatch | None:
    """The due date/time that ``text`` names, resolved against ``now`` (the user's local time).

    Only ``now``'s wall-clock fields matter, except for "in N minutes/hours", which is computed
    in UTC when ``now`` is aware. None when the text names no date or time.
    """
    if not isinstance(text, str):
        raise TypeError(f"find_due: 'text' must be a string, got {type(text).__name__}")
    if not isinstance(now, dt.datetime):
        raise TypeError(f"find_due: 'now' must be a datetime, got {type(now).__name__}")
    pieces = _without_overlaps(_scan(text, now))
    timed: DueMatch | None = None
    for chain in _chains(text, pieces):
        resolved = _resolve(text, chain, now)
        if resolved is None:
            continue
        match, has_date = resolved
        if has_date:
            return match
        if timed is None:
            timed = match
    return timed


# --- pieces: one recognised phrase each --------------------------------------------------


@dataclass(frozen=True)
class _Clock:
    hour: int
    minute: int
    meridiem: str | None  # "am", "pm", or None when the text says neither
    exact: bool  # 24-hour ("17:30", "09:00", "noon", "in 2 hours"): no am/pm to guess


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    date: dt.date | None = None
    clock: _Clock | None = None
    part: str | None = None  # "morning", "afternoon", "evening" or "night"
    standalone: bool = True  # False for a bare "morning": it needs a date or time beside it


_Handler = Callable[[re.Match[str], dt.datetime], _Piece | None]

_PART_TIMES = {
    "morning": dt.time(9, 0),
    "afternoon": dt.time(15, 0),
    "evening": dt.time(19, 0),
    "night": dt.time(20, 0),
}

_WEEKDAYS = {
    "monday": 0, "mon": 0,
    "tuesday": 1, "tues": 1, "tue": 1,
    "wednesday": 2, "weds": 2, "wed": 2,
    "thursday": 3, "thurs": 3, "thur": 3, "thu": 3,
    "friday": 4, "fri": 4,
    "saturday": 5, "sat": 5,
    "sunday": 6, "sun": 6,
}  # fmt: skip
# Abbreviations that are also words ("I sat", "the sun"): dates only after on/this/next.
_WORDLIKE_WEEKDAYS = frozenset({"mon", "wed", "weds", "sat", "sun"})

_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3,
    "april": 4, "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7,
    "august": 8, "aug": 8, "september": 9, "sept": 9, "sep": 9, "october": 10, "oct": 10,
    "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
# Month names that are also verbs: "may 5" is a date, "march 5 miles" is not.
_VERB_MONTHS = frozenset({"may", "march", "mar"})

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45,
    "forty five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
    "a couple of": 2, "a couple": 2, "couple of": 2, "a few": 3, "few": 3,
}  # fmt: skip

# unit → (what it counts, how many of them)
_UNITS = {
    "minute": ("minutes", 1), "minutes": ("minutes", 1), "min": ("minutes", 1),
    "mins": ("minutes", 1), "m": ("minutes", 1),
    "hour": ("minutes", 60), "hours": ("minutes", 60), "hr": ("minutes", 60),
    "hrs": ("minutes", 60), "h": ("minutes", 60),
    "day": ("days", 1), "days": ("days", 1), "d": ("days", 1),
    "week": ("days", 7), "weeks": ("days", 7), "wk": ("days", 7), "wks": ("days", 7),
    "w": ("days", 7), "fortnight": ("days", 14), "fortnights": ("days", 14),
    "month": ("months", 1), "months": ("months", 1), "mo": ("months", 1), "mos": ("months", 1),
    "year": ("months", 12), "years": ("months", 12), "yr": ("months", 12), "yrs": ("months", 12),
}  # fmt: skip

# Units written only right after digits ("2h", "30m", "3mo"): "in a mo" is not a month.
_COMPACT_UNITS = frozenset({"m", "h", "d", "w", "mo", "mos"})

# Words that may follow a bare day of the month ("the 3rd at 5pm", "on the 14th to pay"); any
# other word makes it part of a name ("the 2nd amendment", "the 3rd floor").
_DAY_FOLLOWERS = frozenset(
    {
        "at", "around", "by", "before", "after", "in", "on", "from", "for", "to", "and", "or",
        "so", "then", "until", "till", "please", "pls", "thanks", "thank", "i", "we",
        "morning", "afternoon", "evening", "night", "noon", "midnight", "tonight",
    }
)  # fmt: skip


def _alternation(words: Iterable[str]) -> str:
    """A regex alternation of ``words``, longest first; a space matches any run of spaces."""
    escaped = (re.escape(word).replace(r"\ ", r"\s+") for word in words)
    return "|".join(sorted(escaped, key=len, reverse=True))


_WEEKDAY_RE = _alternation(_WEEKDAYS)
_MONTH_RE = _alternation(_MONTHS)
_FLAGS = re.IGNORECASE | re.VERBOSE
_NEXT_WORD = re.compile(r"\s+([a-z]+)", re.IGNORECASE)
_PART_AHEAD = re.compile(
    r"\s+(?:(?:in|during)\s+the\s+|at\s+|this\s+)?(?:morning|afternoon|evening|night)(?!\w)"
    r"|\s+(?:tonight|tonite)(?!\w)",
    re.IGNORECASE,
)
# What may stand between two pieces of one phrase: "tomorrow, 5pm", "friday - 9am".
_GAP = re.compile(r"[\s,]*(?:-\s*)?")


def _followed_by_word(text: str, end: int) -> bool:
    match = _NEXT_WORD.match(text, end)
    return match is not None and match.group(1).lower() not in _DAY_FOLLOWERS


# --- calendar arithmetic ------------------------------------------------------------------


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _add_months(day: dt.date, months: int) -> dt.date:
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return dt.date(year, month0 + 1, min(day.day, _days_in_month(year, month0 + 1)))


def _monday_next_week(today: dt.date) -> dt.date:
    return today + dt.timedelta(days=7 - today.weekday())


def _valid_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _next_day_of_month(today: dt.date, day: int) -> dt.date | None:
    """The first date on or after ``today`` that is the ``day``th of its month."""
    for ahead in range(13):
        first = _add_months(today.replace(day=1), ahead)
        candidate = _valid_date(first.year, first.month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _next_month_day(today: dt.date, month: int, day: int) -> dt.date | None:
    """The first ``month``/``day`` on or after ``today`` (up to 8 years out, for Feb 29)."""
    for year in range(today.year, today.year + 9):
        candidate = _valid_date(year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _weekday_date(today: dt.date, weekday: int, relation: str) -> dt.date:
    if relation == "next":
        return _monday_next_week(today) + dt.timedelta(days=weekday)
    if relation == "this":
        return today + dt.timedelta(days=(weekday - today.weekday()) % 7)
    return today + dt.timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def _after(now: dt.datetime, minutes: int) -> dt.datetime:
    delta = dt.timedelta(minutes=minutes)
    if now.utcoffset() is None:
        return now + delta
    return (now.astimezone(dt.UTC) + delta).astimezone(now.tzinfo)


# --- scanners: a pattern and what its match means -----------------------------------------


def _span(match: re.Match[str]) -> tuple[int, int]:
    return match.start(), match.end()


_DAY_WORDS = re.compile(
    r"""(?<!\w)(?:
        (?P<after>(?:the\s+)?day\s+after\s+(?:tomorrow|tmrw|tmr))
      | (?P<word>today|tonight|tonite|tomorrow|tomorow|tommorow|tommorrow|tmrw|tmr|yesterday)
    )(?!\w)""",
    _FLAGS,
)


def _day_word(match: re.Match[str], now: dt.datetime) -> _Piece:
    today = now.date()
    word = (match.group("word") or "").lower()
    if match.group("after"):
        return _Piece(*_span(match), date=today + dt.timedelta(days=2))
    if word in ("today", "tonight", "tonite"):
        return _Piece(*_span(match), date=today, part="night" if word != "today" else None)
    if word == "yesterday":
        return _Piece(*_span(match), date=today - dt.timedelta(days=1))
    return _Piece(*_span(match), date=today + dt.timedelta(days=1))


_PARTS = re.compile(
    r"""(?<!\w)(?:
        (?:in|during)\s+the\s+(?P<in_the>morning|afternoon|evening|night)
      | at\s+(?P<at>night)
      | this\s+(?P<this>morning|afternoon|evening)
      | (?P<bare>morning|afternoon|evening|night)
    )(?!\w)""",
    _FLAGS,
)


def _part(match: re.Match[str], now: dt.datetime) -> _Piece:
    if name := match.group("this"):
        return _Piece(*_span(match), date=now.date(), part=name.lower())
    if name := match.group("bare"):
        return _Piece(*_span(match), part=name.lower(), standalone=False)
    return _Piece(*_span(match), part=(match.group("in_the") or match.group("at")).lower())


_NAMED_TIMES = re.compile(
    r"""(?<!\w)(?:(?P<pre>at|by|around|before|until|till)\s+)?(?:
        (?P<noon>(?:12\s*)?noon|midday|lunch\s*time)
      | (?P<lunch>lunch)
      | (?P<midnight>(?:12\s*)?midnight)
      | (?P<eod>eod|cob|close\s+of\s+business|(?:the\s+)?end\s+of\s+(?:the\s+)?(?:work\s*)?day)
    )(?!\w)""",
    _FLAGS,
)


def _named_time(match: re.Match[str], now: dt.datetime) -> _Piece | None:
    if match.group("lunch") and not match.group("pre"):
        return None  # "buy lunch" is no time; "at lunch" is
    hour = 0 if match.group("midnight") else 17 if match.group("eod") else 12
    return _Piece(*_span(match), clock=_Clock(hour, 0, None, exact=True))


_CLOCK = re.compile(
    r"""(?<![\w:./-])
    (?:(?P<pre>at|@|around|by|before|until|till|til)\s*)?
    (?P<hour>\d{1,2})
    (?: :(?P<minute>\d{2}) | \.(?P<dot_minute>\d{2})(?=\s*[ap]\.?m) )?
    (?:\s*(?: (?P<meridiem>[ap])\.?m\.? | (?P<oclock>o['\u2019]?clock) ))?
    (?![\w:])""",
    _FLAGS,
)


def _clock(match: re.Match[str], now: dt.datetime) -> _Piece | None:
    hour_text = match.group("hour")
    hour = int(hour_text)
    minute_text = match.group("minute") or match.group("dot_minute")
    minute = int(minute_text) if minute_text else 0
    meridiem = match.group("meridiem")
    if minute > 59:
        return None
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        clock = _Clock(hour, minute, meridiem.lower() + "m", exact=False)
        return _Piece(*_span(match), clock=clock)
    if hour > 23:
        return None
    signalled = (
        minute_text
        or match.group("pre")
        or match.group("oclock")
        or _PART_AHEAD.match(match.string, match.end())
    )
    if not signalled:
        return None  # a bare number: "buy 5 apples"
    exact = hour == 0 or hour >= 13 or (len(hour_text) == 2 and hour_text.startswith("0"))
    return _Piece(*_span(match), clock=_Clock(hour, minute, None, exact))


_WEEKDAY = re.compile(
    rf"""(?<!\w)
    (?:(?P<on>on)\s+)?
    (?:(?P<relation>this\s+coming|this|next|coming|upcoming|last|past)\s+)?
    (?P<weekday>{_WEEKDAY_RE})(?!\w)
    (?:\s+(?:of\s+)?(?P<next_week>next\s+week)(?!\w))?""",
    _FLAGS,
)


def _weekday(match: re.Match[str], now: dt.datetime) -> _Piece | None:
    name = match.group("weekday").lower()
    relation = " ".join((match.group("relation") or "").lower().split())
    if relation in ("last", "past"):
        return None  # "last friday's meeting" names no due date
    if match.group("next_week"):
        relation = "next"
    if name in _WORDLIKE_WEEKDAYS and not (match.group("on") or relation):
        return None
    rule = relation if relation in ("this", "next") else "after"
    return _Piece(*_span(match), date=_weekday_date(now.date(), _WEEKDAYS[name], rule))


_WEEKEND = re.compile(
    r"""(?<!\w)
    (?P<relation>this\s+coming|this|next|coming|the|on\s+the|over\s+the|at\s+the|by\s+the)
    \s+weekend(?!\w)""",
    _FLAGS,
)


def _weekend(match: re.Match[str], now: dt.datetime) -> _Piece:
    today = now.date()
    if match.group("relation").lower() == "next":
        day = _monday_next_week(today) + dt.timedelta(days=5)
    elif today.weekday() >= 5:
        day = today
    else:
        day = today + dt.timedelta(days=5 - today.weekday())
    return _Piece(*_span(match), date=day)


_PERIODS = re.compile(
    r"""(?<!\w)(?:
        (?:(?:the\s+)?(?:beginning|start)\s+of\s+|early\s+)?next\s+(?P<next>week|month|year)
      | (?:the\s+)?end\s+of\s+(?:(?P<end_next>next)\s+|(?:the|this)\s+)?(?P<end>week|month|year)
    )(?!\w)""",
    _FLAGS,
)


def _period(match: re.Match[str], now: dt.datetime) -> _Piece:
    today = now.date()
    if unit := match.group("next"):
        unit = unit.lower()
        if unit == "week":
            day = _monday_next_week(today)
        elif unit == "month":
            day = _add_months(today.replace(day=1), 1)
        else:
            day = dt.date(today.year + 1, 1, 1)
        return _Piece(*_span(match), date=day)
    unit, ahead = match.group("end").lower(), 1 if match.group("end_next") else 0
    if unit == "week":
        day = (
            _monday_next_week(today) + dt.timedelta(days=4)
            if ahead
            else _weekday_date(today, 4, "this")
        )
    elif unit == "month":
        first = _add_months(today.replace(day=1), ahead)
        day = first.replace(day=_days_in_month(first.year, first.month))
    else:
        day = dt.date(today.year + ahead, 12, 31)
    return _Piece(*_span(match), date=day)


_RELATIVE = re.compile(
    rf"""(?<!\w)
    (?:(?P<in>in|within)\s+)?
    (?:
        (?P<half_hour>half\s+an\s+hour|a\s+half\s+hour|half\s+hour)
      | (?P<digits>\d{{1,3}}(?:\.\d+)?)\s*(?P<digit_unit>{_alternation(_UNITS)})
      | (?P<words>{_alternation(_NUMBER_WORDS)})\s+
        (?P<word_unit>{_alternation(u for u in _UNITS if u not in _COMPACT_UNITS)})
    )
    (?P<and_half>\s+and\s+a\s+half)?
    (?!\w)
    (?P<from_now>\s+from\s+(?:now|today)(?!\w))?""",
    _FLAGS,
)


def _relative(match: re.Match[str], now: dt.datetime) -> _Piece | None:
    if not (match.group("in") or match.group("from_now")):
        return None  # "for 2 hours", "3 days" alone are durations, not due dates
    if match.group("half_hour"):
        kind, amount = "minutes", 30.0
    else:
        unit = (match.group("digit_unit") or match.group("word_unit")).lower()
        kind, per = _UNITS[unit]
        if digits := match.group("digits"):
            count = float(digits)
        else:
            count = float(_NUMBER_WORDS[" ".join(match.group("words").lower().split())])
        if match.group("and_half"):
            count += 0.5
        amount = count * per
    if kind == "minutes":
        target = _after(now, round(amount))
        clock = _Clock(target.hour, target.minute, None, exact=True)
        return _Piece(*_span(match), date=target.date(), clock=clock)
    if amount != int(amount):
        return None  # "in 1.5 days": no date to give
    if kind == "days":
        return _Piece(*_span(match), date=now.date() + dt.timedelta(days=int(amount)))
    return _Piece(*_span(match), date=_add_months(now.date(), int(amount)))


_DAY_OF_MONTH = re.compile(
    r"""(?<!\w)
    (?:(?P<pre>on|by|before|until|till|for)\s+)?
    (?P<the>the\s+)?
    (?P<day>\d{1,2})(?P<suffix>st|nd|rd|th)?(?![\w:/-]|\.\d)
    (?:\s+of\s+(?P<which>the|this|next)\s+month(?!\w))?""",
    _FLAGS,
)


def _day_of_month(match: re.Match[str], now: dt.datetime) -> _Piece | None:
    pre = (match.group("pre") or "").lower()
    if match.group("suffix"):
        if not (pre or match.group("the")):
            return None  # "3rd" alone: "my 3rd try"
    elif not (pre == "on" or (pre and match.group("the"))):
        return None  # "by 14" is a time, "the 14" a count
    if not match.group("which") and _followed_by_word(match.string, match.end()):
        return None  # "the 2nd amendment"
    day, today = int(match.group("day")), now.date()
    which = (match.group("which") or "").lower()
    if which in ("this", "next"):
        first = _add_months(today.replace(day=1), 1 if which == "next" else 0)
        date = _valid_date(first.year, first.month, day)
    else:
        date = _next_day_of_month(today, day) if 1 <= day <= 31 else None
    return None if date is None else _Piece(*_span(match), date=date)


_MONTH_DAY = re.compile(
    rf"""(?<!\w)(?:on\s+)?
    (?P<month>{_MONTH_RE})\.?\s+(?:the\s+)?
    (?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?![\w:/-]|\.\d)
    (?:,?\s+(?P<year>\d{{4}})(?!\w))?""",
    _FLAGS,
)
_DAY_MONTH = re.compile(
    rf"""(?<!\w)(?:on\s+)?(?:the\s+)?
    (?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?
    (?P<month>{_MONTH_RE})(?:\.|(?!\w))
    (?:,?\s+(?P<year>\d{{4}})(?!\w))?""",
    _FLAGS,
)


def _month_date(match: re.Match[str], now: dt.datetime) -> _Piece | None:
    name = match.group("month").lower()
    verb_like = name in _VERB_MONTHS and not match.group("year")
    if verb_like and _followed_by_word(match.string, match.end()):
        return None  # "march 5 miles"
    month, day = _MONTHS[name], int(match.group("day"))
    if year := match.group("year"):
        date = _valid_date(int(year), month, day)
    else:
        date = _next_month_day(now.date(), month, day)
    return None if date is None else _Piece(*_span(match), date=date)


_ISO = re.compile(
    r"""(?<![\w:./-])
    (?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
    (?:[t\s](?P<hour>\d{2}):(?P<minute>\d{2})(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?
    (?![\w:/-]|\.\d)""",
    _FLAGS,
)


def _iso(match: re.Match[str], now: dt.datetime) -> _Piece | None:
    date = _valid_date(int(match["year"]), int(match["month"]), int(match["day"]))
    if date is None:
        return None
    if match.group("hour") is None:
        return _Piece(*_span(match), date=date)
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        return None
    return _Piece(*_span(match), date=date, clock=_Clock(hour, minute, None, exact=True))


_SCANNERS: tuple[tuple[re.Pattern[str], _Handler], ...] = (
    (_DAY_WORDS, _day_word),
    (_PARTS, _part),
    (_NAMED_TIMES, _named_time),
    (_CLOCK, _clock),
    (_WEEKDAY, _weekday),
    (_WEEKEND, _weekend),
    (_PERIODS, _period),
    (_RELATIVE, _relative),
    (_DAY_OF_MONTH, _day_of_month),
    (_MONTH_DAY, _month_date),
    (_DAY_MONTH, _month_date),
    (_ISO, _iso),
)


# --- from pieces to one phrase --------------------------------------------------------------


def _scan(text: str, now: dt.datetime) -> list[_Piece]:
    pieces = []
    for pattern, handler in _SCANNERS:
        for match in pattern.finditer(text):
            try:
                piece = handler(match, now)
            except OverflowError:  # "in 99999999 days": past any date there is, so no date
                piece = None
            if piece is not None:
                pieces.append(piece)
    return pieces


def _without_overlaps(pieces: list[_Piece]) -> list[_Piece]:
    """Longest pieces first; a piece overlapping one already kept is dropped. By position."""
    kept: list[_Piece] = []
    for piece in sorted(pieces, key=lambda p: (p.start - p.end, p.start)):
        if all(piece.end <= other.start or other.end <= piece.start for other in kept):
            kept.append(piece)
    return sorted(kept, key=lambda p: p.start)


def _chains(text: str, pieces: list[_Piece]) -> list[list[_Piece]]:
    """Runs of neighbouring pieces that say different things (one date, one time, one part)."""
    chains: list[list[_Piece]] = []
    for piece in pieces:
        chain = chains[-1] if chains else None
        if (
            chain is not None
            and _GAP.fullmatch(text, chain[-1].end, piece.start)
            and all(p.date is None or piece.date is None for p in chain)
            and all(p.clock is None or piece.clock is None for p in chain)
            and all(p.part is None or piece.part is None for p in chain)
        ):
            chain.append(piece)
        else:
            chains.append([piece])
    return chains


def _hour(clock: _Clock, part: str | None) -> int:
    if clock.exact:
        return clock.hour
    meridiem = clock.meridiem
    if meridiem is None and part is not None:
        meridiem = "am" if part == "morning" else "pm"
    if meridiem == "am":
        return clock.hour % 12
    if meridiem == "pm":
        return clock.hour % 12 + 12
    return clock.hour + 12 if 1 <= clock.hour <= 6 else clock.hour


def _resolve(text: str, chain: list[_Piece], now: dt.datetime) -> tuple[DueMatch, bool] | None:
    """The chain's date and time, and whether it named a date; None if it names neither."""
    date = next((p.date for p in chain if p.date is not None), None)
    clock = next((p.clock for p in chain if p.clock is not None), None)
    part = next((p.part for p in chain if p.part is not None), None)
    if date is None and clock is None and not any(p.part and p.standalone for p in chain):
        return None
    time: dt.time | None = None
    if clock is not None:
        time = dt.time(_hour(clock, part), clock.minute)
    elif part is not None:
        time = _PART_TIMES[part]
    has_date = date is not None
    if date is None:
        assert time is not None
        today, wall = now.date(), now.time()
        guessed = clock is not None and not clock.exact and not clock.meridiem and not part
        other_half = dt.time((time.hour + 12) % 24, time.minute)
        if time > wall:
            date = today
        elif guessed and other_half > wall and time.hour < 12:
            date, time = today, other_half
        else:
            date = today + dt.timedelta(days=1)
    start, end = chain[0].start, chain[-1].end
    return DueMatch(start, end, date, time, text[start:end], has_date), has_date
