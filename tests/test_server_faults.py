"""The test-only fault switch (server/faults.py): absent unless asked for, and when on,
it fails, stalls or delays exactly the requests it was armed for."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from server.app import create_app
from server.faults import CONTROL_PATH, Fault, FaultMiddleware
from server.headers import ISOLATION_HEADERS
from server.settings import TEST_FAULTS_ENV, Settings


def client_for(dist: Path, tmp_path: Path, **settings: Any) -> TestClient:
    app = create_app(Settings(dist_dir=dist, data_dir=tmp_path / "data", **settings))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def faulty(dist: Path, tmp_path: Path) -> TestClient:
    return client_for(dist, tmp_path, test_faults=True)


def arm(client: TestClient, **spec: Any) -> None:
    response = client.post(CONTROL_PATH, json=spec)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("value", [None, "", "0", "true", "yes"])
def test_off_by_default_and_unless_the_variable_is_1(
    monkeypatch: pytest.MonkeyPatch, dist: Path, tmp_path: Path, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(TEST_FAULTS_ENV, raising=False)
    else:
        monkeypatch.setenv(TEST_FAULTS_ENV, value)
    settings = Settings(dist_dir=dist, data_dir=tmp_path / "data")
    assert settings.test_faults is False
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    for method in ("GET", "POST", "DELETE"):
        response = client.request(method, CONTROL_PATH, json={"status": 503})
        assert response.status_code == 404, (method, response.text)
        assert response.json() == {"error": "Not Found", "path": CONTROL_PATH}
    assert client.get("/api/v1/info").status_code == 200  # nothing was armed


def test_on_with_the_variable(monkeypatch: pytest.MonkeyPatch, dist: Path, tmp_path: Path) -> None:
    monkeypatch.setenv(TEST_FAULTS_ENV, "1")
    settings = Settings(dist_dir=dist, data_dir=tmp_path / "data")
    assert settings.test_faults is True
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    assert client.get(CONTROL_PATH).json() == {"faults": [], "injected": 0, "active": 0}


def test_armed_status_answers_the_next_n_matching_requests(faulty: TestClient) -> None:
    arm(faulty, path_prefix="/api/v1/info", count=2, status=503, retry_after=3)
    for _ in range(2):
        response = faulty.get("/api/v1/info")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "3"
        assert response.json() == {
            "error": "injected fault (status 503)",
            "path": "/api/v1/info",
        }
        for name, value in ISOLATION_HEADERS.items():
            assert response.headers[name] == value
    assert faulty.get("/api/v1/info").status_code == 200  # used up
    state = faulty.get(CONTROL_PATH).json()
    assert state["injected"] == 2
    assert [fault["remaining"] for fault in state["faults"]] == [0]


def test_only_matching_paths_are_hit_and_faults_go_in_order(faulty: TestClient) -> None:
    arm(faulty, path_prefix="/api/v1/sync", count=1, status=500)
    arm(faulty, path_prefix="/api/", count=1, status=502)
    assert faulty.get("/healthz").status_code == 200
    assert faulty.get("/api/v1/info").status_code == 502  # the first fault's prefix differs
    assert faulty.post("/api/v1/sync", json={}).status_code == 500
    assert faulty.post("/api/v1/sync", json={}).status_code == 401  # the real app again
    assert faulty.get(CONTROL_PATH).json()["injected"] == 2


def test_delete_disarms_everything_and_starts_the_count_over(faulty: TestClient) -> None:
    arm(faulty, count=5, status=503)
    assert faulty.get("/api/v1/info").status_code == 503
    assert faulty.delete(CONTROL_PATH).status_code == 204
    assert faulty.get("/api/v1/info").status_code == 200
    assert faulty.get(CONTROL_PATH).json() == {"faults": [], "injected": 0, "active": 0}


@pytest.mark.parametrize(
    "spec",
    [
        {},  # neither a status nor a stall
        {"status": 200},
        {"status": "503"},
        {"status": True},
        {"status": 503, "count": 0},
        {"status": 503, "count": 1.5},
        {"status": 503, "path_prefix": "api"},
        {"stall_s": -1},
        {"stall_s": 1000},
        {"stall_s": "1"},
        {"stall_s": 1, "retry_after": 2},  # Retry-After without a status
        {"status": 503, "retry_after": -1},
        {"status": 503, "colour": "red"},
        [],
    ],
)
def test_bad_specs_are_refused(faulty: TestClient, spec: Any) -> None:
    response = faulty.post(CONTROL_PATH, json=spec)
    assert response.status_code == 422, response.text
    assert response.json()["error"]
    assert faulty.get(CONTROL_PATH).json()["faults"] == []


def test_a_body_that_is_not_json_is_refused(faulty: TestClient) -> None:
    response = faulty.post(CONTROL_PATH, content=b"{nope")
    assert response.status_code == 422


def test_other_methods_are_405(faulty: TestClient) -> None:
    assert faulty.put(CONTROL_PATH, json={}).status_code == 405


def run_asgi(
    middleware: FaultMiddleware, path: str, messages: list[Message]
) -> tuple[list[Message], list[Message]]:
    """Calls the middleware once; returns what the app received and what was sent."""
    incoming = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": path, "headers": []}
    # A thread of its own: this thread may already run a loop (Playwright's, in a session
    # that also ran e2e/), and asyncio.run refuses to nest.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, middleware(scope, receive, send)).result()
    return sent, incoming


def test_a_stall_reads_the_body_first_then_hands_the_request_on() -> None:
    """Armed with a stall and no status, the request reaches the app late and whole,
    even when the client went away meanwhile: the server does the work, the answer
    is lost (what a client timeout looks like from the server)."""
    received: list[Message] = []
    slept: list[float] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            received.append(message)
            if not message.get("more_body"):
                break
        await JSONResponse({"ok": True})(scope, receive, send)

    async def sleep(seconds: float) -> None:
        assert middleware.active == 1  # counted while stalled
        slept.append(seconds)

    middleware = FaultMiddleware(app, sleep=sleep)
    middleware.faults.append(Fault("/api/", 1, None, 12.0, None))
    body = [
        {"type": "http.request", "body": b'{"cursor":', "more_body": True},
        {"type": "http.request", "body": b"null}", "more_body": False},
    ]
    sent, left = run_asgi(middleware, "/api/v1/sync", [*body, {"type": "http.disconnect"}])
    assert slept == [12.0]
    assert received == body
    assert sent[0]["status"] == 200
    assert left == [{"type": "http.disconnect"}]  # not read by the middleware
    assert middleware.injected == 1 and middleware.faults[0].remaining == 0
    assert middleware.active == 0

    sent, _ = run_asgi(middleware, "/api/v1/sync", body)  # used up: straight through
    assert slept == [12.0] and sent[0]["status"] == 200


def test_a_stall_with_a_status_never_reaches_the_app() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app must not see this request")

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    middleware = FaultMiddleware(app, sleep=sleep)
    middleware.faults.append(Fault("/api/", 1, 504, 2.5, None))
    sent, _ = run_asgi(
        middleware, "/api/v1/sync", [{"type": "http.request", "body": b"{}", "more_body": False}]
    )
    assert slept == [2.5] and sent[0]["status"] == 504
