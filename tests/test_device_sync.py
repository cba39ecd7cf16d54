"""The device side of sync: State as the sync log over a real store, pairing, DeviceSync's
status, and when it decides the next exchange is due -- against the real server app
in-process. Clocks are fakes: nothing sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support import AppTransport, FakeClock, sync_app

from py_agent.device_sync import (
    BACKOFF_MAX_S,
    IDLE_S,
    PERIODIC_S,
    DeviceSync,
    PairingError,
    conflicts_json,
)
from py_agent.platform import Delete, Put, Store, StoreError, Write, open_store
from py_agent.state import COLLECTIONS, SCHEMA_VERSION, SetField, State, migrate, open_state

T0 = 1_800_000_000.0


def task(record_id: str, title: str, done: bool = False) -> Put:
    return Put("tasks", record_id, {"id": record_id, "title": title, "done": done})


def titles(state: State) -> dict[str, str]:
    return {key: str(record["title"]) for key, record in state.tasks.items()}


class Device:
    def __init__(self, state: State, sync: DeviceSync, transport: AppTransport) -> None:
        self.state, self.sync, self.transport = state, sync, transport
        self.pulled = 0

    async def count_pull(self) -> None:
        self.pulled += 1


class World:
    def __init__(self, tmp_path: Path, http: httpx.AsyncClient, clock: FakeClock) -> None:
        self.tmp_path, self.http, self.clock = tmp_path, http, clock
        self.states: list[State] = []

    def wall_ms(self) -> int:
        return int(self.clock() * 1000)

    async def device(self, name: str) -> Device:
        state = await open_state(str(self.tmp_path / f"{name}.db"), "m", self.wall_ms)
        self.states.append(state)
        transport = AppTransport(self.http)
        sync = DeviceSync(state, transport, clock=self.clock, random=lambda: 0.5)
        device = Device(state, sync, transport)
        sync.after_pull = device.count_pull
        return device

    async def pair(self) -> tuple[Device, Device]:
        a, b = await self.device("a"), await self.device("b")
        code = (await a.sync.create_space("laptop"))["pairing_code"]
        await b.sync.join(code, "phone")
        return a, b


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(T0)
    http, app = sync_app(tmp_path, "server", clock)
    world = World(tmp_path, http, clock)
    yield world
    for state in world.states:
        await state.store.close()
    await http.aclose()
    await app.state.sync.store.close()


async def test_a_local_device_works_alone_then_brings_its_data_when_paired(world: World) -> None:
    a = await world.device("a")
    await a.state.save([task("t1", "water the plants")])
    status = a.sync.status()
    assert (status["state"], status["paired"], status["next_in_s"]) == ("local", False, None)
    assert status["pending"] == 2  # one op per field: title, done
    assert await a.sync.run() == status  # nothing to do without a space

    status = await a.sync.create_space("laptop")
    assert (status["state"], status["paired"], status["pending"]) == ("synced", True, 0)
    assert status["device_id"] != "" and status["next_at"] == T0 + PERIODIC_S
    assert status["next_in_s"] == PERIODIC_S
    code = status["pairing_code"]
    assert isinstance(code, str) and len(code) == 19

    b = await world.device("b")
    await b.state.save([task("t2", "call the bank")])
    status = await b.sync.join(code, "phone")
    assert status["state"] == "synced" and status["space_id"] == a.sync.status()["space_id"]
    assert titles(b.state) == {"t1": "water the plants", "t2": "call the bank"}
    # New records arrived: the agent embeds them on a tick of their own, after the
    # exchange (whose end shows them on the page), once changes pause.
    assert b.pulled == 0 and b.sync.next_at() == world.clock() + IDLE_S
    world.clock.advance(IDLE_S)
    await b.sync.tick()
    assert b.pulled == 1 and b.sync.next_at() == world.clock() - IDLE_S + PERIODIC_S
    await a.sync.run()
    assert titles(a.state) == titles(b.state)
    assert a.state.revision == 1 and b.state.revision == 1


async def test_concurrent_edits_become_a_conflict_on_both_that_a_resolve_settles(
    world: World,
) -> None:
    a, b = await world.pair()
    await a.state.save([task("t1", "buy milk")])
    await a.sync.run()
    await b.sync.run()
    await a.state.save([task("t1", "buy oat milk")])
    await b.state.save([task("t1", "buy milk and eggs")])
    world.clock.advance(1)
    for device in (a, b, a):
        await device.sync.run()

    assert titles(a.state) == titles(b.state)
    listed = [conflicts_json(device.state) for device in (a, b)]
    assert [[c["id"] for c in found] for found in listed] == [[listed[0][0]["id"]]] * 2
    versions = listed[0][0]["versions"]
    assert {v["value"] for v in versions} == {"buy oat milk", "buy milk and eggs"}
    assert [v["this_device"] for v in versions].count(True) == 1
    assert listed[0][0]["label"] == titles(a.state)["t1"]
    assert a.sync.status()["conflicts"] == 1

    # Keep the version that is NOT displayed: the resolve is an op like any other.
    kept = versions[1]
    await b.state.save([SetField("tasks", "t1", "title", kept["value"])])
    assert b.sync.status()["state"] == "pending"
    await b.sync.run()
    await a.sync.run()
    for device in (a, b):
        assert device.state.conflicts() == []
        assert titles(device.state) == {"t1": kept["value"]}


async def test_data_clock_outbox_and_pairing_survive_a_restart(world: World) -> None:
    a, _ = await world.pair()
    await a.state.save([task("t1", "one")])
    before = await a.state.pending(10)
    last = a.state.clock.last
    await a.state.store.close()

    world.clock.advance(-3600)  # the wall clock went back an hour while the app was closed
    reopened = await world.device("a")
    assert titles(reopened.state) == {"t1": "one"}
    assert await reopened.state.pending(10) == before
    assert reopened.state.clock.last == last
    assert reopened.sync.status()["paired"] is True
    await reopened.state.save([task("t1", "two")])
    newest = max(op.hlc for op in await reopened.state.pending(10))
    assert last is not None and newest > last.encode()
    assert (await reopened.sync.run())["state"] == "synced"


class FailingStore:
    """A store whose commits fail while ``failing`` is set."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.collections, self.failing = inner, inner.collections, False

    async def get(self, collection: str, key: str) -> Any:
        return await self.inner.get(collection, key)

    async def get_all(self, collection: str) -> Any:
        return await self.inner.get_all(collection)

    async def commit(self, writes: Sequence[Write]) -> None:
        if self.failing:
            raise StoreError("disk full")
        await self.inner.commit(writes)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_failed_commit_leaves_memory_as_the_store_is() -> None:
    inner = await open_store(":memory:", COLLECTIONS)
    await migrate(inner)
    store = FailingStore(inner)
    state = State(store, "m")
    await state.load()
    await state.save([task("t1", "kept")])
    ops_before, outbox_before = len(state.replica), dict(state.outbox)

    store.failing = True
    with pytest.raises(StoreError, match="disk full"):
        await state.save([task("t1", "lost"), Delete("tasks", "t1")])
    assert titles(state) == {"t1": "kept"}
    assert len(state.replica) == ops_before and state.outbox == outbox_before


async def test_offline_backs_off_then_recovers(world: World) -> None:
    a, _ = await world.pair()
    a.transport.offline = True
    await a.state.save([task("t1", "offline edit")])
    status = await a.sync.run()
    assert status["state"] == "offline" and status["pending"] == 2
    assert status["next_at"] == status["retry_at"] == T0 + 0.5  # random 0.5 x 1 s
    assert status["retry_in_s"] == 0.5
    assert status["error"] == "offline: can't reach the server"  # the countdown is the page's
    assert await a.sync.chat_reply() == (
        "I can't reach the server right now; 2 changes will sync when you're online."
    )
    a.transport.offline = False
    world.clock.advance(1)
    status = await a.sync.run()
    assert (status["state"], status["pending"], status["error"]) == ("synced", 0, None)


async def test_pairing_failures_are_explained_and_change_nothing(world: World) -> None:
    a = await world.device("a")
    await a.state.save([task("t1", "mine")])
    with pytest.raises(PairingError, match="not recognised"):
        await a.sync.join("ABCD-EFGH-JKMN-PQRS", "phone")
    with pytest.raises(PairingError, match="type the pairing code"):
        await a.sync.join("  ", "phone")
    with pytest.raises(PairingError, match="device name"):
        await a.sync.create_space("")
    a.transport.offline = True
    with pytest.raises(PairingError, match="can't reach the server"):
        await a.sync.create_space("laptop")
    status = a.sync.status()
    assert (status["state"], status["pending"]) == ("local", 2)
    assert titles(a.state) == {"t1": "mine"}


async def test_rejoining_the_same_space_restamps_only_what_is_pending(world: World) -> None:
    a, b = await world.pair()
    code = a.sync.status()["pairing_code"]
    await a.state.save([task("t1", "first"), task("t2", "untouched")])
    await a.sync.run()
    await b.sync.run()
    with pytest.raises(PairingError, match="not in a space"):
        await (await world.device("c")).sync.new_pairing_code()
    fresh = (await b.sync.new_pairing_code())["pairing_code"]
    assert fresh != code and a.sync.status()["pairing_code"] == code
    with pytest.raises(PairingError, match="replaced by a newer one"):
        await (await world.device("d")).sync.join(code, "tablet")
    code = fresh
    status = await a.sync.leave()
    assert (status["state"], status["paired"], status["pairing_code"]) == ("local", False, None)
    await a.state.save([task("t1", "edited while unpaired")])
    old_device = a.state.clock.device_id

    status = await a.sync.join(code, "laptop again")
    assert status["state"] == "synced" and status["device_id"] != old_device
    await b.sync.run()
    assert titles(b.state) == {"t1": "edited while unpaired", "t2": "untouched"}
    assert b.state.conflicts() == [] and a.state.conflicts() == []


async def test_pulled_changes_drop_stale_embeddings(world: World) -> None:
    a, b = await world.pair()
    await a.state.save([task("t1", "water plants"), task("t2", "pay rent")])
    await a.sync.run()
    await b.sync.run()
    vector = np.ones(4, dtype=np.float32) / 2
    await b.state.save([], [("tasks", "t1", vector), ("tasks", "t2", vector)])
    await a.state.save([task("t1", "water the garden"), Delete("tasks", "t2")])
    await a.sync.run()
    world.clock.advance(IDLE_S)
    await b.sync.tick()  # the embedding after the last pull
    pulled = b.pulled
    await b.sync.run()
    world.clock.advance(IDLE_S)
    await b.sync.tick()
    assert b.pulled == pulled + 1
    assert titles(b.state) == {"t1": "water the garden"}
    assert len(b.state.vectors["tasks"]) == 0
    assert [r["id"] for r in b.state.missing_vectors("tasks")] == ["t1"]
    assert await b.state.store.get("embeddings", "tasks:t1") is None
    assert await b.state.store.get("embeddings", "tasks:t2") is None


async def test_version_2_records_become_ops_waiting_to_sync(tmp_path: Path) -> None:
    location = str(tmp_path / "agent.db")
    store = await open_store(location, COLLECTIONS)
    record = {"id": "t1", "title": "from v2", "done": False, "due_date": None}
    await store.commit([Put("meta", "schema", {"version": 2}), Put("tasks", "t1", record)])
    assert await migrate(store) == 2
    assert await store.get("meta", "schema") == {"version": SCHEMA_VERSION}
    assert await store.get_all("tasks") == []  # the ops are the truth now
    assert len(await store.get_all("outbox")) == 3
    await store.close()
    state = await open_state(location, "m")
    assert state.tasks == {"t1": record}
    assert await state.pending_count() == 3


# -- when the next exchange is due (DeviceSync.next_at; the worker's timer follows it) ------


def exchanges(device: Device) -> list[Any]:
    """The bodies of the device's sync requests (pairing's requests aside)."""
    return [body for body in device.transport.sent if isinstance(body, dict) and "cursor" in body]


async def test_a_paired_device_syncs_at_start_then_pulls_periodically(world: World) -> None:
    a, _ = await world.pair()
    restarted = DeviceSync(a.state, a.transport, clock=world.clock, random=lambda: 0.5)
    assert restarted.next_at() == T0  # at once: the app just started
    await restarted.tick()
    assert len(exchanges(a)) == 2  # pairing's exchange, and this one
    assert restarted.next_at() == T0 + PERIODIC_S
    world.clock.advance(PERIODIC_S - 1)
    await restarted.tick()  # not due yet: nothing sent
    assert len(exchanges(a)) == 2
    world.clock.advance(1)
    await restarted.tick()
    assert len(exchanges(a)) == 3
    assert restarted.next_at() == world.clock() + PERIODIC_S


async def test_a_local_change_goes_out_at_once_and_those_made_meanwhile_right_after(
    world: World,
) -> None:
    a, _ = await world.pair()
    sent, after_pulls = len(exchanges(a)), a.pulled
    await a.state.save([task("one", "one")])
    a.sync.note_changes()  # the worker looks after every call
    assert a.sync.next_at() == world.clock()  # at once: no waiting for more
    gate = a.transport.gate = asyncio.Event()
    first = asyncio.create_task(a.sync.tick())
    await a.transport.arrived.wait()
    for title in ("two", "three"):  # a burst while that exchange is under way
        await a.state.save([task(title, title)])
        a.sync.note_changes()
        assert a.sync.next_at() is None  # the exchange's end decides
    gate.set()
    await first
    # The exchange carried them too (it pushes until the outbox is empty): none follows.
    assert [len(body["ops"]) for body in exchanges(a)[sent:]] == [2, 4]  # 2 fields a task
    assert a.pulled == after_pulls
    assert a.sync.next_at() == world.clock() + IDLE_S  # the work after them, once they pause
    world.clock.advance(IDLE_S)
    await a.sync.tick()  # (an edit's new text to embed)
    assert a.pulled == after_pulls + 1 and len(exchanges(a)) == sent + 2
    assert a.sync.status()["state"] == "synced"
    assert a.sync.next_at() == world.clock() - IDLE_S + PERIODIC_S


async def test_the_work_after_local_changes_waits_for_a_pause_not_for_the_network(
    world: World,
) -> None:
    a = await world.device("a")  # never paired: nothing to push
    await a.state.save([task("t1", "edit")])
    a.sync.note_changes()
    assert a.sync.next_at() == world.clock() + IDLE_S
    world.clock.advance(IDLE_S / 2)
    await a.state.save([task("t1", "edit again")])
    a.sync.note_changes()  # a burst: the work waits for its end, and runs once
    assert a.sync.next_at() == world.clock() + IDLE_S
    world.clock.advance(IDLE_S / 2)
    await a.sync.tick()
    assert a.pulled == 0
    world.clock.advance(IDLE_S / 2)
    await a.sync.tick()
    assert a.pulled == 1 and a.sync.next_at() is None and a.transport.sent == []


async def test_after_a_failure_changes_wait_for_the_retry_unless_back_online(
    world: World,
) -> None:
    a, _ = await world.pair()
    a.transport.offline = True
    await a.state.save([task("t1", "offline edit")])
    a.sync.note_changes()
    await a.sync.tick()
    retry_at = a.sync.status()["retry_at"]
    assert retry_at == world.clock() + 0.5  # full jitter: 0.5 of a 1 s ceiling
    await a.state.save([task("t2", "another")])
    a.sync.note_changes()
    assert a.sync.next_at() == retry_at  # the retry carries it; no extra attempt
    for _ in range(10):  # the backoff doubles, up to its cap
        world.clock.now = a.sync.next_at() or 0
        await a.sync.tick()
    assert a.sync.next_at() == world.clock() + 0.5 * BACKOFF_MAX_S

    a.transport.offline = False
    a.sync.wake()  # the page heard "online"
    assert a.sync.next_at() == world.clock()
    await a.sync.tick()
    status = a.sync.status()
    assert (status["state"], status["pending"], status["retry_at"]) == ("synced", 0, None)


async def test_a_failure_a_retry_would_repeat_waits_for_the_user(world: World) -> None:
    a, _ = await world.pair()
    a.transport.faults = [(401, {})]
    status = await a.sync.run()
    assert status["state"] == "error" and status["error"] is not None
    assert status["error"].startswith("this device was unpaired")
    assert (status["retry_at"], status["next_at"]) == (None, None)
    await a.state.save([task("t1", "edit")])
    a.sync.note_changes()  # a change is worth another try
    assert a.sync.next_at() == world.clock()


async def test_a_hidden_page_skips_the_periodic_pull_and_pulls_when_shown(world: World) -> None:
    a, _ = await world.pair()
    a.sync.set_visible(False)
    assert a.sync.next_at() is None
    await a.state.save([task("t1", "edit")])
    a.sync.note_changes()  # local changes still go out
    assert a.sync.next_at() == world.clock()
    await a.sync.tick()
    world.clock.advance(IDLE_S)
    await a.sync.tick()  # and the work after them, once they pause
    assert a.sync.next_at() is None
    world.clock.advance(10 * PERIODIC_S)
    a.sync.set_visible(True)
    next_at = a.sync.next_at()
    assert next_at is not None and next_at < world.clock()  # overdue: at once


async def test_nothing_is_due_while_an_exchange_runs_and_runs_queue(world: World) -> None:
    a, _ = await world.pair()
    gate = a.transport.gate = asyncio.Event()
    first = asyncio.create_task(a.sync.run())
    await a.transport.arrived.wait()
    assert a.sync.next_at() is None  # the exchange's end decides
    assert a.sync.status()["state"] == "syncing"
    second = asyncio.create_task(a.sync.run())  # "sync now" meanwhile: after it, not beside
    await asyncio.sleep(0)  # (lets the task start; no time passes on the fake clock)
    assert a.transport.waiting == 1
    gate.set()
    await first
    assert (await second)["state"] == "synced"
    assert a.transport.waiting == 2  # two exchanges, one after the other


# -- live sync: the server's stream says the space changed (DeviceSync.space_changed) --------


def cursor_of(device: Device) -> int:
    return int(device.state.sync_meta["cursor"] or 0)


async def test_synced_means_everything_pushed_and_pulled_up_to_the_servers_cursor(
    world: World,
) -> None:
    a, b = await world.pair()
    b.sync.set_live(True)
    assert b.sync.status()["state"] == "synced" and b.sync.next_at() is None  # no polling
    await a.state.save([task("t1", "buy milk")])
    await a.sync.run()
    assert a.sync.status()["state"] == "synced"
    head = cursor_of(a)  # its own push moved its cursor to the space's newest op

    b.sync.space_changed(str(head))  # the stream's word: b lacks ops up to there
    status = b.sync.status()
    assert (status["state"], status["next_at"]) == ("behind", world.clock())  # pull at once
    await b.sync.tick()
    assert b.sync.status()["state"] == "synced" and titles(b.state) == {"t1": "buy milk"}
    world.clock.advance(IDLE_S)
    await b.sync.tick()  # the embedding after the pull
    assert b.pulled == 1 and b.sync.next_at() is None

    await b.state.save([task("t2", "call mum")])  # pulled up, but not pushed: not synced
    b.sync.note_changes()
    assert b.sync.status()["state"] == "pending"
    a.sync.space_changed(str(head))  # what a has already: nothing to do
    assert a.sync.status()["state"] == "synced"
    assert a.sync.next_at() == world.clock() - IDLE_S + PERIODIC_S


async def test_the_stream_replaces_polling_and_polling_resumes_when_it_closes(
    world: World,
) -> None:
    a, _ = await world.pair()
    a.sync.set_live(True)
    world.clock.advance(10 * PERIODIC_S)
    assert a.sync.next_at() is None
    a.sync.set_live(False)
    next_at = a.sync.next_at()
    assert next_at is not None and next_at <= world.clock()  # overdue: at once
    await a.sync.tick()
    assert a.sync.next_at() == world.clock() + PERIODIC_S


async def test_the_pushers_own_change_heard_mid_exchange_sends_it_pulling_no_more(
    world: World,
) -> None:
    a, _ = await world.pair()
    a.sync.set_live(True)
    await a.state.save([task("t1", "buy milk")])  # two ops: title and done
    head = cursor_of(a) + len(a.state.outbox)
    gate = a.transport.gate = asyncio.Event()
    exchange = asyncio.create_task(a.sync.run())
    await a.transport.arrived.wait()
    # The server announces the push before its answer reaches the device.
    a.sync.space_changed(str(head))
    gate.set()
    assert (await exchange)["state"] == "synced"
    assert cursor_of(a) == head and a.sync.next_at() is None
    assert len(exchanges(a)) == 2  # pairing's and this one


async def test_a_cursor_the_exchange_cannot_reach_does_not_make_it_loop(world: World) -> None:
    a, _ = await world.pair()
    a.sync.set_live(True)
    for garbage in ("", "abc", "-1", "1" * 30, "١٢"):  # not the server's kind: ignored
        a.sync.space_changed(garbage)
        assert a.sync.status()["state"] == "synced"
    a.sync.space_changed("999")  # e.g. a server whose data was reset since
    assert a.sync.status()["state"] == "behind"
    await a.sync.tick()
    assert a.sync.status()["state"] == "behind"  # still: "Synced" would be untrue
    assert a.sync.next_at() is None  # but no second exchange until the stream speaks again


async def test_the_live_stream_is_the_spaces_and_gone_once_the_device_leaves(
    world: World,
) -> None:
    a = await world.device("a")
    assert a.sync.live_stream() is None
    status = await a.sync.create_space("laptop")
    stream = a.sync.live_stream()
    account = a.state.account
    assert stream is not None and account is not None
    assert stream == {
        "url": f"/api/v1/spaces/{status['space_id']}/events",
        "token": account.token,
    }
    a.sync.space_changed("999")
    await a.sync.leave()
    assert a.sync.live_stream() is None and a.sync.status()["state"] == "local"


async def test_a_device_lists_its_space_and_removes_another_which_then_cannot_sync(
    world: World,
) -> None:
    a, b = await world.pair()
    listed = await a.sync.devices()
    assert sorted((d["name"], d["this_device"]) for d in listed) == [
        ("laptop", True),
        ("phone", False),
    ]
    phone = next(d for d in listed if not d["this_device"])
    with pytest.raises(PairingError, match="use Leave"):
        await a.sync.remove_device(next(d["device_id"] for d in listed if d["this_device"]))
    left = await a.sync.remove_device(phone["device_id"])
    assert [d["name"] for d in left] == ["laptop"]
    status = await b.sync.run()
    assert status["state"] == "error"
    with pytest.raises(PairingError, match="not in a space"):
        await (await world.device("c")).sync.devices()
