"""POST /api/v1/infer and POST /api/v1/installs against the real server model, in-process:
every status code, both kinds of token, micro-batching, the generative seam, the metrics.

Needs the models built (`python build.py models`; CI builds them before the tests): a test
that needs the server model fails, never skips, without it. No sleeps: rate limits run on a
fake clock, and batching is observed through the batcher's hooks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ROOT, FakeClock, sync_app

from server.generative import GenerativeClient
from server.inference import ServerModel, load_server_model
from server.settings import GenerativeSettings, Settings, SettingsError
from server.structured import StructuredReader

MODELS = ROOT / "models"
NOW = "2026-11-18T10:00:00+01:00"  # a Wednesday


@pytest.fixture(scope="module")
def server_model() -> ServerModel:
    """Loaded once for the module; every app gets it through its loader."""
    return asyncio.run(load_server_model(MODELS, 2))


def server_head_ref() -> str:
    return json.loads((MODELS / "manifest.json").read_text())["server_head"]


class Env:
    def __init__(self, tmp_path: Path, model: ServerModel | None) -> None:
        self.tmp_path, self.model = tmp_path, model
        self.clock = FakeClock()
        self.apps: list[tuple[httpx.AsyncClient, Any]] = []

    def app(self, name: str = "data", **settings: Any) -> tuple[httpx.AsyncClient, Any]:
        settings.setdefault("models_dir", MODELS)
        http, app = sync_app(self.tmp_path, name, self.clock, **settings)
        if self.model is not None:
            model = self.model

            async def loader(models: Path, threads: int) -> ServerModel:
                return model

            app.state.infer.loader = loader
        self.apps.append((http, app))
        return http, app

    async def close(self) -> None:
        for http, app in self.apps:
            await http.aclose()
            app.state.infer.close()
            await app.state.infer.installs.close()
            await app.state.sync.store.close()


@pytest.fixture
async def env(tmp_path, server_model) -> AsyncIterator[Env]:
    e = Env(tmp_path, server_model)
    yield e
    await e.close()


async def install_token(http: httpx.AsyncClient) -> str:
    response = await http.post("/api/v1/installs")
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def infer(
    http: httpx.AsyncClient, token: str | None, body: Any = None, **kwargs: Any
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if body is None and "content" not in kwargs:
        body = {"text": "remind me to call Mom tomorrow at 5pm", "now": NOW}
    return await http.post("/api/v1/infer", json=body, headers=headers, **kwargs)


# --- answers ---------------------------------------------------------------------------


async def test_an_install_token_gets_the_real_models_intent_and_slots(tmp_path):
    e = Env(tmp_path, None)  # the service's own loader: the real files, sha256-checked
    try:
        http, _ = e.app()
        token = await install_token(http)
        cases = {
            "remind me to call Mom tomorrow at 5pm": (
                "task.add",
                {
                    "title": "call Mom",
                    "due_date": "2026-11-19",
                    "due_time": "17:00",
                    "repeat": None,
                    "list": None,
                },
            ),
            "note that the wifi password is hunter2": (
                "note.add",
                {"text": "the wifi password is hunter2"},
            ),
            "mark call mom as done": ("task.complete", {"target": "call mom", "list": None}),
            "delete the dentist task": ("task.delete", {"target": "dentist", "list": None}),
            "sync now": ("sync.now", {}),
            "what's the capital of France?": ("out_of_scope", {}),
        }
        for text, (intent, slots) in cases.items():
            response = await infer(http, token, {"text": text, "now": NOW, "tz": "Europe/Paris"})
            assert response.status_code == 200, response.text
            assert response.json() == {
                "intent": intent,
                "confidence": pytest.approx(response.json()["confidence"]),
                "slots": slots,
                "answer": None,
                "model": server_head_ref(),
                "reader": "model",
            }
            assert response.json()["confidence"] > 0.8, text
    finally:
        await e.close()


async def test_a_paired_devices_sync_token_is_accepted(env):
    http, _ = env.app()
    space = (await http.post("/api/v1/spaces")).json()
    paired = await http.post(
        "/api/v1/devices", json={"pairing_code": space["pairing_code"], "name": "phone"}
    )
    assert paired.status_code == 201
    response = await infer(http, paired.json()["token"])
    assert response.status_code == 200
    assert response.json()["intent"] == "task.add"


async def test_install_tokens_survive_a_restart_and_are_stored_as_sha256_only(env):
    http, _ = env.app("shared")
    token = await install_token(http)
    again, _ = env.app("shared")
    assert (await infer(again, token)).status_code == 200
    stored = b"".join(p.read_bytes() for p in (env.tmp_path / "shared").glob("installs.db*"))
    assert token.encode() not in stored


async def test_batching_embeds_requests_that_queue_during_a_run_together(env, server_model):
    n = 6
    gate, runs = threading.Event(), []
    first_running, all_queued = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    async def gated(texts: Sequence[str]) -> Any:
        runs.append(len(texts))
        if len(runs) == 1:  # hold the first run until the others have queued behind it
            loop.call_soon_threadsafe(first_running.set)
            assert gate.wait(timeout=30), "the test never released the first batch"
        return await server_model.embed(texts)

    env.model = dataclasses.replace(server_model, embed=gated)
    http, app = env.app()
    token = await install_token(http)
    batcher = await app.state.infer.batcher()
    on_queue = batcher.on_queue

    def queued(depth: int) -> None:
        on_queue(depth)
        if depth == n - 1:
            all_queued.set()

    batcher.on_queue = queued
    texts = [
        "remind me to call Mom tomorrow at 5pm",
        "note that the wifi password is hunter2",
        "show my tasks",
        "sync now",
        "hello there",
        "what's the weather in Paris",
        "delete the dentist task",
    ][:n]
    first = asyncio.create_task(infer(http, token, {"text": texts[0], "now": NOW}))
    await first_running.wait()
    rest = [
        asyncio.create_task(infer(http, token, {"text": text, "now": NOW})) for text in texts[1:]
    ]
    await all_queued.wait()
    gate.set()
    answers = [r.json() for r in await asyncio.gather(first, *rest)]

    assert runs == [1, n - 1]  # n requests, two runs of the one session
    # Padded in a batch or alone, an utterance gets the same answer.
    alone = [(await infer(http, token, {"text": text, "now": NOW})).json() for text in texts]
    assert runs == [1, n - 1, *[1] * n]
    for batched, single in zip(answers, alone, strict=True):
        assert batched["intent"] == single["intent"]
        assert batched["confidence"] == pytest.approx(single["confidence"], abs=1e-4)
    metrics = (await http.get("/metrics")).text
    assert f'py_agent_infer_batch_size_count{{model="{server_head_ref()}"}} {2.0 + n}' in metrics


async def test_a_failing_batch_fails_each_of_its_requests_without_hanging(env, server_model):
    async def broken(texts: Sequence[str]) -> Any:
        raise RuntimeError("onnxruntime fell over")

    env.model = dataclasses.replace(server_model, embed=broken)
    http, _ = env.app()
    token = await install_token(http)
    response = await infer(http, token)
    assert response.status_code == 500
    assert "fell over" not in response.text
    assert response.headers["connection"] == "close"


# --- the generative seam ------------------------------------------------------------------


async def test_out_of_scope_gets_the_generative_answer_and_nothing_else_asks_for_one(env):
    http, app = env.app()
    asked: list[str] = []

    async def answer(text: str) -> str | None:
        asked.append(text)
        return "Paris."

    app.state.answer = answer
    token = await install_token(http)
    response = await infer(http, token, {"text": "what's the capital of France?", "now": NOW})
    assert response.json()["answer"] == "Paris."
    assert (await infer(http, token)).json()["answer"] is None  # task.add
    assert asked == ["what's the capital of France?"]


async def test_a_failing_generative_backend_leaves_answer_null(env):
    http, app = env.app()

    async def answer(text: str) -> str | None:
        raise ConnectionError("backend down")

    app.state.answer = answer
    token = await install_token(http)
    response = await infer(http, token, {"text": "what's the capital of France?", "now": NOW})
    assert response.status_code == 200
    assert response.json()["intent"] == "out_of_scope"
    assert response.json()["answer"] is None


async def test_a_structured_reading_answers_for_the_real_model_when_asked(env):
    """The wiring with the real model: READING_BELOW 1 asks for every request (the cases
    the model is unsure of are tests/test_server_structured.py's, on a fake model)."""
    slots = {"target": "buy milk", "title": "buy oat milk", "due_date": None, "due_time": None}
    slots |= {"time_only": False, "clear_due": False, "list": None, "to_main_list": False}
    slots |= {"repeat": None, "stop_repeat": False}
    content = json.dumps({"intent": "task.edit", "slots": slots, "confidence": 0.9})
    sent: list[Any] = []

    def backend(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        message = {"role": "assistant", "content": content}
        return httpx.Response(200, json={"choices": [{"message": message}]})

    http, app = env.app()
    client = GenerativeClient(
        GenerativeSettings("http://backend.test/v1", "tiny", reading_below=1.0),
        transport=httpx.MockTransport(backend),
    )
    app.state.structured = StructuredReader(client)
    try:
        text = "rename buy milk to buy oat milk"
        response = await infer(http, await install_token(http), {"text": text, "now": NOW})
    finally:
        await client.aclose()
    assert response.json() == {
        "intent": "task.edit",
        "confidence": 0.9,
        "slots": slots,
        "answer": None,
        "model": f"{server_head_ref()} + tiny",
        "reader": "backend",
    }
    assert json.loads(sent[0]["messages"][1]["content"])["utterance"] == text


# --- errors ----------------------------------------------------------------------------


async def test_requests_without_a_valid_token_are_401(env):
    http, _ = env.app()
    missing = await infer(http, None)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="py_agent"'
    assert "POST /api/v1/installs" in missing.json()["error"]
    basic = await http.post("/api/v1/infer", json={}, headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    assert 'error="invalid_request"' in basic.headers["WWW-Authenticate"]
    unknown = await infer(http, "not-a-token")
    assert unknown.status_code == 401
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"now": NOW}, "text", "'text' is required"),
        ({"text": 42, "now": NOW}, "text", "'text' must be a string"),
        ({"text": "  \n", "now": NOW}, "text", "'text' is empty"),
        ({"text": "a" * 2001, "now": NOW}, "text", "'text' is 2001 characters; the limit is 2000"),
        ({"text": "hi"}, "now", "'now' is required"),
        ({"text": "hi", "now": "2026-11-18T10:00:00"}, "now", "must carry its UTC offset"),
        ({"text": "hi", "now": "tomorrow"}, "now", "ISO 8601"),
        ({"text": "hi", "now": 1763456400}, "now", "ISO 8601"),
        # Valid ISO, but past the dates the agent reckons with: was a 500 (OverflowError).
        (
            {"text": "remind me to buy milk tomorrow", "now": "9999-12-31T23:59:59+14:00"},
            "now",
            "between the years 1900 and 9000",
        ),
        ({"text": "hi", "now": "0001-01-01T00:00:00-14:00"}, "now", "between the years"),
        ({"text": "hi", "now": NOW, "tz": "Paris; DROP"}, "tz", "'tz' must be null or a string"),
        ({"text": "hi", "now": NOW, "tz": 1}, "tz", "'tz' must be null or a string"),
        ({"text": "hi", "now": NOW, "locale": "english!"}, "locale", "'locale' must be null"),
        ({"text": "hi", "now": NOW, "mood": "happy"}, "mood", "unexpected field 'mood'"),
    ],
)
async def test_bad_fields_are_422_naming_the_field(env, body, field, message):
    http, _ = env.app()
    response = await infer(http, await install_token(http), body)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert message in response.json()["error"]


async def test_a_2000_character_text_is_fine_and_null_tz_and_locale_too(env):
    http, _ = env.app()
    body = {"text": "remind me " + "a" * 1990, "now": NOW, "tz": None, "locale": "en-GB"}
    assert (await infer(http, await install_token(http), body)).status_code == 200


async def test_malformed_empty_and_oversized_bodies(env):
    http, _ = env.app(infer_max_body_bytes=8192)
    token = await install_token(http)
    headers = {"Authorization": f"Bearer {token}"}
    not_json = await http.post("/api/v1/infer", content=b"{text", headers=headers)
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]
    empty = await http.post("/api/v1/infer", content=b"", headers=headers)
    assert empty.status_code == 400
    array = await infer(http, token, ["hi"])
    assert array.status_code == 422
    big = await infer(http, token, {"text": "a" * 9000, "now": NOW})
    assert big.status_code == 413
    assert "8192-byte limit" in big.json()["error"]


async def test_per_token_rate_limit_answers_429_with_retry_after(env):
    http, _ = env.app(infer_burst=2, infer_rate_per_s=0.5)
    token, other = await install_token(http), await install_token(http)
    assert [(await infer(http, token)).status_code for _ in range(2)] == [200, 200]
    limited = await infer(http, token)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert (await infer(http, other)).status_code == 200  # per token, not global
    env.clock.advance(2.0)
    assert (await infer(http, token)).status_code == 200


async def test_installs_are_rate_limited_per_client_address(env):
    http, _ = env.app(installs_per_min=2)
    assert [(await http.post("/api/v1/installs")).status_code for _ in range(2)] == [201, 201]
    limited = await http.post("/api/v1/installs")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "30"
    env.clock.advance(30.0)
    assert (await http.post("/api/v1/installs")).status_code == 201


async def test_no_built_model_is_503_saying_how_to_build_it(tmp_path):
    e = Env(tmp_path, None)
    try:
        http, _ = e.app(models_dir=tmp_path / "nothing")
        token = await install_token(http)
        response = await infer(http, token)
        assert response.status_code == 503
        assert "python build.py models" in response.json()["error"]
        assert response.headers["Retry-After"] == "10"
        # Answered from memory until the retry time, then loaded again.
        assert (await infer(http, token)).status_code == 503
    finally:
        await e.close()


async def test_a_tampered_server_head_is_503_naming_the_file(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    pointer = json.loads((MODELS / "manifest.json").read_text())
    (models / "manifest.json").write_text(json.dumps(pointer))
    (models / "all-minilm-l6-v2").symlink_to(MODELS / "all-minilm-l6-v2")
    head = models / pointer["server_head"]
    shutil.copytree(MODELS / pointer["server_head"], head)
    (head / "intent_head.npz").write_bytes(b"tampered")
    e = Env(tmp_path, None)
    try:
        http, _ = e.app(models_dir=models)
        response = await infer(http, await install_token(http))
        assert response.status_code == 503
        assert "intent_head.npz" in response.json()["error"]
    finally:
        await e.close()


def test_bad_infer_settings_are_refused_at_start(tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html>")
    for bad in (
        {"infer_threads": 0},
        {"infer_max_batch": 0},
        {"infer_rate_per_s": 0.0},
        {"installs_per_min": 0},
        {"infer_max_body_bytes": 100},
    ):
        with pytest.raises(SettingsError, match=next(iter(bad))):
            Settings(dist_dir=dist, data_dir=tmp_path / "data", **bad)


# --- metrics ---------------------------------------------------------------------------


async def test_metrics_count_requests_by_model_and_outcome_and_time_them(env):
    http, _ = env.app(infer_burst=3)
    token = await install_token(http)
    assert (await infer(http, None)).status_code == 401  # before the model is loaded
    assert (await infer(http, token)).status_code == 200
    assert (await infer(http, token, {"text": ""})).status_code == 422
    assert (await infer(http, token)).status_code == 200
    assert (await infer(http, token)).status_code == 429

    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    model = server_head_ref()
    lines = set(response.text.splitlines())
    assert {
        'py_agent_infer_requests_total{model="none",outcome="unauthorized"} 1.0',
        f'py_agent_infer_requests_total{{model="{model}",outcome="ok"}} 2.0',
        f'py_agent_infer_requests_total{{model="{model}",outcome="invalid"}} 1.0',
        f'py_agent_infer_requests_total{{model="{model}",outcome="rate_limited"}} 1.0',
        f'py_agent_infer_latency_seconds_count{{model="{model}"}} 2.0',
        "py_agent_installs_created_total 1.0",
    } <= lines


def test_a_long_text_runs_apart_from_short_ones_so_they_are_not_padded_to_it():
    from server.inference import similar_lengths

    texts = ["hi", "a" * 1000, "sync now", "remind me to call Mom tomorrow at 5pm", "b" * 900]
    runs = similar_lengths([(text, i) for i, text in enumerate(texts)])
    assert [[i for _, i in run] for run in runs] == [[0, 2], [3], [4, 1]]
