"""note.delete: forgetting a note by meaning, only when the match is clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import AGENT_NOW as NOW
from support import say, words_agent

from py_agent.agent import Agent


@pytest.fixture
async def agent(tmp_path: Path) -> Agent:
    agent = await words_agent(tmp_path / "agent.db")
    await say(agent, "note that the wifi password is hunter2")
    await say(agent, "note that the gate code is 4321")
    return agent


def texts(agent: Agent) -> list[str]:
    return sorted(str(n["text"]) for n in agent.state.notes.values())


async def test_a_note_is_forgotten_by_meaning(agent: Agent) -> None:
    assert await say(agent, "forget the wifi note") == (
        "Forgot the note “the wifi password is hunter2”."
    )
    assert texts(agent) == ["the gate code is 4321"] and len(agent.state.vectors["notes"]) == 1
    reply = await say(agent, "delete the note about the gate code")
    assert reply == "Forgot the note “the gate code is 4321”." and agent.state.notes == {}
    assert await say(agent, "forget the wifi note") == (
        "You have no notes, so there is nothing to forget."
    )


async def test_two_close_notes_are_asked_about(agent: Agent) -> None:
    await say(agent, "note that the door code is 1234")
    question = await agent.handle("forget the code note", NOW)
    assert question.asking and question.text.startswith("Which one do you mean: 1.")
    assert len(agent.state.notes) == 3
    assert await say(agent, "the gate code") == "Forgot the note “the gate code is 4321”."
    assert texts(agent) == ["the door code is 1234", "the wifi password is hunter2"]


async def test_a_weak_match_is_asked_about_and_a_miss_is_said(agent: Agent) -> None:
    await say(agent, "forget the wifi note")
    await say(agent, "note that the wifi password is hunter2 for the guest network")
    question = await agent.handle("forget the wifi note", NOW)
    assert question.text == ("Did you mean “the wifi password is hunter2 for the guest network”?")
    assert await say(agent, "nope") == "OK, I left it as it is." and len(agent.state.notes) == 2
    reply = await say(agent, "forget the pizza note")
    assert reply.startswith("I couldn't find a note about “pizza”") and len(agent.state.notes) == 2
