"""Agent turns end to end on CPython, with a bag-of-words encoder and a keyword intent
head standing in for the model (tests/support.py; the real ones are tested by test_intents
and e2e). The skills' own rules are in tests/test_skills_*.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from support import AGENT_NOW as NOW
from support import say, words_agent

from py_agent.agent import Agent, AgentError
from py_agent.platform import Write
from py_agent.router import CloudAnswer, Route
from py_agent.slots import slots_json
from py_agent.state import embedding_key, open_state
from py_agent.sync.hlc import HybridClock, Timestamp, system_wall_ms
from py_agent.sync.ops import new_op


@pytest.fixture
async def agent(tmp_path: Path) -> Agent:
    return await words_agent(tmp_path / "agent.db")


async def test_add_list_complete_delete(agent: Agent) -> None:
    assert await say(agent, "Remind me to pay the rent tomorrow at 5pm") == (
        "Added “pay the rent”, due tomorrow 17:00."
    )
    assert "Added “call Mom”" in await say(agent, "add call Mom")
    listed = await say(agent, "list my tasks")
    assert "• pay the rent — due tomorrow 17:00" in listed and "• call Mom" in listed
    assert await say(agent, "I paid the rent") == "Marked “pay the rent” as done."
    assert "pay the rent" not in await say(agent, "list my tasks")
    assert "✓ pay the rent" in await say(agent, "show done tasks")
    assert await say(agent, "delete the call mom task") == "Deleted “call Mom”."
    assert await say(agent, "list my tasks") == "You have no open tasks."


async def test_due_filters(agent: Agent) -> None:
    await say(agent, "remind me to water plants today")
    await say(agent, "remind me to file taxes 2026-11-10")
    await say(agent, "remind me to book flights next week")
    assert "water plants" in await say(agent, "tasks due today")
    overdue = await say(agent, "overdue tasks")
    assert "file taxes" in overdue and "water plants" not in overdue
    assert "book flights" not in await say(agent, "tasks due this week")


async def test_ambiguous_target_is_asked_and_the_answer_applied(agent: Agent) -> None:
    await say(agent, "add call mom about rent")
    await say(agent, "add call dad about rent")
    question = await agent.handle("mark call about rent as done", NOW)
    assert question.asking and question.text.startswith("Which one do you mean: 1.")
    assert agent.state.tasks and not any(t["done"] for t in agent.state.tasks.values())
    done = await say(agent, "the second one")
    assert done.startswith("Marked “call") and done.endswith("as done.")
    assert sum(t["done"] for t in agent.state.tasks.values()) == 1


async def test_a_new_request_instead_of_an_answer_is_handled_normally(agent: Agent) -> None:
    await say(agent, "add call mom about rent")
    await say(agent, "add call dad about rent")
    assert (await agent.handle("mark call about rent as done", NOW)).asking
    assert "Added “buy milk”" in await say(agent, "add buy milk")
    assert agent.pending is None


async def test_unknown_task_is_explained(agent: Agent) -> None:
    await say(agent, "add buy milk")
    assert "couldn't find a task" in await say(agent, "I finished the tax return")


async def test_notes_add_search_list(agent: Agent) -> None:
    assert await say(agent, "note that the wifi password is hunter2") == (
        "Noted: “the wifi password is hunter2”"
    )
    await say(agent, "remember that the garage code is 4321")
    answer = await say(agent, "what is the wifi password?")
    assert answer.startswith("From your notes: “the wifi password is hunter2”")
    listed = await say(agent, "show my notes")
    assert listed.startswith("Your notes (2):") and "garage code" in listed


async def test_simple_intents(agent: Agent) -> None:
    assert "I can do" in await say(agent, "help")
    assert await say(agent, "thanks!") == "You're welcome!"
    assert "does not sync" in await say(agent, "sync now")
    assert "can't help with that" in await say(agent, "what's the capital of Peru")
    assert "can't check the weather" in await say(agent, "what's the weather in Paris")


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("   ", "empty"), (42, "must be text"), ("x" * 2001, "limit is 2000")],
)
async def test_bad_requests_are_refused_clearly(agent: Agent, text: object, message: str) -> None:
    with pytest.raises(AgentError, match=message):
        await agent.handle(text, NOW)
    assert await agent.state.history() == []


async def test_turns_are_persisted_and_cached(agent: Agent, tmp_path: Path) -> None:
    await say(agent, "add buy milk")
    calls = agent.encoder.calls  # type: ignore[attr-defined]
    reply = await agent.handle("  ADD   buy milk ", NOW)
    assert reply.cached and agent.cache.stats()["hits"] == 1
    # Only the new task title was embedded: the utterance came from the cache.
    assert agent.encoder.calls == calls + 1  # type: ignore[attr-defined]

    reopened = await open_state(str(tmp_path / "agent.db"), model="words/1")
    history = await reopened.history()
    assert [m["role"] for m in history] == ["user", "agent", "user", "agent"]
    assert history[1]["intent"] == "task.add" and history[1]["confidence"] == 0.99
    assert len(reopened.tasks) == 2 and len(reopened.vectors["tasks"]) == 2


async def test_turns_and_edits_at_once_each_build_on_the_last(agent: Agent) -> None:
    """Two tabs send their turns and edits to one agent without waiting for each other:
    the agent runs them one at a time, so no turn's undo entry, counter or message is lost."""
    # Embedding and committing yield to the event loop, as onnxruntime-web and IndexedDB do.
    embed, commit = agent.encoder.embed, agent.state.store.commit

    async def yielding_embed(text: str) -> np.ndarray:
        await asyncio.sleep(0)
        return await embed(text)

    async def yielding_commit(writes: Sequence[Write]) -> None:
        await asyncio.sleep(0)
        await commit(writes)

    agent.encoder.embed = yielding_embed  # type: ignore[method-assign]
    agent.state.store.commit = yielding_commit  # type: ignore[method-assign]
    await say(agent, "add buy milk")
    [milk] = agent.state.tasks
    texts = [f"add task number {n}" for n in range(6)]
    await asyncio.gather(
        *(agent.handle(text, NOW) for text in texts),
        agent.edit("tasks", milk, {"done": True}, NOW),
    )
    history = await agent.state.history()
    assert len(history) == 2 * (1 + len(texts))
    assert len({m["id"] for m in history}) == len(history)
    assert sorted(m["text"] for m in history if m["role"] == "user") == sorted(
        ["add buy milk", *texts]
    )
    assert len(agent.state.tasks) == 1 + len(texts) and agent.state.tasks[milk]["done"]
    assert len(agent.state.meta["undo"]["entries"]) == 2 + len(texts)


async def test_sync_now_reports_what_the_sync_said(agent: Agent) -> None:
    async def sync() -> str:
        return "Synced: this device is up to date with your other devices."

    agent.sync = sync
    assert await say(agent, "sync now") == await sync()


async def test_edits_from_the_page_change_fields_and_re_embed(agent: Agent) -> None:
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    calls = agent.encoder.calls  # type: ignore[attr-defined]
    edited = await agent.edit("tasks", task_id, {"title": "  buy oat milk "}, NOW)
    assert edited["title"] == "buy oat milk"
    # Committed before the new title is embedded (so that it syncs at once), without the
    # old title's vector: the next turn embeds it before matching.
    assert agent.encoder.calls == calls  # type: ignore[attr-defined]
    assert [task["id"] for task in agent.state.missing_vectors("tasks")] == [task_id]
    assert "buy oat milk" in await say(agent, "delete the oat milk task")

    await say(agent, "add call mom")
    (task_id,) = agent.state.tasks
    calls = agent.encoder.calls  # type: ignore[attr-defined]
    done = await agent.edit("tasks", task_id, {"done": True, "due_date": "2026-11-20"}, NOW)
    assert (done["done"], done["done_at"]) == (True, NOW.isoformat())
    assert done["due_date"] == "2026-11-20"
    assert agent.encoder.calls == calls  # the title did not change: no new embedding
    undone = await agent.edit("tasks", task_id, {"done": False}, NOW)
    assert (undone["done"], undone["done_at"]) == (False, None)

    await agent.remove("tasks", task_id)
    assert agent.state.tasks == {} and len(agent.state.vectors["tasks"]) == 0


async def test_an_edited_title_is_embedded_after_its_commit_and_never_stale(
    tmp_path: Path,
) -> None:
    agent = await words_agent(tmp_path / "agent.db")
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    key = embedding_key("tasks", task_id)
    await agent.edit("tasks", task_id, {"title": "buy oat milk"}, NOW)
    assert await agent.state.store.get("embeddings", key) is None  # the old title's is gone

    # The pass after the edit's push (DeviceSync's after_pull) embeds it; an edit made
    # while it embeds leaves the vector of the text it replaced unstored.
    embed, started, go_on = agent.encoder.embed, asyncio.Event(), asyncio.Event()

    async def slow(text: str) -> np.ndarray:
        started.set()
        await go_on.wait()
        return await embed(text)

    agent.encoder.embed = slow  # type: ignore[method-assign]
    preparing = asyncio.create_task(agent.prepare())
    await started.wait()
    await agent.edit("tasks", task_id, {"title": "buy soy milk"}, NOW)
    go_on.set()
    await preparing
    assert [task["id"] for task in agent.state.missing_vectors("tasks")] == [task_id]
    await agent.prepare()
    assert agent.state.missing_vectors("tasks") == []
    stored = await agent.state.store.get("embeddings", key)
    assert stored is not None
    restarted = await open_state(str(tmp_path / "agent.db"), model="words/1")
    (vector,) = restarted.vectors["tasks"].nearest(await embed("buy soy milk"), 1)
    assert vector == (task_id, pytest.approx(1.0))


@pytest.mark.parametrize(
    ("collection", "changes", "message"),
    [
        ("tasks", {"title": "  "}, "A task needs a title."),
        (
            "tasks",
            {"title": "x" * 501},
            "A title can be at most 500 characters (this one has 501).",
        ),
        ("tasks", {"done": "yes"}, "A task is either done or not (“yes” is neither)."),
        (
            "tasks",
            {"due_date": "2026-13-40"},
            "“2026-13-40” isn't a date: use one like 2026-11-23.",
        ),
        ("tasks", {"due_date": 5}, "“5” isn't a date: use one like 2026-11-23."),
        ("tasks", {"due_time": "25:00"}, "“25:00” isn't a time: use one like 17:30."),
        ("tasks", {"due_time": "09:00"}, "A task with a time needs a due date too."),
        ("tasks", {"list": "!!"}, "“!!” can't be a list's name: use words, like “groceries”."),
        (
            "tasks",
            {"owner": "me"},
            "Only a task's title, due date and time, list, repeat and whether it's done can be "
            "changed.",
        ),
        ("tasks", {}, "There's nothing to change."),
        ("tasks", ["title"], "There's nothing to change."),
        ("notes", {"text": ""}, "A note can't be empty."),
        ("notes", {"title": "x"}, "Only a note's text can be changed."),
        ("messages", {"text": "x"}, "Only tasks and notes can be changed here."),
    ],
)
async def test_bad_edits_are_refused_and_change_nothing(
    agent: Agent, collection: str, changes: object, message: str
) -> None:
    await say(agent, "add buy milk")
    await say(agent, "note that the gate code is 4321")
    before = (dict(agent.state.tasks), dict(agent.state.notes), len(agent.state.replica))
    record_id = next(iter(agent.state.notes if collection == "notes" else agent.state.tasks))
    with pytest.raises(AgentError) as refused:
        await agent.edit(collection, record_id, changes, NOW)
    assert str(refused.value) == message
    assert (dict(agent.state.tasks), dict(agent.state.notes), len(agent.state.replica)) == before


async def test_unknown_records_and_conflicts_are_explained(agent: Agent) -> None:
    with pytest.raises(
        AgentError, match=r"^That task isn't here any more: it may have been deleted on another"
    ):
        await agent.edit("tasks", "nope", {"done": True}, NOW)
    with pytest.raises(AgentError, match=r"^That note isn't here any more"):
        await agent.remove("notes", "nope")
    with pytest.raises(AgentError, match="already settled"):
        await agent.resolve("0" * 40, "op")


async def test_a_turn_embeds_what_a_pull_changed_before_the_pass_after_it(agent: Agent) -> None:
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    (op,) = [op for op in agent.state.replica.ops() if op.field == "title"]
    other = HybridClock("other-device", lambda: system_wall_ms() + 1000)
    other.observe(Timestamp.decode(op.hlc))
    renamed = new_op(
        other,
        collection="tasks",
        record_id=task_id,
        field="title",
        value="call the plumber",
        parents=(op.op_id,),
    )
    await agent.state.receive([renamed], "1")  # the device's prepare waits for a pause
    assert [task["id"] for task in agent.state.missing_vectors("tasks")] == [task_id]
    assert "call the plumber" in await say(agent, "delete the plumber task")


async def test_resolving_a_conflict_keeps_the_chosen_version_and_re_embeds(agent: Agent) -> None:
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    other = HybridClock("other-device", lambda: system_wall_ms() + 1000)
    theirs = new_op(
        other, collection="tasks", record_id=task_id, field="title", value="buy eggs"
    )  # written without having seen "buy milk": concurrent
    await agent.state.receive([theirs], "1")
    (conflict,) = agent.state.conflicts()
    assert agent.state.tasks[task_id]["title"] == "buy eggs"  # the later one is displayed
    mine = next(v for v in conflict.versions if v.value == "buy milk")
    calls = agent.encoder.calls  # type: ignore[attr-defined]
    await agent.resolve(conflict.id, mine.op_id)
    assert agent.state.conflicts() == []
    assert agent.state.tasks[task_id]["title"] == "buy milk"
    assert agent.encoder.calls == calls + 1  # type: ignore[attr-defined]
    with pytest.raises(AgentError, match="already settled"):
        await agent.resolve(conflict.id, mine.op_id)


# -- guesses, the server's slots, refusals ---------------------------------------------------


class ServerRouter:
    """A router whose server reads every request as ``intent`` with ``slots``."""

    def __init__(self, intent: str, slots: dict, answer: str | None = None) -> None:
        self.cloud = CloudAnswer(intent, 0.97, slots, answer, "server-model", 12.0)

    async def route(self, text, now, local, settings) -> Route:
        return Route(self.cloud.intent, 0.97, "cloud", False, "asked", local, self.cloud)


async def test_an_action_the_device_was_unsure_of_is_marked_as_a_guess(agent: Agent) -> None:
    agent.head.unsure |= {"remind me to buy milk", "show my tasks", "mark the kids as done"}  # type: ignore[attr-defined]
    reply = await agent.handle("remind me to buy milk", NOW)
    assert reply.source == "tentative" and reply.text == (
        "Added “buy milk”.\n(A guess: I wasn't sure I understood. Say “undo” if that's wrong.)"
    )
    assert (await agent.state.history())[-1]["source"] == "tentative"
    assert (await agent.handle("show my tasks", NOW)).source == "local"  # no action
    assert (await agent.handle("mark the kids as done", NOW)).source == "local"  # changed nothing
    assert (await agent.handle("add call mom", NOW)).source == "local"  # sure


async def test_the_server_s_slots_are_acted_on(agent: Agent) -> None:
    slots = slots_json("task.add", "remind me to phone the bank on friday", NOW)
    agent.router = ServerRouter("task.add", slots)  # type: ignore[assignment]
    reply = await agent.handle("rmnd me 2 fone teh bank fri", NOW)
    assert reply.source == "cloud" and reply.text == "Added “phone the bank”, due Fri 20 Nov."


async def test_malformed_server_slots_fall_back_to_reading_the_text(agent: Agent) -> None:
    agent.router = ServerRouter("task.add", {"title": 42, "due": ["no"]})  # type: ignore[assignment]
    reply = await agent.handle("remind me to phone the bank on friday", NOW)
    assert reply.text == "Added “phone the bank”, due Fri 20 Nov."


async def test_a_timer_is_refused_and_a_reminder_in_minutes_is_a_task(agent: Agent) -> None:
    refused = await agent.handle("set a timer for 5 minutes", NOW)
    assert refused.intent == "out_of_scope" and refused.text.startswith("I can't set timers.")
    assert agent.state.tasks == {} and refused.changed == []
    added = await say(agent, "remind me in 5 minutes to check the oven")
    assert added == "Added “check the oven”, due today 10:05."


async def test_a_refusal_wins_over_the_server_s_generative_answer(agent: Agent) -> None:
    agent.router = ServerRouter("out_of_scope", {}, answer="Timer set for 5 minutes!")  # type: ignore[assignment]
    reply = await agent.handle("set a timer for 5 minutes", NOW)
    assert reply.text.startswith("I can't set timers.") and "Timer set" not in reply.text
