"""undo: each kind of change reversed as new ops, the stack's depth and persistence, and
undo after a sync, when another device changed the same records meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import AGENT_NOW as NOW
from support import say, words_agent

from py_agent.agent import Agent, AgentError
from py_agent.skills import undo
from py_agent.sync.hlc import HybridClock, system_wall_ms
from py_agent.sync.ops import TOMBSTONE, new_op


@pytest.fixture
async def agent(tmp_path: Path) -> Agent:
    return await words_agent(tmp_path / "agent.db")


def titled(agent: Agent, title: str) -> dict:
    (task,) = (t for t in agent.state.tasks.values() if t["title"] == title)
    return task


async def from_another_device(agent: Agent, collection: str, record_id: str, **fields: object):
    """Ops another device wrote after syncing this device's (so they supersede them)."""
    other = HybridClock("other-device", lambda: system_wall_ms() + 60_000)
    ops = [
        new_op(
            other,
            collection=collection,
            record_id=record_id,
            field=name,
            value=value,
            parents=agent.state.replica.heads(collection, record_id, name),
        )
        for name, value in fields.items()
    ]
    await agent.state.receive(ops, "cursor-1")


async def test_nothing_to_undo(agent: Agent) -> None:
    assert await say(agent, "undo") == "There's nothing to undo."
    await say(agent, "show my tasks")  # reads change nothing: still nothing to undo
    assert await say(agent, "undo") == "There's nothing to undo."


async def test_undo_an_add_as_new_ops_that_sync(agent: Agent) -> None:
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    pending = len(agent.state.outbox)
    assert await say(agent, "undo") == "Undid adding “buy milk”."
    assert agent.state.tasks == {} and len(agent.state.vectors["tasks"]) == 0
    assert len(agent.state.outbox) == pending + 1  # the tombstone, waiting to sync
    assert agent.state.replica.heads("tasks", task_id, TOMBSTONE)


async def test_undo_a_completion(agent: Agent) -> None:
    await say(agent, "add buy milk")
    await say(agent, "mark buy milk as done")
    assert await say(agent, "undo") == "Undid completing “buy milk”."
    task = titled(agent, "buy milk")
    assert (task["done"], task["done_at"]) == (False, None)


async def test_undo_a_repeating_completion_removes_the_copy_and_restores_the_due_date(
    agent: Agent,
) -> None:
    await say(agent, "remind me every monday to take out the trash")
    await say(agent, "mark take out the trash as done")
    assert len(agent.state.tasks) == 2
    assert await say(agent, "undo") == "Undid completing “take out the trash”."
    (task,) = agent.state.tasks.values()
    assert (task["done"], task["due_date"]) == (False, "2026-11-23")


async def test_undo_a_delete_brings_the_task_back_with_its_id_and_meaning(agent: Agent) -> None:
    await say(agent, "remind me to pay the rent tomorrow at 5pm")
    (task_id,) = agent.state.tasks
    before = dict(agent.state.tasks[task_id])
    await say(agent, "delete the rent task")
    assert await say(agent, "undo") == "Undid deleting “pay the rent”."
    assert agent.state.tasks == {task_id: before}
    assert await say(agent, "I paid the rent") == "Marked “pay the rent” as done."


async def test_undo_an_edit_and_the_page_s_edits_and_removals(agent: Agent) -> None:
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    await say(agent, "rename buy milk to buy oat milk")
    assert await say(agent, "undo") == "Undid renaming “buy milk” to “buy oat milk”."
    assert agent.state.tasks[task_id]["title"] == "buy milk"
    assert await say(agent, "delete the milk task") == "Deleted “buy milk”."  # re-embedded
    await say(agent, "undo")

    await agent.edit("tasks", task_id, {"title": "buy eggs", "due_date": "2026-11-20"}, NOW)
    assert await say(agent, "undo") == "Undid renaming “buy milk” to “buy eggs”."
    assert (agent.state.tasks[task_id]["title"], agent.state.tasks[task_id]["due_date"]) == (
        "buy milk",
        None,
    )
    await agent.edit("tasks", task_id, {"done": True}, NOW)
    assert await say(agent, "undo") == "Undid completing “buy milk”."
    await agent.remove("tasks", task_id)
    assert await say(agent, "undo") == "Undid deleting “buy milk”."
    assert task_id in agent.state.tasks


async def test_undo_note_add_and_delete(agent: Agent) -> None:
    await say(agent, "note that the gate code is 4321")
    (note_id,) = agent.state.notes
    await agent.remove("notes", note_id)
    assert await say(agent, "undo") == "Undid forgetting the note “the gate code is 4321”."
    assert agent.state.notes[note_id]["text"] == "the gate code is 4321"
    assert await say(agent, "undo") == "Undid noting “the gate code is 4321”."
    assert agent.state.notes == {}


async def test_undo_twice_undoes_two_changes_and_undo_is_not_itself_undone(
    agent: Agent,
) -> None:
    await say(agent, "add call mom")
    await say(agent, "add buy milk")
    await say(agent, "add walk the dog")
    assert await say(agent, "undo") == "Undid adding “walk the dog”."
    assert await say(agent, "undo") == "Undid adding “buy milk”."
    assert [t["title"] for t in agent.state.tasks.values()] == ["call mom"]
    assert await say(agent, "undo") == "Undid adding “call mom”."
    assert await say(agent, "undo") == "There's nothing to undo."


async def test_the_stack_keeps_the_newest_changes_on_this_device_only(
    agent: Agent, tmp_path: Path
) -> None:
    for n in range(undo.DEPTH + 3):
        await say(agent, f"add chore {n}")
    restarted = await words_agent(tmp_path / "agent.db")
    entries = undo.stack(restarted.state)
    assert len(entries) == undo.DEPTH and entries[-1].did == f"adding “chore {undo.DEPTH + 2}”"
    assert not any(op.collection == "meta" for op in restarted.state.replica.ops())
    for _ in range(undo.DEPTH):
        await say(restarted, "undo")
    assert await say(restarted, "undo") == "There's nothing to undo."
    assert sorted(t["title"] for t in restarted.state.tasks.values()) == [
        "chore 0",
        "chore 1",
        "chore 2",
    ]


async def test_a_turn_and_its_undo_entry_are_one_commit(agent: Agent) -> None:
    commits = []
    commit = agent.state.store.commit

    async def counting(writes):
        commits.append([(w.collection, w.key) for w in writes])
        await commit(writes)

    agent.state.store.commit = counting  # type: ignore[method-assign]
    await say(agent, "add buy milk")
    await say(agent, "undo")
    assert len(commits) == 2
    assert all(("meta", "undo") in keys for keys in commits)


# -- after a sync -----------------------------------------------------------------------------


async def test_undo_keeps_fields_another_device_changed_since(agent: Agent) -> None:
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    await say(agent, "rename buy milk to buy oat milk")
    await from_another_device(agent, "tasks", task_id, due_date="2026-11-25")
    assert await say(agent, "undo") == "Undid renaming “buy milk” to “buy oat milk”."
    task = agent.state.tasks[task_id]
    assert (task["title"], task["due_date"]) == ("buy milk", "2026-11-25")


async def test_undo_leaves_a_field_another_device_changed_again(agent: Agent) -> None:
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    await say(agent, "rename buy milk to buy oat milk")
    await from_another_device(agent, "tasks", task_id, title="buy soy milk")
    assert await say(agent, "undo") == (
        "I couldn't undo renaming “buy milk” to “buy oat milk”: it was changed on another "
        "device since."
    )
    assert agent.state.tasks[task_id]["title"] == "buy soy milk"
    assert await say(agent, "undo") == "Undid adding “buy milk”."  # the entry was used up


async def test_a_record_deleted_elsewhere_comes_back_only_by_undoing_its_own_deletion(
    agent: Agent,
) -> None:
    await say(agent, "add buy milk")
    await say(agent, "add call mom")
    milk, mom = titled(agent, "buy milk")["id"], titled(agent, "call mom")["id"]
    await say(agent, "mark buy milk as done")
    await from_another_device(agent, "tasks", milk, **{TOMBSTONE: True})
    reply = await say(agent, "undo")
    assert reply == "I couldn't undo completing “buy milk”: it was changed on another device since."
    assert milk not in agent.state.tasks

    await say(agent, "delete the call mom task")
    await from_another_device(agent, "tasks", mom, **{TOMBSTONE: False})  # restored there
    assert await say(agent, "undo") == "Undid deleting “call mom”."  # it is back already
    assert agent.state.tasks[mom]["title"] == "call mom"


async def test_undoing_a_delete_leaves_a_conflict_with_an_edit_to_the_users_choice(
    agent: Agent,
) -> None:
    await say(agent, "add call mom")
    mom = titled(agent, "call mom")["id"]
    # Another device renames it before the delete reaches it: the rename's parents are
    # the title's heads, so it is concurrent with the delete made here.
    rename = new_op(
        HybridClock("other-device", system_wall_ms),
        collection="tasks",
        record_id=mom,
        field="title",
        value="call mom tonight",
        parents=agent.state.replica.heads("tasks", mom, "title"),
    )
    await say(agent, "delete the call mom task")
    await agent.state.receive([rename], "cursor-1")
    assert agent.state.tasks[mom]["title"] == "call mom tonight"  # back, in conflict
    reply = await say(agent, "undo")
    assert reply == "I couldn't undo deleting “call mom”: it was changed on another device since."
    conflict = agent.state.delete_conflict("tasks", mom)
    assert conflict is not None and conflict.edits == (rename.op_id,)


async def test_an_undo_reverts_what_it_can_and_says_what_it_left(agent: Agent) -> None:
    await say(agent, "add buy milk")
    (task_id,) = agent.state.tasks
    await agent.edit("tasks", task_id, {"title": "buy eggs", "due_date": "2026-11-20"}, NOW)
    await from_another_device(agent, "tasks", task_id, title="buy bread")
    assert await say(agent, "undo") == (
        "Undid renaming “buy milk” to “buy eggs”, except what was changed on another device since."
    )
    task = agent.state.tasks[task_id]
    assert (task["title"], task["due_date"]) == ("buy bread", None)


# -- restoring one deleted record from the page ------------------------------------------------


async def test_restore_brings_back_every_field_and_the_embedding_as_ops_that_sync(
    agent: Agent, tmp_path: Path
) -> None:
    await say(agent, "remind me to pay the rent tomorrow at 5pm")
    (task_id,) = agent.state.tasks
    before = dict(agent.state.tasks[task_id])
    await agent.remove("tasks", task_id)
    pending = len(agent.state.outbox)
    restored = await agent.restore("tasks", task_id)
    assert restored == before and agent.state.tasks == {task_id: before}
    assert len(agent.state.outbox) > pending  # the tombstone cleared, waiting to sync
    assert undo.stack(agent.state)[-1].did == "adding “pay the rent”"  # the delete is gone
    restarted = await words_agent(tmp_path / "agent.db")
    assert restarted.state.tasks == {task_id: before}
    query = await restarted.encoder.embed("pay the rent")
    assert restarted.state.vectors["tasks"].nearest(query, 1)[0][0] == task_id
    assert await say(restarted, "I paid the rent") == "Marked “pay the rent” as done."


async def test_restore_undoes_only_that_delete_and_keeps_what_was_changed_since(
    agent: Agent,
) -> None:
    await say(agent, "add buy milk")
    await say(agent, "note that the gate code is 4321")
    milk, (note_id,) = titled(agent, "buy milk")["id"], agent.state.notes
    await agent.remove("notes", note_id)
    await agent.edit("tasks", milk, {"title": "buy oat milk"}, NOW)
    await say(agent, "add call mom")
    restored = await agent.restore("notes", note_id)
    assert restored["text"] == "the gate code is 4321"
    assert sorted(t["title"] for t in agent.state.tasks.values()) == ["buy oat milk", "call mom"]
    # The changes since are still undone newest first, and the delete is not undone twice.
    assert await say(agent, "undo") == "Undid adding “call mom”."
    assert await say(agent, "undo") == "Undid renaming “buy milk” to “buy oat milk”."
    assert await say(agent, "undo") == "Undid noting “the gate code is 4321”."
    assert agent.state.notes == {}


async def test_restore_explains_a_record_this_device_did_not_delete(agent: Agent) -> None:
    await say(agent, "add buy milk")
    await say(agent, "add call mom")
    milk, mom = titled(agent, "buy milk")["id"], titled(agent, "call mom")["id"]
    with pytest.raises(AgentError, match=r"^“buy milk” isn't deleted, so there's nothing to"):
        await agent.restore("tasks", milk)
    with pytest.raises(AgentError, match=r"^That note can't be restored: it wasn't deleted on"):
        await agent.restore("notes", "nope")
    await from_another_device(agent, "tasks", mom, **{TOMBSTONE: True})
    with pytest.raises(AgentError, match=r"^“call mom” can't be restored: it wasn't deleted on"):
        await agent.restore("tasks", mom)
    await agent.remove("tasks", milk)
    await agent.restore("tasks", milk)
    with pytest.raises(AgentError, match="isn't deleted"):  # one delete, restored once
        await agent.restore("tasks", milk)
    assert mom not in agent.state.tasks
