"""Follow-ups on contested deletes: a reply is never left claiming what a conflict undid."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import AGENT_NOW, say, words_agent

from py_agent.agent import Agent
from py_agent.platform import Delete, Put
from py_agent.skills import conflicts
from py_agent.state import open_state
from py_agent.sync.hlc import HybridClock, system_wall_ms
from py_agent.sync.ops import TOMBSTONE, Op, new_op

Heads = dict[str, tuple[str, ...]]


@pytest.fixture
async def agent(tmp_path: Path) -> Agent:
    return await words_agent(tmp_path / "agent.db")


def milk(agent: Agent) -> str:
    (task_id,) = (i for i, t in agent.state.tasks.items() if t["title"] == "buy milk")
    return task_id


def heads(agent: Agent, task_id: str) -> Heads:
    """The task's heads per field: what another device has seen once it synced."""
    return {
        name: agent.state.replica.heads("tasks", task_id, name)
        for name in (*agent.state.tasks[task_id], TOMBSTONE)
        if name != "id"
    }


OTHER = HybridClock("other-device", system_wall_ms)


def deleted_elsewhere(task_id: str, seen: Heads) -> Op:
    """Another device's delete, listing what it had seen, as Replica.write makes it."""
    parents = [op_id for name in sorted(seen) for op_id in seen[name]]
    return new_op(
        OTHER, collection="tasks", record_id=task_id, field=TOMBSTONE, value=True, parents=parents
    )


def completed_elsewhere(task_id: str, seen: Heads) -> Op:
    return new_op(
        OTHER, collection="tasks", record_id=task_id, field="done", value=True, parents=seen["done"]
    )


async def messages(agent: Agent) -> list[dict]:
    return await agent.state.history()


async def test_a_completion_deleted_elsewhere_is_followed_up_and_settled(tmp_path: Path) -> None:
    agent = await words_agent(tmp_path / "agent.db")
    await say(agent, "add buy milk")
    task_id = milk(agent)
    seen = heads(agent, task_id)  # what the other device synced before going offline
    assert await say(agent, "mark buy milk as done") == "Marked “buy milk” as done."
    *_, marked = await messages(agent)
    assert marked["records"] == [f"tasks:{task_id}"]

    await agent.state.receive([deleted_elsewhere(task_id, seen)], "cursor-1")
    await agent.prepare()  # what the device does after every pull that changed something
    *_, follow_up = await messages(agent)
    assert follow_up["refines"] == marked["id"]
    assert follow_up["text"] == (
        "“buy milk” was deleted on another device before this change reached it. It stays "
        "in your tasks, marked as a conflict, until you choose: keep it deleted, or restore "
        "it with the change."
    )
    assert agent.chat_changed == 1
    assert agent.state.tasks[task_id]["done"] is True  # still shown, done, in conflict

    # Another pull (or a restart) adds nothing more.
    agent.chat_changed = 0
    await agent.prepare()
    reopened = await open_state(str(tmp_path / "agent.db"), model="words/1")
    assert reopened.meta["conflict_notes"] == {f"tasks:{task_id}": follow_up["id"]}
    assert len(await messages(agent)) == 5 and agent.chat_changed == 0

    conflict = agent.state.delete_conflict("tasks", task_id)
    assert conflict is not None
    [delete] = [v for v in conflict.versions if v.value is True]
    assert await agent.state.store.get("embeddings", f"tasks:{task_id}") is not None
    await agent.resolve(conflict.id, delete.op_id)
    assert task_id not in agent.state.tasks
    assert await agent.state.store.get("embeddings", f"tasks:{task_id}") is None
    *_, settled = await messages(agent)
    assert settled["id"] == follow_up["id"]
    assert settled["text"] == follow_up["text"] + conflicts.SETTLED_DELETED
    assert agent.state.meta["conflict_notes"] == {}
    assert agent.chat_changed == 1


async def test_a_delete_changed_elsewhere_is_followed_up_and_a_restore_there_settles_it(
    agent: Agent,
) -> None:
    await say(agent, "add buy milk")
    task_id = milk(agent)
    seen = heads(agent, task_id)
    assert await say(agent, "delete the buy milk task") == "Deleted “buy milk”."
    *_, deleted = await messages(agent)

    await agent.state.receive([completed_elsewhere(task_id, seen)], "cursor-1")
    await agent.prepare()
    assert agent.state.tasks[task_id]["done"] is True  # back, with the other device's change
    *_, follow_up = await messages(agent)
    assert follow_up["refines"] == deleted["id"]
    assert follow_up["text"].startswith(
        "“buy milk” was changed on another device before your delete reached it, so it's back"
    )

    # The other device chooses "restore with the edit"; this one pulls the choice.
    restore = new_op(
        OTHER,
        collection="tasks",
        record_id=task_id,
        field=TOMBSTONE,
        value=False,
        parents=agent.state.replica.heads("tasks", task_id, TOMBSTONE),
    )
    await agent.state.receive([restore], "cursor-2")
    await agent.prepare()
    assert agent.state.delete_conflict("tasks", task_id) is None
    assert agent.state.tasks[task_id]["done"] is True
    *_, settled = await messages(agent)
    assert settled["text"] == follow_up["text"] + conflicts.SETTLED_RESTORED


async def test_a_conflict_no_reply_spoke_of_gets_no_follow_up(agent: Agent) -> None:
    await say(agent, "add buy milk")
    task_id = milk(agent)
    seen = heads(agent, task_id)
    await agent.edit("tasks", task_id, {"done": True}, AGENT_NOW)
    before = await messages(agent)
    await agent.state.receive([deleted_elsewhere(task_id, seen)], "cursor-1")
    await agent.prepare()
    assert await messages(agent) == before  # the task list marks it; nothing to correct
    assert agent.state.meta["conflict_notes"] == {f"tasks:{task_id}": ""}
    assert agent.chat_changed == 0


def test_touched_names_only_tasks_and_notes() -> None:
    writes = [
        Put("tasks", "t2", {}),
        Delete("notes", "n1"),
        Put("tasks", "t1", {}),
        Put("tasks", "t1", {}),
        Put("meta", "undo", {}),
        Delete("embeddings", "tasks:t1"),
    ]
    assert conflicts.touched(writes) == ["notes:n1", "tasks:t1", "tasks:t2"]


async def test_a_sync_now_turn_that_pulls_a_contested_delete_follows_it_up(agent: Agent) -> None:
    """The turn holds the agent's lock while its pull runs prepare: the follow-up must not
    wait for that lock (it would wait for ever)."""
    await say(agent, "add buy milk")
    task_id = milk(agent)
    seen = heads(agent, task_id)
    await say(agent, "mark buy milk as done")

    async def pull() -> str:
        await agent.state.receive([deleted_elsewhere(task_id, seen)], "cursor-1")
        await agent.prepare()  # as DeviceSync does after a pull that changed something
        return "Synced."

    agent.sync = pull
    # A guard, not a wait: a deadlock fails here instead of hanging the suite.
    assert await asyncio.wait_for(say(agent, "sync now"), timeout=30) == "Synced."
    follow_ups = [m for m in await messages(agent) if m.get("intent") == conflicts.INTENT]
    assert len(follow_ups) == 1 and agent.chat_changed == 1
