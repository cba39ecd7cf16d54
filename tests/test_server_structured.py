"""Structured readings (server/structured.py): the generative backend's intent and slots for
what the server model is unsure of — the parser, the reader against fake OpenAI-compatible
endpoints, and POST /api/v1/infer, which never fails for the backend's sake.

The server model here is a fake with chosen confidences (tests/test_server_infer.py runs the
real one), so each test says exactly when the backend is asked. No sleeps: a slow backend
waits on an event nobody sets, and concurrency is watched at the fake endpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support import FakeClock, sync_app

from py_agent import slots as core_slots
from py_agent.intents import INTENTS, IntentHead
from py_agent.router import DEFAULT_DEADLINE_S
from server.app import create_app
from server.generative import MAX_ANSWER_CHARS, GenerativeClient
from server.inference import ServerModel
from server.settings import GenerativeSettings, Settings
from server.structured import (
    FAILURE_REASONS,
    SYSTEM_PROMPT,
    Reading,
    ReadingFailed,
    StructuredReader,
    parse_reading,
    user_message,
)

NOW = "2026-11-18T10:00:00+01:00"  # a Wednesday
HEAD = "server-head/fake"
SECRET = "the safe code is 4321"  # in every utterance here; never in a log line
UNSURE = f"rename buy milk, {SECRET}"  # the fake model reads task.add at 0.40
SURE = f"remind me {SECRET}"  # task.add at 0.95
UNSURE_OOS = f"what is {SECRET}?"  # out_of_scope at 0.50
SURE_OOS = f"why is {SECRET}?"  # out_of_scope at 0.97
MODEL_READS = {
    UNSURE: ("task.add", 0.40),
    SURE: ("task.add", 0.95),
    UNSURE_OOS: ("out_of_scope", 0.50),
    SURE_OOS: ("out_of_scope", 0.97),
}

EDIT = {
    "target": "buy milk",
    "title": "buy oat milk",
    "due_date": None,
    "due_time": None,
    "time_only": False,
    "clear_due": False,
    "list": None,
    "to_main_list": False,
    "repeat": None,
    "stop_repeat": False,
}
ADD = {
    "title": "take out the trash",
    "due_date": "2026-11-23",
    "due_time": None,
    "repeat": "FREQ=WEEKLY;BYDAY=MO",
    "list": None,
}


def now() -> dt.datetime:
    return dt.datetime.fromisoformat(NOW)


def reading(intent: str = "task.edit", slots: Any = None, **extra: Any) -> str:
    return json.dumps({"intent": intent, "slots": EDIT if slots is None else slots, **extra})


def completion(content: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


# --- the model: parse_reading ------------------------------------------------------------


def test_a_json_object_is_a_reading() -> None:
    assert parse_reading(reading(confidence=0.93)) == Reading("task.edit", EDIT, 0.93, None)
    assert parse_reading(reading("task.add", ADD)) == Reading("task.add", ADD, None, None)
    assert parse_reading(reading("undo", {})) == Reading("undo", {}, None, None)


def test_list_names_and_rules_come_back_in_canonical_form() -> None:
    given = ADD | {"list": "My Groceries list", "repeat": "RRULE:byday=MO;freq=weekly"}
    assert parse_reading(reading("task.add", given)).slots == ADD | {"list": "grocery"}
    assert parse_reading(reading("task.list", {"list": "shopping list"})).slots == {
        "list": "shopping"
    }
    moved = parse_reading(reading("task.complete", {"target": "eggs", "list": "to-do list"}))
    assert moved.slots == {"target": "eggs", "list": None}


@pytest.mark.parametrize(
    "wrap",
    [
        "```json\n{}\n```",
        "```\n{}\n```",
        "  ```JSON\n{}```\n",
        "```json {}```",
    ],
)
def test_a_fenced_json_block_is_a_reading_too(wrap: str) -> None:
    content = wrap.replace("{}", reading(confidence=0.8))
    assert parse_reading(content) == Reading("task.edit", EDIT, 0.8, None)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "not_json"),
        ("task.edit", "not_json"),
        ("Sure! Here it is: " + reading(), "not_json"),
        (reading() + "\nHope this helps.", "not_json"),
        ("```json\n" + reading() + "\n```\nThe user wants to rename a task.", "not_json"),
        ("```json\n" + reading() + "\n```\n```json\n" + reading() + "\n```", "not_json"),
        ("[" + reading() + "]", "not_json"),
        ('"task.edit"', "not_json"),
        (json.dumps({"intent": "task.edit"}), "bad_shape"),
        (json.dumps({"slots": EDIT}), "bad_shape"),
        (reading(reasoning="the user says rename"), "bad_shape"),
        (reading(answer=42), "bad_shape"),
        (reading("task_edit"), "bad_intent"),
        (reading("TASK.EDIT"), "bad_intent"),
        (reading("rename"), "bad_intent"),
        (reading(None), "bad_intent"),
        (reading("task.edit", "buy oat milk"), "bad_slots"),
        (reading("task.edit", [EDIT]), "bad_slots"),
        (reading("task.edit", EDIT | {"title": 42}), "bad_slots"),
        (reading("task.edit", EDIT | {"clear_due": "no"}), "bad_slots"),
        (reading("task.edit", EDIT | {"priority": "high"}), "bad_slots"),
        (reading("task.edit", ADD), "bad_slots"),
        (reading("task.add", ADD | {"due_date": 20261123}), "bad_slots"),
        (reading("task.add", ADD | {"due_date": "next monday"}), "bad_slots"),
        (reading("task.add", {"title": "take out the trash"} | {"due": "2026-11-23"}), "bad_slots"),
        (reading("note.add", {"text": ["wifi", "hunter2"]}), "bad_slots"),
        (reading("help", {"topic": "lists"}), "bad_slots"),
    ],
    ids=[
        "empty",
        "bare-word",
        "prose-before",
        "prose-after",
        "prose-after-fence",
        "two-fences",
        "array",
        "json-string",
        "no-slots",
        "no-intent",
        "extra-key",
        "answer-not-text",
        "intent-underscore",
        "intent-upper",
        "intent-unknown",
        "intent-null",
        "slots-string",
        "slots-array",
        "title-number",
        "flag-string",
        "extra-slot",
        "other-intents-slots",
        "date-number",
        "date-words",
        "wrong-slot-names",
        "text-array",
        "slots-for-none",
    ],
)
def test_anything_else_is_refused_with_its_reason(content: str, reason: str) -> None:
    with pytest.raises(ReadingFailed) as failed:
        parse_reading(content)
    assert failed.value.reason == reason
    assert reason in FAILURE_REASONS


def test_a_refusal_never_quotes_the_reading() -> None:
    for content in (
        f"{SECRET} " + reading(),
        reading(SECRET),
        reading("task.edit", EDIT | {"title": [SECRET]}),
        reading(SECRET.replace(" ", "_")) + SECRET,
    ):
        with pytest.raises(ReadingFailed) as failed:
            parse_reading(content)
        assert "4321" not in str(failed.value)


@pytest.mark.parametrize(
    ("given", "kept"),
    [(0.0, 0.0), (1, 1.0), (0.5, 0.5), (1.5, None), (-0.1, None), ("high", None), (True, None)],
)
def test_the_backends_confidence_is_kept_only_as_a_probability(given: Any, kept: Any) -> None:
    assert parse_reading(reading(confidence=given)).confidence == kept


def test_no_confidence_or_nan_is_none() -> None:
    assert parse_reading(reading()).confidence is None
    assert parse_reading(reading()[:-1] + ', "confidence": NaN}').confidence is None


def test_an_answer_is_kept_for_out_of_scope_only_and_capped() -> None:
    said = parse_reading(reading("out_of_scope", {}, answer="  Paris.  "))
    assert (said.intent, said.answer) == ("out_of_scope", "Paris.")
    long = parse_reading(reading("out_of_scope", {}, answer="Paris is far. " * 200))
    assert long.answer is not None and len(long.answer) <= MAX_ANSWER_CHARS
    assert parse_reading(reading("out_of_scope", {}, answer=" ")).answer is None
    assert parse_reading(reading("out_of_scope", {}, answer=None)).answer is None
    assert parse_reading(reading(answer="Renamed!")).answer is None  # not out_of_scope


def test_the_prompt_defines_every_intent_once_and_the_json_asked_for() -> None:
    intents = SYSTEM_PROMPT.split("Intents", 1)[1].split("Slot rules:", 1)[0]
    defined = re.findall(r"^- ([a-z_.]+): ", intents, re.MULTILINE)
    assert sorted(defined) == sorted(INTENTS)
    assert '{"intent": INTENT, "slots": {...}' in SYSTEM_PROMPT
    for key in ("title", "due_date", "due_time", "repeat", "list", "target", "clear_due"):
        assert f'"{key}"' in SYSTEM_PROMPT


def test_the_user_message_is_the_utterance_time_and_zone_only() -> None:
    assert json.loads(user_message("move it", now(), "Europe/Paris")) == {
        "now": NOW,
        "weekday": "Wednesday",
        "time_zone": "Europe/Paris",
        "utterance": "move it",
    }
    assert "time_zone" not in json.loads(user_message("move it", now(), None))


# --- the reader against fake backends ------------------------------------------------------


class Backend:
    """A chat-completions endpoint (httpx.MockTransport): records each request body, counts
    requests in flight, and holds them at ``gate`` when one is set."""

    def __init__(self, reply: Callable[[dict[str, Any]], httpx.Response]) -> None:
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None
        self.in_flight = self.peak = 0
        self.arrivals: asyncio.Queue[int] = asyncio.Queue()

    @classmethod
    def saying(cls, content: Any) -> Backend:
        return cls(lambda body: httpx.Response(200, json=completion(content)))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.arrivals.put_nowait(self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            return self.reply(body)
        finally:
            self.in_flight -= 1

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def refusing(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


@pytest.fixture
async def reader_for() -> AsyncIterator[Callable[..., StructuredReader]]:
    clients: list[GenerativeClient] = []

    def make(transport: httpx.AsyncBaseTransport, **settings: Any) -> StructuredReader:
        values: dict[str, Any] = {"base_url": "http://backend.test/v1", "model": "tiny"}
        clients.append(
            GenerativeClient(GenerativeSettings(**(values | settings)), transport=transport)
        )
        return StructuredReader(clients[-1])

    yield make
    for client in clients:
        await client.aclose()


async def test_the_reader_asks_for_json_with_only_the_utterance_time_and_zone(
    reader_for: Callable[..., StructuredReader],
) -> None:
    backend = Backend.saying(reading(confidence=0.9))
    reader = reader_for(backend.transport(), max_tokens=100)
    assert await reader.read(UNSURE, now(), "Europe/Paris") == Reading("task.edit", EDIT, 0.9, None)
    [body] = backend.bodies
    assert body["model"] == "tiny"
    assert body["response_format"] == {"type": "json_object"}
    assert body["temperature"] == 0
    assert body["stream"] is False
    assert body["max_tokens"] > 100  # the answer's budget plus the JSON around it
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["role"] == "user"
    assert json.loads(user["content"]) == {
        "now": NOW,
        "weekday": "Wednesday",
        "time_zone": "Europe/Paris",
        "utterance": UNSURE,
    }


@pytest.mark.parametrize(
    ("transport", "reason"),
    [
        (httpx.MockTransport(refusing), "connection"),
        (httpx.MockTransport(lambda r: httpx.Response(500, json={"error": "down"})), "status"),
        (httpx.MockTransport(lambda r: httpx.Response(400, json={"error": "no json"})), "status"),
        (httpx.MockTransport(lambda r: httpx.Response(200, content=b"<html>")), "unusable"),
        (
            httpx.MockTransport(
                lambda r: httpx.Response(200, json=completion("x") | {"choices": []})
            ),
            "unusable",
        ),
        (Backend.saying("I think the user wants to rename a task.").transport(), "not_json"),
        (Backend.saying(reading("rename")).transport(), "bad_intent"),
        (Backend.saying(reading("task.edit", EDIT | {"title": 7})).transport(), "bad_slots"),
    ],
    ids=["refused", "500", "400", "html", "no-choices", "prose", "intent", "slot-type"],
)
async def test_the_reader_fails_with_a_reason(
    reader_for: Callable[..., StructuredReader], transport: httpx.MockTransport, reason: str
) -> None:
    with pytest.raises(ReadingFailed) as failed:
        await reader_for(transport).read(UNSURE, now(), None)
    assert failed.value.reason == reason


async def test_a_slow_backend_is_cut_off_at_the_readings_own_deadline(
    reader_for: Callable[..., StructuredReader],
) -> None:
    backend = Backend.saying(reading())
    backend.gate = asyncio.Event()  # set by nobody: only the reading's deadline ends this
    # The answer's timeout is long; the reading must keep its own, short one.
    reader = reader_for(backend.transport(), timeout_s=60.0, reading_timeout_s=0.05)
    with pytest.raises(ReadingFailed) as failed:
        # The outer bound turns a missing deadline into a failure instead of a hung suite.
        await asyncio.wait_for(reader.read(UNSURE, now(), None), 10)
    assert failed.value.reason == "timeout"
    assert "no answer within 0.05 s" in str(failed.value)
    assert len(backend.bodies) == 1


async def test_readings_in_flight_are_bounded_and_the_rest_do_not_wait(
    reader_for: Callable[..., StructuredReader],
) -> None:
    backend = Backend.saying(reading())
    backend.gate = asyncio.Event()
    reader = reader_for(backend.transport(), reading_concurrency=2)
    held = [asyncio.create_task(reader.read(UNSURE, now(), None)) for _ in range(2)]
    assert [await backend.arrivals.get() for _ in range(2)] == [1, 2]
    with pytest.raises(ReadingFailed) as failed:
        await reader.read(UNSURE, now(), None)  # the gate is closed: only "busy" ends it
    assert failed.value.reason == "busy"
    assert len(backend.bodies) == 2
    backend.gate.set()
    assert [r.intent for r in await asyncio.gather(*held)] == ["task.edit"] * 2
    assert (await reader.read(UNSURE, now(), None)).intent == "task.edit"  # slots freed
    assert backend.peak == 2


async def test_a_failed_reading_frees_its_slot(reader_for: Callable[..., StructuredReader]) -> None:
    reader = reader_for(httpx.MockTransport(refusing), reading_concurrency=1)
    for _ in range(3):
        with pytest.raises(ReadingFailed) as failed:
            await reader.read(UNSURE, now(), None)
        assert failed.value.reason == "connection"


# --- through POST /api/v1/infer -------------------------------------------------------------


def fake_server_model(embedded: list[str]) -> ServerModel:
    """A server model that reads each of MODEL_READS at its chosen confidence: its embedding
    of a text is the logits, and its head the identity."""
    n = len(INTENTS)
    head = IntentHead(np.eye(n), np.zeros(n), 1.0, INTENTS)

    async def embed(texts: Sequence[str]) -> Any:
        embedded.extend(texts)
        rows = np.zeros((len(texts), n), dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            intent, p = MODEL_READS.get(text, ("task.add", 0.40))
            row[INTENTS.index(intent)] = math.log(p * (n - 1) / (1 - p))
        return rows

    return ServerModel(HEAD, embed, head)


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.embedded: list[str] = []
        self.closing: list[Callable[[], Awaitable[None]]] = []
        self.http: httpx.AsyncClient
        self.app: Any

    def start(self, backend: httpx.AsyncBaseTransport | None, **generative: Any) -> None:
        """The app with the fake server model and, unless ``backend`` is None, a generative
        backend on that transport (``generative`` overrides its settings), wired as
        create_app wires a configured one."""
        self.http, self.app = sync_app(self.tmp_path, "data", FakeClock())
        model = fake_server_model(self.embedded)

        async def loader(models: Path, threads: int) -> ServerModel:
            return model

        self.app.state.infer.loader = loader
        if backend is not None:
            values: dict[str, Any] = {
                "base_url": "http://backend.test/v1",
                "model": "tiny",
                "reading_timeout_s": 0.2,
            }
            client = GenerativeClient(
                GenerativeSettings(**(values | generative)), transport=backend
            )
            self.app.state.answer = client.answer
            self.app.state.structured = StructuredReader(client)
            self.closing.append(client.aclose)

    async def infer(self, text: str) -> httpx.Response:
        token = (await self.http.post("/api/v1/installs")).json()["token"]
        return await self.http.post(
            "/api/v1/infer",
            json={"text": text, "now": NOW, "tz": "Europe/Paris", "locale": "en-GB"},
            headers={"Authorization": f"Bearer {token}"},
        )

    async def metric(self, name: str, reason: str | None = None) -> float:
        labels = "" if reason is None else f'{{reason="{reason}"}}'
        text = (await self.http.get("/metrics")).text
        match = re.search(rf"^{name}_total{re.escape(labels)} (\S+)$", text, re.MULTILINE)
        assert match is not None, f"{name}{labels} not in /metrics"
        return float(match.group(1))

    async def readings(self) -> tuple[float, float, dict[str, float]]:
        """Attempted, used, and failed by reason (the non-zero ones)."""
        failed = {
            reason: count
            for reason in FAILURE_REASONS
            if (count := await self.metric("py_agent_structured_readings_failed", reason))
        }
        return (
            await self.metric("py_agent_structured_readings_attempted"),
            await self.metric("py_agent_structured_readings_used"),
            failed,
        )

    async def close(self) -> None:
        await self.http.aclose()
        self.app.state.infer.close()
        await self.app.state.infer.installs.close()
        await self.app.state.sync.store.close()
        for close in self.closing:
            await close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path)
    yield e
    await e.close()


def own_reading(text: str) -> dict[str, Any]:
    intent, confidence = MODEL_READS[text]
    return {
        "intent": intent,
        "confidence": pytest.approx(confidence, abs=1e-5),
        "slots": core_slots.slots_json(intent, text, now()),
        "answer": None,
        "model": HEAD,
        "reader": "model",
    }


async def test_an_unsure_model_takes_the_backends_valid_reading(env: Env) -> None:
    backend = Backend.saying(reading(confidence=0.93))
    env.start(backend.transport())
    response = await env.infer(UNSURE)
    assert response.status_code == 200
    assert response.json() == {
        "intent": "task.edit",
        "confidence": 0.93,
        "slots": EDIT,
        "answer": None,
        "model": f"{HEAD} + tiny",
        "reader": "backend",
    }
    assert env.embedded == [UNSURE]  # the server model read it first
    [body] = backend.bodies
    assert "en-GB" not in json.dumps(body)  # the locale stays on the server
    assert await env.readings() == (1.0, 1.0, {})


async def test_a_fenced_reading_is_used_and_without_a_confidence_gets_the_models(
    env: Env,
) -> None:
    backend = Backend.saying("```json\n" + reading("task.add", ADD) + "\n```")
    env.start(backend.transport())
    body = (await env.infer(UNSURE)).json()
    assert (body["reader"], body["intent"], body["slots"]) == ("backend", "task.add", ADD)
    assert body["confidence"] == pytest.approx(0.40, abs=1e-5)  # the model's, for task.add

    # Another reading of the same words: the model's probability of that intent.
    backend.reply = lambda b: httpx.Response(200, json=completion(reading()))
    other = (await env.infer(UNSURE)).json()
    assert other["intent"] == "task.edit"
    assert other["confidence"] == pytest.approx(0.60 / (len(INTENTS) - 1), abs=1e-5)


def slow(request: httpx.Request) -> Awaitable[httpx.Response]:
    async def never() -> httpx.Response:
        await asyncio.Event().wait()  # set by nobody: only the reading's deadline ends this
        raise AssertionError("unreachable")

    return never()


FAILING_BACKENDS: list[tuple[str, Callable[[httpx.Request], Any], str]] = [
    (
        "wrong-intent",
        lambda r: httpx.Response(200, json=completion(reading("rename"))),
        "bad_intent",
    ),
    (
        "wrong-slot-types",
        lambda r: httpx.Response(200, json=completion(reading(slots=EDIT | {"clear_due": 1}))),
        "bad_slots",
    ),
    (
        "extra-junk",
        lambda r: httpx.Response(200, json=completion(reading() + " (renaming the task)")),
        "not_json",
    ),
    (
        "extra-key",
        lambda r: httpx.Response(200, json=completion(reading(why=SECRET))),
        "bad_shape",
    ),
    ("non-json", lambda r: httpx.Response(200, json=completion(f"Rename: {SECRET}")), "not_json"),
    (
        "empty-choices",
        lambda r: httpx.Response(200, json=completion("x") | {"choices": []}),
        "unusable",
    ),
    ("not-a-completion", lambda r: httpx.Response(200, text=SECRET), "unusable"),
    ("http-500", lambda r: httpx.Response(500, json={"error": "overloaded"}), "status"),
    ("http-429", lambda r: httpx.Response(429, json={"error": "slow down"}), "status"),
    ("refused", refusing, "connection"),
    ("slow", slow, "timeout"),
]


@pytest.mark.parametrize(
    ("handler", "reason"),
    [(h, r) for _, h, r in FAILING_BACKENDS],
    ids=[name for name, _, _ in FAILING_BACKENDS],
)
async def test_any_failed_reading_falls_back_to_the_models_within_the_deadline(
    env: Env, caplog: pytest.LogCaptureFixture, handler: Callable[..., Any], reason: str
) -> None:
    env.start(httpx.MockTransport(handler))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.DEBUG):
        # The outer bound turns a missing deadline into a failure instead of a hung suite.
        response = await asyncio.wait_for(env.infer(UNSURE), 10)
    assert loop.time() - started < DEFAULT_DEADLINE_S  # the device is still waiting
    assert response.status_code == 200
    assert response.json() == own_reading(UNSURE)
    assert await env.readings() == (1.0, 0.0, {reason: 1.0})
    assert f"structured reading not used ({reason})" in caplog.text
    assert "4321" not in caplog.text


async def test_a_bug_in_reading_is_a_fallback_too_and_logs_no_words(
    env: Env, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(intent: str, value: object) -> None:
        raise KeyError(f"{SECRET}")  # not SlotsError: a bug, whose message quotes the reading

    monkeypatch.setattr("server.structured.parse_slots_json", broken)
    env.start(Backend.saying(reading()).transport())
    with caplog.at_level(logging.DEBUG):
        response = await env.infer(UNSURE)
    assert response.status_code == 200
    assert response.json() == own_reading(UNSURE)
    assert await env.readings() == (1.0, 0.0, {"error": 1.0})
    assert "KeyError at " in caplog.text
    assert "4321" not in caplog.text


async def test_a_confident_model_never_asks_the_backend(env: Env) -> None:
    backend = Backend.saying(reading())
    env.start(backend.transport())
    assert (await env.infer(SURE)).json() == own_reading(SURE)
    assert backend.bodies == []
    assert await env.readings() == (0.0, 0.0, {})


@pytest.mark.parametrize(
    ("below", "asked"), [(0.0, False), (0.4, False), (0.41, True), (1.0, True)]
)
async def test_reading_below_is_the_threshold(env: Env, below: float, asked: bool) -> None:
    backend = Backend.saying(reading())
    env.start(backend.transport(), reading_below=below)
    assert (await env.infer(UNSURE)).json()["reader"] == ("backend" if asked else "model")
    assert len(backend.bodies) == int(asked)


async def test_without_a_backend_nothing_is_asked(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    async def read(self: StructuredReader, text: str, *args: Any) -> Reading:
        asked.append(text)
        raise AssertionError("no backend is configured")

    monkeypatch.setattr(StructuredReader, "read", read)
    env.start(None)
    assert env.app.state.structured is None
    assert (await env.infer(UNSURE)).json() == own_reading(UNSURE)
    assert asked == []
    assert await env.readings() == (0.0, 0.0, {})


async def test_an_unsure_out_of_scope_gets_its_answer_from_the_same_one_call(env: Env) -> None:
    backend = Backend.saying(reading("out_of_scope", {}, answer="I can't see that.", confidence=1))
    env.start(backend.transport())
    body = (await env.infer(UNSURE_OOS)).json()
    assert body == {
        "intent": "out_of_scope",
        "confidence": 1.0,
        "slots": {},
        "answer": "I can't see that.",
        "model": f"{HEAD} + tiny",
        "reader": "backend",
    }
    [call] = backend.bodies
    assert call["response_format"] == {"type": "json_object"}  # the reading, not an answer


async def test_an_unsure_out_of_scope_whose_reading_fails_is_not_asked_again(env: Env) -> None:
    backend = Backend(lambda b: httpx.Response(503, json={"error": "overloaded"}))
    env.start(backend.transport())
    assert (await env.infer(UNSURE_OOS)).json() == own_reading(UNSURE_OOS)  # answer: null
    assert len(backend.bodies) == 1


async def test_a_confident_out_of_scope_still_gets_a_free_text_answer(env: Env) -> None:
    backend = Backend.saying("Because of Rayleigh scattering.")
    env.start(backend.transport())
    body = (await env.infer(SURE_OOS)).json()
    assert body == own_reading(SURE_OOS) | {"answer": "Because of Rayleigh scattering."}
    [call] = backend.bodies
    assert "response_format" not in call  # GenerativeClient.answer's request
    assert await env.readings() == (0.0, 0.0, {})


async def test_a_busy_backend_leaves_the_models_reading_at_once(env: Env) -> None:
    backend = Backend.saying(reading())
    backend.gate = asyncio.Event()
    env.start(backend.transport(), reading_concurrency=1)
    held = asyncio.create_task(env.infer(UNSURE))
    assert await backend.arrivals.get() == 1
    # The gate is still closed: this answer can only come from not waiting for it.
    assert (await env.infer(UNSURE)).json() == own_reading(UNSURE)
    backend.gate.set()
    assert (await held).json()["reader"] == "backend"
    assert await env.readings() == (2.0, 1.0, {"busy": 1.0})


async def test_metrics_export_every_failure_reason_from_the_start(env: Env) -> None:
    env.start(None)
    text = (await env.http.get("/metrics")).text
    for reason in FAILURE_REASONS:
        assert f'py_agent_structured_readings_failed_total{{reason="{reason}"}} 0.0' in text
    assert "py_agent_structured_readings_attempted_total 0.0" in text
    assert "py_agent_structured_readings_used_total 0.0" in text


# --- settings and wiring ------------------------------------------------------------------


def test_the_app_reads_through_the_answers_client(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html>")
    generative = GenerativeSettings("http://127.0.0.1:8001/v1", "smollm2", reading_below=0.6)
    app = create_app(Settings(dist_dir=dist, data_dir=tmp_path / "data", generative=generative))
    reader = app.state.structured
    assert isinstance(reader, StructuredReader)
    assert reader.client is app.state.answer.__self__  # one connection pool
    assert (reader.below, reader.model) == (0.6, "smollm2")
    assert create_app(Settings(dist_dir=dist, data_dir=tmp_path / "d2")).state.structured is None
