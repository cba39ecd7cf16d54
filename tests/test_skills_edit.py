"""task.edit in the chat (rename, reschedule, clear the due date, lists, repeats), its
"which one?", and the page's direct edit of a task's list and repeat rule."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest
from support import AGENT_NOW as NOW
from support import say, words_agent

from py_agent.agent import Agent, AgentError
from py_agent.dates import DueMatch
from py_agent.recurrence import describe_rule
from py_agent.skills import task_edit
from py_agent.slots import EditSlots, list_name


@pytest.fixture
async def agent(tmp_path: Path) -> Agent:
    return await words_agent(tmp_path / "agent.db")


def titled(agent: Agent, title: str) -> dict:
    (task,) = (t for t in agent.state.tasks.values() if t["title"] == title)
    return task


def due(day: date, at: time | None = None) -> DueMatch:
    return DueMatch(0, 0, day, at, "")


async def changed(agent: Agent, title: str, slots: EditSlots) -> tuple[str, dict]:
    """Apply ``slots`` to the task ``title`` directly; answers the reply and the result."""
    task = titled(agent, title)
    outcome = await task_edit.change(task, slots, NOW, agent._embed)
    await agent.state.save(outcome.writes, outcome.vectors)
    return outcome.reply, agent.state.tasks[task["id"]]


async def test_rename(agent: Agent) -> None:
    await say(agent, "add buy milk")
    assert await say(agent, "rename buy milk to buy oat milk") == (
        "Renamed “buy milk” to “buy oat milk”."
    )
    assert [t["title"] for t in agent.state.tasks.values()] == ["buy oat milk"]
    # The new title is what meaning finds now.
    assert await say(agent, "delete the oat milk task") == "Deleted “buy oat milk”."


async def test_reschedule_to_a_day(agent: Agent) -> None:
    await say(agent, "add dentist")
    assert await say(agent, "move the dentist to friday") == "Moved “dentist” to Fri 20 Nov."
    assert titled(agent, "dentist")["due_date"] == "2026-11-20"


async def test_a_new_date_keeps_the_time_and_a_time_keeps_the_date(agent: Agent) -> None:
    await say(agent, "remind me to see the dentist tomorrow at 9am")
    reply, task = await changed(
        agent, "see the dentist", EditSlots("", due=due(date(2026, 11, 20)))
    )
    assert (task["due_date"], task["due_time"]) == ("2026-11-20", "09:00")
    assert reply == "Moved “see the dentist” to Fri 20 Nov 09:00."
    slots = EditSlots("", due=due(date(2026, 11, 18), time(10, 30)), time_only=True)
    reply, task = await changed(agent, "see the dentist", slots)
    assert (task["due_date"], task["due_time"]) == ("2026-11-20", "10:30")
    slots = EditSlots("", due=due(date(2026, 11, 24), time(8, 0)))
    reply, task = await changed(agent, "see the dentist", slots)
    assert (task["due_date"], task["due_time"]) == ("2026-11-24", "08:00")
    assert reply == "Moved “see the dentist” to Tue 24 Nov 08:00."


async def test_a_time_alone_on_a_task_without_a_date_takes_the_time_s_day(agent: Agent) -> None:
    await say(agent, "add call the bank")
    slots = EditSlots("", due=due(date(2026, 11, 18), time(15, 0)), time_only=True)
    reply, task = await changed(agent, "call the bank", slots)
    assert (task["due_date"], task["due_time"]) == ("2026-11-18", "15:00")
    assert reply == "Moved “call the bank” to today 15:00."


async def test_clearing_the_due_date(agent: Agent) -> None:
    await say(agent, "remind me to file taxes friday at 5pm")
    reply, task = await changed(agent, "file taxes", EditSlots("", clear_due=True))
    assert (task["due_date"], task["due_time"]) == (None, None)
    assert reply == "“file taxes” has no due date now."


async def test_moving_between_lists(agent: Agent) -> None:
    shopping = list_name("shopping")
    await say(agent, "add milk")
    reply, task = await changed(agent, "milk", EditSlots("", list=shopping))
    assert (reply, task["list"]) == (f"Moved “milk” to your {shopping} list.", shopping)
    reply, task = await changed(agent, "milk", EditSlots("", to_main_list=True))
    assert (reply, task["list"]) == ("Moved “milk” to your main list.", None)


async def test_repeat_and_stop_repeating(agent: Agent) -> None:
    await say(agent, "add take out the trash")
    rule = "FREQ=WEEKLY;BYDAY=MO"
    reply, task = await changed(agent, "take out the trash", EditSlots("", repeat=rule))
    assert (task["repeat"], task["due_date"]) == (rule, "2026-11-23")
    assert reply == f"“take out the trash” now repeats {describe_rule(rule)}, next due Mon 23 Nov."
    reply, task = await changed(agent, "take out the trash", EditSlots("", stop_repeat=True))
    assert (reply, task["repeat"], task["due_date"]) == (
        "“take out the trash” no longer repeats.",
        None,
        "2026-11-23",
    )


async def test_several_changes_are_all_said(agent: Agent) -> None:
    await say(agent, "add buy milk")
    slots = EditSlots("", title="buy oat milk", due=due(date(2026, 11, 19)))
    reply, _ = await changed(agent, "buy milk", slots)
    assert reply == "Renamed “buy milk” to “buy oat milk”. Moved “buy oat milk” to tomorrow."


async def test_an_edit_that_changes_nothing_writes_nothing(agent: Agent) -> None:
    await say(agent, "add milk")
    task = titled(agent, "milk")
    outcome = await task_edit.change(task, EditSlots("", to_main_list=True), NOW, agent._embed)
    assert (
        outcome.writes == [] and outcome.reply == "Nothing to change: “milk” is already like that."
    )


async def test_it_and_no_target_mean_the_last_task_touched(agent: Agent) -> None:
    await say(agent, "add call mom")
    await say(agent, "add buy milk")
    assert await say(agent, "call it buy oat milk instead") == (
        "Renamed “buy milk” to “buy oat milk”."
    )
    assert titled(agent, "call mom")["title"] == "call mom"


async def test_it_is_not_remembered_across_restarts(agent: Agent, tmp_path: Path) -> None:
    await say(agent, "add call mom")
    restarted = await words_agent(tmp_path / "agent.db")  # same data, new conversation
    assert await say(restarted, "call it call dad instead") == (
        "Which task do you mean? Name it, for example “the dentist”."
    )
    assert titled(restarted, "call mom")["title"] == "call mom"


async def test_an_unclear_edit_asks_which_one_and_keeps_the_change(agent: Agent) -> None:
    await say(agent, "add call mom about rent")
    await say(agent, "add call dad about rent")
    question = await agent.handle("move call about rent to friday", NOW)
    assert question.asking and question.text.startswith("Which one do you mean: 1.")
    assert all(t["due_date"] is None for t in agent.state.tasks.values())
    reply = await say(agent, "the first one")
    assert reply.startswith("Moved “call") and reply.endswith("to Fri 20 Nov.")
    assert sorted(str(t["due_date"]) for t in agent.state.tasks.values()) == ["2026-11-20", "None"]


async def test_an_edit_asking_for_no_change_is_asked_back(agent: Agent) -> None:
    await say(agent, "add buy milk")
    outcome = await task_edit.edit(agent.state, "change", NOW, agent._embed, EditSlots("milk"))
    assert outcome.reply == task_edit.ASK and outcome.writes == []


# -- the page's direct edit -------------------------------------------------------------------


async def test_the_page_sets_a_list_and_a_repeat_rule(agent: Agent) -> None:
    await say(agent, "add take out the trash")
    (task_id,) = agent.state.tasks
    edited = await agent.edit(
        "tasks", task_id, {"list": "Groceries", "repeat": "rrule:freq=weekly;byday=mo"}, NOW
    )
    assert edited["list"] == list_name("groceries")
    assert (edited["repeat"], edited["due_date"]) == ("FREQ=WEEKLY;BYDAY=MO", "2026-11-23")
    cleared = await agent.edit("tasks", task_id, {"list": None, "repeat": None}, NOW)
    assert (cleared["list"], cleared["repeat"]) == (None, None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"list": 3}, "“3” can't be a list's name: use words, like “groceries”."),
        ({"list": ""}, "A list needs a name, like “groceries”."),
        ({"repeat": "FREQ=HOURLY"}, "That repeat isn't one I can follow"),
        ({"repeat": 7}, "That repeat isn't one I can follow"),
    ],
)
async def test_a_bad_list_or_rule_is_refused_saying_what_is_wrong(
    agent: Agent, changes: dict, message: str
) -> None:
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    before = dict(agent.state.tasks[task_id])
    with pytest.raises(AgentError, match=message):
        await agent.edit("tasks", task_id, changes, NOW)
    assert agent.state.tasks[task_id] == before
