"""GET /spaces/{id}/state a page at a time, built in the state worker process
(server/state_worker.py): issue 15, row 2."""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import FakeClock

from py_agent.sync.hlc import Timestamp
from py_agent.sync.merge import Replica
from py_agent.sync.ops import TOMBSTONE, Op, canonical_json
from server import state_worker
from server.app import create_app
from server.settings import Settings
from server.state_worker import (
    Ops,
    PageReply,
    PageRequest,
    Spaces,
    StateWorker,
    decode_cursor,
    encode_cursor,
)
from server.store import SQLiteSyncStore, StoredOp
from server.sync_api import SyncService

T0_MS = 1_800_000_000_000


@pytest.fixture
def client(dist: Path, tmp_path: Path) -> Iterator[TestClient]:
    clock = FakeClock()
    settings = Settings(
        dist_dir=dist, data_dir=tmp_path / "data", state_page_size=5, state_reads_per_min=1000
    )
    with TestClient(create_app(settings, clock=clock, wall_clock=clock)) as client:
        yield client


def worker(client: TestClient) -> StateWorker:
    service: SyncService = client.app.state.sync  # type: ignore[attr-defined]
    return service.state_worker


def make_op(
    device: dict[str, Any],
    op_id: str,
    value: Any,
    *,
    ms: int = 0,
    record_id: str = "t1",
    field: str = "title",
    collection: str = "tasks",
    parents: tuple[str, ...] = (),
) -> Op:
    return Op(
        op_id=op_id,
        device_id=device["device_id"],
        collection=collection,
        record_id=record_id,
        field=field,
        value=value,
        hlc=Timestamp(T0_MS + ms, 0, device["device_id"]).encode(),
        parents=parents,
    )


class Space:
    """A space with two paired devices, a and b, on the app."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        space = client.post("/api/v1/spaces").json()
        self.space_id = space["space_id"]
        self.a, self.b = (self._pair(space["pairing_code"], name) for name in ("a", "b"))
        self.pushed: list[Op] = []

    def _pair(self, code: str, name: str) -> dict[str, Any]:
        answer = self.client.post("/api/v1/devices", json={"pairing_code": code, "name": name})
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def push(self, device: dict[str, Any], *ops: Op) -> None:
        body = {"cursor": None, "ops": [op.to_json() for op in ops]}
        answer = self.client.post("/api/v1/sync", json=body, headers=self.auth(device))
        assert answer.status_code == 200, answer.text
        self.pushed += ops

    def auth(self, device: dict[str, Any] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {(device or self.a)['token']}"}

    def read(self, query: str = "") -> Any:
        return self.client.get(f"/api/v1/spaces/{self.space_id}/state{query}", headers=self.auth())

    def page(self, query: str = "") -> dict[str, Any]:
        answer = self.read(query)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def pages(self, limit: int) -> tuple[dict[str, Any], int]:
        """Every page of ``limit`` records, followed by ``next``, merged as one answer;
        and how many pages."""
        records: dict[str, dict[str, Any]] = {}
        conflicts: list[Any] = []
        query, count = f"?limit={limit}", 0
        while True:
            page = self.page(query)
            count += 1
            assert sum(len(shown) for shown in page["records"].values()) <= limit
            for collection, shown in page["records"].items():
                assert not set(shown) & set(records.get(collection, {}))  # once each
                records.setdefault(collection, {}).update(shown)
            conflicts += page["conflicts"]
            if page["next"] is None:
                return {"records": records, "conflicts": conflicts, "seq": page["seq"]}, count
            query = f"?limit={limit}&after={page['next']}"


def busy_space(client: TestClient) -> Space:
    """Twelve records in two collections: a conflict, a contested delete, a plain delete."""
    space = Space(client)
    a, b = space.a, space.b
    title, done = make_op(a, "t", "buy milk"), make_op(a, "f0", False, field="done")
    space.push(a, title, done, *(make_op(a, f"n{i}", i, record_id=f"n{i:02}") for i in range(8)))
    space.push(
        b,
        # deletes t1, having seen its fields; a completes it meanwhile (below): contested
        make_op(b, "d", True, ms=5, field=TOMBSTONE, parents=("f0", "t")),
        make_op(b, "clash-b", "from b", ms=3, record_id="t2"),  # concurrent with a's
        make_op(b, "x", "gone", collection="notes", record_id="x1"),
        make_op(b, "xd", True, ms=1, collection="notes", record_id="x1", field=TOMBSTONE),
    )
    space.push(
        a,
        make_op(a, "e", True, ms=3, field="done", parents=("f0",)),
        make_op(a, "clash-a", "from a", ms=9, record_id="t2"),
        make_op(a, "note", "hello", collection="notes", record_id="x2"),
    )
    return space


# -- pages ------------------------------------------------------------------------------------


def test_the_pages_make_up_the_whole_state_each_record_once(client: TestClient) -> None:
    space = busy_space(client)
    expected = Replica()
    expected.apply(space.pushed)
    whole = expected.state()
    assert len(whole["conflicts"]) == 2  # the clash on t2, the contested delete of t1
    assert whole["records"]["notes"]["x1"][TOMBSTONE] is True
    for limit in (1, 2, 5):
        paged, count = space.pages(limit)
        assert paged == {**whole, "seq": len(space.pushed)}
        assert count == -(-12 // limit)  # 12 records: no empty page at the end


def test_a_small_space_is_one_page_without_parameters(client: TestClient) -> None:
    space = Space(client)
    space.push(space.a, *(make_op(space.a, f"o{i}", i, record_id=f"t{i}") for i in range(5)))
    page = space.page()
    assert set(page) == {"space_id", "seq", "records", "conflicts", "next"}
    assert (page["space_id"], page["seq"], page["next"]) == (space.space_id, 5, None)
    assert list(page["records"]["tasks"]) == [f"t{i}" for i in range(5)]
    # One more record than a page holds (state_page_size=5): two pages.
    space.push(space.a, make_op(space.a, "o5", 5, record_id="t5"))
    first = space.page()
    assert list(first["records"]["tasks"]) == [f"t{i}" for i in range(5)]
    assert first["next"] is not None
    last = space.page(f"?after={first['next']}")
    assert (list(last["records"]["tasks"]), last["next"]) == (["t5"], None)


def test_a_push_between_pages_shows_in_a_higher_seq(client: TestClient) -> None:
    space = Space(client)
    space.push(space.a, *(make_op(space.a, f"o{i}", i, record_id=f"t{i}") for i in (1, 3)))
    first = space.page("?limit=1")
    assert first["seq"] == 2 and list(first["records"]["tasks"]) == ["t1"]
    space.push(space.b, make_op(space.b, "o2", 2, record_id="t2"))
    rest = space.page(f"?limit=1&after={first['next']}")
    assert rest["seq"] == 3  # so the reader knows its pages are not one snapshot
    assert list(rest["records"]["tasks"]) == ["t2"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=6", "limit"),  # over state_page_size
        ("?limit=-1", "limit"),
        ("?limit=1.5", "limit"),
        ("?limit=", "limit"),
        ("?limit=%D9%A3", "limit"),  # an Arabic-Indic 3: a digit, but not 0-9
        ("?after=", "after"),
        ("?after=!!", "after"),
        ("?after=" + "A" * 3000, "after"),
        ("?after=" + base64.urlsafe_b64encode(b"\xff\xfe").decode(), "after"),  # not UTF-8
        ("?after=" + base64.urlsafe_b64encode(b"not json").decode(), "after"),
        ("?after=" + base64.urlsafe_b64encode(b'["tasks"]').decode(), "after"),
        ("?after=" + base64.urlsafe_b64encode(b'["tasks", 1]').decode(), "after"),
        ("?after=QQ", "after"),  # base64 of "A", a JSON error
        ("?after=" + base64.urlsafe_b64encode(b"[" * 1400).decode(), "after"),  # too deep
        ("?after=Q", "after"),  # not base64 at all
    ],
)
def test_a_bad_limit_or_cursor_is_a_422_naming_it(
    client: TestClient, query: str, field: str
) -> None:
    space = Space(client)
    answer = space.read(query)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field


def test_cursors_round_trip_any_record_key() -> None:
    for key in [("tasks", "t1"), ("ünïcode", 'with "quotes" and / + ='), ("", "")]:
        cursor = encode_cursor(key)
        assert decode_cursor(cursor) == key and "=" not in cursor


def test_the_rate_limit_counts_every_page(dist: Path, tmp_path: Path) -> None:
    clock = FakeClock()
    settings = Settings(dist_dir=dist, data_dir=tmp_path / "data", state_reads_per_min=3)
    with TestClient(create_app(settings, clock=clock, wall_clock=clock)) as client:
        space = Space(client)
        space.push(space.a, *(make_op(space.a, f"o{i}", i, record_id=f"t{i}") for i in range(3)))
        first = space.page("?limit=1")
        second = space.page(f"?limit=1&after={first['next']}")
        space.page(f"?limit=1&after={second['next']}")
        refused = space.read(f"?limit=1&after={second['next']}")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        clock.advance(20)
        assert space.read("?limit=1").status_code == 200


# -- the worker process ------------------------------------------------------------------------


def test_a_killed_worker_is_replaced_and_the_read_answers(client: TestClient) -> None:
    space = Space(client)
    space.push(space.a, make_op(space.a, "o1", 1))
    assert space.page()["seq"] == 1
    before = client.portal.call(worker(client).holdings)  # type: ignore[union-attr]
    os.kill(before.pid, signal.SIGKILL)
    space.push(space.a, make_op(space.a, "o2", 2, record_id="t2"))
    page = space.page()
    assert page["seq"] == 2 and list(page["records"]["tasks"]) == ["t1", "t2"]
    after = client.portal.call(worker(client).holdings)  # type: ignore[union-attr]
    assert after.pid != before.pid and after.spaces == {space.space_id: 2}


def die(request: PageRequest) -> PageReply:
    """In place of build_page: the worker process dies at every read."""
    os._exit(1)


def test_a_worker_dying_twice_in_a_read_is_a_503_and_the_next_read_starts_another(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = Space(client)
    space.push(space.a, make_op(space.a, "o1", 1))
    with monkeypatch.context() as patched:
        patched.setattr(state_worker, "build_page", die)
        answer = space.read()
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert "state worker" in answer.json()["error"]
    assert space.page()["seq"] == 1


class CountingStore:
    """The store, noting after which seq each read of the op log started."""

    def __init__(self, store: SQLiteSyncStore) -> None:
        self.store = store
        self.reads: list[int] = []

    async def all_ops(
        self, space_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredOp]:
        self.reads.append(after_seq)
        return await self.store.all_ops(space_id, after_seq, limit)


async def test_the_worker_is_sent_only_what_it_lacks_and_all_again_after_evicting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_worker, "SEND_AT_ONCE", 2)  # a catch-up of 3 or 4 ops: 2 parts
    store = SQLiteSyncStore(tmp_path / "sync.db")
    a, b = {"device_id": "dev-a"}, {"device_id": "dev-b"}
    for space_id in ("space-a", "space-b"):
        await store.create_space(space_id, f"code-{space_id}", 0.0, 1.0)
    await store.push("space-a", "dev-a", [make_op(a, f"a{i}", "x" * 200) for i in range(3)], 0.0)
    counting = CountingStore(store)
    states = StateWorker(counting, max_bytes=1000)  # type: ignore[arg-type]
    try:
        assert b'"seq":3' in await states.page("space-a", None, 10)
        await store.push("space-a", "dev-a", [make_op(a, "a3", "y", record_id="t2")], 0.0)
        assert b'"seq":4' in await states.page("space-a", None, 10)
        # The whole log once, two ops at a time; then only the new op.
        assert counting.reads == [0, 2, 3]
        # Reading another space evicts space-a (over 1,000 bytes together), and the worker
        # says so when space-a is read next: it is sent everything again.
        await store.push("space-b", "dev-b", [make_op(b, "b0", "z" * 500)], 0.0)
        await states.page("space-b", None, 10)
        assert (await states.holdings()).spaces == {"space-b": 1}
        counting.reads.clear()
        page = await states.page("space-a", None, 10)
        assert counting.reads == [4, 0, 2, 4]
        assert b'"seq":4' in page and b'"t2"' in page
        assert (await states.holdings()).spaces == {"space-a": 4}
    finally:
        await states.close()
        await store.close()


def stored(*ops: Op, first_seq: int = 1) -> list[StoredOp]:
    return [StoredOp(first_seq + i, canonical_json(op.to_json())) for i, op in enumerate(ops)]


def test_the_worker_applies_only_ops_that_follow_on_from_what_it_holds() -> None:
    a = {"device_id": "dev-a"}
    ops = [make_op(a, f"o{i}", i, record_id=f"t{i}") for i in range(4)]
    spaces = Spaces(max_bytes=10**9)
    # Ops 3-4 when it holds nothing: it says so, and applies nothing.
    assert spaces.page(
        PageRequest(Ops("s", 2, stored(*ops[2:], first_seq=3)), None, 10)
    ) == PageReply(0, None)
    assert spaces.take(Ops("s", 2, stored(*ops[2:], first_seq=3))) == 0
    assert spaces.holdings().spaces == {}
    assert spaces.take(Ops("s", 0, stored(*ops[:2]))) == 2  # a part of a long catch-up
    first = spaces.page(PageRequest(Ops("s", 2, stored(ops[2], first_seq=3)), None, 10))
    assert first.held == 3 and first.page is not None
    # Sent from an older seq than it holds (a reply the server never saw): no op twice.
    again = spaces.page(PageRequest(Ops("s", 1, stored(*ops[1:], first_seq=2)), None, 10))
    assert again.held == 4 and again.page is not None
    assert b'"t3":{"title":3}' in again.page and b'"next":null' in again.page


def test_a_stored_op_the_worker_cannot_read_is_an_error_and_nothing_is_applied() -> None:
    spaces = Spaces(max_bytes=10**9)
    d = {"device_id": "d"}
    spaces.page(PageRequest(Ops("s", 0, stored(make_op(d, "o1", 1))), None, 10))
    bad = [*stored(make_op(d, "o2", 2, record_id="t2"), first_seq=2), StoredOp(3, "{not json")]
    with pytest.raises(ValueError):
        spaces.page(PageRequest(Ops("s", 1, bad), None, 10))
    assert spaces.holdings().spaces == {"s": 1}  # o2 was not applied without its seq
    good = spaces.page(PageRequest(Ops("s", 1, bad[:1]), None, 10))
    assert good.held == 2


def test_the_worker_evicts_the_least_recently_read_spaces_first() -> None:
    spaces = Spaces(max_bytes=2500)
    for space_id in ("s1", "s2", "s3"):
        op = make_op({"device_id": "d"}, f"{space_id}-o", "x" * 900)
        spaces.page(PageRequest(Ops(space_id, 0, stored(op)), None, 10))
    assert list(spaces.holdings().spaces) == ["s2", "s3"]  # s1 went to make room for s3
    spaces.page(PageRequest(Ops("s2", 1, []), None, 10))  # read again: now the most recent
    spaces.page(
        PageRequest(Ops("s1", 0, stored(make_op({"device_id": "d"}, "o", "y" * 900))), None, 1)
    )
    assert list(spaces.holdings().spaces) == ["s2", "s1"]
