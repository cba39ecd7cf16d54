from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from py_agent.cache import TTLCache, normalise_utterance
from py_agent.platform import Delete, Put, StoreError, open_store
from py_agent.state import COLLECTIONS, SCHEMA_VERSION, RecordViews, SetField, migrate, open_state
from py_agent.sync.hlc import HybridClock, system_wall_ms
from py_agent.sync.ops import TOMBSTONE, new_op
from py_agent.vectors import VectorIndex, decode_vector

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


async def test_version_1_data_is_migrated_to_the_current_version(tmp_path: Path) -> None:
    location = str(tmp_path / "agent.db")
    store = await open_store(location, COLLECTIONS)
    # Version 1: no schema record, embeddings inside the notes.
    await store.commit(
        [
            Put(
                "notes",
                "n1",
                {
                    "id": "n1",
                    "text": "gate code 4321",
                    "created_at": "x",
                    "embedding": [0.6, 0.8],
                    "embedding_model": "m1",
                },
            ),
            Put("notes", "n2", {"id": "n2", "text": "no vector", "created_at": "y"}),
        ]
    )
    assert await migrate(store) == 1
    assert await store.get("meta", "schema") == {"version": SCHEMA_VERSION}
    record = await store.get("embeddings", "notes:n1")
    assert record is not None and record["model"] == "m1"
    np.testing.assert_allclose(decode_vector(record["vector"]), [0.6, 0.8], rtol=1e-6)
    assert await migrate(store) == SCHEMA_VERSION  # a second open changes nothing
    await store.close()

    state = await open_state(location, model="m1")
    assert state.notes["n1"] == {"id": "n1", "text": "gate code 4321", "created_at": "x"}
    assert state.vectors["notes"].ids == ["n1"]
    assert [n["id"] for n in state.missing_vectors("notes")] == ["n2"]


async def test_a_new_store_starts_at_the_current_version() -> None:
    store = await open_store(":memory:", COLLECTIONS)
    assert await migrate(store) == SCHEMA_VERSION
    assert await store.get("meta", "schema") == {"version": SCHEMA_VERSION}


async def test_newer_data_is_refused_not_damaged() -> None:
    store = await open_store(":memory:", COLLECTIONS)
    await store.commit([Put("meta", "schema", {"version": SCHEMA_VERSION + 1})])
    with pytest.raises(StoreError, match="newer than this py_agent"):
        await migrate(store)


async def test_state_survives_reopen_with_vectors(tmp_path: Path) -> None:
    location = str(tmp_path / "agent.db")
    state = await open_state(location, model="m1")
    task = {"id": "t1", "title": "pay rent", "done": False, "created_at": NOW.isoformat()}
    await state.save(
        [Put("tasks", "t1", task), state.message("user", "add pay rent", NOW)],
        [("tasks", "t1", unit(1, 0))],
    )
    reopened = await open_state(location, model="m1")
    assert reopened.tasks == {"t1": task}
    assert reopened.vectors["tasks"].nearest(unit(1, 0), 1) == [("t1", pytest.approx(1.0))]
    assert [m["text"] for m in await reopened.history()] == ["add pay rent"]
    assert reopened.message_count == 1

    await reopened.save([Delete("tasks", "t1")])
    assert reopened.tasks == {} and len(reopened.vectors["tasks"]) == 0
    # Vectors from another model are not trusted: they get recomputed.
    other = await open_state(location, model="m2")
    assert len(other.vectors["tasks"]) == 0


def test_vector_index_ranks_filters_and_removes() -> None:
    index = VectorIndex()
    for i, angle in enumerate(np.linspace(0, np.pi / 2, 40)):
        index.add(f"r{i}", unit(np.cos(angle), np.sin(angle)))
    assert [i for i, _ in index.nearest(unit(1, 0), 2)] == ["r0", "r1"]
    assert [i for i, _ in index.nearest(unit(1, 0), 2, among={"r5", "r30"})] == ["r5", "r30"]
    index.remove("r0")
    index.remove("r39")
    assert len(index) == 38
    assert index.nearest(unit(1, 0), 1)[0][0] == "r1"
    assert index.nearest(unit(0, 1), 1)[0][0] == "r38"
    index.add("r1", unit(0, 1))  # replacing keeps one row per id
    assert len(index) == 38 and index.nearest(unit(0, 1), 1)[0][0] in {"r1", "r38"}


def test_cache_is_lru_with_expiry() -> None:
    now = [0.0]
    cache: TTLCache[int] = TTLCache(2, ttl_s=10, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)  # evicts b
    assert cache.get("b") is None and cache.get("c") == 3
    now[0] = 10.5
    assert cache.get("a") is None
    assert cache.stats() == {"hits": 2, "misses": 2, "size": 1}
    assert normalise_utterance("  Show   MY tasks ") == "show my tasks"
    with pytest.raises(ValueError, match="maxsize"):
        TTLCache(0, 1)


async def test_message_ids_are_never_reused(tmp_path: Path) -> None:
    """Two States over one store (two tabs before one took the lead) and a wall clock
    that goes back: every id is new, and ids sort in the order they were made."""
    location = str(tmp_path / "agent.db")
    wall = [1_800_000_000_000]
    first = await open_state(location, model="m1", wall_ms=lambda: wall[0])
    second = await open_state(location, model="m1", wall_ms=lambda: wall[0])
    made = []
    for state in (first, second, first, second):
        put = state.message("user", "hello", NOW)
        made.append(put.key)
        await state.save([put])
    assert len(set(made)) == 4
    assert sorted(made[::2]) == made[::2] and sorted(made[1::2]) == made[1::2]

    wall[0] -= 60_000  # the clock went back a minute
    reopened = await open_state(location, model="m1", wall_ms=lambda: wall[0])
    later = [reopened.message("agent", "hi", NOW).key for _ in range(3)]
    assert min(later) > max(made) and sorted(later) == later
    assert len(await reopened.history()) == 4


async def test_message_ids_sort_after_the_old_numbered_ones(tmp_path: Path) -> None:
    location = str(tmp_path / "agent.db")
    store = await open_store(location, COLLECTIONS)
    old = {"id": "00000007", "role": "user", "text": "before", "at": NOW.isoformat()}
    await store.commit([Put("messages", "00000007", old)])
    state = await open_state(location, model="m1")
    await state.save([state.message("agent", "after", NOW)])
    assert [m["text"] for m in await state.history()] == ["before", "after"]


async def test_a_burst_in_one_millisecond_moves_the_id_on(tmp_path: Path) -> None:
    state = await open_state(str(tmp_path / "agent.db"), model="m1", wall_ms=lambda: 5_000)
    ids = [state.new_message_id() for _ in range(1005)]
    assert len(set(ids)) == 1005 and sorted(ids) == ids
    assert ids[-1].startswith("0000000005001-004-")


async def test_a_contested_delete_is_shown_and_kept_across_a_restart(tmp_path: Path) -> None:
    """The record stays shown, in conflict, in the page's stored view and after a start
    that reads the stored rows rather than replaying ops; keeping it deleted hides it."""
    views: RecordViews = {"tasks": dict, "notes": dict}
    path = str(tmp_path / "state.db")
    state = await open_state(path, model="m", views=views)
    await state.save([Put("tasks", "t1", {"id": "t1", "title": "buy milk", "done": False})])
    seen = [h for name in ("done", "title") for h in state.replica.heads("tasks", "t1", name)]
    other = HybridClock("other-device", system_wall_ms)
    delete = new_op(
        other, collection="tasks", record_id="t1", field=TOMBSTONE, value=True, parents=seen
    )
    await state.save([Put("tasks", "t1", {"id": "t1", "title": "buy milk", "done": True})])
    await state.receive([delete], "cursor-1")

    reopened = await open_state(path, model="m", views=views)
    assert reopened.tasks["t1"]["done"] is True
    assert await reopened.store.get("tasks", "t1") == {
        "id": "t1",
        "title": "buy milk",
        "done": True,
    }
    conflict = reopened.delete_conflict("tasks", "t1")
    assert conflict is not None and [v.value for v in conflict.versions] == [True, False]

    await reopened.save([SetField("tasks", "t1", TOMBSTONE, True)])  # keep deleted
    assert reopened.delete_conflict("tasks", "t1") is None
    again = await open_state(path, model="m", views=views)
    assert "t1" not in again.tasks and await again.store.get("tasks", "t1") is None
    assert again.conflicts() == []
