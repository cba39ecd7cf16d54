"""task_slots (title and due date of a task request) and completion_target (the words naming
the task in a complete/delete request)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from py_agent.slots import TaskSlots, completion_target, task_slots

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
