"""The SQLite sync store's group commit, and the sync route's use of what a push returns."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from starlette.responses import JSONResponse

from py_agent.sync.hlc import Timestamp
from py_agent.sync.ops import Op, canonical_json
from server.store import (
    STORED_BODIES_SQL,
    OpConflictError,
    Page,
    Pushed,
    SQLiteSyncStore,
    StoredOp,
    StoreError,
    _canonical,
)
from server.sync_api import sync_answer

T = TypeVar("T")
SPACE = "space-1"
NOW = 1_800_000_000.0


def make_op(device: str, n: int, value: Any = None, parents: tuple[str, ...] = ()) -> Op:
    return Op(
        op_id=f"{device}-{n}",
        device_id=device,
        collection="tasks",
        record_id=f"t{n}",
        field="title",
        value=f"task {n}" if value is None else value,
        hlc=Timestamp(1_800_000_000_000 + n, 0, device).encode(),
        parents=parents,
    )


def batch(device: str, first: int, count: int) -> list[Op]:
    return [make_op(device, n) for n in range(first, first + count)]


async def open_store(path: Path) -> SQLiteSyncStore:
    store = SQLiteSyncStore(path)
    await store.create_space(SPACE, "code-hash", NOW, NOW + 3600)
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteSyncStore]:
    store = await open_store(tmp_path / "sync.db")
    yield store
    if store._db is not None:  # not closed by the test itself
        await store.close()


class Commits:
    """Counts the COMMITs the store's connection runs (the fsyncs of a push)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, statement: str) -> None:
        if statement == "COMMIT":
            self.count += 1


async def count_commits(store: SQLiteSyncStore) -> Commits:
    commits = Commits()
    # sqlite3 connections belong to their thread: install the hook on the store's.
    await store._run(store.db.set_trace_callback, commits)
    return commits


async def as_one_group(
    store: SQLiteSyncStore, calls: list[Awaitable[T]]
) -> list[T | BaseException]:
    """Runs ``calls`` while the store's thread is held, so that every push among them is
    queued before the thread is free: they are then written by one group commit."""
    gate = threading.Event()
    held = asyncio.get_running_loop().run_in_executor(store._executor, gate.wait)
    tasks = [asyncio.ensure_future(call) for call in calls]

    async def release() -> None:
        gate.set()

    # Tasks take their first step in the order they were made: by the time release()
    # runs, every push has joined the queue (a push queues before its first await).
    await asyncio.ensure_future(release())
    await held
    return await asyncio.gather(*tasks, return_exceptions=True)


async def stored_after_restart(store: SQLiteSyncStore) -> list[tuple[int, str]]:
    """(seq, op_id) of every op of the space, read by a store opened afresh on the file."""
    await store.close()
    reopened = SQLiteSyncStore(store.path)
    try:
        return [(s.seq, json.loads(s.body)["op_id"]) for s in await reopened.all_ops(SPACE)]
    finally:
        await reopened.close()


# -- group commit ----------------------------------------------------------------------------


async def test_concurrent_pushes_are_acked_and_durable_after_one_commit(
    store: SQLiteSyncStore,
) -> None:
    commits = await count_commits(store)
    pushes = [batch(f"dev{d}", 10 * r, 10) for d in range(5) for r in range(3)]
    results = await as_one_group(
        store, [store.push(SPACE, ops[0].device_id, ops, NOW) for ops in pushes]
    )
    assert commits.count == 1  # fifteen pushes, one fsync

    seqs: list[int] = []
    for ops, result in zip(pushes, results, strict=True):
        assert isinstance(result, Pushed), result
        assert result.acked == [op.op_id for op in ops]
        assert result.new == ops
        seqs.extend(range(result.first_seq, result.first_seq + len(ops)))
    assert sorted(seqs) == list(range(1, 151))  # gapless, each seq handed out once

    stored = dict(await stored_after_restart(store))
    for ops, result in zip(pushes, results, strict=True):
        assert isinstance(result, Pushed)
        assert [stored[result.first_seq + i] for i in range(len(ops))] == [o.op_id for o in ops]


async def test_a_conflicting_push_fails_alone_in_its_group(store: SQLiteSyncStore) -> None:
    await store.push(SPACE, "dev0", [make_op("dev0", 1)], NOW)
    first, conflicting, changed_in_group, after = (
        batch("dev1", 0, 3),
        [make_op("dev0", 2), make_op("dev0", 1, value="changed")],  # op 1 is stored already
        [make_op("dev1", 0, value="also changed")],  # conflicts with `first`, same group
        batch("dev2", 0, 3),
    )
    results = await as_one_group(
        store,
        [
            store.push(SPACE, "dev1", first, NOW),
            store.push(SPACE, "dev0", conflicting, NOW),
            store.push(SPACE, "dev1", changed_in_group, NOW),
            store.push(SPACE, "dev2", after, NOW),
        ],
    )
    assert isinstance(results[1], OpConflictError) and results[1].index == 1
    assert isinstance(results[2], OpConflictError) and results[2].index == 0
    assert isinstance(results[0], Pushed) and results[0].first_seq == 2
    assert isinstance(results[3], Pushed) and results[3].first_seq == 5  # no seq was lost
    assert [op_id for _, op_id in await stored_after_restart(store)] == [
        "dev0-1",
        "dev1-0",
        "dev1-1",
        "dev1-2",
        "dev2-0",
        "dev2-1",
        "dev2-2",
    ]


async def test_a_push_the_database_refuses_fails_alone(store: SQLiteSyncStore) -> None:
    with sqlite3.connect(store.path) as db:  # any statement error of one push, not only conflicts
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON ops WHEN NEW.op_id = 'dev1-1' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    results = await as_one_group(
        store,
        [
            store.push(SPACE, "dev0", batch("dev0", 0, 2), NOW),
            store.push(SPACE, "dev1", batch("dev1", 0, 2), NOW),
            store.push(SPACE, "dev2", batch("dev2", 0, 2), NOW),
        ],
    )
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert isinstance(results[0], Pushed) and isinstance(results[2], Pushed)
    assert [op_id for _, op_id in await stored_after_restart(store)] == [
        "dev0-0",
        "dev0-1",
        "dev2-0",
        "dev2-1",
    ]


async def test_a_failed_transaction_fails_its_whole_group_and_stores_nothing(
    store: SQLiteSyncStore,
) -> None:
    await store.push(SPACE, "dev0", [make_op("dev0", 0)], NOW)
    with sqlite3.connect(store.path) as db:  # like a full disk: SQLite ends the transaction
        db.execute(
            "CREATE TRIGGER lose BEFORE INSERT ON ops WHEN NEW.op_id = 'dev1-1' "
            "BEGIN SELECT RAISE(ROLLBACK, 'lost'); END"
        )
    results = await as_one_group(
        store,
        [
            store.push(SPACE, "dev0", batch("dev0", 1, 2), NOW),
            store.push(SPACE, "dev1", batch("dev1", 0, 2), NOW),
            store.push(SPACE, "dev2", batch("dev2", 0, 2), NOW),
        ],
    )
    for result in results:  # each names what went wrong
        assert isinstance(result, StoreError) and str(result) == "the push was not stored: lost"
    assert len({id(r) for r in results}) == 3  # each request raises its own exception
    # The store goes on working, and the lost group used up no seq.
    pushed = await store.push(SPACE, "dev2", batch("dev2", 0, 2), NOW)
    assert pushed.first_seq == 2
    assert await stored_after_restart(store) == [(1, "dev0-0"), (2, "dev2-0"), (3, "dev2-1")]


async def test_a_push_whose_request_went_away_is_stored_and_acked_again(
    store: SQLiteSyncStore,
) -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
    gone = asyncio.ensure_future(store.push(SPACE, "dev0", batch("dev0", 0, 2), NOW))

    async def cancel_then_push() -> Pushed:
        gone.cancel()  # the client disconnected while its push waited for the group
        return await store.push(SPACE, "dev1", batch("dev1", 0, 2), NOW)

    (other,) = await as_one_group(store, [cancel_then_push()])
    assert isinstance(other, Pushed) and other.acked == ["dev1-0", "dev1-1"]
    assert gone.cancelled()
    again = await store.push(SPACE, "dev0", batch("dev0", 0, 2), NOW)  # the device re-sends
    assert again.acked == ["dev0-0", "dev0-1"] and again.new == []
    assert errors == []  # settling the cancelled push's future did not fail on the loop


async def test_a_replay_in_the_same_group_is_stored_once(store: SQLiteSyncStore) -> None:
    ops = batch("dev0", 0, 3)
    first, replay = await as_one_group(
        store,
        [store.push(SPACE, "dev0", ops, NOW), store.push(SPACE, "dev0", [*ops, ops[0]], NOW)],
    )
    assert isinstance(first, Pushed) and isinstance(replay, Pushed)
    assert first.new == ops and replay.new == []
    assert replay.acked == first.acked == ["dev0-0", "dev0-1", "dev0-2"]
    assert len(await stored_after_restart(store)) == 3


async def test_push_after_close_is_refused(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "sync.db")
    await store.close()
    with pytest.raises(RuntimeError):
        await store.push(SPACE, "dev0", batch("dev0", 0, 1), NOW)


async def test_stored_ops_are_looked_up_by_index_not_scanned(store: SQLiteSyncStore) -> None:
    with sqlite3.connect(store.path) as db:
        query = "EXPLAIN QUERY PLAN " + STORED_BODIES_SQL
        plan = " ".join(row[3] for row in db.execute(query, ("[]", SPACE)))
    assert "(space_id=? AND op_id=?)" in plan, plan


# -- texts: what is stored and what a pull answers -------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'ünïcödé ✓ "quoted" \\ \n\t',
        1.0,
        -0.0,
        2.5,
        None,
        True,
        {"b": [1, {"z": 0, "a": "é"}], "a": 1},
    ],
)
def test_stored_text_is_the_canonical_json(value: Any) -> None:
    op = make_op("dev-1", 3, value=value, parents=('p"1', "ü"))
    assert _canonical(op) == canonical_json(op.to_json())


def test_sync_answer_renders_like_json_response() -> None:
    ops = [make_op("dev0", 1, value={"ü": "✓", "q": '"x"\n'}), make_op("dev0", 2)]
    for has_more in (True, False):
        page = Page(
            [StoredOp(n + 1, canonical_json(op.to_json())) for n, op in enumerate(ops)], 7, has_more
        )
        expected = JSONResponse(
            {
                "acked": ["a-1", "ü-2"],
                "ops": [json.loads(stored.body) for stored in page.ops],
                "cursor": "7",
                "has_more": has_more,
            }
        )
        answer = sync_answer(["a-1", "ü-2"], page)
        assert answer.body == expected.body
        assert answer.headers["content-type"] == expected.headers["content-type"]
