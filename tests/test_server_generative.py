"""The generative client (server/generative.py) against fake OpenAI-compatible backends,
and its settings."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from server.app import create_app
from server.generative import MAX_ANSWER_CHARS, MAX_RESPONSE_BYTES, GenerativeClient, cap
from server.settings import GenerativeSettings, Settings
from tools.cli import main

QUESTION = "what is the capital of France?"
SECRET = "my bank pin is 4321"  # user text that must never reach the log


def completion(content: Any = "Paris.", finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }


class FakeBackend:
    """A chat-completions endpoint served in-process; records what it was sent."""

    def __init__(self, reply: Callable[[], Response]) -> None:
        self.reply = reply
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        self.requests.append((request.url.path, dict(request.headers), await request.json()))
        return self.reply()

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)


def settings(**overrides: Any) -> GenerativeSettings:
    values: dict[str, Any] = {"base_url": "http://backend.test/v1", "model": "tiny"}
    return GenerativeSettings(**(values | overrides))


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., GenerativeClient]]:
    made: list[GenerativeClient] = []

    def make(transport: httpx.AsyncBaseTransport | None, **overrides: Any) -> GenerativeClient:
        made.append(GenerativeClient(settings(**overrides), transport=transport))
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


async def test_answers_with_the_first_choice(client_for: Callable[..., GenerativeClient]) -> None:
    backend = FakeBackend(lambda: JSONResponse(completion("  The capital is Paris.\n")))
    client = client_for(backend.transport(), max_tokens=77)
    assert await client.answer(f"  {QUESTION} ") == "The capital is Paris."
    [(path, headers, body)] = backend.requests
    assert path == "/v1/chat/completions"
    assert "authorization" not in headers
    assert body["model"] == "tiny"
    assert body["max_tokens"] == 77
    assert body["stream"] is False
    system, user = body["messages"]
    assert system["role"] == "system" and "cannot see" in system["content"]
    assert user == {"role": "user", "content": QUESTION}


async def test_sends_the_key_as_a_bearer_token(
    client_for: Callable[..., GenerativeClient],
) -> None:
    backend = FakeBackend(lambda: JSONResponse(completion()))
    client = client_for(backend.transport(), api_key="sk-test-123")
    assert await client.answer(QUESTION) == "Paris."
    assert backend.requests[0][1]["authorization"] == "Bearer sk-test-123"


async def test_blank_question_never_reaches_the_backend(
    client_for: Callable[..., GenerativeClient],
) -> None:
    backend = FakeBackend(lambda: JSONResponse(completion()))
    assert await client_for(backend.transport()).answer(" \n\t") is None
    assert backend.requests == []


async def test_long_question_is_truncated_before_sending(
    client_for: Callable[..., GenerativeClient],
) -> None:
    backend = FakeBackend(lambda: JSONResponse(completion()))
    await client_for(backend.transport()).answer("why " * 5000)
    sent = backend.requests[0][2]["messages"][1]["content"]
    assert 0 < len(sent) <= 2000


def raising(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("exc", "logged"),
    [
        (httpx.ReadTimeout("read timed out"), "no answer within 10 s"),
        (httpx.ConnectTimeout("connect timed out"), "no answer within 10 s"),
        (httpx.ConnectError("name resolution failed"), "ConnectError: name resolution failed"),
        (httpx.RemoteProtocolError("peer closed"), "RemoteProtocolError: peer closed"),
    ],
)
async def test_transport_failures_give_none_and_a_log_line(
    client_for: Callable[..., GenerativeClient],
    caplog: pytest.LogCaptureFixture,
    exc: Exception,
    logged: str,
) -> None:
    with caplog.at_level(logging.WARNING, "py_agent.server.generative"):
        assert await client_for(raising(exc)).answer(SECRET) is None
    assert logged in caplog.text
    assert "http://backend.test/v1" in caplog.text
    assert SECRET not in caplog.text


async def test_a_backend_that_never_finishes_is_cut_off_at_the_timeout(
    client_for: Callable[..., GenerativeClient], caplog: pytest.LogCaptureFixture
) -> None:
    never = asyncio.Event()

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        await never.wait()  # set by nobody: only the client's own deadline ends this

    client = client_for(httpx.ASGITransport(app=stuck), timeout_s=0.05)
    with caplog.at_level(logging.WARNING, "py_agent.server.generative"):
        # The outer bound turns a missing deadline into a failure instead of a hung suite.
        assert await asyncio.wait_for(client.answer(QUESTION), 10) is None
    assert "no answer within 0.05 s" in caplog.text


async def test_connection_refused_gives_none(
    client_for: Callable[..., GenerativeClient], caplog: pytest.LogCaptureFixture
) -> None:
    # A port that was just free and has nobody listening: a real refused connection.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_for(None, base_url=f"http://127.0.0.1:{port}/v1")
    with caplog.at_level(logging.WARNING, "py_agent.server.generative"):
        assert await client.answer(QUESTION) is None
    assert "ConnectError" in caplog.text


@pytest.mark.parametrize("status", [500, 401, 404, 429, 302])
async def test_non_200_gives_none_and_logs_the_status(
    client_for: Callable[..., GenerativeClient],
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    backend = FakeBackend(
        lambda: JSONResponse(
            {"error": {"message": "model overloaded"}},
            status_code=status,
            headers={"location": "/elsewhere"},
        )
    )
    with caplog.at_level(logging.WARNING, "py_agent.server.generative"):
        assert await client_for(backend.transport()).answer(QUESTION) is None
    assert f"HTTP {status}: " in caplog.text
    assert "model overloaded" in caplog.text


@pytest.mark.parametrize(
    ("body", "logged"),
    [
        (b"<html>bad gateway</html>", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "no choices"),
        (b'{"object": "chat.completion"}', "no choices"),
        (json.dumps(completion() | {"choices": []}).encode(), "no choices"),
        (json.dumps(completion() | {"choices": "Paris"}).encode(), "no choices"),
        (json.dumps(completion() | {"choices": ["Paris"]}).encode(), "no message text"),
        (json.dumps(completion(None)).encode(), "no message text"),
        (json.dumps(completion(["Paris"])).encode(), "no message text"),
        (json.dumps(completion("  \n ")).encode(), "no message text"),
    ],
    ids=[
        "html",
        "not-utf8",
        "empty",
        "json-list",
        "no-choices-key",
        "empty-choices",
        "choices-not-list",
        "choice-not-object",
        "content-null",
        "content-not-text",
        "content-blank",
    ],
)
async def test_unusable_bodies_give_none(
    client_for: Callable[..., GenerativeClient],
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    logged: str,
) -> None:
    backend = FakeBackend(lambda: Response(body, media_type="application/json"))
    with caplog.at_level(logging.WARNING, "py_agent.server.generative"):
        assert await client_for(backend.transport()).answer(QUESTION) is None
    assert f"unusable response: {logged}" in caplog.text


async def test_an_endless_body_is_refused(
    client_for: Callable[..., GenerativeClient], caplog: pytest.LogCaptureFixture
) -> None:
    huge = json.dumps(completion("a" * (MAX_RESPONSE_BYTES + 1)))
    backend = FakeBackend(lambda: Response(huge, media_type="application/json"))
    with caplog.at_level(logging.WARNING, "py_agent.server.generative"):
        assert await client_for(backend.transport()).answer(QUESTION) is None
    assert "body over" in caplog.text


async def test_overlong_answer_is_capped_at_a_sentence(
    client_for: Callable[..., GenerativeClient],
) -> None:
    sentence = "Paris has been the capital of France for a very long time. "
    backend = FakeBackend(lambda: JSONResponse(completion(sentence * 100)))
    answer = await client_for(backend.transport()).answer(QUESTION)
    assert answer is not None
    assert MAX_ANSWER_CHARS // 2 <= len(answer) <= MAX_ANSWER_CHARS
    assert answer.endswith("long time.")


async def test_answer_cut_off_by_max_tokens_drops_the_unfinished_sentence(
    client_for: Callable[..., GenerativeClient],
) -> None:
    text = "Paris is the capital. It lies on the Seine, which flows into the"
    backend = FakeBackend(lambda: JSONResponse(completion(text, finish_reason="length")))
    assert await client_for(backend.transport()).answer(QUESTION) == (
        "Paris is the capital. It lies on the Seine, which flows into the…"
    )
    text = "Paris is the capital of France. It lies on the Seine. The Seine flows"
    backend = FakeBackend(lambda: JSONResponse(completion(text, finish_reason="length")))
    assert await client_for(backend.transport()).answer(QUESTION) == (
        "Paris is the capital of France. It lies on the Seine."
    )


@pytest.mark.parametrize(
    ("text", "limit", "cut_off", "expected"),
    [
        ("Short answer.", 100, False, "Short answer."),
        ("One two three four five six", 14, False, "One two three…"),
        ("One two three four five six", 13, False, "One two three…"),
        ("Onetwothreefourfive", 10, False, "Onetwothre…"),
        ("It is 3.14 or so. Roughly", 100, True, "It is 3.14 or so."),
        ("Well, it depends on", 100, True, "Well, it depends on…"),
        ("Ends with a comma,", 100, True, "Ends with a comma…"),
        ("1. Plan the week. 2. Sleep well. 3.", 100, True, "1. Plan the week. 2. Sleep well."),
        ("It was built in 1999. Then it", 100, True, "It was built in 1999."),
    ],
)
def test_cap(text: str, limit: int, cut_off: bool, expected: str) -> None:
    assert cap(text, limit, cut_off=cut_off) == expected


# Settings (their checks and messages: tests/test_settings.py) and wiring.


def test_serve_refuses_bad_generative_settings(
    dist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PY_AGENT_GENERATIVE_URL", "http://127.0.0.1:8001/v1")
    monkeypatch.setenv("PY_AGENT_GENERATIVE_MODEL", "m")
    monkeypatch.setenv("PY_AGENT_GENERATIVE_TIMEOUT_S", "soon")
    assert main(["serve", "--dist-dir", str(dist), "--data-dir", str(tmp_path / "data")]) == 2
    assert "PY_AGENT_GENERATIVE_TIMEOUT_S must be a number" in capsys.readouterr().err


def test_app_has_no_answer_without_a_backend(
    dist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PY_AGENT_GENERATIVE_URL", raising=False)
    app = create_app(Settings(dist_dir=dist, data_dir=tmp_path / "data"))
    assert app.state.answer is None


def test_app_answer_is_the_configured_client_and_closes_with_the_app(
    dist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PY_AGENT_GENERATIVE_URL", "http://127.0.0.1:8001/v1")
    monkeypatch.setenv("PY_AGENT_GENERATIVE_MODEL", "smollm2")
    app = create_app(Settings(dist_dir=dist, data_dir=tmp_path / "data"))
    client = app.state.answer.__self__
    assert isinstance(client, GenerativeClient)
    assert client.settings.model == "smollm2"
    with TestClient(app):
        assert not client._http.is_closed
    assert client._http.is_closed
