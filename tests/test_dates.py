"""find_due: each family of date/time phrases against fixed "now"s, the rules for the
ambiguous ones (see py_agent/dates.py's docstring), negatives, and the eval set.

The eval set, data/eval/dates.jsonl, is written against NOW_EVAL = 2026-11-18T10:00:00+01:00,
a Wednesday (`py-agent eval --now 2026-11-18T10:00:00+01:00 data/eval/dates.jsonl`); every
line must resolve to its due_date and due_time (no due_time: no time).
"""

from __future__ import annotations

import json
import time
import zoneinfo
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as clock
from pathlib import Path

import pytest

from py_agent.dates import DueMatch, NowError, find_due, parse_now

ROOT = Path(__file__).resolve().parents[1]
TZ = timezone(timedelta(hours=1))


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


NOW_EVAL = datetime.fromisoformat("2026-11-18T10:00:00+01:00")
WED = at(2026, 11, 18)  # Wednesday 10:00
MON, TUE, FRI, SAT, SUN = (at(2026, 11, d) for d in (16, 17, 20, 21, 22))
WED_LATE = at(2026, 11, 18, 22)
NEW_YEARS_EVE = at(2026, 12, 31, 23, 30)  # a Thursday
assert WED == NOW_EVAL and [d.strftime("%a") for d in (MON, TUE, WED, FRI, SAT, SUN)] == [
    "Mon", "Tue", "Wed", "Fri", "Sat", "Sun"
]  # fmt: skip


def due(text: str, now: datetime = WED) -> DueMatch:
    match = find_due(text, now)
    assert match is not None, f"no date found in {text!r}"
    assert match.phrase == text[match.start : match.end]
    return match


# (text, now, expected date, expected time)
Case = tuple[str, datetime, date, clock | None]


def check(case: Case) -> None:
    text, now, expected, expected_time = case
    match = due(text, now)
    assert (match.date, match.time) == (expected, expected_time), (text, now, match)


def cases(*rows: Case) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "case", rows, ids=[f"{text}@{now:%a %m-%d %H:%M}" for text, now, *_ in rows]
    )


# --- today, tonight, tomorrow, ... ------------------------------------------------------


@cases(
    ("today", WED, date(2026, 11, 18), None),
    ("tonight", WED, date(2026, 11, 18), clock(20, 0)),
    ("tonite", WED, date(2026, 11, 18), clock(20, 0)),
    ("tonight at 9", WED, date(2026, 11, 18), clock(21, 0)),
    ("at 9:30 tonight", WED, date(2026, 11, 18), clock(21, 30)),
    ("tomorrow", WED, date(2026, 11, 19), None),
    ("TOMORROW!", WED, date(2026, 11, 19), None),
    ("tmrw", WED, date(2026, 11, 19), None),
    ("day after tomorrow", WED, date(2026, 11, 20), None),
    ("the day after tomorrow", WED, date(2026, 11, 20), None),
    ("yesterday", WED, date(2026, 11, 17), None),
    ("this morning", WED, date(2026, 11, 18), clock(9, 0)),
    ("this afternoon", WED, date(2026, 11, 18), clock(15, 0)),
    ("this evening", WED, date(2026, 11, 18), clock(19, 0)),
    ("tomorrow", NEW_YEARS_EVE, date(2027, 1, 1), None),
    ("day after tomorrow", at(2028, 2, 28), date(2028, 3, 1), None),
    ("yesterday", at(2027, 1, 1), date(2026, 12, 31), None),
    ("tonight", at(2026, 11, 18, 23), date(2026, 11, 18), clock(20, 0)),
)
def test_day_words(case: Case) -> None:
    check(case)


# --- weekdays ------------------------------------------------------------------------------


@cases(
    # bare / on / by X: the first X after today (said on X: next week's)
    ("friday", WED, date(2026, 11, 20), None),
    ("on friday", WED, date(2026, 11, 20), None),
    ("Friday", FRI, date(2026, 11, 27), None),
    ("wednesday", WED, date(2026, 11, 25), None),
    ("monday", SAT, date(2026, 11, 23), None),
    ("tuesday", MON, date(2026, 11, 17), None),
    ("coming friday", FRI, date(2026, 11, 27), None),
    ("this coming friday", WED, date(2026, 11, 20), None),
    # this X: on or after today
    ("this friday", WED, date(2026, 11, 20), None),
    ("this friday", FRI, date(2026, 11, 20), None),
    ("this monday", WED, date(2026, 11, 23), None),
    # next X: X of next (Monday-Sunday) week
    ("next friday", WED, date(2026, 11, 27), None),
    ("next tuesday", TUE, date(2026, 11, 24), None),
    ("next tuesday", MON, date(2026, 11, 24), None),
    ("next wednesday", WED, date(2026, 11, 25), None),
    ("next monday", SUN, date(2026, 11, 23), None),
    ("next sunday", SUN, date(2026, 11, 29), None),
    ("friday next week", WED, date(2026, 11, 27), None),
    ("on next friday", WED, date(2026, 11, 27), None),
    # abbreviations; the word-like ones need on/this/next
    ("fri", WED, date(2026, 11, 20), None),
    ("thurs", WED, date(2026, 11, 19), None),
    ("tue.", WED, date(2026, 11, 24), None),
    ("on sat", WED, date(2026, 11, 21), None),
    ("this sun", WED, date(2026, 11, 22), None),
    ("next wed", WED, date(2026, 11, 25), None),
    # over month and year ends
    ("monday", at(2026, 11, 27), date(2026, 11, 30), None),
    ("tuesday", at(2026, 11, 27), date(2026, 12, 1), None),
    ("monday", NEW_YEARS_EVE, date(2027, 1, 4), None),
    ("next friday", at(2026, 12, 28), date(2027, 1, 8), None),
)
def test_weekdays(case: Case) -> None:
    check(case)


@pytest.mark.parametrize(
    "text", ["I sat down", "buy sun cream", "c'mon", "wed", "fridays", "notes from last friday"]
)
def test_weekday_lookalikes_are_no_dates(text: str) -> None:
    assert find_due(text, WED) is None


# --- in N units ----------------------------------------------------------------------------


@cases(
    ("in 20 minutes", WED, date(2026, 11, 18), clock(10, 20)),
    ("in 30 mins", WED, date(2026, 11, 18), clock(10, 30)),
    ("in 5 min", WED, date(2026, 11, 18), clock(10, 5)),
    ("in 45m", WED, date(2026, 11, 18), clock(10, 45)),
    ("in an hour", WED, date(2026, 11, 18), clock(11, 0)),
    ("in a hour", WED, date(2026, 11, 18), clock(11, 0)),
    ("in 2h", WED, date(2026, 11, 18), clock(12, 0)),
    ("in two hours", WED, date(2026, 11, 18), clock(12, 0)),
    ("in half an hour", WED, date(2026, 11, 18), clock(10, 30)),
    ("in an hour and a half", WED, date(2026, 11, 18), clock(11, 30)),
    ("in 1.5 hours", WED, date(2026, 11, 18), clock(11, 30)),
    ("in fifteen minutes", WED, date(2026, 11, 18), clock(10, 15)),
    ("in 3 hours", at(2026, 11, 18, 22, 30), date(2026, 11, 19), clock(1, 30)),
    ("in 45 minutes", NEW_YEARS_EVE, date(2027, 1, 1), clock(0, 15)),
    ("in two days", WED, date(2026, 11, 20), None),
    ("in 2 days", WED, date(2026, 11, 20), None),
    ("in a couple of days", WED, date(2026, 11, 20), None),
    ("in a couple days", WED, date(2026, 11, 20), None),
    ("in a few days", WED, date(2026, 11, 21), None),
    ("in twelve days", WED, date(2026, 11, 30), None),
    ("within 3 days", WED, date(2026, 11, 21), None),
    ("in a week", WED, date(2026, 11, 25), None),
    ("in 3 weeks", WED, date(2026, 11, 18) + timedelta(weeks=3), None),
    ("in a fortnight", WED, date(2026, 12, 2), None),
    ("in a month", WED, date(2026, 12, 18), None),
    ("in 2 months", WED, date(2027, 1, 18), None),
    ("in a year", WED, date(2027, 11, 18), None),
    ("in a month", at(2026, 1, 31), date(2026, 2, 28), None),
    ("in a month", at(2028, 1, 31), date(2028, 2, 29), None),
    ("in one year", at(2028, 2, 29), date(2029, 2, 28), None),
    ("in 10 days", at(2026, 12, 25), date(2027, 1, 4), None),
    ("3 days from now", WED, date(2026, 11, 21), None),
    ("a week from today", WED, date(2026, 11, 25), None),
    ("in   2   days", WED, date(2026, 11, 20), None),
)
def test_relative(case: Case) -> None:
    check(case)


def test_relative_time_drops_seconds() -> None:
    assert due("in 3 hours", at(2026, 11, 18).replace(second=45)).time == clock(13, 0)


def test_relative_hours_follow_the_clock_over_a_dst_change() -> None:
    try:
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database")
    # Clocks go back from 03:00 CEST to 02:00 CET on 2026-10-25: two hours after 01:30
    # CEST is 02:30 CET, not 03:30.
    now = datetime(2026, 10, 25, 1, 30, tzinfo=berlin)
    assert (due("in 2 hours", now).date, due("in 2 hours", now).time) == (
        date(2026, 10, 25),
        clock(2, 30),
    )


@pytest.mark.parametrize("text", ["for 2 hours", "3 days", "in 1.5 days", "takes 20 minutes"])
def test_durations_are_no_due_dates(text: str) -> None:
    assert find_due(text, WED) is None


# --- day of month, month names ----------------------------------------------------------


@cases(
    ("on the 14th", WED, date(2026, 12, 14), None),
    ("the 3rd", WED, date(2026, 12, 3), None),
    ("on 14", WED, date(2026, 12, 14), None),
    ("by the 25th", WED, date(2026, 11, 25), None),
    ("on the 18th", WED, date(2026, 11, 18), None),
    ("on the 20th.", WED, date(2026, 11, 20), None),
    ("the 31st", WED, date(2026, 12, 31), None),
    ("on the 30th", at(2026, 1, 31), date(2026, 3, 30), None),
    ("on the 5th", at(2026, 12, 20), date(2027, 1, 5), None),
    ("the 29th", at(2027, 2, 1), date(2027, 3, 29), None),
    ("the 29th", at(2028, 2, 1), date(2028, 2, 29), None),
    ("the 1st of next month", WED, date(2026, 12, 1), None),
    ("the 14th of this month", WED, date(2026, 11, 14), None),
    ("the 3rd at 5pm", WED, date(2026, 12, 3), clock(17, 0)),
)
def test_day_of_month(case: Case) -> None:
    check(case)


@cases(
    ("december 14", WED, date(2026, 12, 14), None),
    ("dec 14th", WED, date(2026, 12, 14), None),
    ("Dec. 14", WED, date(2026, 12, 14), None),
    ("14 december", WED, date(2026, 12, 14), None),
    ("14th of december", WED, date(2026, 12, 14), None),
    ("on the 14th of December", WED, date(2026, 12, 14), None),
    ("december the 14th", WED, date(2026, 12, 14), None),
    ("december 14, 2027", WED, date(2027, 12, 14), None),
    ("14 dec 2027", WED, date(2027, 12, 14), None),
    ("december 14 2020", WED, date(2020, 12, 14), None),
    ("november 18", WED, date(2026, 11, 18), None),
    ("november 17", WED, date(2027, 11, 17), None),
    ("jan 5", WED, date(2027, 1, 5), None),
    ("may 5", WED, date(2027, 5, 5), None),
    ("sept 3rd", WED, date(2027, 9, 3), None),
    ("feb 29", WED, date(2028, 2, 29), None),
    ("feb 29 2028", WED, date(2028, 2, 29), None),
    ("march 5 to do taxes", WED, date(2027, 3, 5), None),
    ("jan 2", at(2026, 12, 31), date(2027, 1, 2), None),
)
def test_month_dates(case: Case) -> None:
    check(case)


@pytest.mark.parametrize(
    "text",
    [
        "the 2nd amendment",  # a day of the month followed by a word is part of a name
        "fix the light on the 3rd floor",
        "my 3rd attempt",
        "the 32nd",
        "feb 30",
        "feb 29 2027",
        "march 5 miles",
        "on 14 people",
        "12/01",  # numeric dates other than ISO are ambiguous (12 Jan or Dec 1)
        "1.12.",
        "in december",
    ],
)
def test_not_a_day_of_month(text: str) -> None:
    assert find_due(text, WED) is None


# --- ISO -----------------------------------------------------------------------------------


@cases(
    ("2026-12-01", WED, date(2026, 12, 1), None),
    ("2026-12-01T09:30", WED, date(2026, 12, 1), clock(9, 30)),
    ("2026-12-01 09:30", WED, date(2026, 12, 1), clock(9, 30)),
    ("2026-12-01T09:30:00+01:00", WED, date(2026, 12, 1), clock(9, 30)),
    ("2026-12-01 at 5pm", WED, date(2026, 12, 1), clock(17, 0)),
    ("due 2025-01-01.", WED, date(2025, 1, 1), None),
)
def test_iso(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("text", ["2026-02-30", "2026-13-01", "v2026-12-01", "2026-12-011"])
def test_not_an_iso_date(text: str) -> None:
    assert find_due(text, WED) is None


# --- weekends, weeks, months -----------------------------------------------------------


@cases(
    ("this weekend", WED, date(2026, 11, 21), None),
    ("this weekend", SAT, date(2026, 11, 21), None),
    ("this weekend", SUN, date(2026, 11, 22), None),
    ("over the weekend", WED, date(2026, 11, 21), None),
    ("next weekend", WED, date(2026, 11, 28), None),
    ("next weekend", SAT, date(2026, 11, 28), None),
    ("next weekend", SUN, date(2026, 11, 28), None),
    ("end of the month", WED, date(2026, 11, 30), None),
    ("end of month", WED, date(2026, 11, 30), None),
    ("the end of this month", at(2028, 2, 10), date(2028, 2, 29), None),
    ("end of the month", at(2026, 11, 30), date(2026, 11, 30), None),
    ("end of next month", WED, date(2026, 12, 31), None),
    ("end of next month", at(2026, 12, 5), date(2027, 1, 31), None),
    ("end of the year", WED, date(2026, 12, 31), None),
    # end of the week: the first Friday on or after today
    ("end of the week", WED, date(2026, 11, 20), None),
    ("end of week", FRI, date(2026, 11, 20), None),
    ("end of the week", SAT, date(2026, 11, 27), None),
    ("end of next week", WED, date(2026, 11, 27), None),
    # next week: Monday of next week
    ("next week", WED, date(2026, 11, 23), None),
    ("next week", MON, date(2026, 11, 23), None),
    ("next week", SUN, date(2026, 11, 23), None),
    ("next week", NEW_YEARS_EVE, date(2027, 1, 4), None),
    ("early next week", WED, date(2026, 11, 23), None),
    ("next month", WED, date(2026, 12, 1), None),
    ("next month", at(2026, 12, 15), date(2027, 1, 1), None),
    ("next year", WED, date(2027, 1, 1), None),
)
def test_periods(case: Case) -> None:
    check(case)


# --- times -------------------------------------------------------------------------------


@cases(
    # a time alone: today if still ahead, else tomorrow
    ("at 5pm", WED, date(2026, 11, 18), clock(17, 0)),
    ("5 pm", WED, date(2026, 11, 18), clock(17, 0)),
    ("5:30 p.m.", WED, date(2026, 11, 18), clock(17, 30)),
    ("5.30pm", WED, date(2026, 11, 18), clock(17, 30)),
    ("@3pm", WED, date(2026, 11, 18), clock(15, 0)),
    ("at 17:30", WED, date(2026, 11, 18), clock(17, 30)),
    ("9am", WED, date(2026, 11, 19), clock(9, 0)),
    ("at 10am", WED, date(2026, 11, 19), clock(10, 0)),  # not ahead any more
    ("at 10:01", WED, date(2026, 11, 18), clock(10, 1)),
    ("12am", WED, date(2026, 11, 19), clock(0, 0)),
    ("12pm", WED, date(2026, 11, 18), clock(12, 0)),
    ("noon", WED, date(2026, 11, 18), clock(12, 0)),
    ("at 12 noon", WED, date(2026, 11, 18), clock(12, 0)),
    ("midnight", WED, date(2026, 11, 19), clock(0, 0)),
    ("by eod", WED, date(2026, 11, 18), clock(17, 0)),
    ("at lunch", WED, date(2026, 11, 18), clock(12, 0)),
    ("in the morning", WED, date(2026, 11, 19), clock(9, 0)),
    ("in the afternoon", WED, date(2026, 11, 18), clock(15, 0)),
    ("in the evening", WED, date(2026, 11, 18), clock(19, 0)),
    ("at night", WED, date(2026, 11, 18), clock(20, 0)),
    ("in the evening", WED_LATE, date(2026, 11, 19), clock(19, 0)),
    ("at 5pm", WED_LATE, date(2026, 11, 19), clock(17, 0)),
    # no am/pm: 1-6 afternoon, 7-12 morning, unless the other half is the next one
    ("at 5", WED, date(2026, 11, 18), clock(17, 0)),
    ("by 5", WED, date(2026, 11, 18), clock(17, 0)),
    ("at 11", WED, date(2026, 11, 18), clock(11, 0)),
    ("at 9", WED, date(2026, 11, 18), clock(21, 0)),
    ("at 7 o'clock", WED, date(2026, 11, 18), clock(19, 0)),
    ("at 9", WED_LATE, date(2026, 11, 19), clock(9, 0)),
    ("at 11", WED_LATE, date(2026, 11, 18), clock(23, 0)),
    ("at 5", WED_LATE, date(2026, 11, 19), clock(17, 0)),
    ("at 5", at(2026, 11, 18, 3), date(2026, 11, 18), clock(17, 0)),
    ("at 09", WED, date(2026, 11, 19), clock(9, 0)),  # a leading zero is 24-hour
    ("at 9:30 in the morning", WED, date(2026, 11, 19), clock(9, 30)),
    ("9 in the evening", WED, date(2026, 11, 18), clock(21, 0)),
    ("at 11:30pm", NEW_YEARS_EVE, date(2027, 1, 1), clock(23, 30)),
)
def test_times(case: Case) -> None:
    check(case)


@pytest.mark.parametrize(
    "text",
    [
        "at home",
        "at the office",
        "buy 5 apples",
        "room 12",
        "13pm",
        "at 25:00",
        "at 5:75",
        "meet at 5th avenue",
        "morning run",
        "night shift notes",
        "buy lunch",
    ],
)
def test_not_a_time(text: str) -> None:
    assert find_due(text, WED) is None


# --- dates with times -------------------------------------------------------------------


@cases(
    ("tomorrow at 5pm", WED, date(2026, 11, 19), clock(17, 0)),
    ("at 5pm tomorrow", WED, date(2026, 11, 19), clock(17, 0)),
    ("tomorrow, 5pm", WED, date(2026, 11, 19), clock(17, 0)),
    ("friday 9am", WED, date(2026, 11, 20), clock(9, 0)),
    ("9am friday", WED, date(2026, 11, 20), clock(9, 0)),
    ("friday - 9am", WED, date(2026, 11, 20), clock(9, 0)),
    ("tomorrow morning", WED, date(2026, 11, 19), clock(9, 0)),
    ("friday evening", WED, date(2026, 11, 20), clock(19, 0)),
    ("sunday night", WED, date(2026, 11, 22), clock(20, 0)),
    ("tomorrow morning at 8", WED, date(2026, 11, 19), clock(8, 0)),
    ("at 8 tomorrow morning", WED, date(2026, 11, 19), clock(8, 0)),
    ("tomorrow at 9 in the evening", WED, date(2026, 11, 19), clock(21, 0)),
    ("tomorrow at 9", WED, date(2026, 11, 19), clock(9, 0)),
    ("tomorrow at 5", WED, date(2026, 11, 19), clock(17, 0)),
    ("today at 9am", WED, date(2026, 11, 18), clock(9, 0)),  # said, so kept though past
    ("friday 9am", FRI, date(2026, 11, 27), clock(9, 0)),
    ("by noon tomorrow", WED, date(2026, 11, 19), clock(12, 0)),
    ("the day after tomorrow at noon", WED, date(2026, 11, 20), clock(12, 0)),
    ("next tuesday at 10am", WED, date(2026, 11, 24), clock(10, 0)),
    ("dec 14 at 3:15pm", WED, date(2026, 12, 14), clock(15, 15)),
    ("on the 3rd at 10am", WED, date(2026, 12, 3), clock(10, 0)),
    ("in 2 days at 5pm", WED, date(2026, 11, 20), clock(17, 0)),
    ("this weekend in the morning", WED, date(2026, 11, 21), clock(9, 0)),
    ("TOMORROW   AT  5PM", WED, date(2026, 11, 19), clock(17, 0)),
    ("Tomorrow, at 5 p.m.!", WED, date(2026, 11, 19), clock(17, 0)),
)
def test_date_and_time(case: Case) -> None:
    check(case)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("Remind me to call Mom tomorrow at 5pm", "tomorrow at 5pm"),
        ("at 5pm tomorrow call the landlord", "at 5pm tomorrow"),
        ("send it friday 9am please", "friday 9am"),
        ("renew my passport by december 14", "december 14"),
        ("pay rent on the 1st!", "on the 1st"),
        ("water plants tonight at 9 ok", "tonight at 9"),
        ("check the oven in 20 minutes", "in 20 minutes"),
        ("plan the trip for next weekend", "next weekend"),
        ("report due end of the month.", "end of the month"),
    ],
)
def test_span_covers_the_whole_phrase(text: str, phrase: str) -> None:
    match = due(text)
    assert match.phrase == phrase
    assert text[match.start : match.end] == phrase


def test_a_date_wins_over_an_earlier_lone_time() -> None:
    match = due("at 3pm call about the meeting on friday")
    assert (match.phrase, match.date, match.time) == ("on friday", date(2026, 11, 20), None)


def test_the_earliest_date_wins() -> None:
    assert due("tomorrow or friday").date == date(2026, 11, 19)
    assert due("friday or tomorrow").date == date(2026, 11, 20)


def test_pieces_apart_do_not_join() -> None:
    match = due("tomorrow call Bob at 5pm")
    assert (match.phrase, match.time) == ("tomorrow", None)


# --- inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "buy milk", "call 555-1234", "version 2.0.1"])
def test_no_date(text: str) -> None:
    assert find_due(text, WED) is None


def test_naive_now_is_read_as_local_time() -> None:
    match = due("tomorrow at 5pm", datetime(2026, 11, 18, 10, 0))
    assert (match.date, match.time) == (date(2026, 11, 19), clock(17, 0))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="'text' must be a string"):
        find_due(None, WED)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'now' must be a datetime"):
        find_due("tomorrow", date(2026, 11, 18))  # type: ignore[arg-type]


def test_long_text_is_fast() -> None:
    text = ("call 5 people about the 2nd amendment at home on the 3rd floor in a while " * 30)[
        :2000
    ] + " tomorrow at 5pm"
    started = time.perf_counter()
    match = due(text)
    elapsed = time.perf_counter() - started
    assert match.phrase == "tomorrow at 5pm"
    assert elapsed < 0.1, f"{elapsed * 1000:.1f} ms for 2,000 characters"


# --- the eval set -------------------------------------------------------------------------


def eval_rows() -> list[dict[str, object]]:
    lines = (ROOT / "data" / "eval" / "dates.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_eval_set_covers_every_family() -> None:
    rows = eval_rows()
    assert len(rows) >= 40
    assert all(row["intent"] == "task.add" for row in rows)
    texts = " ".join(str(row["text"]).lower() for row in rows)
    for family in [
        "today", "tonight", "tomorrow", "day after tomorrow", "yesterday", "next tuesday",
        "this friday", "in 20 minutes", "in an hour", "in two days", "a couple of weeks",
        "on the 1st", "december 14", "14th of january", "2026-12-20", "2026-12-01t09:30",
        "this weekend", "next weekend", "end of the month", "end of the week", "next week",
        "next month", "at noon", "at midnight", "in the morning", "in the afternoon",
        "in the evening", "at 5pm", "friday 9am",
    ]:  # fmt: skip
        assert family in texts, family
    assert sum(row["due_date"] is None for row in rows) >= 3


@pytest.mark.parametrize("row", eval_rows(), ids=lambda row: str(row["text"]))
def test_eval_set(row: dict[str, object]) -> None:
    match = find_due(str(row["text"]), NOW_EVAL)
    got_date = match.date.isoformat() if match else None
    got_time = match.time.strftime("%H:%M") if match and match.time else None
    assert (got_date, got_time) == (row["due_date"], row.get("due_time")), match


# --- whether the phrase named the date ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dated"),
    [
        ("at 5pm", False),  # the date is inferred: today if ahead, else tomorrow
        ("at 9", False),
        ("in the morning", False),
        ("by noon", False),
        ("tomorrow", True),
        ("tonight", True),
        ("tomorrow at 5pm", True),
        ("friday 9am", True),
        ("in 2 hours", True),
        ("2026-12-01T09:30", True),
    ],
)
def test_dated_says_whether_the_phrase_named_the_date(text: str, dated: bool) -> None:
    assert due(text).dated is dated


def test_dated_defaults_to_true_for_callers_that_build_matches() -> None:
    assert DueMatch(0, 0, date(2026, 11, 18), None, "").dated is True


@pytest.mark.parametrize(
    "text",
    [
        "remind me in 99999999 days",
        "call mum in 99999999999 minutes",
        "renew it in 9000 years",
        "in 999999 months pay the rent",
    ],
)
def test_a_date_past_any_calendar_is_no_date_not_a_crash(text: str) -> None:
    assert find_due(text, datetime(9000, 12, 31, 23, 0, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("9999-12-31T23:59:59+14:00", "between the years 1900 and 9000"),
        ("0001-01-01T00:00:00-14:00", "between the years 1900 and 9000"),
        ("1899-12-31T23:59:59+00:00", "between the years 1900 and 9000"),
        ("2026-11-18T10:00:00", "must carry its UTC offset"),
        ("tomorrow", "ISO 8601"),
        (1763456400, "ISO 8601"),
        ("2026-11-18T10:00:00+01:00" + " " * 60, "ISO 8601"),
    ],
)
def test_now_outside_what_the_agent_reckons_with_is_refused(raw: object, problem: str) -> None:
    with pytest.raises(NowError, match=problem):
        parse_now(raw)


def test_now_at_the_edges_is_taken() -> None:
    assert parse_now("1900-01-01T00:00:00+00:00").year == 1900
    assert parse_now("9000-12-31T23:59:59+00:00") == datetime(9000, 12, 31, 23, 59, 59, tzinfo=UTC)
