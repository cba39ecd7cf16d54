"""py_agent.slots: task_slots (title, due date, repeat rule and list of a task request),
completion_target / target_slots (the task a complete/delete request names), edit_slots,
note_text / note_target, history_slots, list_name / list_query, and the JSON form of slots
(slots_json / parse_slots_json). NOW is Wednesday 2026-11-18 10:00."""

from __future__ import annotations

import json
import time
import zoneinfo
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from py_agent.dates import DueMatch
from py_agent.recurrence import canonical_rule
from py_agent.slots import (
    MAX_SLOT_CHARS,
    EditSlots,
    HistorySlots,
    SlotsError,
    TargetSlots,
    TaskSlots,
    completion_target,
    edit_slots,
    history_slots,
    list_name,
    list_query,
    note_target,
    note_text,
    parse_slots_json,
    slots_json,
    target_slots,
    task_slots,
)

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=timezone(timedelta(hours=1)))  # a Wednesday


# (request, title, due as "YYYY-MM-DD" or "YYYY-MM-DD HH:MM", or None)
TITLES = [
    ("Remind me to call Mom tomorrow at 5pm", "call Mom", "2026-11-19 17:00"),
    ("add buy milk", "buy milk", None),
    ("I need to renew my passport by december 14", "renew my passport", "2026-12-14"),
    ("Please add a task: submit the report by friday", "submit the report", "2026-11-20"),
    ("put buy milk on my list", "buy milk", None),
    ("add milk to the shopping list", "milk", None),
    ("add to my todo list: buy stamps", "buy stamps", None),
    ("can you remind me to pick up the kids at 3", "pick up the kids", "2026-11-18 15:00"),
    ("remind me at 5pm to call mom", "call mom", "2026-11-18 17:00"),
    ("tomorrow remind me to call mom", "call mom", "2026-11-19"),
    ("todo: email Sarah about the Q3 budget", "email Sarah about the Q3 budget", None),
    ("task: Fix the Wi-Fi", "Fix the Wi-Fi", None),
    ("Don\u2019t let me forget to water plants tonight!", "water plants", "2026-11-18 20:00"),
    ("dont let me forget to feed the cat", "feed the cat", None),
    ("new task: book flights to Lisbon next month", "book flights to Lisbon", "2026-12-01"),
    ("create a task to clean the garage this weekend", "clean the garage", "2026-11-21"),
    ("add a task to call the plumber on monday", "call the plumber", "2026-11-23"),
    ("make a reminder to stretch at noon", "stretch", "2026-11-18 12:00"),
    ("Pay rent, due on the 1st", "Pay rent", "2026-12-01"),
    ("the rent is due friday", "the rent", "2026-11-20"),
    ("set a reminder for tomorrow to take out the trash", "take out the trash", "2026-11-19"),
    ("hey, can you add 'Finish slides' for monday please", "Finish slides", "2026-11-23"),
    ("renew car insurance before end of the month thanks", "renew car insurance", "2026-11-30"),
    ("buy a gift for Anna by dec 14th", "buy a gift for Anna", "2026-12-14"),
    ("call the dentist in 2 hours", "call the dentist", "2026-11-18 12:00"),
    ("schedule a checkup for next tuesday at 10am", "schedule a checkup", "2026-11-24 10:00"),
    ("I have to finish the essay no later than sunday", "finish the essay", "2026-11-22"),
    ("on friday, send the invoices to ACME", "send the invoices to ACME", "2026-11-20"),
    ("At 9am tomorrow: standup notes", "standup notes", "2026-11-19 09:00"),
    ("remind me to call the bank sometime next week", "call the bank", "2026-11-23"),
    (
        "Could you please remind me to renew the NHS prescription in a couple of days?",
        "renew the NHS prescription",
        "2026-11-20",
    ),
    (
        "put 'Return library books' on my to-do list for the 3rd",
        "Return library books",
        "2026-12-03",
    ),
    ("we need to order the cake on saturday", "order the cake", "2026-11-21"),
    ("read up on the 2nd amendment", "read up on the 2nd amendment", None),
    ("watch the game at home", "watch the game at home", None),
    ("Remind   me  to   CALL mom   ", "CALL mom", None),
    ("Call Mom (tomorrow) re: visa", "Call Mom re: visa", "2026-11-19"),
    ("finish the report by friday for Anna", "finish the report for Anna", "2026-11-20"),
]


@pytest.mark.parametrize(("text", "title", "due"), TITLES, ids=[row[0] for row in TITLES])
def test_task_slots(text: str, title: str, due: str | None) -> None:
    slots = task_slots(text, NOW)
    assert slots.title == title
    got = None
    if slots.due is not None:
        got = slots.due.date.isoformat()
        if slots.due.time is not None:
            got += slots.due.time.strftime(" %H:%M")
    assert got == due


@pytest.mark.parametrize("text", ["remind me tomorrow", "add a task", "todo:", "", "please!"])
def test_no_title(text: str) -> None:
    assert task_slots(text, NOW).title == ""


def test_slots_carry_the_due_match() -> None:
    slots = task_slots("Remind me to call Mom tomorrow at 5pm", NOW)
    assert isinstance(slots, TaskSlots)
    assert slots.due is not None and slots.due.phrase == "tomorrow at 5pm"


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("mark call mom as done", "call mom"),
        ("delete the dentist task", "dentist"),
        ("never mind the bike thing", "bike thing"),
        ("I paid the rent", "paid the rent"),
        ("remove buy milk from my list", "buy milk"),
        ("I've finished the report", "report"),
        ("done with laundry", "laundry"),
        ("check off buy milk", "buy milk"),
        ("tick off the groceries please", "groceries"),
        ("the dentist is done", "dentist"),
        ("buy milk done", "buy milk"),
        ("I don\u2019t need to call Bob anymore", "call Bob"),
        ("forget about the gym", "gym"),
        ("cancel my haircut reminder", "haircut"),
        ("please delete the task", "task"),
        ("Mark 'Submit taxes' as complete.", "Submit taxes"),
        ("get rid of the Lisbon flights to-do", "Lisbon flights"),
        ("", ""),
    ],
)
def test_completion_target(text: str, target: str) -> None:
    assert completion_target(text) == target


def show(due: DueMatch | None) -> str | None:
    """A due match as "YYYY-MM-DD" or "YYYY-MM-DD HH:MM"."""
    if due is None:
        return None
    return due.date.isoformat() + (due.time.strftime(" %H:%M") if due.time else "")


# --- task.add: repeats -------------------------------------------------------------------

# (request, title, repeat, first due)
REPEATS = [
    ("remind me every monday to take out the trash", "take out the trash", "FREQ=WEEKLY;BYDAY=MO",
     "2026-11-23"),
    ("every day at 8 take vitamins", "take vitamins", "FREQ=DAILY", "2026-11-19 08:00"),
    ("take vitamins every day at 8", "take vitamins", "FREQ=DAILY", "2026-11-19 08:00"),
    ("take vitamins every day at 8pm", "take vitamins", "FREQ=DAILY", "2026-11-18 20:00"),
    ("stretch every day at 5", "stretch", "FREQ=DAILY", "2026-11-18 17:00"),
    ("every weekday at 9am standup", "standup", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
     "2026-11-19 09:00"),
    ("every weekday at 11am standup", "standup", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
     "2026-11-18 11:00"),
    ("remind me every morning to stretch", "stretch", "FREQ=DAILY", "2026-11-19 09:00"),
    ("each morning: meditate", "meditate", "FREQ=DAILY", "2026-11-19 09:00"),
    ("every evening at 7 walk the dog", "walk the dog", "FREQ=DAILY", "2026-11-18 19:00"),
    ("every friday at 5pm submit timesheet", "submit timesheet", "FREQ=WEEKLY;BYDAY=FR",
     "2026-11-20 17:00"),
    ("every wednesday at 9 team sync", "team sync", "FREQ=WEEKLY;BYDAY=WE", "2026-11-25 09:00"),
    ("water plants every other friday", "water plants", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR",
     "2026-11-20"),
    ("gym every monday and thursday at 6pm", "gym", "FREQ=WEEKLY;BYDAY=MO,TH",
     "2026-11-19 18:00"),
    ("pay rent on the 1st of every month", "pay rent", "FREQ=MONTHLY;BYMONTHDAY=1", "2026-12-01"),
    ("pay credit card the last day of every month", "pay credit card",
     "FREQ=MONTHLY;BYMONTHDAY=-1", "2026-11-30"),
    ("book club every first monday of the month", "book club", "FREQ=MONTHLY;BYDAY=1MO",
     "2026-12-07"),
    ("call grandma every march 3rd", "call grandma", "FREQ=YEARLY;BYMONTHDAY=3;BYMONTH=3",
     "2027-03-03"),
    ("gym every monday starting next week", "gym", "FREQ=WEEKLY;BYDAY=MO", "2026-11-23"),
    ("yoga every tuesday starting december 8", "yoga", "FREQ=WEEKLY;BYDAY=TU", "2026-12-08"),
    ("starting tomorrow, run every day at 7am", "run", "FREQ=DAILY", "2026-11-19 07:00"),
    ("every day from friday floss", "floss", "FREQ=DAILY", "2026-11-20"),
    ("every 2 weeks clean the fridge", "clean the fridge", "FREQ=WEEKLY;INTERVAL=2", "2026-11-18"),
    ("Water the Ferns weekly on Sundays!", "Water the Ferns", "FREQ=WEEKLY;BYDAY=SU",
     "2026-11-22"),
    ("set a weekly reminder to call mom", "call mom", "FREQ=WEEKLY", "2026-11-18"),
    ("weekly team sync on mondays at 10", "weekly team sync", "FREQ=WEEKLY;BYDAY=MO",
     "2026-11-23 10:00"),
    ("add bins out to my chores list every sunday night", "bins out", "FREQ=WEEKLY;BYDAY=SU",
     "2026-11-22 20:00"),
    # No rule says "until": the date stays in the title.
    ("stretch every day until friday", "stretch until friday", "FREQ=DAILY", "2026-11-18"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "title", "repeat", "due"), REPEATS, ids=[r[0] for r in REPEATS])
def test_repeating_task(text: str, title: str, repeat: str, due: str) -> None:
    slots = task_slots(text, NOW)
    assert (slots.title, slots.repeat, show(slots.due)) == (title, repeat, due)
    assert "every" not in slots.title.lower().split()


def test_a_repeat_without_its_date_is_no_repeat() -> None:
    slots = task_slots("call grandma every year on my birthday", NOW)
    assert (slots.title, slots.repeat, slots.due) == (
        "call grandma every year on my birthday", None, None,
    )  # fmt: skip


def test_repeat_due_match_points_at_its_phrase() -> None:
    text = "take vitamins every day at 8"
    slots = task_slots(text, NOW)
    assert slots.due is not None and text[slots.due.start : slots.due.end] == slots.due.phrase
    assert slots.due.phrase == "at 8"
    text = "remind me every monday to take out the trash"
    slots = task_slots(text, NOW)
    assert slots.due is not None and slots.due.phrase == "every monday"


def test_daily_time_keeps_its_wall_time_across_dst() -> None:
    london = zoneinfo.ZoneInfo("Europe/London")
    # The day before the clocks go forward (Sunday 2027-03-28, 01:00 GMT -> 02:00 BST).
    before = datetime(2027, 3, 27, 9, 0, tzinfo=london)
    slots = task_slots("every day at 8 take vitamins", before)
    assert show(slots.due) == "2027-03-28 08:00"
    # The morning of the change, after it: 08:00 is still ahead.
    after = datetime(2027, 3, 28, 7, 30, tzinfo=london)
    assert after.utcoffset() != before.utcoffset()
    assert show(task_slots("every day at 8 take vitamins", after).due) == "2027-03-28 08:00"
    # The day the clocks go back (2026-10-25 02:00 BST -> 01:00 GMT), just after midnight.
    back = datetime(2026, 10, 25, 0, 30, tzinfo=london)
    assert show(task_slots("every day at 8 take vitamins", back).due) == "2026-10-25 08:00"


def test_a_repeat_on_the_last_date_there_is_is_no_repeat() -> None:
    slots = task_slots("floss every day at 8", datetime(9999, 12, 31, 10, 0))
    assert (slots.repeat, slots.title) == (None, "floss every day")


# --- task.add: lists ----------------------------------------------------------------------

# (request, title, list)
LISTS = [
    ("add avocados to my groceries list", "avocados", "grocery"),
    ("add avocados to groceries list", "avocados", "grocery"),
    ("add avocados to my grocery list", "avocados", "grocery"),
    ("add eggs to groceries", "eggs", "grocery"),
    ("can you put avocados on my shopping list", "avocados", "shopping"),
    ("put milk on the shopping list", "milk", "shopping"),
    ("eggs on costco list", "eggs", "costco"),
    ("milk on list", "milk", None),
    ("add milk to my to do list", "milk", None),
    ("add milk to my to-dos", "milk", None),
    ("shopping list: eggs, bread", "eggs, bread", "shopping"),
    ("hardware store list: screws", "screws", "hardware store"),
    ("add to my packing list: Passport", "Passport", "packing"),
    ("add buy paint to the hardware store list tomorrow", "buy paint", "hardware store"),
    ("add milk to the shopping list for tomorrow", "milk", "shopping"),
    ("put 'Wrap presents' on my Christmas list", "Wrap presents", "christmas"),
    ("add Sarah to the guest list", "Sarah", "guest"),
    ("talk to the list manager", "talk to the list manager", None),  # no list phrase
    ("go to shopping", "go to shopping", None),
    ("make a list of gifts", "make a list of gifts", None),
]


@pytest.mark.parametrize(("text", "title", "name"), LISTS, ids=[r[0] for r in LISTS])
def test_list_phrase(text: str, title: str, name: str | None) -> None:
    slots = task_slots(text, NOW)
    assert (slots.title, slots.list) == (title, name)


@pytest.mark.parametrize(
    ("words", "name"),
    [
        ("my Groceries list", "grocery"),
        ("groceries", "grocery"),
        ("grocery list", "grocery"),
        ("the shopping list", "shopping"),
        ("costco list", "costco"),
        ("Packing List", "packing"),
        ("hardware stores", "hardware store"),
        ("boxes", "box"),
        ("movies", "movie"),
        ("christmas", "christmas"),
        ("clothes", "clothes"),
        ("mom's list", "mom's"),
        ("to-do list", None),
        ("todo list", None),
        ("task list", None),
        ("my list", None),
        ("reminders", None),
        ("tasks", None),
        ("my to-dos", None),
        ("", None),
        ("  ", None),
    ],
)
def test_list_name(words: str, name: str | None) -> None:
    assert list_name(words) == name
    if name is not None:
        assert list_name(name) == name  # idempotent


# --- task.add: command words and their misspellings -----------------------------------------

CLEAN = [
    ("add taks email boss", "email boss"),
    ("ad milk", "milk"),
    ("addd bread", "bread"),
    ("remnd me to call mom", "call mom"),
    ("reminde me to call Mom", "call Mom"),
    ("rmind me to pay the gas bill", "pay the gas bill"),
    ("remeber to buy stamps", "buy stamps"),
    ("pls add buy eggs", "buy eggs"),
    ("plz remind me to water the ferns", "water the ferns"),
    ("plese add call the vet", "call the vet"),
    ("can u add feed the cat", "feed the cat"),
    ("add a tsak: renew passport", "renew passport"),
    ("todo: email Sarah", "email Sarah"),
    ("note: buy milk", "buy milk"),
    ("adopt a cat", "adopt a cat"),  # a word of the user's, not "add"
    ("taks email boss", "taks email boss"),  # no command phrase around the misspelling
    ("rewind the tape", "rewind the tape"),  # a real word one edit from "remind"
    ("lease a car", "lease a car"),  # one edit from "please"
    ("mask the windows before painting", "mask the windows before painting"),
    ("Remote control batteries", "Remote control batteries"),
]


@pytest.mark.parametrize(("text", "title"), CLEAN, ids=[r[0] for r in CLEAN])
def test_command_words_never_stay_in_titles(text: str, title: str) -> None:
    assert task_slots(text, NOW).title == title


# --- task.complete / task.delete ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target", "name"),
    [
        ("check off eggs", "eggs", None),
        ("remove milk from the shopping list", "milk", "shopping"),
        ("cross eggs off my costco list", "eggs", "costco"),
        ("take eggs off my list", "eggs", None),
        ("delete avocados from my groceries list", "avocados", "grocery"),
        ("mark call mom as done", "call mom", None),
        ("delte the dentist", "dentist", None),
        ("remvoe the gym task", "gym", None),
        ("I paid the rent", "paid the rent", None),
        ("", "", None),
    ],
)
def test_target_slots(text: str, target: str, name: str | None) -> None:
    assert target_slots(text) == TargetSlots(target, name)
    assert completion_target(text) == target or name is not None


# --- task.edit ----------------------------------------------------------------------------

# (request, the fields of EditSlots that are set, the due as show() writes it)
EDITS: list[tuple[str, dict[str, object], str | None]] = [
    ("rename buy milk to buy oat milk", {"target": "buy milk", "title": "buy oat milk"}, None),
    ("rename go to gym to go to the gym", {"target": "go to gym", "title": "go to the gym"}, None),
    ("change buy milk to buy oat milk", {"target": "buy milk", "title": "buy oat milk"}, None),
    ("change the name of buy milk to Buy Oat Milk",
     {"target": "buy milk", "title": "Buy Oat Milk"}, None),
    ("call it buy oat milk instead", {"target": "", "title": "buy oat milk"}, None),
    ('call it "Buy oat milk"', {"target": "", "title": "Buy oat milk"}, None),
    ("change X to friday", {"target": "X"}, "2026-11-20"),
    ("change the dentist to friday at 3pm", {"target": "dentist"}, "2026-11-20 15:00"),
    ("move the dentist to friday", {"target": "dentist"}, "2026-11-20"),
    ("push call mom to next week", {"target": "call mom"}, "2026-11-23"),
    ("reschedule the dentist for next tuesday at 2", {"target": "dentist"}, "2026-11-24 14:00"),
    ("postpone taxes until the 15th", {"target": "taxes"}, "2026-12-15"),
    ("bump the meeting prep to tomorrow morning", {"target": "meeting prep"}, "2026-11-19 09:00"),
    ("the dentist is on tuesday now", {"target": "dentist"}, "2026-11-24"),
    ("the dentist is now at 10am", {"target": "dentist", "time_only": True}, "2026-11-19 10:00"),
    ("move the dentist to 9", {"target": "dentist", "time_only": True}, "2026-11-18 09:00"),
    ("change the dentist to 9", {"target": "dentist", "time_only": True}, "2026-11-18 09:00"),
    ("actually move it to 5pm", {"target": "", "time_only": True}, "2026-11-18 17:00"),
    ("make it 3pm instead", {"target": "", "time_only": True}, "2026-11-18 15:00"),
    ("actually make that thursday", {"target": ""}, "2026-11-19"),
    ("no, make it friday", {"target": ""}, "2026-11-20"),
    ("the report has no deadline", {"target": "report", "clear_due": True}, None),
    ("remove the due date from the report", {"target": "report", "clear_due": True}, None),
    ("clear the deadline for taxes", {"target": "taxes", "clear_due": True}, None),
    ("taxes doesn't have a due date anymore", {"target": "taxes", "clear_due": True}, None),
    ("move eggs to the costco list", {"target": "eggs", "list": "costco"}, None),
    ("move milk to my shopping list", {"target": "milk", "list": "shopping"}, None),
    ("change taxes to the costco list", {"target": "taxes", "list": "costco"}, None),
    ("take milk off the shopping list", {"target": "milk", "to_main_list": True}, None),
    ("move milk back to my to-dos", {"target": "milk", "to_main_list": True}, None),
    ("make the gym task weekly", {"target": "gym", "repeat": "FREQ=WEEKLY"}, None),
    ("make gym repeat every week", {"target": "gym", "repeat": "FREQ=WEEKLY"}, None),
    ("change yoga to weekly", {"target": "yoga", "repeat": "FREQ=WEEKLY"}, None),
    ("set yoga to repeat every monday and wednesday",
     {"target": "yoga", "repeat": "FREQ=WEEKLY;BYDAY=MO,WE"}, None),
    ("make gym repeat every day at 7am", {"target": "gym", "repeat": "FREQ=DAILY"},
     "2026-11-19 07:00"),
    ("stop repeating gym", {"target": "gym", "stop_repeat": True}, None),
    ("the gym is a one-off now", {"target": "gym", "stop_repeat": True}, None),
    ("make standup a one-time task", {"target": "standup", "stop_repeat": True}, None),
    ("gym doesn't repeat anymore", {"target": "gym", "stop_repeat": True}, None),
    ("change the dentist", {"target": "dentist"}, None),
]  # fmt: skip


@pytest.mark.parametrize(("text", "fields", "due"), EDITS, ids=[r[0] for r in EDITS])
def test_edit_slots(text: str, fields: dict[str, object], due: str | None) -> None:
    slots = edit_slots(text, NOW)
    expected = EditSlots(**{"target": "", **fields})  # type: ignore[arg-type]
    got = {name: getattr(slots, name) for name in EditSlots.__dataclass_fields__ if name != "due"}
    want = {name: getattr(expected, name) for name in got}
    assert (got, show(slots.due)) == (want, due)


# --- notes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("note: wifi password is hunter2", "wifi password is hunter2"),
        ("Note:  WiFi password is Hunter2!", "WiFi password is Hunter2!"),
        ("note that the wifi password is hunter2", "the wifi password is hunter2"),
        ("remember that Anna's birthday is May 14", "Anna's birthday is May 14"),
        ("remeber that the car is on level 3", "the car is on level 3"),
        ("jot down gate code 4321", "gate code 4321"),
        ("save a note: locker 117", "locker 117"),
        ("make a memo that the plumber is Bob", "the plumber is Bob"),
        ("noet: gate 4321", "gate 4321"),
        ("please note the gate code is 1234", "the gate code is 1234"),
        ("note to self: the spare key is under the pot", "the spare key is under the pot"),
        ("can you take a note that the meter reads 0423", "the meter reads 0423"),
        ("Parked on level 3", "Parked on level 3"),
        ("notebook is in the drawer", "notebook is in the drawer"),
        ("", ""),
    ],
)
def test_note_text(text: str, fact: str) -> None:
    assert note_text(text) == fact


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("forget the wifi note", "wifi"),
        ("delete the note about the gate code", "gate code"),
        ("remove my parking note", "parking"),
        ("forget my parking info", "parking"),
        ("delete what I wrote about the gate code", "gate code"),
        ("erase note: wifi password", "wifi password"),
        ("please delete the notes about the plumber", "plumber"),
        ("", ""),
    ],
)
def test_note_target(text: str, target: str) -> None:
    assert note_target(text) == target


# --- history ------------------------------------------------------------------------------

D = date.fromisoformat
HISTORY = [
    ("what did I do yesterday?", "2026-11-17", "2026-11-17", "", "yesterday"),
    ("what did I finish this week?", "2026-11-16", "2026-11-22", "", "this week"),
    ("what did I get done last week", "2026-11-09", "2026-11-15", "", "last week"),
    ("what did I complete today", "2026-11-18", "2026-11-18", "", "today"),
    ("what did I do this month", "2026-11-01", "2026-11-30", "", "this month"),
    ("what did I finish last month", "2026-10-01", "2026-10-31", "", "last month"),
    ("what have I completed since monday", "2026-11-16", "2026-11-18", "", "since Monday"),
    ("what have I done since wednesday", "2026-11-11", "2026-11-18", "", "since Wednesday"),
    ("what did I do in the last 3 days", "2026-11-16", "2026-11-18", "", "in the last 3 days"),
    ("what did I do in the past week", "2026-11-12", "2026-11-18", "", "in the past week"),
    ("when did I last call mom?", None, None, "call mom", ""),
    ("have I paid the rent yet?", None, None, "paid the rent", ""),
    ("did I walk the dog today?", "2026-11-18", "2026-11-18", "walk the dog", "today"),
    ("did I call the bank last friday", "2026-11-13", "2026-11-13", "call the bank", "on Friday"),
    ("when was the last time I watered the plants", None, None, "watered the plants", ""),
    ("how long since I called grandma", None, None, "called grandma", ""),
    ("show me my history", None, None, "", ""),
]


@pytest.mark.parametrize(("text", "start", "end", "target", "period"), HISTORY,
                         ids=[r[0] for r in HISTORY])  # fmt: skip
def test_history_slots(
    text: str, start: str | None, end: str | None, target: str, period: str
) -> None:
    expected = HistorySlots(start and D(start), end and D(end), target, period)
    assert history_slots(text, NOW) == expected


# --- task.list ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("what's on my shopping list", "shopping"),
        ("whats on my Grocery list for today", "grocery"),
        ("show my groceries", "grocery"),
        ("show me the costco list", "costco"),
        ("list the hardware store list", "hardware store"),
        ("what's on my list", None),
        ("show my to-do list", None),
        ("what's on the whole list", None),
        ("what's due today", None),
        ("", None),
    ],
)
def test_list_query(text: str, name: str | None) -> None:
    assert list_query(text) == name


# --- slots as JSON ------------------------------------------------------------------------


def test_slots_json_shapes() -> None:
    assert slots_json("task.add", "add avocados to my groceries list every monday at 9am", NOW) == {
        "title": "avocados", "due_date": "2026-11-23", "due_time": "09:00",
        "repeat": "FREQ=WEEKLY;BYDAY=MO", "list": "grocery",
    }  # fmt: skip
    assert slots_json("task.list", "what's on my shopping list", NOW) == {"list": "shopping"}
    assert slots_json("task.delete", "remove milk from the shopping list", NOW) == {
        "target": "milk", "list": "shopping",
    }  # fmt: skip
    assert slots_json("task.edit", "the dentist is now at 10am", NOW) == {
        "target": "dentist", "title": None, "due_date": "2026-11-19", "due_time": "10:00",
        "time_only": True, "clear_due": False, "list": None, "to_main_list": False,
        "repeat": None, "stop_repeat": False,
    }  # fmt: skip
    assert slots_json("note.add", "note: wifi password is hunter2", NOW) == {
        "text": "wifi password is hunter2"
    }
    assert slots_json("note.delete", "forget the wifi note", NOW) == {"target": "wifi"}
    assert slots_json("history", "what did I do yesterday?", NOW) == {
        "start": "2026-11-17", "end": "2026-11-17", "target": "", "period": "yesterday",
    }  # fmt: skip
    assert slots_json("greeting", "hi", NOW) == {}
    assert slots_json("out_of_scope", "set a timer", NOW) == {}


INTENTS = ["task.add", "task.list", "task.complete", "task.delete", "task.edit", "note.add",
           "note.delete", "history", "note.search", "undo", "greeting"]  # fmt: skip


@pytest.mark.parametrize("intent", INTENTS)
def test_parse_slots_json_inverts_slots_json(intent: str) -> None:
    texts = {
        "task.add": "add avocados to my groceries list every monday at 9am",
        "task.list": "what's on my shopping list",
        "task.complete": "check off eggs from my costco list",
        "task.delete": "remove milk from the shopping list",
        "task.edit": "move the dentist to friday at 3pm",
        "note.add": "note: gate code 4321",
        "note.delete": "delete the note about the gate code",
        "history": "did I walk the dog today?",
    }
    text = texts.get(intent, "hello")
    value = json.loads(json.dumps(slots_json(intent, text, NOW)))
    read = parse_slots_json(intent, value)
    if intent == "task.add":
        local = task_slots(text, NOW)
        assert isinstance(read, TaskSlots) and local.due is not None and read.due is not None
        assert (read.title, read.repeat, read.list) == (local.title, local.repeat, local.list)
        assert (read.due.date, read.due.time) == (local.due.date, local.due.time)
    elif intent == "task.list":
        assert read == "shopping"
    elif intent in ("task.complete", "task.delete"):
        assert read == target_slots(text)
    elif intent == "task.edit":
        local_edit = edit_slots(text, NOW)
        assert isinstance(read, EditSlots) and read.due is not None and local_edit.due is not None
        assert (read.target, read.due.date, read.due.time) == (
            local_edit.target, local_edit.due.date, local_edit.due.time,
        )  # fmt: skip
    elif intent == "note.add":
        assert read == "gate code 4321"
    elif intent == "note.delete":
        assert read == "gate code"
    elif intent == "history":
        assert read == history_slots(text, NOW)
    else:
        assert read is None


def add(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"title": "milk", "due_date": None, "due_time": None,
                               "repeat": None, "list": None}  # fmt: skip
    return {**base, **changes}


def edit(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "target": "dentist", "title": None, "due_date": None, "due_time": None,
        "time_only": False, "clear_due": False, "list": None, "to_main_list": False,
        "repeat": None, "stop_repeat": False,
    }  # fmt: skip
    return {**base, **changes}


@pytest.mark.parametrize(
    ("intent", "value", "names"),
    [
        ("task.add", None, "must be an object, got NoneType"),
        ("task.add", [], "must be an object, got list"),
        ("task.add", {**add(), "extra": 1}, "unexpected field 'extra'"),
        ("task.add", {"title": "milk"}, "missing field 'due_date'"),
        ("task.add", add(title=5), "'title' must be a string"),
        ("task.add", add(title="x" * (MAX_SLOT_CHARS + 1)), "'title' must be a string of at most"),
        ("task.add", add(due_date="2026-02-30"), "'due_date' must be a date"),
        ("task.add", add(due_date="18/11/2026"), "'due_date' must be a date"),
        ("task.add", add(due_date="2026-11-18", due_time="25:00"), "'due_time' must be a time"),
        ("task.add", add(due_date="2026-11-18", due_time="9:00"), "'due_time' must be a time"),
        ("task.add", add(due_time="09:00"), "'due_time' needs a 'due_date'"),
        ("task.add", add(repeat="FREQ=HOURLY"), "'repeat': FREQ=HOURLY is not supported"),
        ("task.add", add(repeat=["FREQ=DAILY"]), "'repeat': repeat rule must be a string"),
        ("task.add", add(list=3), "'list' must be a string"),
        ("task.list", {"list": True}, "'list' must be a string"),
        ("task.complete", {"target": None, "list": None}, "'target' must be a string"),
        ("task.edit", edit(time_only=1), "'time_only' must be true or false"),
        ("task.edit", edit(time_only=True), "'time_only' needs a 'due_time'"),
        ("task.edit", edit(clear_due=True, due_date="2026-11-20"), "'clear_due' with a"),
        ("task.edit", edit(to_main_list=True, list="costco"), "'to_main_list' with a 'list'"),
        ("task.edit", edit(stop_repeat=True, repeat="FREQ=DAILY"), "'stop_repeat' with a"),
        ("task.edit", edit(title="  "), "'title' must be a non-empty string"),
        ("note.add", {"text": b"bytes"}, "'text' must be a string"),
        (
            "history",
            {"start": "2026-11-18", "end": "2026-11-17", "target": "", "period": ""},
            "'start' is after 'end'",
        ),
        (
            "history",
            {"start": "yesterday", "end": None, "target": "", "period": ""},
            "'start' must be a date",
        ),
        ("greeting", {"title": "hi"}, "unexpected field 'title'"),
    ],
)
def test_parse_slots_json_refuses_malformed_slots(intent: str, value: object, names: str) -> None:
    with pytest.raises(SlotsError) as refused:
        parse_slots_json(intent, value)
    assert names in str(refused.value)


def test_parse_slots_json_normalises_lists_and_rules() -> None:
    read = parse_slots_json("task.add", add(list="My Groceries list", repeat="rrule:freq=daily"))
    assert isinstance(read, TaskSlots) and (read.list, read.repeat) == ("grocery", "FREQ=DAILY")
    assert parse_slots_json("task.list", {"list": "to-do list"}) is None
    assert SlotsError.__mro__[1] is ValueError


# --- every function is total and fast -----------------------------------------------------

FUNCTIONS = {
    "task_slots": lambda text: task_slots(text, NOW),
    "target_slots": target_slots,
    "completion_target": completion_target,
    "edit_slots": lambda text: edit_slots(text, NOW),
    "note_text": note_text,
    "note_target": note_target,
    "history_slots": lambda text: history_slots(text, NOW),
    "list_query": list_query,
    "list_name": list_name,
}

WORDS = [
    "every", "each", "monday", "mondays", "and", "the", "1st", "of", "month", "last", "day",
    "at", "8", "9am", "morning", "add", "to", "my", "shopping", "list", "on", "off", "from",
    "remind", "me", "note:", "remember", "that", "rename", "move", "push", "change", "friday",
    "tomorrow", "next", "week", "it", "call", "instead", "has", "no", "deadline", "stop",
    "repeating", "weekly", "other", "until", "starting", "what", "did", "i", "do", "yesterday",
    "since", "when", "have", "yet", "taks", "remnd", "pls", "ad", "groceries", "costco", ":",
    ",", "!", "?", "\u2019", "\U0001f642", "\x00", "\u202e",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(max_size=200), st.lists(st.sampled_from(WORDS), max_size=14).map(" ".join))
)
def test_every_function_is_total(text: str) -> None:
    for function in FUNCTIONS.values():
        function(text)  # returns, whatever the text
    for intent in INTENTS:
        value = slots_json(intent, text, NOW)
        parse_slots_json(intent, json.loads(json.dumps(value)))  # always its own shape
    slots = task_slots(text, NOW)
    if slots.repeat is not None:
        assert canonical_rule(slots.repeat) == slots.repeat and slots.due is not None


@pytest.mark.parametrize(
    "text",
    ["", " ", "x" * 10_000, "every monday " * 800, "\U0001f642" * 5000, "\x00\x01\x1b[2J\x7f",
     "add " + "to my shopping list " * 500, "the dentist is now " * 500],
    ids=["empty", "space", "10k-x", "10k-every-monday", "emoji", "control", "lists", "edits"],
)  # fmt: skip
def test_huge_and_odd_inputs(text: str) -> None:
    started = time.perf_counter()
    for function in FUNCTIONS.values():
        function(text)
    for intent in INTENTS:
        value = slots_json(intent, text, NOW)
        assert all(len(v) <= MAX_SLOT_CHARS for v in value.values() if isinstance(v, str))
        parse_slots_json(intent, value)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_functions_refuse_non_strings(name: str) -> None:
    with pytest.raises(TypeError, match="'text' must be a string"):
        FUNCTIONS[name](None)


def test_typical_requests_are_fast() -> None:
    texts = [row[0] for row in TITLES + REPEATS + LISTS + EDITS] + [row[0] for row in HISTORY]
    for function in FUNCTIONS.values():  # warm the caches once, as the first turn would
        function(texts[0])
    started = time.perf_counter()
    for text in texts:
        for function in FUNCTIONS.values():
            function(text)
    per_call = (time.perf_counter() - started) / (len(texts) * len(FUNCTIONS))
    assert per_call < 0.001, f"{per_call * 1000:.2f} ms per call"
