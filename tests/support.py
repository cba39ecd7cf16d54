"""Helpers shared by several test modules."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import numpy as np

from py_agent.agent import Agent
from py_agent.intents import INTENTS, IntentPrediction
from py_agent.platform.interfaces import HttpResponse, TransportError
from py_agent.platform.native_http import json_or_text
from py_agent.state import open_state

if TYPE_CHECKING:
    from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeWall:
    """A wall clock in milliseconds that the test sets by hand (for HybridClock)."""

    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class FakeClock:
    """A clock in seconds that only moves when the test advances it (for the server)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sync_app(
    tmp_path: Path, name: str, clock: FakeClock, **settings: Any
) -> tuple[httpx.AsyncClient, Any]:
    """The server app in-process on ``tmp_path/name``, its clocks faked, and an httpx
    client to it. Close both: ``await http.aclose(); await app.state.sync.store.close()``."""
    from server.app import create_app
    from server.settings import Settings

    settings.setdefault("sync_burst", 10_000)  # the fake clock never refills the bucket
    dist = tmp_path / "dist"
    dist.mkdir(exist_ok=True)
    (dist / "index.html").write_text("<!doctype html><title>py_agent</title>")
    app = create_app(
        Settings(dist_dir=dist, data_dir=tmp_path / name, **settings),
        clock=clock,
        wall_clock=clock,
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return http, app


class AppTransport:
    """The Transport over the server app in-process, with switches for failures."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.offline = False
        self.time_out = False  # requests get no answer before their deadline
        self.lose = 0  # the next n responses are lost after the server handled the request
        self.faults: list[tuple[int, dict[str, str]]] = []  # answered instead of the server
        self.gate: asyncio.Event | None = None
        self.waiting = 0
        self.arrived = asyncio.Event()  # set when a request waits at the gate
        self.sent: list[Any] = []  # bodies the server received
        self.timeouts: list[float] = []

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> HttpResponse:
        self.timeouts.append(timeout_s)
        if self.gate is not None:
            self.waiting += 1
            self.arrived.set()
            await self.gate.wait()
        if self.offline:
            raise TransportError(f"{method} {url}: connection refused")
        if self.time_out:
            raise TransportError(f"{method} {url}: no answer in {timeout_s} s", timed_out=True)
        if self.faults:
            status, fault_headers = self.faults.pop(0)
            return HttpResponse(status, {"error": "injected fault"}, fault_headers)
        response = await self.http.request(method, url, json=body, headers=dict(headers or {}))
        self.sent.append(body)
        if self.lose:
            self.lose -= 1
            raise TransportError(f"{method} {url}: connection reset")
        # httpx iterates header names in lower case, as the real transports report them.
        return HttpResponse(
            response.status_code, json_or_text(response.text), dict(response.headers)
        )


# -- a stand-in for the model, for agent and skill tests ---------------------------------

AGENT_NOW = datetime(2026, 11, 18, 10, 0, tzinfo=timezone(timedelta(hours=1)))  # a Wednesday
WORDS_DIM = 256
STOP_WORDS = {"the", "a", "i", "my", "to", "as", "me", "task", "is", "that", "what", "s", "of"}
# Words of the same meaning share a dimension, so "paid the rent" finds "pay the rent".
SAME_MEANING = {"paid": "pay", "called": "call", "filed": "file", "finished": "finish"}


class WordsEncoder:
    """Texts sharing words get similar unit vectors: the cosine of two texts is that of
    their bags of words (stop words dropped, a plural "s" ignored)."""

    dimension = WORDS_DIM
    manifest = SimpleNamespace(name="words", version="1")

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, text: str) -> np.ndarray:
        self.calls += 1
        vector = np.zeros(WORDS_DIM, dtype=np.float32)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if word not in STOP_WORDS:
                word = SAME_MEANING.get(word, word).rstrip("s")
                vector[zlib.crc32(word.encode()) % WORDS_DIM] += 1
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector


class KeywordHead:
    """Reads the intent off keywords of the utterance (found by its embedding), at 0.99
    confidence; ``unsure`` lists utterances it reads at 0.5 instead."""

    labels = INTENTS
    RULES: ClassVar[list[tuple[str, str]]] = [
        ("undo", r"^(undo|oops)\b"),
        ("history", r"^(what did i|when did i|have i)\b"),
        ("note.delete", r"^(forget|delete|remove) the (\w+ )?note\b|^forget the note\b"),
        ("note.list", r"\bnotes\b"),
        ("task.list", r"^(show|list|tasks|overdue|what'?s on)\b"),
        (
            "task.edit",
            r"^(rename|move|push|change|reschedule|call it|make it|stop repeating)\b"
            r"|\b(no deadline|is now)\b",
        ),
        ("task.complete", r"\b(paid|done|finished|mark|check off)\b"),
        ("task.delete", r"\b(delete|remove)\b"),
        ("note.add", r"\b(note that|remember that)\b"),
        ("note.search", r"\?$"),
        ("task.add", r"\b(remind|add)\b"),
        ("help", r"\bhelp\b"),
        ("greeting", r"\b(hi|thanks)\b"),
        ("sync.now", r"\bsync\b"),
    ]

    def __init__(self) -> None:
        self.text_of: dict[bytes, str] = {}
        self.unsure: set[str] = set()

    def predict(self, embedding: np.ndarray) -> IntentPrediction:
        text = self.text_of[embedding.tobytes()]
        confidence = 0.5 if text in self.unsure else 0.99
        for intent, pattern in self.RULES:
            if re.search(pattern, text.lower()):
                return IntentPrediction(intent, confidence, {intent: confidence})
        return IntentPrediction("out_of_scope", confidence, {"out_of_scope": confidence})


async def words_agent(path: Path) -> Agent:
    """An agent on a new store at ``path``, with `WordsEncoder` and `KeywordHead`."""
    encoder, head = WordsEncoder(), KeywordHead()
    real_embed = encoder.embed

    async def remembering(text: str) -> np.ndarray:
        vector = await real_embed(text)
        head.text_of[vector.tobytes()] = text
        return vector

    encoder.embed = remembering  # type: ignore[method-assign]
    state = await open_state(str(path), model="words/1")
    return Agent(state, encoder, head)  # type: ignore[arg-type]


async def say(agent: Agent, text: str, now: datetime = AGENT_NOW) -> str:
    return (await agent.handle(text, now)).text


def built_head_manifest(role: str) -> dict[str, Any]:
    """The manifest of the head models/manifest.json names for ``role`` ("intent_head",
    "server_head"); fails (never skips) when models/ has none, or one trained on other
    data/intents files: `make test` builds the models first."""
    import pytest

    from tools.build.intent_data import data_sha256, read_splits

    pointer_path = ROOT / "models" / "manifest.json"
    pointer = json.loads(pointer_path.read_text()) if pointer_path.is_file() else {}
    if role not in pointer:
        pytest.fail(f"no {role} in models/manifest.json: run `python build.py models`")
    manifest: dict[str, Any] = json.loads(
        (ROOT / "models" / pointer[role] / "manifest.json").read_text()
    )
    data = data_sha256(read_splits(ROOT / "data" / "intents"))
    if manifest["training"]["data_sha256"] != data:
        pytest.fail(
            f"models/ holds a {role} trained on other data/intents files: "
            "run `python build.py models`"
        )
    return manifest


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """The app under uvicorn as `py-agent serve` runs it, until the block ends; its URL. The
    socket listens before uvicorn starts, so a request made meanwhile waits in its backlog."""
    import uvicorn

    from server.app import create_app
    from server.connections import uvicorn_config

    server = uvicorn.Server(uvicorn_config(create_app(settings), settings, log_level="warning"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            await task
