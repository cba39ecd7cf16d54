"""Tasks in the chat: lists, repeating tasks, and acting on a target only when the match is
clear (tests/support.py's bag-of-words encoder stands in for the model's meaning)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import AGENT_NOW as NOW
from support import say, words_agent

from py_agent.agent import Agent
from py_agent.recurrence import describe_rule
from py_agent.skills.matching import AMBIGUITY_MARGIN, NOTE_FLOORS, TASK_FLOORS
from py_agent.slots import list_name


@pytest.fixture
async def agent(tmp_path: Path) -> Agent:
    return await words_agent(tmp_path / "agent.db")


def titled(agent: Agent, title: str) -> dict:
    (task,) = (t for t in agent.state.tasks.values() if t["title"] == title)
    return task


def test_the_floors_are_ordered() -> None:
    for floors in (TASK_FLOORS, NOTE_FLOORS):
        assert 0 < floors.match < floors.clear < 1
    assert 0 < AMBIGUITY_MARGIN < TASK_FLOORS.clear - TASK_FLOORS.match


# -- lists ------------------------------------------------------------------------------------


async def test_a_task_added_to_a_list_is_on_that_list_only(agent: Agent) -> None:
    grocery = list_name("grocery")
    assert grocery is not None and list_name("groceries list") == grocery
    reply = await say(agent, "add avocados to my groceries list")
    assert reply == f"Added “avocados” to your {grocery} list."
    assert titled(agent, "avocados")["list"] == grocery
    await say(agent, "add call mom")
    assert titled(agent, "call mom")["list"] is None

    on_list = await say(agent, "what's on my grocery list")
    assert on_list == f"Your {grocery} list:\n• avocados"
    everything = await say(agent, "list my tasks")
    assert f"• avocados — {grocery} list" in everything and "• call mom" in everything


async def test_an_empty_list_says_so(agent: Agent) -> None:
    shopping = list_name("shopping")
    await say(agent, "add call mom")
    assert await say(agent, "what's on my shopping list") == f"Your {shopping} list is empty."


async def test_complete_and_delete_can_be_restricted_to_a_list(agent: Agent) -> None:
    shopping = list_name("shopping")
    await say(agent, "add milk to the shopping list")
    await say(agent, "add milk the cows")  # a "milk" that is on no list
    reply = await say(agent, "remove milk from the shopping list")
    assert reply == "Deleted “milk”."
    assert [t["title"] for t in agent.state.tasks.values()] == ["milk the cows"]
    nothing = await say(agent, "remove milk from the shopping list")
    assert nothing == f"There's nothing on your {shopping} list."


async def test_check_off_finds_the_task_by_meaning(agent: Agent) -> None:
    await say(agent, "add grab some eggs")
    assert await say(agent, "check off eggs") == "Marked “grab some eggs” as done."


# -- repeating tasks --------------------------------------------------------------------------


async def test_a_repeating_task_is_added_with_its_rule_and_first_due_date(agent: Agent) -> None:
    reply = await say(agent, "remind me every monday to take out the trash")
    task = titled(agent, "take out the trash")
    assert task["repeat"] == "FREQ=WEEKLY;BYDAY=MO" and task["due_date"] == "2026-11-23"
    assert (
        reply
        == f"Added “take out the trash”, {describe_rule(task['repeat'])}, first due Mon 23 Nov."
    )
    listed = await say(agent, "list my tasks")
    assert f"• take out the trash — due Mon 23 Nov, {describe_rule(task['repeat'])}" in listed


async def test_completing_a_repeating_task_keeps_the_completion_and_moves_it_on(
    agent: Agent,
) -> None:
    await say(agent, "remind me every monday to take out the trash")
    task = titled(agent, "take out the trash")
    reply = await say(agent, "mark take out the trash as done")
    assert reply == "Done: “take out the trash”. Next: Mon 30 Nov."
    moved = agent.state.tasks[task["id"]]
    assert (moved["done"], moved["due_date"], moved["repeat"]) == (
        False,
        "2026-11-30",
        "FREQ=WEEKLY;BYDAY=MO",
    )
    (copy,) = (t for t in agent.state.tasks.values() if t["id"] != task["id"])
    assert copy["title"] == "take out the trash" and copy["done"] is True
    assert (copy["due_date"], copy["done_at"]) == ("2026-11-23", NOW.isoformat())
    assert (copy["repeat"], copy["occurrence_of"]) == (None, task["id"])
    assert copy["id"] in agent.state.vectors["tasks"].ids  # found by meaning in history
    assert "✓ take out the trash" in await say(agent, "show done tasks")


async def test_the_page_checkbox_on_a_repeating_task_completes_one_occurrence(
    agent: Agent,
) -> None:
    await say(agent, "remind me every monday to take out the trash")
    task = titled(agent, "take out the trash")
    shown = await agent.edit("tasks", task["id"], {"done": True}, NOW)
    assert (shown["done"], shown["due_date"]) == (False, "2026-11-30")
    assert sum(t["done"] for t in agent.state.tasks.values()) == 1


async def test_the_page_shows_each_task_s_list_and_rule_in_words(agent: Agent) -> None:
    await say(agent, "remind me every monday to take out the trash")
    await say(agent, "add avocados to my grocery list")
    tasks = {t["title"]: t for t in agent.snapshot()["tasks"]}
    trash, avocados = tasks["take out the trash"], tasks["avocados"]
    assert trash["repeat_text"] == describe_rule("FREQ=WEEKLY;BYDAY=MO") and trash["list"] is None
    assert (avocados["repeat"], avocados["repeat_text"]) == (None, None)
    assert avocados["list"] == list_name("grocery")


# -- clear matches only -----------------------------------------------------------------------


async def test_a_weak_match_is_asked_about_and_yes_acts(agent: Agent) -> None:
    await say(agent, "add grab some eggs")
    # "buy eggs" shares one word of four with "grab some eggs": cosine 0.41, in the band.
    question = await agent.handle("mark buy eggs as done", NOW)
    assert question.asking and question.text == "Did you mean “grab some eggs”?"
    assert not any(t["done"] for t in agent.state.tasks.values())
    assert await say(agent, "yes") == "Marked “grab some eggs” as done."


async def test_no_to_a_weak_match_changes_nothing(agent: Agent) -> None:
    await say(agent, "add grab some eggs")
    assert (await agent.handle("delete buy eggs", NOW)).asking
    assert await say(agent, "no") == "OK, I left it as it is."
    assert len(agent.state.tasks) == 1 and agent.pending is None


async def test_anything_but_yes_is_a_new_request(agent: Agent) -> None:
    await say(agent, "add grab some eggs")
    assert (await agent.handle("mark buy eggs as done", NOW)).asking
    assert await say(agent, "add call mom") == "Added “call mom”."
    assert not any(t["done"] for t in agent.state.tasks.values())


async def test_no_match_is_said_and_nothing_is_done(agent: Agent) -> None:
    await say(agent, "add grab some eggs")
    reply = await say(agent, "mark pick up the kids as done")
    assert reply.startswith("I couldn't find a task like “pick up the kids”")
    assert not any(t["done"] for t in agent.state.tasks.values())


async def test_it_means_the_task_the_conversation_last_touched(agent: Agent) -> None:
    await say(agent, "add call mom")
    await say(agent, "add buy milk")
    assert await say(agent, "mark it as done") == "Marked “buy milk” as done."
    await say(agent, "show my tasks")  # one open task listed alone: "it" now
    assert await say(agent, "delete it") == "Deleted “call mom”."


async def test_tasks_made_in_one_instant_show_in_the_same_order_on_every_device(
    agent: Agent,
) -> None:
    # Every turn here runs at NOW, so created_at ties; a device that learnt the tasks in
    # another order (sync, import) must still list them in the same order.
    for title in ("post the letter", "renew the car insurance", "call the plumber"):
        await say(agent, f"remind me to {title}")
    shown = [t["id"] for t in agent.snapshot()["tasks"]]
    agent.state.tasks = dict(reversed(agent.state.tasks.items()))
    assert [t["id"] for t in agent.snapshot()["tasks"]] == shown == sorted(shown)
