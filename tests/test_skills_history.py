"""history: what was completed in a period, and when a task was last done, by meaning."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from support import AGENT_NOW as NOW
from support import say, words_agent

from py_agent.agent import Agent

YESTERDAY_EVENING = NOW - timedelta(hours=15)  # Tue 17 Nov 19:00
MONDAY = NOW - timedelta(days=2)  # Mon 16 Nov 10:00
LAST_WEEK = NOW - timedelta(days=7)  # Wed 11 Nov 10:00


@pytest.fixture
async def agent(tmp_path: Path) -> Agent:
    agent = await words_agent(tmp_path / "agent.db")
    await say(agent, "add pay the rent", LAST_WEEK)
    await say(agent, "add water plants", LAST_WEEK)
    await say(agent, "add call mom", LAST_WEEK)
    await say(agent, "add file taxes", LAST_WEEK)
    await say(agent, "I paid the rent", LAST_WEEK)
    await say(agent, "mark water plants as done", MONDAY)
    await say(agent, "mark call mom as done", YESTERDAY_EVENING)
    return agent


async def test_what_was_completed_yesterday(agent: Agent) -> None:
    assert await say(agent, "what did I do yesterday?") == (
        "Yesterday you completed 1 task:\n• call mom — yesterday at 19:00"
    )


async def test_what_was_completed_this_week_latest_first(agent: Agent) -> None:
    assert await say(agent, "what did I finish this week?") == (
        "This week you completed 2 tasks:\n"
        "• call mom — yesterday at 19:00\n"
        "• water plants — on Mon 16 Nov at 10:00"
    )


async def test_an_empty_period_says_so(agent: Agent) -> None:
    assert await say(agent, "what did I do today?") == "You didn't complete anything today."


async def test_when_a_task_was_last_done(agent: Agent) -> None:
    assert await say(agent, "when did I last call mom?") == (
        "You completed “call mom” yesterday at 19:00."
    )
    assert await say(agent, "have I paid the rent yet?") == (
        "You completed “pay the rent” on Wed 11 Nov at 10:00."
    )


async def test_a_task_not_done_yet_and_one_never_seen(agent: Agent) -> None:
    assert await say(agent, "have I filed the taxes yet?") == "Not yet: “file taxes” is still open."
    reply = await say(agent, "when did I last walk the dog?")
    assert reply == "I have no record of completing anything like “walk the dog”."


async def test_a_weak_match_is_offered_as_the_closest(agent: Agent) -> None:
    # "phone mom back" shares one word with "call mom": cosine 0.41, in the band.
    assert await say(agent, "when did I last phone mom back?") == (
        "The closest I found is “call mom”, completed yesterday at 19:00."
    )


async def test_repeating_completions_are_history_and_the_latest_answers(agent: Agent) -> None:
    await say(agent, "remind me every monday to take out the trash", LAST_WEEK)
    await say(agent, "mark take out the trash as done", LAST_WEEK)
    await say(agent, "mark take out the trash as done", MONDAY)
    assert await say(agent, "when did I last take out the trash?") == (
        "You last completed “take out the trash” on Mon 16 Nov at 10:00."
    )
