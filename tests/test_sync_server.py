"""The sync server: pairing, push/pull, durability across restarts, and bad input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from support import FakeClock

from py_agent.sync.hlc import Timestamp
from py_agent.sync.merge import Replica
from py_agent.sync.ops import Op
from server.app import create_app
from server.headers import ISOLATION_HEADERS
from server.settings import Settings, SettingsError
from server.store import MIGRATIONS, SCHEMA_VERSION, SQLiteSyncStore
from server.sync_api import SyncService, new_pairing_code_and_hash

T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Server:
    """Starts apps on tmp_path/data (the same dir every time); stops them after the test."""

    def __init__(self, dist: Path, data: Path, clock: FakeClock) -> None:
        self.dist, self.data, self.clock = dist, data, clock
        self.running: list[TestClient] = []

    def start(self, **settings: Any) -> TestClient:
        app = create_app(
            Settings(dist_dir=self.dist, data_dir=self.data, **settings),
            clock=self.clock,
            wall_clock=self.clock,
        )
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()  # runs the lifespan: stop() closes the store like a shutdown
        self.running.append(client)
        return client

    def stop(self, client: TestClient) -> None:
        self.running.remove(client)
        client.__exit__(None, None, None)


@pytest.fixture
def server(dist: Path, tmp_path: Path, clock: FakeClock) -> Iterator[Server]:
    server = Server(dist, tmp_path / "data", clock)
    yield server
    for client in list(server.running):
        server.stop(client)


@pytest.fixture
def client(server: Server) -> TestClient:
    return server.start()


# -- helpers -------------------------------------------------------------------------------


def new_space(client: TestClient) -> dict[str, Any]:
    response = client.post("/api/v1/spaces")
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def pair(client: TestClient, code: str, name: str = "phone") -> dict[str, Any]:
    response = client.post("/api/v1/devices", json={"pairing_code": code, "name": name})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def auth(device: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {device['token']}"}


def op(device: dict[str, Any], n: int, value: Any = None, **fields: Any) -> dict[str, Any]:
    body = Op(
        op_id=f"{device['device_id']}-{n}",
        device_id=device["device_id"],
        collection="tasks",
        record_id=f"t{n}",
        field="title",
        value=f"task {n}" if value is None else value,
        hlc=Timestamp(1_800_000_000_000 + n, 0, device["device_id"]).encode(),
        parents=(),
    ).to_json()
    body.update(fields)
    return body


def sync(
    client: TestClient,
    device: dict[str, Any],
    cursor: str | None = None,
    ops: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/sync", json={"cursor": cursor, "ops": ops or []}, headers=auth(device)
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def ids(ops: list[dict[str, Any]]) -> list[str]:
    return [o["op_id"] for o in ops]


def refused(response: httpx.Response, status: int, field: str | None = None) -> str:
    """Asserts a JSON API error with isolation headers; returns its message."""
    assert response.status_code == status, response.text
    for name, value in ISOLATION_HEADERS.items():
        assert response.headers[name] == value
    body = response.json()
    assert body.get("field") == field, body
    assert isinstance(body["error"], str) and body["error"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def two(client: TestClient) -> tuple[dict[str, Any], dict[str, Any]]:
    code = new_space(client)["pairing_code"]
    return pair(client, code, "laptop"), pair(client, code, "phone")


# -- pairing ---------------------------------------------------------------------------------


def test_pairing_flow(client: TestClient) -> None:
    space = new_space(client)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}", space["pairing_code"])
    laptop = pair(client, space["pairing_code"], "laptop")
    # Typed by hand: lower case, spaces instead of dashes; the code is reusable.
    phone = pair(client, space["pairing_code"].lower().replace("-", " "), "phone")
    assert laptop["space_id"] == phone["space_id"] == space["space_id"]
    assert laptop["device_id"] != phone["device_id"]
    assert len(laptop["token"]) == 43 and laptop["token"] != phone["token"]


def test_secrets_are_stored_hashed(client: TestClient, tmp_path: Path) -> None:
    space = new_space(client)
    device = pair(client, space["pairing_code"])
    dump = "\n".join(sqlite3.connect(tmp_path / "data" / "sync.db").iterdump())
    assert device["token"] not in dump
    assert space["pairing_code"].replace("-", "") not in dump.replace("-", "")


def test_bad_pairing_code_is_403(client: TestClient) -> None:
    new_space(client)
    response = client.post(
        "/api/v1/devices", json={"pairing_code": "AAAA-BBBB-CCCC-DDDD", "name": "x"}
    )
    assert "not recognised" in refused(response, 403)
    response = client.post("/api/v1/devices", json={"pairing_code": "hello", "name": "x"})
    assert "not a pairing code" in refused(response, 403)


def test_pairing_code_expires(client: TestClient, clock: FakeClock) -> None:
    code = new_space(client)["pairing_code"]
    clock.advance(24 * 3600 - 1)
    pair(client, code)
    clock.advance(1)
    response = client.post("/api/v1/devices", json={"pairing_code": code, "name": "late"})
    assert "expired" in refused(response, 403)


def test_new_pairing_code_revokes_the_old(client: TestClient) -> None:
    space = new_space(client)
    device = pair(client, space["pairing_code"])
    response = client.post(f"/api/v1/spaces/{space['space_id']}/pairing-code", headers=auth(device))
    assert response.status_code == 201
    fresh = response.json()["pairing_code"]
    assert fresh != space["pairing_code"]
    response = client.post(
        "/api/v1/devices", json={"pairing_code": space["pairing_code"], "name": "x"}
    )
    assert "replaced" in refused(response, 403)
    assert pair(client, fresh)["space_id"] == space["space_id"]
    # Only a device of the space may make one.
    response = client.post(f"/api/v1/spaces/{space['space_id']}/pairing-code")
    refused(response, 401)


def test_failed_pairing_attempts_are_limited_per_client(
    client: TestClient, clock: FakeClock
) -> None:
    code = new_space(client)["pairing_code"]
    bad = {"pairing_code": "AAAA-BBBB-CCCC-DDDD", "name": "x"}
    for _ in range(10):
        refused(client.post("/api/v1/devices", json=bad), 403)
    response = client.post("/api/v1/devices", json={"pairing_code": code, "name": "x"})
    refused(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    clock.advance(60)
    pair(client, code)


async def test_a_concurrent_burst_of_bad_pairing_codes_is_held_to_the_limit(
    dist: Path, tmp_path: Path
) -> None:
    """Issue 15, row 7: 57 to 1,000 guesses of a burst got through a limit of 10, since a
    failure was counted only after its attempt had failed."""
    settings = Settings(dist_dir=dist, data_dir=tmp_path / "data", pairing_failures_per_min=10)
    transport = httpx.ASGITransport(app=create_app(settings, wall_clock=FakeClock()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        bad = {"pairing_code": "AAAA-BBBB-CCCC-DDDD", "name": "x"}
        burst = await asyncio.gather(*(http.post("/api/v1/devices", json=bad) for _ in range(200)))
        statuses = sorted(response.status_code for response in burst)
        assert statuses == [403] * 10 + [429] * 190
        # A good code from the same address waits too; a success does not count as a failure.
        space = (await http.post("/api/v1/spaces")).json()
        good = {"pairing_code": space["pairing_code"], "name": "phone"}
        assert (await http.post("/api/v1/devices", json=good)).status_code == 429


def test_space_creation_is_limited_per_address_and_for_everyone(
    dist: Path, tmp_path: Path, clock: FakeClock
) -> None:
    """Issue 15, row 4: POST /spaces had no limit (292 a second)."""
    settings = Settings(
        dist_dir=dist, data_dir=tmp_path / "data", spaces_per_min=3, spaces_per_min_total=5
    )
    app = create_app(settings, clock=clock)
    here, there = TestClient(app), TestClient(app, client=("192.0.2.7", 50000))
    assert [here.post("/api/v1/spaces").status_code for _ in range(4)] == [201, 201, 201, 429]
    refused = here.post("/api/v1/spaces")
    assert "by this address" in refused.json()["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 20
    # Another address has its own budget, up to what everyone together may make.
    assert [there.post("/api/v1/spaces").status_code for _ in range(3)] == [201, 201, 429]
    assert "by everyone" in there.post("/api/v1/spaces").json()["error"]
    clock.advance(60)
    assert here.post("/api/v1/spaces").status_code == 201


def test_successful_pairings_never_count_as_failures(dist: Path, tmp_path: Path) -> None:
    settings = Settings(dist_dir=dist, data_dir=tmp_path / "data", devices_per_pairing_code=20)
    client = TestClient(create_app(settings))
    code = new_space(client)["pairing_code"]
    for _ in range(15):
        pair(client, code)


def test_a_pairing_code_pairs_at_most_its_limit_even_at_once(dist: Path, tmp_path: Path) -> None:
    """Issue 15, row 4: one code paired 367 devices a second, each with its own budget."""
    settings = Settings(dist_dir=dist, data_dir=tmp_path / "data", devices_per_pairing_code=3)

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(settings, wall_clock=FakeClock()))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            code = (await http.post("/api/v1/spaces")).json()["pairing_code"]
            body = {"pairing_code": code, "name": "x"}
            return list(
                await asyncio.gather(*(http.post("/api/v1/devices", json=body) for _ in range(8)))
            )

    responses = asyncio.run(burst())
    assert sorted(response.status_code for response in responses) == [201] * 3 + [403] * 5
    refusal = next(response for response in responses if response.status_code == 403)
    assert "paired 3 devices, its limit" in refusal.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "pairing_code"),
        ({"pairing_code": 12, "name": "x"}, "pairing_code"),
        ({"pairing_code": "AAAA-BBBB-CCCC-DDDD", "name": ""}, "name"),
        ({"pairing_code": "AAAA-BBBB-CCCC-DDDD", "name": "x" * 65}, "name"),
        ({"pairing_code": "AAAA-BBBB-CCCC-DDDD", "name": "x", "extra": 1}, "extra"),
    ],
)
def test_pairing_schema_errors_name_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    refused(client.post("/api/v1/devices", json=body), 422, field)


# -- push and pull ---------------------------------------------------------------------------


def test_two_devices_sync_each_other(client: TestClient, two: Any) -> None:
    laptop, phone = two
    first = sync(client, laptop, None, [op(laptop, 1), op(laptop, 2), op(laptop, 3)])
    assert first["acked"] == [f"{laptop['device_id']}-{n}" for n in (1, 2, 3)]
    assert first["ops"] == [] and first["has_more"] is False

    got = sync(client, phone, None, [op(phone, 1)])
    assert ids(got["ops"]) == first["acked"]  # oldest first
    assert got["ops"][0] == op(laptop, 1)
    assert got["acked"] == [f"{phone['device_id']}-1"]

    back = sync(client, laptop, first["cursor"])
    assert ids(back["ops"]) == got["acked"]
    assert sync(client, laptop, back["cursor"])["ops"] == []
    assert sync(client, phone, got["cursor"])["ops"] == []


def test_a_device_never_gets_its_own_ops_back(client: TestClient, two: Any) -> None:
    laptop, phone = two
    sync(client, laptop, None, [op(laptop, 1), op(laptop, 2)])
    sync(client, phone, None, [op(phone, 1)])
    mine = sync(client, laptop, None)
    assert ids(mine["ops"]) == [f"{phone['device_id']}-1"]


def test_pages(server: Server) -> None:
    client = server.start(sync_page_size=2)
    code = new_space(client)["pairing_code"]
    laptop, phone = pair(client, code), pair(client, code)
    sync(client, laptop, None, [op(laptop, n) for n in range(5)])
    cursor, pages = None, []
    while True:
        page = sync(client, phone, cursor)
        pages.append(ids(page["ops"]))
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == [f"{laptop['device_id']}-{n}" for n in range(5)]


def test_replayed_push_is_acked_again_and_stored_once(client: TestClient, two: Any) -> None:
    laptop, phone = two
    push = [op(laptop, 1), op(laptop, 2)]
    first = sync(client, laptop, None, push)
    again = sync(client, laptop, first["cursor"], push)  # e.g. the first answer was lost
    assert again["acked"] == first["acked"]
    mixed = sync(client, laptop, None, [op(laptop, 2), op(laptop, 3), op(laptop, 3)])
    assert mixed["acked"] == [f"{laptop['device_id']}-{n}" for n in (2, 3)]
    assert ids(sync(client, phone, None)["ops"]) == [
        f"{laptop['device_id']}-{n}" for n in (1, 2, 3)
    ]


def test_op_id_reused_for_a_different_op_refuses_the_whole_push(
    client: TestClient, two: Any
) -> None:
    laptop, phone = two
    sync(client, laptop, None, [op(laptop, 1)])
    response = client.post(
        "/api/v1/sync",
        json={"cursor": None, "ops": [op(laptop, 2), op(laptop, 1, value="changed")]},
        headers=auth(laptop),
    )
    assert "already stored" in refused(response, 422, "ops[1].op_id")
    assert ids(sync(client, phone, None)["ops"]) == [f"{laptop['device_id']}-1"]


def test_restart_between_pushes(server: Server) -> None:
    client = server.start(sync_page_size=2)
    code = new_space(client)["pairing_code"]
    laptop, phone = pair(client, code), pair(client, code)
    sync(client, laptop, None, [op(laptop, n) for n in range(3)])
    page = sync(client, phone, None)
    assert len(page["ops"]) == 2 and page["has_more"]
    server.stop(client)  # the server stops…

    client = server.start(sync_page_size=2)  # …and starts again on the same data dir
    rest = sync(client, phone, page["cursor"])
    assert ids(rest["ops"]) == [f"{laptop['device_id']}-2"] and not rest["has_more"]
    sync(client, laptop, None, [op(laptop, 3)])
    assert ids(sync(client, phone, rest["cursor"])["ops"]) == [f"{laptop['device_id']}-3"]
    assert ids(sync(client, phone, None)["ops"]) == [f"{laptop['device_id']}-{n}" for n in range(2)]


def test_state_merges_pushed_ops_and_is_rebuilt_after_restart(server: Server) -> None:
    client = server.start()
    space = new_space(client)
    laptop, phone = pair(client, space["pairing_code"]), pair(client, space["pairing_code"])
    path = f"/api/v1/spaces/{space['space_id']}/state"
    sync(client, laptop, None, [op(laptop, 1)])
    assert client.get(path, headers=auth(laptop)).status_code == 200  # the worker holds it
    sync(client, phone, None, [op(phone, 2)])  # the worker is sent only this op
    state = client.get(path, headers=auth(phone)).json()
    assert state["seq"] == 2 and state["next"] is None
    server.stop(client)

    client = server.start()
    rebuilt = client.get(path, headers=auth(laptop)).json()
    assert rebuilt == state
    assert rebuilt["records"]["tasks"] == {"t1": {"title": "task 1"}, "t2": {"title": "task 2"}}
    assert rebuilt["conflicts"] == []


def test_replicas_beyond_the_cache_are_rebuilt(client: TestClient) -> None:
    service: SyncService = client.app.state.sync  # type: ignore[attr-defined]
    service.state_worker.max_bytes = 1  # only the space in use stays (read when it starts)
    spaces = [new_space(client) for _ in range(3)]
    devices = [pair(client, space["pairing_code"]) for space in spaces]
    for round_ in range(2):
        for space, device in zip(spaces, devices, strict=True):
            sync(client, device, None, [op(device, round_)])
            state = client.get(f"/api/v1/spaces/{space['space_id']}/state", headers=auth(device))
            assert list(state.json()["records"]["tasks"]) == [f"t{n}" for n in range(round_ + 1)]
    held = client.portal.call(service.state_worker.holdings)  # type: ignore[union-attr]
    assert held.spaces == {spaces[-1]["space_id"]: 2}


def test_a_device_cannot_reach_another_space(client: TestClient) -> None:
    a_space, b_space = new_space(client), new_space(client)
    a = pair(client, a_space["pairing_code"])
    b = pair(client, b_space["pairing_code"])
    sync(client, b, None, [op(b, 1)])
    assert sync(client, a, None)["ops"] == []
    for method, path in [
        ("GET", f"/api/v1/spaces/{b_space['space_id']}/state"),
        ("POST", f"/api/v1/spaces/{b_space['space_id']}/pairing-code"),
    ]:
        refused(client.request(method, path, headers=auth(a)), 403)


# -- bad requests ----------------------------------------------------------------------------


def test_sync_needs_a_token(client: TestClient, two: Any) -> None:
    body = {"cursor": None, "ops": []}
    for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}]:
        response = client.post("/api/v1/sync", json=body, headers=headers)
        refused(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    refused(client.get(f"/api/v1/spaces/{two[0]['space_id']}/state"), 401)


def test_sync_is_rate_limited_per_device(client: TestClient, two: Any, clock: FakeClock) -> None:
    laptop, phone = two
    for _ in range(20):
        sync(client, laptop)
    response = client.post("/api/v1/sync", json={"cursor": None, "ops": []}, headers=auth(laptop))
    refused(response, 429)
    assert response.headers["Retry-After"] == "1"
    sync(client, phone)  # another device has its own bucket
    clock.advance(0.15)  # 10 a second: one more request
    sync(client, laptop)
    refused(
        client.post("/api/v1/sync", json={"cursor": None, "ops": []}, headers=auth(laptop)),
        429,
    )


def test_body_over_the_limit_is_413(server: Server) -> None:
    client = server.start(max_body_bytes=4096)
    device = pair(client, new_space(client)["pairing_code"])
    big = {"cursor": None, "ops": [op(device, n) for n in range(100)]}
    response = client.post("/api/v1/sync", json=big, headers=auth(device))
    assert "limit" in refused(response, 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"cursor": null, "ops": ['
        for _ in range(100):
            yield b'{"op_id": "' + b"x" * 60 + b'"},'

    response = client.post("/api/v1/sync", content=chunks(), headers=auth(device))
    assert "transfer-encoding" in response.request.headers
    refused(response, 413)
    response = client.post(
        "/api/v1/devices", content=b"x" * 5000, headers={"content-type": "application/json"}
    )
    refused(response, 413)


@pytest.mark.parametrize(
    ("content", "status", "field", "message"),
    [
        (b"", 400, None, "empty"),
        (b"{not json", 400, None, "not valid JSON"),
        (b"\xff\xfe\x00", 400, None, "not valid JSON"),
        (b'{"cursor": NaN, "ops": []}', 400, None, "NaN"),
        (b"[" * 100_000, 400, None, "not valid JSON"),
        (b"[]", 422, None, "must be a JSON object"),
        (b'{"ops": []}', 422, "cursor", "required"),
        (b'{"cursor": null}', 422, "ops", "required"),
        (b'{"cursor": null, "ops": [], "op": []}', 422, "op", "unexpected"),
        (b'{"cursor": 3, "ops": []}', 422, "cursor", "cursor"),
        (b'{"cursor": "-1", "ops": []}', 422, "cursor", "cursor"),
        (b'{"cursor": "99", "ops": []}', 422, "cursor", "reset"),
        (b'{"cursor": null, "ops": {}}', 422, "ops", "array"),
    ],
)
def test_bad_sync_bodies(
    client: TestClient, two: Any, content: bytes, status: int, field: str | None, message: str
) -> None:
    response = client.post("/api/v1/sync", content=content, headers=auth(two[0]))
    assert message in refused(response, status, field)


def test_lone_surrogates_are_refused_not_crashed_on(client: TestClient, two: Any) -> None:
    laptop = two[0]
    for content in [
        b'{"cursor": null, "ops": [], "\\ud800": 1}',
        json.dumps({"cursor": None, "ops": [{**op(laptop, 1), "\udc00": 1}]}).encode(),
        json.dumps({"cursor": None, "ops": [{**op(laptop, 1), "op_id": "\ud800"}]}).encode(),
        json.dumps({"cursor": None, "ops": [{**op(laptop, 1), "value": "\ud800"}]}).encode(),
    ]:
        response = client.post("/api/v1/sync", content=content, headers=auth(laptop))
        assert response.status_code == 422, response.text
    code = new_space(client)["pairing_code"]
    response = client.post(
        "/api/v1/devices", content=b'{"pairing_code": "%s", "name": "\\ud800"}' % code.encode()
    )
    refused(response, 422, "name")


def test_too_many_ops_in_one_push(client: TestClient, two: Any) -> None:
    laptop = two[0]
    ops = [op(laptop, 0)] * 1001
    response = client.post("/api/v1/sync", json={"cursor": None, "ops": ops}, headers=auth(laptop))
    assert "at most 1000" in refused(response, 422, "ops")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hlc": "yesterday"}, "ops[1].hlc"),
        ({"hlc": 5}, "ops[1].hlc"),
        ({"parents": "p"}, "ops[1].parents"),
        ({"parents": ["ok", 3]}, "ops[1].parents[1]"),
        ({"collection": "Tasks!"}, "ops[1].collection"),
        ({"value": {"deep": [2**60]}}, "ops[1].value"),
        ({"surprise": 1}, "ops[1].surprise"),
    ],
)
def test_bad_op_is_422_naming_the_field(
    client: TestClient, two: Any, change: dict[str, Any], field: str
) -> None:
    laptop, phone = two
    ops = [op(laptop, 1), {**op(laptop, 2), **change}]
    response = client.post("/api/v1/sync", json={"cursor": None, "ops": ops}, headers=auth(laptop))
    assert refused(response, 422, field).startswith("ops[1]")
    assert sync(client, phone, None)["ops"] == []  # nothing of a refused push is stored


def test_missing_op_field_is_named(client: TestClient, two: Any) -> None:
    laptop = two[0]
    incomplete = op(laptop, 1)
    del incomplete["hlc"]
    response = client.post(
        "/api/v1/sync", json={"cursor": None, "ops": [incomplete]}, headers=auth(laptop)
    )
    assert "missing hlc" in refused(response, 422, "ops[0].hlc")


def test_op_of_another_device_is_refused(client: TestClient, two: Any) -> None:
    laptop, phone = two
    response = client.post(
        "/api/v1/sync", json={"cursor": None, "ops": [op(phone, 1)]}, headers=auth(laptop)
    )
    assert "only its own ops" in refused(response, 422, "ops[0].device_id")


# -- the store and settings ------------------------------------------------------------------


def test_schema_is_versioned_and_a_newer_one_is_refused(
    client: TestClient, dist: Path, tmp_path: Path
) -> None:
    db = sqlite3.connect(tmp_path / "data" / "sync.db")
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(SettingsError, match="newer than this server"):
        create_app(Settings(dist_dir=dist, data_dir=tmp_path / "data"))


def test_a_version_1_database_is_migrated_and_its_codes_still_pair(
    dist: Path, tmp_path: Path
) -> None:
    """A sync.db made before pairing codes counted their uses keeps every code working."""
    (tmp_path / "data").mkdir()
    db = sqlite3.connect(tmp_path / "data" / "sync.db")
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    code, code_hash = new_pairing_code_and_hash()
    db.execute("INSERT INTO spaces (space_id, created_at) VALUES ('s1', 0)")
    db.execute(
        "INSERT INTO pairing_codes (code_hash, space_id, created_at, expires_at) "
        "VALUES (?, 's1', 0, 1e12)",
        (code_hash,),
    )
    db.commit()
    db.close()
    client = TestClient(create_app(Settings(dist_dir=dist, data_dir=tmp_path / "data")))
    assert pair(client, code)["space_id"] == "s1"


def test_a_file_that_is_not_a_database_stops_the_start(dist: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sync.db").write_bytes(b"not a database" * 100)
    with pytest.raises(SettingsError, match="--data-dir"):
        create_app(Settings(dist_dir=dist, data_dir=tmp_path / "data"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("pairing_code_ttl_s", 0),
        ("sync_page_size", 0),
        ("max_body_bytes", 10),
        ("sync_rate_per_s", 0),
        ("sync_burst", 0),
        ("pairing_failures_per_min", 0),
    ],
)
def test_settings_refuse_bad_sync_limits(
    dist: Path, tmp_path: Path, name: str, value: float
) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings(dist_dir=dist, data_dir=tmp_path, **{name: value})


async def test_concurrent_pushes_get_gapless_sequence_numbers(dist: Path, tmp_path: Path) -> None:
    settings = Settings(dist_dir=dist, data_dir=tmp_path / "data", sync_burst=1000)
    app: Starlette = create_app(settings, wall_clock=FakeClock())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        space = (await http.post("/api/v1/spaces")).json()

        async def device(name: str) -> dict[str, Any]:
            body = {"pairing_code": space["pairing_code"], "name": name}
            return (await http.post("/api/v1/devices", json=body)).json()  # type: ignore[no-any-return]

        writers = [await device(f"w{i}") for i in range(5)]
        reader = await device("reader")

        async def push(writer: dict[str, Any], batch: int) -> None:
            ops = [op(writer, batch * 10 + n) for n in range(10)]
            body = {"cursor": None, "ops": ops}
            response = await http.post("/api/v1/sync", json=body, headers=auth(writer))
            assert response.status_code == 200, response.text

        await asyncio.gather(*(push(w, b) for w in writers for b in range(4)))
        response = await http.post(
            "/api/v1/sync", json={"cursor": None, "ops": []}, headers=auth(reader)
        )
        page = response.json()
        assert len(page["ops"]) == len(set(ids(page["ops"]))) == 200
        assert page["cursor"] == "200"
        state_path = f"/api/v1/spaces/{space['space_id']}/state"
        state = (await http.get(state_path, headers=auth(reader))).json()
        assert state["seq"] == 200
    service: SyncService = app.state.sync
    assert isinstance(service.store, SQLiteSyncStore)
    await service.state_worker.close()
    await service.store.close()


def test_an_op_stamped_over_a_day_ahead_is_refused(server: Server) -> None:
    client = server.start()
    device = pair(client, new_space(client)["pairing_code"])
    ahead = Timestamp(int((T0 + 25 * 3600) * 1000), 0, device["device_id"]).encode()
    response = client.post(
        "/api/v1/sync",
        json={"cursor": None, "ops": [op(device, 1, hlc=ahead)]},
        headers=auth(device),
    )
    assert response.status_code == 422
    assert response.json()["field"] == "ops[0].hlc"
    assert "ahead of the server's clock" in response.json()["error"]
    within = Timestamp(int((T0 + 23 * 3600) * 1000), 0, device["device_id"]).encode()
    assert sync(client, device, ops=[op(device, 2, hlc=within)])["acked"] == [
        f"{device['device_id']}-2"
    ]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: a disk that can really fill up. Mounting needs root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a disk that can fill up)")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"could not mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    # Unbuffered, so nothing is left to flush at close; written until the disk is full.
    with filler.open("wb", buffering=0) as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * 65536)
    return filler


def test_a_full_disk_refuses_writes_with_503_and_still_serves_reads(
    dist: Path, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15, row 8: a full disk answered 500 "internal error"."""
    settings = Settings(dist_dir=dist, data_dir=small_disk / "data")
    client = TestClient(create_app(settings, wall_clock=FakeClock()))
    space = new_space(client)
    phone = pair(client, space["pairing_code"])
    assert sync(client, phone, ops=[op(phone, 1)])["acked"] == [op(phone, 1)["op_id"]]
    filler = fill(small_disk)

    big = [op(phone, n, value="x" * 1000) for n in range(2, 150)]
    refused = client.post("/api/v1/sync", json={"cursor": None, "ops": big}, headers=auth(phone))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "60"
    assert "disk is full" in refused.json()["error"]
    assert any("cannot be written" in r.getMessage() for r in caplog.records)
    # Reads go on: the state and a pull.
    state = client.get(f"/api/v1/spaces/{space['space_id']}/state", headers=auth(phone))
    assert state.status_code == 200
    assert sync(client, phone)["ops"] == []
    # With room again, the same push is stored: nothing was half-written.
    filler.unlink()
    assert len(sync(client, phone, ops=big)["acked"]) == len(big)


def test_the_state_is_merged_and_encoded_in_another_process(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15, row 2: a large space's /state (1.7 s) was built on the event loop, then on
    a thread, and either way held the server's GIL, so every other request waited for it.
    Here merging in the server's process fails: the state must come from the worker."""

    def in_the_server(*args: object, **kwargs: object) -> Any:
        raise AssertionError("the state was merged in the server's process")

    for method in ("apply", "state", "page"):
        monkeypatch.setattr(Replica, method, in_the_server)
    space = new_space(client)
    phone = pair(client, space["pairing_code"])
    sync(client, phone, None, [op(phone, 1), op(phone, 2)])
    response = client.get(f"/api/v1/spaces/{space['space_id']}/state", headers=auth(phone))
    assert response.status_code == 200, response.text
    assert list(response.json()["records"]["tasks"]) == ["t1", "t2"]
    service: SyncService = client.app.state.sync  # type: ignore[attr-defined]
    held = client.portal.call(service.state_worker.holdings)  # type: ignore[union-attr]
    assert held.pid != os.getpid() and held.spaces == {space["space_id"]: 2}


def test_state_reads_are_limited_per_device(dist: Path, tmp_path: Path, clock: FakeClock) -> None:
    settings = Settings(dist_dir=dist, data_dir=tmp_path / "data", state_reads_per_min=2)
    with TestClient(create_app(settings, clock=clock)) as client:  # the lifespan stops the worker
        space = new_space(client)
        phone = pair(client, space["pairing_code"])
        path = f"/api/v1/spaces/{space['space_id']}/state"
        statuses = [client.get(path, headers=auth(phone)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        # Each page is a read: the next page waits too.
        assert client.get(f"{path}?limit=1", headers=auth(phone)).status_code == 429
        clock.advance(30)
        assert client.get(path, headers=auth(phone)).status_code == 200


def test_a_space_lists_its_devices_and_any_of_them_removes_one(
    client: TestClient, clock: FakeClock
) -> None:
    """Issue 15, item 9: no way to remove a device or revoke its token."""
    space = new_space(client)
    phone, laptop = (
        pair(client, space["pairing_code"]),
        pair(client, space["pairing_code"], "laptop"),
    )
    sync(client, phone)
    listed = client.get("/api/v1/devices", headers=auth(laptop)).json()
    assert listed["space_id"] == space["space_id"]
    rows = {row["name"]: row for row in listed["devices"]}
    assert set(rows) == {"phone", "laptop"}
    assert rows["laptop"]["this_device"] and not rows["phone"]["this_device"]
    assert rows["phone"]["last_seen"] is not None and rows["phone"]["created_at"].endswith("+00:00")

    # Another space's device is not this space's to remove; an unknown one is not there.
    stranger_space = new_space(client)
    stranger = pair(client, stranger_space["pairing_code"], "stranger")
    refused(client.delete(f"/api/v1/devices/{stranger['device_id']}", headers=auth(phone)), 403)
    refused(client.delete("/api/v1/devices/0123456789abcdef", headers=auth(phone)), 404)

    assert (
        client.delete(f"/api/v1/devices/{phone['device_id']}", headers=auth(laptop)).status_code
        == 204
    )
    refused(client.post("/api/v1/sync", json={"cursor": None, "ops": []}, headers=auth(phone)), 401)
    names = [
        row["name"] for row in client.get("/api/v1/devices", headers=auth(laptop)).json()["devices"]
    ]
    assert names == ["laptop"]


def test_a_device_replaces_its_own_token_and_only_its_own(client: TestClient) -> None:
    space = new_space(client)
    phone, laptop = (
        pair(client, space["pairing_code"]),
        pair(client, space["pairing_code"], "laptop"),
    )
    refused(client.post(f"/api/v1/devices/{laptop['device_id']}/token", headers=auth(phone)), 403)
    answer = client.post(f"/api/v1/devices/{phone['device_id']}/token", headers=auth(phone))
    assert answer.status_code == 201
    refused(client.get("/api/v1/devices", headers=auth(phone)), 401)  # the old token
    renewed = {**phone, "token": answer.json()["token"]}
    assert client.get("/api/v1/devices", headers=auth(renewed)).status_code == 200


def test_a_full_space_refuses_a_push_with_413_naming_its_limit(
    dist: Path, tmp_path: Path, clock: FakeClock
) -> None:
    """Issue 15, row 3: no per-space limit (59 MB of ops took 191 MB of memory)."""
    settings = Settings(
        dist_dir=dist, data_dir=tmp_path / "data", space_max_ops=3, space_max_bytes=4096
    )
    client = TestClient(create_app(settings, wall_clock=clock))
    space = new_space(client)
    phone, laptop = pair(client, space["pairing_code"]), pair(client, space["pairing_code"])
    assert len(sync(client, phone, ops=[op(phone, 1), op(phone, 2)])["acked"]) == 2
    too_many = client.post(
        "/api/v1/sync",
        json={"cursor": None, "ops": [op(phone, 3), op(phone, 4)]},
        headers=auth(phone),
    )
    refused(too_many, 413)
    assert "holds at most 3 (the server's space_max_ops)" in too_many.json()["error"]
    big = client.post(
        "/api/v1/sync",
        json={"cursor": None, "ops": [op(phone, 3, value="x" * 4000)]},
        headers=auth(phone),
    )
    refused(big, 413)
    assert "at most 4,096 (the server's space_max_bytes)" in big.json()["error"]
    # Nothing of the refused pushes was stored; one more small change still fits.
    assert [o["op_id"] for o in sync(client, laptop)["ops"]] == [
        op(phone, n)["op_id"] for n in (1, 2)
    ]
    assert len(sync(client, phone, ops=[op(phone, 3)])["acked"]) == 1


def test_the_replica_cache_is_bounded_by_the_size_of_what_it_holds(client: TestClient) -> None:
    service: SyncService = client.app.state.sync  # type: ignore[attr-defined]
    service.state_worker.max_bytes = 3000  # about two small spaces, not one large one
    small = [new_space(client) for _ in range(2)]
    large = new_space(client)
    devices = {s["space_id"]: pair(client, s["pairing_code"]) for s in [*small, large]}
    for s in small:
        device = devices[s["space_id"]]
        sync(client, device, ops=[op(device, 1)])
    big_one = devices[large["space_id"]]
    sync(client, big_one, ops=[op(big_one, n, value="y" * 900) for n in range(1, 4)])
    for s in [*small, large]:
        path = f"/api/v1/spaces/{s['space_id']}/state"
        assert client.get(path, headers=auth(devices[s["space_id"]])).status_code == 200
    # The large space, read last, is kept alone: holding the small ones too would pass the bound.
    held = client.portal.call(service.state_worker.holdings)  # type: ignore[union-attr]
    assert list(held.spaces) == [large["space_id"]]


def test_ops_of_1_kb_take_at_most_one_and_a_half_times_their_size_on_disk(
    dist: Path, tmp_path: Path, clock: FakeClock
) -> None:
    """Issue 15, row 11: 1 KB ops took 4 times their size (each spilled to a page of its own)."""
    client = TestClient(
        create_app(Settings(dist_dir=dist, data_dir=tmp_path / "data"), wall_clock=clock)
    )
    space = new_space(client)
    phone = pair(client, space["pairing_code"])
    ops = [op(phone, n, value=f"{n:04d}" + "v" * 1020) for n in range(1, 1001)]
    for start in range(0, len(ops), 100):
        sync(client, phone, ops=ops[start : start + 100])
    client.close()
    path = tmp_path / "data" / "sync.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = db.execute("SELECT SUM(LENGTH(CAST(body AS BLOB))) FROM ops").fetchone()[0]
    db.close()
    assert stored > 1_000_000
    assert path.stat().st_size / stored <= 1.5, (path.stat().st_size, stored)
