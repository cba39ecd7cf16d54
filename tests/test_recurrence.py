"""py_agent.recurrence: repeat phrases, RRULE validation and canonical form, occurrences (month
ends, leap years, weekends, INTERVAL phases, completing early/on time/late), descriptions, and
properties checked against an independent reading of each rule.

NOW is Wednesday 2026-11-18 (the labelling guide's "now").
"""

from __future__ import annotations

import calendar
import time
from datetime import date, timedelta
from datetime import time as clock

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from py_agent.recurrence import (
    RecurrenceError,
    canonical_rule,
    describe_rule,
    find_repeat,
    first_occurrence,
    next_occurrence,
)

TODAY = date(2026, 11, 18)  # a Wednesday
assert TODAY.strftime("%a") == "Wed"


# --- find_repeat: every phrase of the guide's repeat table, and variants ----------------------

# (phrase, rule, first due date from TODAY, time the phrase implies)
TABLE = [
    ("every day", "FREQ=DAILY", "2026-11-18", None),
    ("daily", "FREQ=DAILY", "2026-11-18", None),
    ("each day", "FREQ=DAILY", "2026-11-18", None),
    ("everyday", "FREQ=DAILY", "2026-11-18", None),
    ("every 3 days", "FREQ=DAILY;INTERVAL=3", "2026-11-18", None),
    ("every other day", "FREQ=DAILY;INTERVAL=2", "2026-11-18", None),
    ("every weekday", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "2026-11-18", None),
    ("on weekdays", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "2026-11-18", None),
    ("every weekend", "FREQ=WEEKLY;BYDAY=SA,SU", "2026-11-21", None),
    ("on weekends", "FREQ=WEEKLY;BYDAY=SA,SU", "2026-11-21", None),
    ("every monday", "FREQ=WEEKLY;BYDAY=MO", "2026-11-23", None),
    ("mondays", "FREQ=WEEKLY;BYDAY=MO", "2026-11-23", None),
    ("each monday", "FREQ=WEEKLY;BYDAY=MO", "2026-11-23", None),
    ("weekly on monday", "FREQ=WEEKLY;BYDAY=MO", "2026-11-23", None),
    ("weekly on mondays", "FREQ=WEEKLY;BYDAY=MO", "2026-11-23", None),
    ("every wednesday", "FREQ=WEEKLY;BYDAY=WE", "2026-11-18", None),  # on or after today
    ("every tuesday and thursday", "FREQ=WEEKLY;BYDAY=TU,TH", "2026-11-19", None),
    ("every monday and thursday", "FREQ=WEEKLY;BYDAY=MO,TH", "2026-11-19", None),
    ("every mon, wed and fri", "FREQ=WEEKLY;BYDAY=MO,WE,FR", "2026-11-18", None),
    ("every mon/wed/fri", "FREQ=WEEKLY;BYDAY=MO,WE,FR", "2026-11-18", None),
    ("on tuesdays and thursdays", "FREQ=WEEKLY;BYDAY=TU,TH", "2026-11-19", None),
    ("every monday to friday", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "2026-11-18", None),
    ("every fri-mon", "FREQ=WEEKLY;BYDAY=MO,FR,SA,SU", "2026-11-20", None),
    ("every week", "FREQ=WEEKLY", "2026-11-18", None),
    ("weekly", "FREQ=WEEKLY", "2026-11-18", None),
    ("once a week", "FREQ=WEEKLY", "2026-11-18", None),
    ("every 2 weeks", "FREQ=WEEKLY;INTERVAL=2", "2026-11-18", None),
    ("every other week", "FREQ=WEEKLY;INTERVAL=2", "2026-11-18", None),
    ("biweekly", "FREQ=WEEKLY;INTERVAL=2", "2026-11-18", None),
    ("fortnightly", "FREQ=WEEKLY;INTERVAL=2", "2026-11-18", None),
    ("every fortnight", "FREQ=WEEKLY;INTERVAL=2", "2026-11-18", None),
    ("every other friday", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", "2026-11-20", None),
    ("every 2 weeks on friday", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", "2026-11-20", None),
    ("biweekly on fridays", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", "2026-11-20", None),
    ("every month", "FREQ=MONTHLY", "2026-11-18", None),
    ("monthly", "FREQ=MONTHLY", "2026-11-18", None),
    ("every 3 months", "FREQ=MONTHLY;INTERVAL=3", "2026-11-18", None),
    ("quarterly", "FREQ=MONTHLY;INTERVAL=3", "2026-11-18", None),
    ("every month on the 1st", "FREQ=MONTHLY;BYMONTHDAY=1", "2026-12-01", None),
    ("on the 1st of every month", "FREQ=MONTHLY;BYMONTHDAY=1", "2026-12-01", None),
    ("the 15th of each month", "FREQ=MONTHLY;BYMONTHDAY=15", "2026-12-15", None),
    ("on the 15th of every month", "FREQ=MONTHLY;BYMONTHDAY=15", "2026-12-15", None),
    ("monthly on the 18th", "FREQ=MONTHLY;BYMONTHDAY=18", "2026-11-18", None),
    ("every 15th", "FREQ=MONTHLY;BYMONTHDAY=15", "2026-12-15", None),
    ("every 15th of the month", "FREQ=MONTHLY;BYMONTHDAY=15", "2026-12-15", None),
    ("on the first of every month", "FREQ=MONTHLY;BYMONTHDAY=1", "2026-12-01", None),
    ("the 1st and 15th of every month", "FREQ=MONTHLY;BYMONTHDAY=1,15", "2026-12-01", None),
    ("every month on the 1st and 15th", "FREQ=MONTHLY;BYMONTHDAY=1,15", "2026-12-01", None),
    ("the last day of every month", "FREQ=MONTHLY;BYMONTHDAY=-1", "2026-11-30", None),
    ("every last day of the month", "FREQ=MONTHLY;BYMONTHDAY=-1", "2026-11-30", None),
    ("at the end of every month", "FREQ=MONTHLY;BYMONTHDAY=-1", "2026-11-30", None),
    ("the first monday of every month", "FREQ=MONTHLY;BYDAY=1MO", "2026-12-07", None),
    ("every first monday of the month", "FREQ=MONTHLY;BYDAY=1MO", "2026-12-07", None),
    ("every month on the last friday", "FREQ=MONTHLY;BYDAY=-1FR", "2026-11-27", None),
    ("monthly on the 2nd tuesday", "FREQ=MONTHLY;BYDAY=2TU", "2026-12-08", None),
    ("every second tuesday of the month", "FREQ=MONTHLY;BYDAY=2TU", "2026-12-08", None),
    ("every third wednesday of the month", "FREQ=MONTHLY;BYDAY=3WE", "2026-11-18", None),
    ("every year", "FREQ=YEARLY", "2026-11-18", None),
    ("yearly", "FREQ=YEARLY", "2026-11-18", None),
    ("annually", "FREQ=YEARLY", "2026-11-18", None),
    ("every year on march 3", "FREQ=YEARLY;BYMONTHDAY=3;BYMONTH=3", "2027-03-03", None),
    ("every march 3rd", "FREQ=YEARLY;BYMONTHDAY=3;BYMONTH=3", "2027-03-03", None),
    ("every 3rd of march", "FREQ=YEARLY;BYMONTHDAY=3;BYMONTH=3", "2027-03-03", None),
    ("on march 3 every year", "FREQ=YEARLY;BYMONTHDAY=3;BYMONTH=3", "2027-03-03", None),
    ("annually on 3 march", "FREQ=YEARLY;BYMONTHDAY=3;BYMONTH=3", "2027-03-03", None),
    ("every feb 29", "FREQ=YEARLY;BYMONTHDAY=29;BYMONTH=2", "2028-02-29", None),
    ("every morning", "FREQ=DAILY", "2026-11-18", clock(9)),
    ("each morning", "FREQ=DAILY", "2026-11-18", clock(9)),
    ("every afternoon", "FREQ=DAILY", "2026-11-18", clock(15)),
    ("every evening", "FREQ=DAILY", "2026-11-18", clock(19)),
    ("every night", "FREQ=DAILY", "2026-11-18", clock(20)),
    ("nightly", "FREQ=DAILY", "2026-11-18", clock(20)),
    ("every monday morning", "FREQ=WEEKLY;BYDAY=MO", "2026-11-23", clock(9)),
    ("monday mornings", "FREQ=WEEKLY;BYDAY=MO", "2026-11-23", clock(9)),
    ("on tuesday nights", "FREQ=WEEKLY;BYDAY=TU", "2026-11-24", clock(20)),
    ("every weekday morning", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "2026-11-18", clock(9)),
    ("weekday evenings", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "2026-11-18", clock(19)),
    ("every couple of days", "FREQ=DAILY;INTERVAL=2", "2026-11-18", None),
    ("EVERY   Monday", "FREQ=WEEKLY;BYDAY=MO", "2026-11-23", None),
]


@pytest.mark.parametrize(("phrase", "rule", "first", "implied"), TABLE, ids=[r[0] for r in TABLE])
def test_repeat_phrase(phrase: str, rule: str, first: str, implied: clock | None) -> None:
    text = f"water the plants {phrase} please"
    match = find_repeat(text)
    assert match is not None, phrase
    assert (match.rule, match.phrase, match.time) == (rule, phrase, implied)
    assert text[match.start : match.end] == phrase
    assert first_occurrence(match.rule, TODAY).isoformat() == first


@pytest.mark.parametrize(
    "text",
    [
        "call grandma every year on my birthday",  # a yearly repeat without its date
        "on monday",  # a date, not a repeat
        "call bob monday or tuesday",
        "mon and wed",
        "the first monday of the month",  # which month is not said
        "the 15th of the month",
        "send the weekly report",  # adjectives, not repeats
        "daily standup notes",
        "review the monthly budget",
        "every few days",
        "twice a week",
        "every time it rains",
        "everything is fine",
        "every 2nd try",
        "every feb 30",
        "every 400 days",  # INTERVAL above 366
        "",
    ],
)
def test_no_repeat(text: str) -> None:
    assert find_repeat(text) is None


def test_the_longest_phrase_wins() -> None:
    match = find_repeat("every second tuesday of the month and every day")
    assert match is not None and match.rule == "FREQ=MONTHLY;BYDAY=2TU"


def test_find_repeat_refuses_non_strings() -> None:
    with pytest.raises(TypeError, match="'text' must be a string"):
        find_repeat(None)  # type: ignore[arg-type]


# --- canonical_rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("FREQ=WEEKLY;BYDAY=MO", "FREQ=WEEKLY;BYDAY=MO"),
        ("RRULE:freq=weekly;byday=fr,mo", "FREQ=WEEKLY;BYDAY=MO,FR"),
        (" FREQ = DAILY ; INTERVAL = 1 ; ", "FREQ=DAILY"),
        ("INTERVAL=2;FREQ=WEEKLY;BYDAY=FR", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR"),
        ("FREQ=WEEKLY;BYDAY=MO,MO,TU", "FREQ=WEEKLY;BYDAY=MO,TU"),
        ("FREQ=DAILY;BYDAY=SA,SU", "FREQ=WEEKLY;BYDAY=SA,SU"),  # the same series
        ("FREQ=MONTHLY;BYMONTHDAY=-1,15,1", "FREQ=MONTHLY;BYMONTHDAY=1,15,-1"),
        ("FREQ=MONTHLY;BYDAY=-1FR,+1MO", "FREQ=MONTHLY;BYDAY=1MO,-1FR"),
        ("FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=3", "FREQ=YEARLY;BYMONTHDAY=3;BYMONTH=3"),
        ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", "FREQ=YEARLY;BYDAY=4TH;BYMONTH=11"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTHDAY=29;BYMONTH=2"),
        ("FREQ=DAILY;INTERVAL=366", "FREQ=DAILY;INTERVAL=366"),
    ],
)
def test_canonical_rule(given: str, canonical: str) -> None:
    assert canonical_rule(given) == canonical
    assert canonical_rule(canonical) == canonical


@pytest.mark.parametrize(
    ("given", "names"),
    [
        (None, "must be a string, got NoneType"),
        (7, "must be a string, got int"),
        ("", "repeat rule is empty"),
        ("RRULE:", "repeat rule is empty"),
        ("FREQ=WEEKLY;" + "BYDAY=MO," * 30, "longer than 200 characters"),
        ("BYDAY=MO", "has no FREQ"),
        ("FREQ", "'FREQ' is not NAME=VALUE"),
        ("FREQ=HOURLY", "FREQ=HOURLY is not supported"),
        ("FREQ=SECONDLY", "FREQ=SECONDLY is not supported"),
        ("FREQ=DAILY;COUNT=3", "COUNT is not supported"),
        ("FREQ=DAILY;UNTIL=20261231", "UNTIL is not supported"),
        ("FREQ=DAILY;BYHOUR=9", "BYHOUR is not supported"),
        ("FREQ=WEEKLY;WKST=SU", "WKST is not supported"),
        ("FREQ=DAILY;FREQ=WEEKLY", "gives FREQ twice"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be a whole number from 1 to 366, got '0'"),
        ("FREQ=DAILY;INTERVAL=367", "INTERVAL must be a whole number from 1 to 366"),
        ("FREQ=DAILY;INTERVAL=two", "INTERVAL must be a whole number"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY item 'XX'"),
        ("FREQ=WEEKLY;BYDAY=", "BYDAY item ''"),
        ("FREQ=WEEKLY;BYDAY=1MO", "need FREQ=MONTHLY or YEARLY"),
        ("FREQ=MONTHLY;BYDAY=6MO", "position must be 1 to 5"),
        ("FREQ=MONTHLY;BYDAY=0MO", "position must be 1 to 5"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY item '32' must be 1 to 31 or -1 to -31"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY item '0'"),
        ("FREQ=YEARLY;BYMONTH=13;BYMONTHDAY=1", "BYMONTH item '13' must be 1 to 12"),
        ("FREQ=YEARLY;BYMONTH=-1;BYMONTHDAY=1", "BYMONTH item '-1'"),
        ("FREQ=MONTHLY;BYMONTH=3", "BYMONTH is supported only with FREQ=YEARLY"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "not allowed with FREQ=WEEKLY"),
        ("FREQ=DAILY;BYMONTHDAY=1", "BYMONTHDAY is not supported with FREQ=DAILY"),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", "BYDAY with FREQ=DAILY"),
        ("FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13", "BYDAY and BYMONTHDAY together"),
        ("FREQ=MONTHLY;BYDAY=TU,1MO", "BYDAY mixes days with positions"),
        ("FREQ=YEARLY;BYMONTHDAY=1", "BYMONTHDAY with FREQ=YEARLY needs BYMONTH"),
        ("FREQ=YEARLY;BYDAY=20MO", "position must be 1 to 5"),
        ("FREQ=YEARLY;BYDAY=MO", "BYDAY with FREQ=YEARLY needs BYMONTH"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "no date matches BYMONTHDAY=30;BYMONTH=2"),
        ("FREQ=YEARLY;BYMONTH=4,6;BYMONTHDAY=31", "no date matches"),
        ("garbage", "'garbage' is not NAME=VALUE"),
    ],
)
def test_refused_rules_name_the_part(given: object, names: str) -> None:
    with pytest.raises(RecurrenceError) as refused:
        canonical_rule(given)
    assert names in str(refused.value)


def test_recurrence_error_is_a_value_error() -> None:
    assert issubclass(RecurrenceError, ValueError)


# --- occurrences ------------------------------------------------------------------------


def dates(rule: str, start: date, count: int) -> list[str]:
    """The first ``count`` dates of the series anchored at ``start``, by completing on time."""
    due = first_occurrence(rule, start)
    out = [due]
    while len(out) < count:
        due = next_occurrence(rule, due, due)
        out.append(due)
    return [d.isoformat() for d in out]


def test_bymonthday_31_skips_short_months() -> None:
    # RFC 5545: a BYMONTHDAY a month lacks is skipped, not moved to the month's end.
    assert dates("FREQ=MONTHLY;BYMONTHDAY=31", TODAY, 5) == [
        "2026-12-31", "2027-01-31", "2027-03-31", "2027-05-31", "2027-07-31",
    ]  # fmt: skip


def test_bymonthday_minus_one_is_each_months_last_day() -> None:
    assert dates("FREQ=MONTHLY;BYMONTHDAY=-1", TODAY, 5) == [
        "2026-11-30", "2026-12-31", "2027-01-31", "2027-02-28", "2027-03-31",
    ]  # fmt: skip
    assert dates("FREQ=MONTHLY;BYMONTHDAY=-1", date(2028, 1, 15), 3) == [
        "2028-01-31", "2028-02-29", "2028-03-31",
    ]  # fmt: skip


def test_monthly_anchored_on_the_31st_skips_months_without_one() -> None:
    assert dates("FREQ=MONTHLY", date(2027, 1, 31), 4) == [
        "2027-01-31", "2027-03-31", "2027-05-31", "2027-07-31",
    ]  # fmt: skip
    # ... and on the 30th it skips only February.
    assert dates("FREQ=MONTHLY", date(2027, 1, 30), 3) == ["2027-01-30", "2027-03-30", "2027-04-30"]


def test_bymonthday_29_and_30_in_february() -> None:
    assert dates("FREQ=MONTHLY;BYMONTHDAY=29", date(2027, 1, 1), 3) == [
        "2027-01-29", "2027-03-29", "2027-04-29",
    ]  # fmt: skip
    assert dates("FREQ=MONTHLY;BYMONTHDAY=29", date(2028, 1, 30), 2) == ["2028-02-29", "2028-03-29"]


def test_leap_day_repeats_in_leap_years_only() -> None:
    rule = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"
    assert dates(rule, TODAY, 3) == ["2028-02-29", "2032-02-29", "2036-02-29"]
    # 2100 is not a leap year: eight years between two February 29ths.
    assert next_occurrence(rule, date(2096, 2, 29), date(2096, 3, 1)) == date(2104, 2, 29)
    # FREQ=YEARLY anchored on February 29th does the same.
    assert dates("FREQ=YEARLY", date(2028, 2, 29), 2) == ["2028-02-29", "2032-02-29"]
    assert dates("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1", TODAY, 3) == [
        "2027-02-28", "2028-02-29", "2029-02-28",
    ]  # fmt: skip


def test_a_series_with_no_date_left_is_an_error_not_a_hang() -> None:
    started = time.perf_counter()
    with pytest.raises(RecurrenceError, match="has no date after"):
        # Every 4 years from 2027: never a leap year.
        next_occurrence("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", date(2027, 2, 28), TODAY)
    with pytest.raises(RecurrenceError, match="has no date after"):
        # Every April (anchored there): April has no 31st.
        next_occurrence("FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31", date(2026, 4, 5), TODAY)
    with pytest.raises(RecurrenceError, match="has no date after"):
        next_occurrence("FREQ=DAILY", date(9999, 12, 31), date(9999, 12, 31))
    assert time.perf_counter() - started < 0.5


def test_weekdays_roll_over_the_weekend() -> None:
    rule = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
    friday, saturday, monday = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 23)
    assert next_occurrence(rule, friday, friday) == monday
    assert first_occurrence(rule, saturday) == monday
    assert next_occurrence(rule, friday, saturday) == monday
    weekend = "FREQ=WEEKLY;BYDAY=SA,SU"
    assert next_occurrence(weekend, saturday, saturday) == date(2026, 11, 22)
    assert next_occurrence(weekend, date(2026, 11, 22), date(2026, 11, 22)) == date(2026, 11, 28)


def test_interval_keeps_its_phase_from_the_due_date() -> None:
    every_other_friday = "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR"
    due = date(2026, 11, 20)
    assert next_occurrence(every_other_friday, due, due) == date(2026, 12, 4)
    # Completed three weeks late (Thursday Dec 10): the next Friday of the series, Dec 18,
    # not the next Friday, Dec 11.
    assert next_occurrence(every_other_friday, due, date(2026, 12, 10)) == date(2026, 12, 18)
    assert next_occurrence("FREQ=DAILY;INTERVAL=3", TODAY, date(2026, 11, 25)) == date(2026, 11, 27)
    assert next_occurrence("FREQ=MONTHLY;INTERVAL=2", TODAY, date(2027, 2, 1)) == date(2027, 3, 18)
    # Every other week from a Wednesday, on Mondays and Thursdays: this week's Thursday, then
    # the Monday two weeks on.
    assert dates("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH", TODAY, 3) == [
        "2026-11-19", "2026-11-30", "2026-12-03",
    ]  # fmt: skip


def test_completing_early_on_time_and_late() -> None:
    rule, due = "FREQ=WEEKLY;BYDAY=MO", date(2026, 11, 23)
    assert next_occurrence(rule, due, date(2026, 11, 18)) == date(2026, 11, 30)  # early
    assert next_occurrence(rule, due, due) == date(2026, 11, 30)  # on time
    assert next_occurrence(rule, due, date(2026, 12, 16)) == date(2026, 12, 21)  # weeks late
    assert next_occurrence(rule, due, date(2026, 12, 21)) == date(2026, 12, 28)  # late, on a Monday
    # Years late, a daily rule is still quick.
    started = time.perf_counter()
    assert next_occurrence("FREQ=DAILY", date(2000, 1, 1), date(2040, 6, 1)) == date(2040, 6, 2)
    assert time.perf_counter() - started < 0.05


def test_a_due_date_off_the_series_moves_onto_it() -> None:
    # A "every monday" task the user moved to a Tuesday: done, it goes to the next Monday.
    assert next_occurrence("FREQ=WEEKLY;BYDAY=MO", date(2026, 11, 24), date(2026, 11, 24)) == date(
        2026, 11, 30
    )


def test_first_occurrence_from_a_start_date() -> None:
    assert first_occurrence("FREQ=WEEKLY;BYDAY=MO", TODAY, date(2026, 11, 30)) == date(2026, 11, 30)
    monthly = "FREQ=MONTHLY;BYMONTHDAY=1"
    assert first_occurrence(monthly, TODAY, date(2027, 1, 2)) == date(2027, 2, 1)
    assert first_occurrence("FREQ=DAILY", TODAY, date(2026, 12, 1)) == date(2026, 12, 1)


def test_occurrences_refuse_bad_arguments() -> None:
    with pytest.raises(RecurrenceError, match="COUNT is not supported"):
        next_occurrence("FREQ=DAILY;COUNT=2", TODAY, TODAY)
    with pytest.raises(TypeError, match="'due' must be a date"):
        next_occurrence("FREQ=DAILY", "2026-11-18", TODAY)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'today' must be a date"):
        first_occurrence("FREQ=DAILY", None)  # type: ignore[arg-type]


# --- describe_rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("FREQ=DAILY", "every day"),
        ("FREQ=DAILY;INTERVAL=3", "every 3 days"),
        ("FREQ=WEEKLY", "every week"),
        ("FREQ=WEEKLY;INTERVAL=2", "every 2 weeks"),
        ("FREQ=WEEKLY;BYDAY=MO", "every Monday"),
        ("FREQ=WEEKLY;BYDAY=TU,TH", "every Tuesday and Thursday"),
        ("FREQ=WEEKLY;BYDAY=MO,WE,FR", "every Monday, Wednesday and Friday"),
        ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "every weekday"),
        ("FREQ=WEEKLY;BYDAY=SA,SU", "every Saturday and Sunday"),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", "every other Friday"),
        ("FREQ=WEEKLY;INTERVAL=3;BYDAY=FR", "every 3 weeks on Friday"),
        ("FREQ=MONTHLY", "every month"),
        ("FREQ=MONTHLY;INTERVAL=3", "every 3 months"),
        ("FREQ=MONTHLY;BYMONTHDAY=1", "every month on the 1st"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", "every month on the 1st and the 15th"),
        ("FREQ=MONTHLY;BYMONTHDAY=22", "every month on the 22nd"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", "every month on the last day"),
        ("FREQ=MONTHLY;BYMONTHDAY=-2", "every month on the 2nd to last day"),
        ("FREQ=MONTHLY;BYDAY=1MO", "every month on the first Monday"),
        ("FREQ=MONTHLY;BYDAY=-1FR", "every month on the last Friday"),
        ("FREQ=YEARLY", "every year"),
        ("FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=3", "every year on 3 March"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1", "every year on the last day of February"),
        ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", "every year on the fourth Thursday of November"),
        ("FREQ=YEARLY;BYMONTH=6", "every year in June"),
        ("FREQ=YEARLY;INTERVAL=2", "every 2 years"),
    ],
)
def test_describe_rule(rule: str, words: str) -> None:
    assert describe_rule(rule) == words


def test_describe_rule_refuses_what_canonical_rule_refuses() -> None:
    with pytest.raises(RecurrenceError):
        describe_rule("FREQ=HOURLY")


# --- properties ----------------------------------------------------------------------------

DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@st.composite
def rules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}"]
    interval = draw(st.one_of(st.just(1), st.integers(1, 5), st.integers(1, 366)))
    parts.append(f"INTERVAL={interval}")
    days = draw(st.lists(st.sampled_from(DAY_CODES), max_size=3, unique=True))
    if freq == "WEEKLY" and days:
        parts.append("BYDAY=" + ",".join(days))
    if freq in ("MONTHLY", "YEARLY"):
        kind = draw(st.sampled_from(["none", "monthday", "day"]))
        if kind == "monthday":
            mdays = draw(st.lists(st.integers(-31, 31).filter(bool), min_size=1, max_size=3))
            parts.append("BYMONTHDAY=" + ",".join(map(str, mdays)))
        elif kind == "day" and days:
            if draw(st.booleans()):
                positions = draw(st.lists(st.sampled_from([1, 2, 3, 4, 5, -1, -2, -5]), min_size=1))
            else:
                positions = [0]
            items = [f"{p or ''}{d}" for d in days for p in positions[:2]]
            parts.append("BYDAY=" + ",".join(items))
        if freq == "YEARLY" and (kind != "none" or draw(st.booleans())):
            months = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3))
            parts.append("BYMONTH=" + ",".join(map(str, months)))
    text = ";".join(draw(st.permutations(parts)))
    try:
        return canonical_rule(text)
    except RecurrenceError:
        assume(False)
        raise


def _nth_weekdays(year: int, month: int, weekday: int) -> list[int]:
    first, length = calendar.monthrange(year, month)
    return list(range(1 + (weekday - first) % 7, length + 1, 7))


def in_series(rule: str, anchor: date, day: date) -> bool:
    """Whether ``day`` is a date of ``rule``'s series anchored at ``anchor``: RFC 5545 read
    directly, independently of dateutil."""
    parts = dict(part.split("=") for part in rule.split(";"))
    freq, interval = parts["FREQ"], int(parts.get("INTERVAL", "1"))
    byday = [(DAY_CODES.index(item[-2:]), int(item[:-2] or 0)) for item in
             parts["BYDAY"].split(",")] if "BYDAY" in parts else []  # fmt: skip
    mdays = [int(d) for d in parts["BYMONTHDAY"].split(",")] if "BYMONTHDAY" in parts else []
    months = [int(m) for m in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else []
    if day < anchor:
        return False
    length = calendar.monthrange(day.year, day.month)[1]
    if freq == "DAILY":
        return (day - anchor).days % interval == 0
    if freq == "WEEKLY":
        monday, anchor_monday = (d - timedelta(days=d.weekday()) for d in (day, anchor))
        weeks = (monday - anchor_monday).days
        weekdays = [d for d, _ in byday] or [anchor.weekday()]
        return weeks // 7 % interval == 0 and day.weekday() in weekdays
    if freq == "MONTHLY":
        phase = (day.year * 12 + day.month - anchor.year * 12 - anchor.month) % interval == 0
    else:
        phase = (day.year - anchor.year) % interval == 0
        if day.month not in (months or [anchor.month]):
            return False
    if not phase:
        return False
    if byday:
        for weekday, n in byday:
            matching = _nth_weekdays(day.year, day.month, weekday)
            if (n == 0 and day.day in matching) or (
                n != 0 and -len(matching) <= (n - 1 if n > 0 else n) < len(matching)
                and matching[n - 1 if n > 0 else n] == day.day
            ):  # fmt: skip
                return True
        return False
    wanted = mdays or [anchor.day]
    return any(d == day.day or (d < 0 and length + 1 + d == day.day) for d in wanted)


anchors = st.dates(date(2000, 1, 1), date(2100, 12, 31))


@settings(max_examples=300, deadline=None)
@given(rules(), anchors, st.integers(0, 800))
def test_next_occurrence_is_the_next_date_of_the_series(rule: str, due: date, late: int) -> None:
    today = due + timedelta(days=late)
    try:
        got = next_occurrence(rule, due, today)
    except RecurrenceError:
        # Only when the series has no date left: certainly none in the next 3,000 days.
        ref = max(due, today)
        assert not any(in_series(rule, due, ref + timedelta(days=k)) for k in range(1, 3000))
        return
    ref = max(due, today)
    assert got > ref
    assert in_series(rule, due, got), (rule, due, today, got)
    gap = (got - ref).days
    if gap <= 3000:
        assert not any(in_series(rule, due, ref + timedelta(days=k)) for k in range(1, gap))


@settings(max_examples=300, deadline=None)
@given(rules(), anchors, st.one_of(st.none(), anchors))
def test_first_occurrence_is_the_first_date_on_or_after_the_start(
    rule: str, today: date, start: date | None
) -> None:
    anchor = start or today
    try:
        got = first_occurrence(rule, today, start)
    except RecurrenceError:
        assert not any(in_series(rule, anchor, anchor + timedelta(days=k)) for k in range(3000))
        return
    assert got >= anchor and in_series(rule, anchor, got)
    if (got - anchor).days <= 3000:
        assert not any(in_series(rule, anchor, anchor + timedelta(days=k)) for k in
                       range((got - anchor).days))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(rules(), st.randoms(use_true_random=False))
def test_canonical_form_is_a_fixed_point_whatever_the_order_and_case(rule: str, rng) -> None:
    parts = rule.split(";")
    rng.shuffle(parts)
    shuffled = ";".join(p.lower() if rng.random() < 0.5 else p for p in parts)
    assert canonical_rule(shuffled) == rule
    assert canonical_rule("RRULE:" + rule) == rule
    assert describe_rule(rule).startswith("every ")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_canonical_rule_returns_or_refuses(text: str) -> None:
    try:
        rule = canonical_rule(text)
    except RecurrenceError:
        return
    assert canonical_rule(rule) == rule


REPEAT_WORDS = [
    "every", "each", "other", "2", "monday", "mondays", "and", "the", "1st", "of", "month",
    "last", "day", "year", "march", "3rd", "on", "weekly", "morning", "weekdays", "first",
    "week", "fortnightly", "31st", "feb", "29",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=6), st.sampled_from(REPEAT_WORDS)), max_size=10))
def test_find_repeat_is_total_and_its_rule_canonical(words: list[str]) -> None:
    text = " ".join(words)
    match = find_repeat(text)
    if match is not None:
        assert text[match.start : match.end] == match.phrase
        assert canonical_rule(match.rule) == match.rule
        first_occurrence(match.rule, TODAY)


def test_find_repeat_is_fast() -> None:
    texts = [row[0] for row in TABLE] + ["remind me to call mom tomorrow at 5pm", "buy milk"]
    started = time.perf_counter()
    for _ in range(20):
        for text in texts:
            find_repeat(f"remind me {text} to water the plants")
    per_call = (time.perf_counter() - started) / (20 * len(texts))
    assert per_call < 0.001, f"{per_call * 1000:.2f} ms per call"


SPARSE = [
    "FREQ=MONTHLY;INTERVAL={};BYMONTHDAY=31", "FREQ=MONTHLY;INTERVAL={};BYMONTHDAY=30,-30",
    "FREQ=MONTHLY;INTERVAL={};BYDAY=5MO", "FREQ=YEARLY;INTERVAL={};BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;INTERVAL={};BYMONTH=2;BYDAY=5SU", "FREQ=YEARLY;INTERVAL={}",
    "FREQ=MONTHLY;INTERVAL={}", "FREQ=YEARLY;INTERVAL={};BYMONTH=4,6",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(SPARSE),
    st.sampled_from([1, 2, 3, 4, 6, 8, 12, 24, 48]),
    anchors,
    st.integers(0, 4000),
)
def test_sparse_series_are_exact_or_refused_quickly(template: str, interval: int, due: date,
                                                    late: int) -> None:  # fmt: skip
    """Rules whose months can hold no date (a 31st, a fifth Monday, February 29th): the
    guard that keeps dateutil from searching to the year 9999 must agree with the rule."""
    rule, today = canonical_rule(template.format(interval)), due + timedelta(days=late)
    started = time.perf_counter()
    try:
        got = next_occurrence(rule, due, today)
    except RecurrenceError:
        ref = max(due, today)
        assert not any(in_series(rule, due, ref + timedelta(days=k)) for k in range(1, 3000))
    else:
        assert got > max(due, today) and in_series(rule, due, got)
    assert time.perf_counter() - started < 0.1
