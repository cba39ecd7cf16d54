"""The sync client against the real server app, in-process: convergence, paging, and
every failure path (offline, lost responses, 5xx, 429, 401, 413, 422, overlapping calls).

No sleeps: the client's clock and randomness, and the server's clocks, are fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import AppTransport, FakeClock, sync_app

from py_agent.sync.client import SyncAccount, SyncClient, SyncLog
from py_agent.sync.hlc import HybridClock
from py_agent.sync.merge import Replica
from py_agent.sync.ops import Op

T0 = 1_800_000_000.0


class MemoryLog:
    """A device's side of sync in memory: outbox, merged replica, cursor."""

    def __init__(self, device_id: str, clock: FakeClock) -> None:
        self.outbox: list[Op] = []
        self.replica = Replica()
        self.hlc = HybridClock(device_id, lambda: int(clock() * 1000))
        self._cursor: str | None = None
        self.received: list[Op] = []

    def write(self, record_id: str, value: Any, field: str = "title") -> list[Op]:
        ops = self.replica.write(
            self.hlc, collection="tasks", record_id=record_id, field=field, value=value
        )
        self.outbox.extend(ops)
        return ops

    async def pending(self, limit: int) -> list[Op]:
        return self.outbox[:limit]

    async def pending_count(self) -> int:
        return len(self.outbox)

    async def acknowledge(self, op_ids: Sequence[str]) -> None:
        done = set(op_ids)
        self.outbox = [op for op in self.outbox if op.op_id not in done]

    async def cursor(self) -> str | None:
        return self._cursor

    async def receive(self, ops: Sequence[Op], cursor: str) -> None:
        self.replica.apply(ops)
        self.received.extend(ops)
        self._cursor = cursor


@dataclass
class Device:
    log: MemoryLog
    transport: AppTransport
    client: SyncClient
    account: SyncAccount


class Env:
    def __init__(self, http: httpx.AsyncClient, clock: FakeClock) -> None:
        self.http, self.clock = http, clock
        self.space_id = ""
        self.code = ""

    async def device(
        self,
        *,
        token: str | None = None,
        random: Callable[[], float] = lambda: 0.5,
        **options: Any,
    ) -> Device:
        if not self.space_id:
            space = (await self.http.post("/api/v1/spaces")).json()
            self.space_id, self.code = space["space_id"], space["pairing_code"]
        paired = await self.http.post(
            "/api/v1/devices", json={"pairing_code": self.code, "name": "phone"}
        )
        assert paired.status_code == 201, paired.text
        info = paired.json()
        account = SyncAccount("", info["space_id"], info["device_id"], token or info["token"])
        log = MemoryLog(info["device_id"], self.clock)
        transport = AppTransport(self.http)
        client = SyncClient(log, transport, account, clock=self.clock, random=random, **options)
        return Device(log, transport, client, account)

    async def server_state(self, device: Device) -> dict[str, Any]:
        response = await self.http.get(
            f"/api/v1/spaces/{self.space_id}/state",
            headers={"Authorization": f"Bearer {device.account.token}"},
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


Start = Callable[..., Awaitable[Env]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    opened: list[tuple[httpx.AsyncClient, Any]] = []

    async def start(**settings: Any) -> Env:
        clock = FakeClock()
        http, app = sync_app(tmp_path, f"data{len(opened)}", clock, **settings)
        opened.append((http, app))
        return Env(http, clock)

    yield start
    for http, app in opened:
        await http.aclose()
        await app.state.sync.store.close()


def titles(log: MemoryLog) -> dict[str, Any]:
    return {key: record["title"] for key, record in log.replica.records("tasks").items()}


# -- the happy path ------------------------------------------------------------------------


async def test_two_devices_converge_through_the_server(start: Start) -> None:
    env = await start()
    a, b = await env.device(), await env.device()
    for n in range(3):
        a.log.write(f"t{n}", f"task {n}")
    b.log.write("t9", "from b")
    assert (await a.client.refresh()).state == "pending"

    status = await a.client.sync()
    assert status.state == "synced"
    assert (status.pending, status.error, status.retry_at) == (0, None, None)
    assert status.last_synced_at == env.clock()
    assert a.log.outbox == []
    assert (await b.client.sync()).state == "synced"
    assert (await a.client.sync()).state == "synced"

    expected = {"t0": "task 0", "t1": "task 1", "t2": "task 2", "t9": "from b"}
    assert titles(a.log) == titles(b.log) == expected
    assert a.log.replica.state() == b.log.replica.state()
    server = await env.server_state(a)
    assert server["records"] == a.log.replica.state()["records"]
    assert a.transport.timeouts == [10.0] * len(a.transport.timeouts)


async def test_paging_pulls_and_pushes_everything(start: Start) -> None:
    env = await start(sync_page_size=3)
    a, b = await env.device(push_batch=4), await env.device()
    for n in range(10):
        a.log.write(f"t{n}", f"task {n}")

    assert (await a.client.sync()).state == "synced"
    assert [len(body["ops"]) for body in a.transport.sent] == [4, 4, 2]
    assert (await b.client.sync()).state == "synced"
    assert len(b.transport.sent) == 4  # pages of 3, 3, 3, 1
    assert titles(b.log) == {f"t{n}": f"task {n}" for n in range(10)}
    assert len(b.log.received) == 10


# -- failures --------------------------------------------------------------------------


async def test_a_server_that_does_not_answer_in_time_is_an_error_not_offline(
    start: Start,
) -> None:
    env = await start()
    a = await env.device()
    a.log.write("t1", "edit")
    a.transport.time_out = True
    status = await a.client.sync()
    assert status.state == "error" and status.retry_at is not None
    assert status.error == "the server did not answer in time"
    a.transport.time_out = False
    env.clock.now = status.retry_at
    assert (await a.client.sync()).state == "synced"


async def test_offline_backs_off_with_full_jitter_then_recovers(start: Start) -> None:
    env = await start()
    draws = iter([0.999, 0.5, 0.999, 0.25, 0.0, 0.999])
    a = await env.device(random=lambda: next(draws), backoff_base_s=1.0, backoff_max_s=4.0)
    a.log.write("t1", "offline edit")
    a.transport.offline = True

    waits = []
    for ceiling in (1.0, 2.0, 4.0, 4.0):  # doubles, then capped at backoff_max_s
        status = await a.client.sync()
        assert status.state == "offline"
        assert status.pending == 1
        assert status.error == "offline: can't reach the server"
        assert status.retry_at is not None and 0 <= status.retry_at - env.clock() < ceiling
        assert not a.client.due()
        waits.append(status.retry_at - env.clock())
        env.clock.now = status.retry_at
        assert a.client.due()
    assert waits == pytest.approx([0.999, 1.0, 3.996, 1.0])
    assert a.log.outbox != []  # nothing lost while offline

    a.transport.offline = False
    status = await a.client.sync()
    assert (status.state, status.pending, status.retry_at, status.error) == (
        "synced",
        0,
        None,
        None,
    )
    assert not a.client.due()
    assert a.log.outbox == []

    a.transport.offline = True  # a success reset the attempt counter
    status = await a.client.sync()
    assert status.retry_at == pytest.approx(env.clock())  # draw 0.0 of a 1 s ceiling


async def test_lost_response_is_resent_and_stored_once(start: Start) -> None:
    env = await start()
    a, b = await env.device(), await env.device()
    a.log.write("t1", "one")
    a.log.write("t2", "two")
    a.transport.lose = 1

    status = await a.client.sync()
    assert status.state == "offline"
    assert len(a.log.outbox) == 2  # the server stored them, but the ack never arrived

    env.clock.now = status.retry_at or 0
    assert a.client.due()
    assert (await a.client.sync()).state == "synced"
    assert [len(body["ops"]) for body in a.transport.sent] == [2, 2]  # re-sent
    assert a.log.outbox == []

    server = await env.server_state(a)
    assert server["seq"] == 2  # each op stored once
    await b.client.sync()
    assert sorted(op.record_id for op in b.log.received) == ["t1", "t2"]


async def test_server_error_then_recovers(start: Start) -> None:
    env = await start()
    a = await env.device()
    a.log.write("t1", "one")
    a.transport.faults = [(503, {})]

    status = await a.client.sync()
    assert status.state == "error"
    assert status.error == "server error 503"
    assert status.retry_at == pytest.approx(env.clock() + 0.5)  # draw 0.5 of a 1 s ceiling
    assert len(a.log.outbox) == 1

    env.clock.advance(0.5)
    assert a.client.due()
    assert (await a.client.sync()).state == "synced"
    assert a.log.outbox == []


async def test_server_error_honours_retry_after(start: Start) -> None:
    env = await start()
    a = await env.device()
    a.transport.faults = [(503, {"retry-after": "30"})]
    status = await a.client.sync()
    assert status.retry_at == env.clock() + 30.0
    assert status.error == "server error 503"


async def test_rate_limited_sync_honours_retry_after(start: Start) -> None:
    env = await start(sync_rate_per_s=0.5, sync_burst=1)

    def no_jitter() -> float:
        raise AssertionError("Retry-After was given: no backoff draw expected")

    a = await env.device(random=no_jitter)
    assert (await a.client.sync()).state == "synced"
    a.log.write("t1", "one")

    status = await a.client.sync()  # the real server answers 429, Retry-After: 2
    assert status.state == "error"
    assert status.error == "the server is busy (too many requests)"
    assert status.retry_at == env.clock() + 2.0
    env.clock.advance(1.9)
    assert not a.client.due()
    env.clock.advance(0.1)
    assert a.client.due()
    assert (await a.client.sync()).state == "synced"
    assert a.log.outbox == []


async def test_unknown_token_asks_to_pair_again_and_never_retries(start: Start) -> None:
    env = await start()
    a = await env.device(token="not-a-real-token")
    a.log.write("t1", "one")

    status = await a.client.sync()
    assert status.state == "error"
    assert status.error is not None and status.error.startswith(
        "this device was unpaired: pair it again"
    )
    assert status.retry_at is None
    env.clock.advance(3600)
    assert not a.client.due()
    assert len(a.log.outbox) == 1


async def test_too_large_push_halves_the_batch_until_it_fits(start: Start) -> None:
    env = await start(max_body_bytes=1024)
    a, b = await env.device(), await env.device()
    for n in range(12):
        a.log.write(f"t{n}", "x" * 40)

    assert (await a.client.sync()).state == "synced"
    sizes = [len(body["ops"]) for body in a.transport.sent]
    assert sizes == [12, 6, 3, 3, 3, 3]  # 413, 413, then four batches that fit
    assert a.client.push_batch == 3
    assert a.log.outbox == []
    assert (await env.server_state(a))["seq"] == 12
    await b.client.sync()
    assert len(titles(b.log)) == 12


async def test_a_single_op_too_large_stops_without_retry(start: Start) -> None:
    env = await start(max_body_bytes=1024)
    a = await env.device()
    a.log.write("t1", "x" * 2000)

    status = await a.client.sync()
    assert status.state == "error"
    assert status.error is not None and "too large" in status.error
    assert [len(body["ops"]) for body in a.transport.sent] == [1]
    assert status.retry_at is None and not a.client.due()
    assert len(a.log.outbox) == 1


async def test_refused_op_names_the_field_and_never_retries(start: Start) -> None:
    env = await start()
    a, b = await env.device(), await env.device()
    a.log.outbox.extend(b.log.write("t1", "b's op in a's outbox"))  # a bug on the device

    status = await a.client.sync()
    assert status.state == "error"
    assert status.error is not None and "ops[0].device_id" in status.error
    assert status.retry_at is None and not a.client.due()
    assert len(a.log.outbox) == 1


async def test_overlapping_sync_calls_send_once(start: Start) -> None:
    env = await start()
    a = await env.device()
    a.log.write("t1", "one")
    gate = a.transport.gate = asyncio.Event()

    first = asyncio.create_task(a.client.sync())
    await a.transport.arrived.wait()
    second = await a.client.sync()
    assert second.state == "syncing"
    assert not a.client.due()

    gate.set()
    assert (await first).state == "synced"
    assert a.transport.waiting == 1
    assert len(a.transport.sent) == 1
    assert (await env.server_state(a))["seq"] == 1


def test_memory_log_is_a_sync_log() -> None:
    log: SyncLog = MemoryLog("device-a", FakeClock())
    assert log is not None
