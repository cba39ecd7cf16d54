"""The live-sync stream, GET /api/v1/spaces/{id}/events: what it says and when, who may
open one, how many, and that a stream's end frees its slot.

Streams are driven over ASGI by hand (``Stream``): the test reads each message the app
sends as it is sent and sends the disconnect itself, so nothing waits on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import FakeClock, sync_app

from py_agent.sync.hlc import Timestamp
from py_agent.sync.ops import Op
from server.headers import ISOLATION_HEADERS
from server.live import SpaceChanges
from server.sync_api import SyncService


class Stream:
    """One GET of a path, answered by the app over ASGI while the test reads along."""

    def __init__(self, app: Any, path: str, token: str | None, method: str = "GET") -> None:
        headers = [(b"accept", b"text/event-stream")]
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
        }
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(app(scope, self._inbox.get, self._outbox.put))
        self.body = b""

    async def start(self) -> tuple[int, dict[str, str]]:
        message = await self._outbox.get()
        assert message["type"] == "http.response.start", message
        headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        return message["status"], headers

    async def event(self) -> dict[str, str]:
        """The next event's fields (keep-alive comments are skipped)."""
        while b"\n\n" not in self.body:
            message = await self._outbox.get()
            assert message["type"] == "http.response.body", message
            assert message["more_body"], "the stream ended"
            self.body += message["body"]
        block, self.body = self.body.split(b"\n\n", 1)
        fields = dict(line.split(": ", 1) for line in block.decode().split("\n"))
        return fields

    async def ended(self) -> bytes:
        """The rest of the body, once the app closed the stream."""
        rest = self.body
        while True:
            message = await self._outbox.get()
            rest += bytes(message["body"])
            if not message.get("more_body", False):
                await self.task
                return rest

    async def disconnect(self) -> None:
        self._inbox.put_nowait({"type": "http.disconnect"})
        await self.task


class Space:
    def __init__(self, http: httpx.AsyncClient, app: Any) -> None:
        self.http, self.app = http, app
        self.space_id = ""
        self.streams: list[Stream] = []

    @property
    def changes(self) -> SpaceChanges:
        service: SyncService = self.app.state.sync
        return service.changes

    async def device(self, name: str) -> dict[str, Any]:
        if not self.space_id:
            space = (await self.http.post("/api/v1/spaces")).json()
            self.space_id, self.code = space["space_id"], space["pairing_code"]
        answer = await self.http.post(
            "/api/v1/devices", json={"pairing_code": self.code, "name": name}
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def events_path(self, space_id: str | None = None) -> str:
        return f"/api/v1/spaces/{space_id or self.space_id}/events"

    async def open(self, device: dict[str, Any]) -> Stream:
        stream = Stream(self.app, self.events_path(), device["token"])
        self.streams.append(stream)
        status, headers = await stream.start()
        assert status == 200 and headers["content-type"].startswith("text/event-stream")
        return stream

    async def push(self, device: dict[str, Any], n: int, cursor: str | None = None) -> str:
        op = Op(
            op_id=f"{device['device_id']}-{n}",
            device_id=device["device_id"],
            collection="tasks",
            record_id=f"t{n}",
            field="title",
            value=f"secret title {n}",
            hlc=Timestamp(1_800_000_000_000 + n, 0, device["device_id"]).encode(),
            parents=(),
        )
        answer = await self.http.post(
            "/api/v1/sync",
            json={"cursor": cursor, "ops": [op.to_json()]},
            headers={"Authorization": f"Bearer {device['token']}"},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["cursor"])


async def make_space(tmp_path: Path, **settings: Any) -> AsyncIterator[Space]:
    http, app = sync_app(tmp_path, "server", FakeClock(), **settings)
    space = Space(http, app)
    yield space
    for stream in space.streams:
        if not stream.task.done():
            await stream.disconnect()
    await http.aclose()
    await app.state.sync.store.close()


@pytest.fixture
async def space(tmp_path: Path) -> AsyncIterator[Space]:
    async for made in make_space(tmp_path):
        yield made


async def test_a_push_is_announced_to_every_stream_of_the_space_without_its_data(
    space: Space,
) -> None:
    laptop, phone = await space.device("laptop"), await space.device("phone")
    stream = await space.open(phone)
    assert await stream.event() == {"id": "0", "event": "changed", "data": "0"}

    cursor = await space.push(laptop, 1)
    assert await stream.event() == {"id": "1", "event": "changed", "data": "1"}
    assert b"secret" not in stream.body
    # The pusher's cursor passed its own op: the event does not send it pulling again.
    assert cursor == "1"

    await space.push(phone, 2, cursor="0")
    assert (await stream.event())["data"] == "2"  # its own push too: it is the space's cursor


async def test_a_stream_starts_with_the_space_cursor_so_a_reconnect_misses_nothing(
    space: Space,
) -> None:
    laptop, phone = await space.device("laptop"), await space.device("phone")
    for n in range(3):
        await space.push(laptop, n)
    stream = await space.open(phone)
    assert (await stream.event())["data"] == "3"


async def test_the_cursor_moves_past_the_pushers_ops_only_when_nothing_is_between(
    space: Space,
) -> None:
    laptop, phone = await space.device("laptop"), await space.device("phone")
    assert await space.push(laptop, 1) == "1"
    # The phone has not pulled the laptop's op: its answer brings it, then passes its own.
    assert await space.push(phone, 2, cursor="0") == "2"
    # The laptop's cursor 1 already covers op 1; op 2 (the phone's) comes in this answer.
    assert await space.push(laptop, 3, cursor="1") == "3"


async def test_events_are_authenticated_like_sync(space: Space) -> None:
    laptop = await space.device("laptop")
    other = Space(space.http, space.app)
    stranger = await other.device("stranger")
    cases = [
        ({}, 401, "missing 'Authorization: Bearer <token>' header"),
        ({"Authorization": "Basic abc"}, 401, "must be 'Bearer <token>'"),
        ({"Authorization": "Bearer nope"}, 401, "unknown device token"),
        ({"Authorization": f"Bearer {stranger['token']}"}, 403, "belongs to another space"),
    ]
    for headers, status, message in cases:
        answer = await space.http.get(space.events_path(), headers=headers)
        assert answer.status_code == status, answer.text
        assert message in answer.json()["error"]
        for name, value in ISOLATION_HEADERS.items():
            assert answer.headers[name] == value
    wrong_space = await space.http.get(
        space.events_path("0" * 32), headers={"Authorization": f"Bearer {laptop['token']}"}
    )
    assert wrong_space.status_code == 403
    posted = await space.http.post(
        space.events_path(), headers={"Authorization": f"Bearer {laptop['token']}"}
    )
    assert posted.status_code == 405
    assert space.changes.count(space.space_id) == 0


async def test_streams_are_bounded_per_device_and_per_space(tmp_path: Path) -> None:
    async for space in make_space(tmp_path, live_streams_per_device=2, live_streams_per_space=3):
        laptop, phone, tablet = [await space.device(n) for n in ("laptop", "phone", "tablet")]
        first, second = await space.open(laptop), await space.open(laptop)
        await first.event()
        await space.open(laptop)  # a third closes the oldest: most likely a dead one
        assert await first.ended() == b""
        assert space.changes.count(space.space_id, laptop["device_id"]) == 2
        await space.open(phone)
        assert space.changes.count(space.space_id) == 3

        answer = await space.http.get(
            space.events_path(), headers={"Authorization": f"Bearer {tablet['token']}"}
        )
        assert answer.status_code == 429, answer.text
        assert "polling" in answer.json()["error"] and int(answer.headers["retry-after"]) >= 1
        # The streams still open go on.
        await space.push(tablet, 1)
        assert [e["data"] for e in (await second.event(), await second.event())] == ["0", "1"]


async def test_opening_streams_in_a_loop_is_rate_limited_like_syncing(tmp_path: Path) -> None:
    async for space in make_space(tmp_path, sync_burst=2):
        laptop = await space.device("laptop")
        await space.open(laptop)
        await space.open(laptop)
        answer = await space.http.get(
            space.events_path(), headers={"Authorization": f"Bearer {laptop['token']}"}
        )
        assert answer.status_code == 429 and "retry-after" in answer.headers


async def test_a_disconnect_or_a_head_request_leaves_no_listener_behind(space: Space) -> None:
    laptop = await space.device("laptop")
    stream = await space.open(laptop)
    await stream.event()
    assert space.changes.count(space.space_id) == 1
    await stream.disconnect()
    assert space.changes.count(space.space_id) == 0

    head = Stream(space.app, space.events_path(), laptop["token"], method="HEAD")
    assert (await head.start())[0] == 200
    assert await head.ended() == b""
    assert space.changes.count(space.space_id) == 0

    # Gone before the first event was sent.
    early = Stream(space.app, space.events_path(), laptop["token"])
    await early.disconnect()
    assert space.changes.count(space.space_id) == 0


async def test_a_slow_reader_hears_only_the_newest_cursor() -> None:
    changes = SpaceChanges(per_device=1, per_space=2)
    listener = changes.open("s", "d")
    for cursor in (3, 5, 4):
        changes.publish("s", cursor)
    changes.publish("other space", 9)
    assert await changes.next(listener) == 5
    assert not listener.changed.is_set()  # nothing newer since
    replaced = changes.open("s", "d")  # one per device: the first is replaced
    assert await changes.next(listener) is None
    changes.close(listener)  # already gone: nothing happens
    changes.close(replaced)
    assert changes.count("s") == 0


async def test_a_removed_device_s_streams_end_and_the_others_go_on() -> None:
    changes = SpaceChanges(per_device=2, per_space=4)
    gone, kept = changes.open("s", "phone"), changes.open("s", "laptop")
    changes.drop_device("s", "phone")
    assert await changes.next(gone) is None  # its stream ends
    changes.publish("s", 7)
    assert await changes.next(kept) == 7
    assert changes.open("s", "phone") is not gone  # room again: the dropped one was closed
