"""What a start reads instead of replaying the op log (py_agent/state.py): the page's views
of tasks and notes, kept equal to the agent's snapshot through every kind of change, each
record's merged state, embeddings as bytes, and the migration that makes them from older
data. The browser's store is checked the same way in e2e/test_stored_views.py."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support import AGENT_NOW as NOW
from support import AppTransport, FakeClock, say, sync_app, words_agent

from py_agent.agent import PAGE_VIEWS, Agent
from py_agent.device_sync import DeviceSync
from py_agent.export import export_data, import_data
from py_agent.platform import Delete, Put, Store, open_store
from py_agent.state import (
    COLLECTIONS,
    MERGE_ONE_BY_ONE,
    SYNCED,
    SetField,
    State,
    migrate,
    open_state,
)
from py_agent.sync.hlc import HybridClock, system_wall_ms
from py_agent.sync.merge import Replica
from py_agent.sync.ops import Op
from py_agent.vectors import VectorIndex, decode_vectors

T0 = 1_800_000_000.0


async def agent_at(path: Path, clock: FakeClock | None = None) -> Agent:
    """The stand-in agent of tests/support.py over a state that keeps the page's views."""
    agent = await words_agent(path)
    await agent.state.store.close()
    wall = system_wall_ms if clock is None else (lambda: int(clock() * 1000))
    agent.state = await open_state(str(path), "words/1", wall, PAGE_VIEWS)
    await agent.prepare()
    return agent


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(record["id"]): record for record in records}


async def assert_views_match(agent: Agent) -> None:
    """The stored views are the snapshot's records, and the settings have every field."""
    snapshot, store = agent.snapshot(), agent.state.store
    for name in SYNCED:
        assert by_id(await store.get_all(name)) == by_id(snapshot[name]), name
    settings = await store.get("meta", "settings")
    assert settings is not None and set(settings) == {"threshold", "cloud_help", "consent"}


def replayed(ops: list[dict[str, Any]]) -> Replica:
    replica = Replica()
    replica.apply([Op.from_json(op) for op in ops])
    return replica


async def assert_starts_as_replayed(state: State, location: Path) -> State:
    """A new start over the store shows what replaying every stored op gives."""
    reopened = await open_state(str(location), state.model, views=state.views)
    replica = replayed(await reopened.store.get_all("ops"))
    for name in SYNCED:
        expected = {key: {"id": key, **fields} for key, fields in replica.records(name).items()}
        assert reopened.records[name] == expected == state.records[name]
    expected_conflicts = [c.to_json() for c in replica.conflicts() if c.collection in SYNCED]
    assert [c.to_json() for c in reopened.conflicts()] == expected_conflicts
    assert [c.to_json() for c in state.conflicts()] == expected_conflicts
    assert reopened.outbox == state.outbox
    stored = {entry["op_id"]: entry["hlc"] for entry in await reopened.store.get_all("outbox")}
    assert reopened.outbox == stored  # read from the records' merged states, not the outbox
    assert [op.op_id for op in await reopened.pending(10_000)] == [
        op.op_id for op in await state.pending(10_000)
    ]
    rows = await reopened.store.get_all("record_ops")
    assert len(rows) == len(await reopened.store.get_all("replica"))
    for row in rows:
        ops = replica.record_ops(row["collection"], row["record_id"])
        assert [op.op_id for op in ops] == [item[0] for item in json.loads(row["ops"])]
    return reopened


# -- a device on its own --------------------------------------------------------------------


async def test_every_local_change_keeps_the_views_equal_to_the_snapshot(tmp_path: Path) -> None:
    location = tmp_path / "agent.db"
    agent = await agent_at(location)
    await assert_views_match(agent)  # the default settings, written once
    assert await agent.state.store.get("meta", "settings") == {
        "threshold": agent.settings.threshold,
        "cloud_help": False,
        "consent": "unasked",
    }
    await say(agent, "remind me to take out the trash every monday")
    await say(agent, "add call Mom")
    await say(agent, "remember that the gate code is 4321")
    await assert_views_match(agent)
    stored = by_id(await agent.state.store.get_all("tasks"))
    trash = next(task for task in stored.values() if task["title"] == "take out the trash")
    assert trash["repeat_text"] == "every Monday" and trash["list"] is None

    # Checking off a repeating task completes its occurrence and moves it on.
    await agent.edit("tasks", trash["id"], {"done": True}, NOW)
    mom = next(task for task in agent.state.tasks.values() if task["title"] == "call Mom")
    await agent.edit("tasks", mom["id"], {"title": "call Dad", "list": "family"}, NOW)
    await assert_views_match(agent)
    await agent.remove("tasks", mom["id"])
    assert await agent.state.store.get("tasks", mom["id"]) is None
    await say(agent, "undo")  # the task comes back, through a tombstone write
    assert await agent.state.store.get("tasks", mom["id"]) is not None
    await say(agent, "forget the note about the gate code")
    assert await agent.state.store.get_all("notes") == []
    await agent.set_settings({"threshold": 0.4})
    await assert_views_match(agent)
    assert await agent.state.store.get("meta", "settings") == {
        "threshold": 0.4,
        "cloud_help": False,
        "consent": "unasked",
    }
    await assert_starts_as_replayed(agent.state, location)


async def test_an_import_and_a_failed_commit_keep_the_views_in_step(tmp_path: Path) -> None:
    source = await agent_at(tmp_path / "source.db")
    await say(source, "add pay the rent")
    await say(source, "remember that the wifi password is hunter2")
    agent = await agent_at(tmp_path / "agent.db")
    await say(agent, "add water the plants")

    async def embed(text: str) -> np.ndarray:
        return await agent.encoder.embed(text)

    await import_data(agent.state, export_data(source.state), embed, NOW)
    await assert_views_match(agent)
    assert {t["title"] for t in agent.state.tasks.values()} == {"pay the rent", "water the plants"}

    store = agent.state.store
    commit = store.commit

    async def failing(writes: Any) -> None:
        raise OSError("disk full")

    store.commit = failing  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        await say(agent, "add buy milk")
    store.commit = commit  # type: ignore[method-assign]
    assert "buy milk" not in {t["title"] for t in agent.state.tasks.values()}
    await assert_views_match(agent)
    await assert_starts_as_replayed(agent.state, tmp_path / "agent.db")


async def test_a_start_merges_a_record_only_when_it_is_needed(tmp_path: Path) -> None:
    location = tmp_path / "agent.db"
    agent = await agent_at(location)
    for title in ("one", "two", "three"):
        await say(agent, f"add {title}")
    reopened = await open_state(str(location), "words/1", views=PAGE_VIEWS)
    assert len(reopened.replica) == 0 and len(reopened.tasks) == 3
    [two] = [key for key, task in reopened.tasks.items() if task["title"] == "two"]
    replica = replayed(await reopened.store.get_all("ops"))

    await reopened.save([SetField("tasks", two, "title", "two!")])
    assert {op.record_id for op in reopened.replica.ops()} == {two}  # the others wait
    [head] = reopened.replica.heads("tasks", two, "title")
    op = reopened.replica.op(head)
    # The write superseded the head that replaying every op gives, so it is no conflict.
    assert op is not None and op.parents == replica.heads("tasks", two, "title")
    assert reopened.conflicts() == [] and reopened.tasks[two]["title"] == "two!"
    await reopened.store.close()


# -- between devices ---------------------------------------------------------------------------


class Devices:
    def __init__(self, tmp_path: Path, http: httpx.AsyncClient, clock: FakeClock) -> None:
        self.tmp_path, self.http, self.clock = tmp_path, http, clock
        self.agents: list[Agent] = []

    async def device(self, name: str) -> tuple[Agent, DeviceSync]:
        agent = await agent_at(self.tmp_path / f"{name}.db", self.clock)
        self.agents.append(agent)
        sync = DeviceSync(
            agent.state, AppTransport(self.http), clock=self.clock, random=lambda: 0.5
        )
        sync.after_pull = agent.prepare
        return agent, sync


@pytest.fixture
async def devices(tmp_path: Path) -> AsyncIterator[Devices]:
    clock = FakeClock(T0)
    http, app = sync_app(tmp_path, "server", clock)
    devices = Devices(tmp_path, http, clock)
    yield devices
    for agent in devices.agents:
        await agent.state.store.close()
    await http.aclose()
    await app.state.sync.store.close()


async def test_pulled_changes_conflicts_and_leaving_keep_the_views_in_step(
    devices: Devices, tmp_path: Path
) -> None:
    a, a_sync = await devices.device("a")
    b, b_sync = await devices.device("b")
    await say(a, "add water the plants")
    await say(b, "remember that the bike lock is 1234")
    code = (await a_sync.create_space("laptop"))["pairing_code"]
    await b_sync.join(code, "phone")
    await a_sync.run()
    for agent in (a, b):
        await assert_views_match(agent)
    assert len(b.snapshot()["tasks"]) == len(a.snapshot()["notes"]) == 1

    # The same task renamed on both devices: a conflict on both, then settled on one.
    [key] = a.state.tasks
    await a.edit("tasks", key, {"title": "water the garden"}, NOW)
    await b.edit("tasks", key, {"title": "water the roses"}, NOW)
    await a_sync.run()
    await b_sync.run()
    await a_sync.run()
    [conflict] = b.state.conflicts()
    assert [c.id for c in a.state.conflicts()] == [conflict.id]
    for agent in (a, b):
        await assert_views_match(agent)
    await assert_starts_as_replayed(b.state, tmp_path / "b.db")

    kept = next(v for v in conflict.versions if v.value == "water the roses")
    await b.resolve(conflict.id, kept.op_id)
    await b_sync.run()
    await a_sync.run()
    assert a.state.conflicts() == [] and b.state.conflicts() == []
    await a.remove("notes", next(iter(a.state.notes)))
    await a_sync.run()
    await b_sync.run()
    for agent in (a, b):
        await assert_views_match(agent)
        assert [t["title"] for t in agent.snapshot()["tasks"]] == ["water the roses"]
        assert agent.snapshot()["notes"] == []

    await b_sync.leave()
    await say(b, "add buy milk")
    await assert_views_match(b)
    reopened = await assert_starts_as_replayed(b.state, tmp_path / "b.db")
    await reopened.store.close()


# -- the migration and the stored forms -----------------------------------------------------------


async def version_3_store(location: Path, vector: np.ndarray) -> dict[str, Any]:
    """A store as schema 3 left it: ops and an outbox of {op_id, hlc}, a conflict, a deleted
    note, embeddings as base64 text. Returns the task as it shows."""
    replica = Replica()
    a, b = HybridClock("device-a", lambda: 1_000), HybridClock("device-b", lambda: 2)
    task = {"title": "pay rent", "done": False, "repeat": "FREQ=WEEKLY;BYDAY=FR"}
    for name, value in task.items():
        replica.write(a, collection="tasks", record_id="t1", field=name, value=value)
    replica.write(a, collection="notes", record_id="n1", field="text", value="gone")
    replica.write(a, collection="notes", record_id="n1", field="_deleted", value=True)
    replica.write(a, collection="notes", record_id="n2", field="text", value="kept")
    # Written on another device without seeing "pay rent": a conflict.
    replica.apply([_op("x1", b, "tasks", "t1", "title", "pay the rent")])
    store = await open_store(str(location), COLLECTIONS)
    text = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    ops = replica.ops()
    await store.commit(
        [
            *(Put("ops", op.op_id, op.to_json()) for op in ops),
            *(Put("outbox", op.op_id, {"op_id": op.op_id, "hlc": op.hlc}) for op in ops),
            Put("outbox", "lost", {"op_id": "lost", "hlc": ops[0].hlc}),
            Put("embeddings", "notes:n2", {"key": "notes:n2", "model": "words/1", "vector": text}),
            Put("meta", "schema", {"version": 3}),
        ]
    )
    await store.close()
    return {"id": "t1", **(replica.record("tasks", "t1") or {})}


def _op(op_id: str, clock: HybridClock, collection: str, key: str, field: str, value: Any) -> Op:
    stamp = clock.now().encode()
    return Op(op_id, clock.device_id, collection, key, field, value, stamp, ())


async def test_version_3_data_gets_its_views_rows_and_binary_embeddings(tmp_path: Path) -> None:
    location = tmp_path / "agent.db"
    vector = np.linspace(-1, 1, 12, dtype=np.float32)
    task = await version_3_store(location, vector)

    store = await open_store(str(location), COLLECTIONS)
    assert await migrate(store, PAGE_VIEWS) == 3
    assert await store.get("tasks", "t1") == PAGE_VIEWS["tasks"](task)
    assert (await store.get("tasks", "t1") or {})["repeat_text"] == "every Friday"
    assert await store.get_all("notes") == [{"id": "n2", "text": "kept"}]
    outbox = await store.get_all("outbox")
    assert len(outbox) == 7 and "lost" not in {e["op_id"] for e in outbox}  # its op never was
    pending = {r["record_id"]: len(r["pending"]) for r in await store.get_all("replica")}
    assert pending == {"t1": 4, "n1": 2, "n2": 1}
    embedding = await store.get("embeddings", "notes:n2")
    assert embedding is not None and embedding["vector"] == vector.tobytes()
    await store.close()

    state = await open_state(str(location), "words/1", views=PAGE_VIEWS)
    assert state.tasks == {"t1": task}
    assert [c.field for c in state.conflicts()] == ["title"]
    [(found, score)] = state.vectors["notes"].nearest(vector, 1)
    assert found == "n2" and score == pytest.approx(float(vector @ vector))
    assert await state.pending_count() == len(outbox)
    await assert_starts_as_replayed(state, location)


async def test_bytes_fields_round_trip_through_the_store(tmp_path: Path) -> None:
    store: Store = await open_store(str(tmp_path / "s.db"), ["things"])
    record = {"id": "a", "data": b"\x00\xffbinary", "more": b"", "text": "plain"}
    await store.commit([Put("things", "a", record), Put("things", "b", {"id": "b"})])
    assert await store.get("things", "a") == record
    assert await store.get_all("things") == [record, {"id": "b"}]
    await store.commit([Put("things", "a", {"id": "a"}), Delete("things", "b")])
    assert await store.get_all("things") == [{"id": "a"}]
    await store.close()


async def test_a_damaged_embedding_is_left_out_and_embedded_again(tmp_path: Path) -> None:
    location = tmp_path / "agent.db"
    agent = await agent_at(location)
    for text in ("the gate code is 4321", "the bike is blue", "the door is red"):
        await say(agent, f"remember that {text}")
    [first, second, third] = sorted(agent.state.notes)
    await agent.state.store.commit(
        [
            Put(
                "embeddings",
                f"notes:{first}",
                {"key": f"notes:{first}", "model": "words/1", "vector": b"\x00\x01"},
            )
        ]
    )
    reopened = await agent_at(location)  # prepare embeds what is missing
    assert sorted(reopened.state.vectors["notes"].ids) == [first, second, third]
    record = await reopened.state.store.get("embeddings", f"notes:{first}")
    assert record is not None and len(record["vector"]) == len(
        (await reopened.state.store.get("embeddings", f"notes:{second}") or {})["vector"]
    )


async def test_many_records_are_merged_from_one_read(tmp_path: Path) -> None:
    location = tmp_path / "agent.db"
    state = await open_state(str(location), "m", views=PAGE_VIEWS)
    count = MERGE_ONE_BY_ONE + 6
    await state.save(
        [Put("notes", f"n{i:03d}", {"id": f"n{i:03d}", "text": f"{i}"}) for i in range(count)]
    )
    reopened = await open_state(str(location), "m", views=PAGE_VIEWS)
    reads = []
    get_all = reopened.store.get_all

    async def counting(collection: str) -> list[dict[str, Any]]:
        reads.append(collection)
        return await get_all(collection)

    reopened.store.get_all = counting  # type: ignore[method-assign]
    pending = await reopened.pending(1000)
    assert reads == ["record_ops"] and len(reopened.replica) == len(pending) == count
    assert [op.op_id for op in pending] == [op.op_id for op in await state.pending(1000)]
    await assert_starts_as_replayed(reopened, location)


def test_vectors_load_as_one_matrix_and_refuse_mixed_lengths() -> None:
    rows = np.arange(12, dtype="<f4").reshape(3, 4)
    matrix = decode_vectors([row.tobytes() for row in rows])
    np.testing.assert_array_equal(matrix, rows)
    index = VectorIndex()
    index.add_many(["a", "b", "c"], matrix)
    index.remove("a")  # the loaded matrix is the index's own, writable storage
    index.add_many(["d", "b"], rows[:2])  # into a filled index: one by one
    assert sorted(index.ids) == ["b", "c", "d"]
    with pytest.raises(ValueError, match="differ in length"):
        decode_vectors([b"\0" * 8, b"\0" * 4])
