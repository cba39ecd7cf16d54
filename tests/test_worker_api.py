"""The worker API as the page reaches it: calls through the one dispatcher, and what the
worker is told after each (when automatic work is next due, what changed) -- second
opinions' timing included. The agent runs on stand-in models; clocks are fakes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from support import AGENT_NOW, FakeClock, KeywordHead, WordsEncoder

from py_agent import worker_api
from py_agent.agent import Agent
from py_agent.device_sync import DeviceSync
from py_agent.platform import HttpResponse, TransportError
from py_agent.router import Router
from py_agent.second_opinion import RETRY_BASE_S, Schedule
from py_agent.state import open_state
from py_agent.worker_api import Session

T0 = 1_800_000_000.0
NOW = AGENT_NOW.isoformat()


class Server:
    """The server's model, answering from a list: a reading, or offline."""

    def __init__(self) -> None:
        self.answers: list[str | None] = []  # an intent, or None: unreachable
        self.asked = 0

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> HttpResponse:
        self.asked += 1
        intent = self.answers.pop(0) if self.answers else None
        if intent is None:
            raise TransportError(f"{method} {url}: connection refused")
        reading = {"intent": intent, "confidence": 0.97, "slots": {}, "answer": None}
        return HttpResponse(200, {**reading, "model": "server-fp32"})


class Token:
    async def token(self) -> str:
        return "tok"

    async def forget(self) -> None: ...


class Worker:
    """The worker's side of the calls: the envelope of each, the timer's next_at."""

    def __init__(self, session: Session, server: Server, clock: FakeClock) -> None:
        self.session, self.server, self.clock = session, server, clock

    async def call(self, name: str, *args: object) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(await worker_api.api.dispatch(name, json.dumps(args)))
        return reply


@pytest.fixture
async def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Worker]:
    encoder, head = WordsEncoder(), KeywordHead()
    real_embed = encoder.embed

    async def remembering(text: str) -> Any:
        vector = await real_embed(text)
        head.text_of[vector.tobytes()] = text
        return vector

    encoder.embed = remembering  # type: ignore[method-assign]
    clock = FakeClock(T0)
    state = await open_state(str(tmp_path / "agent.db"), model="words/1")
    agent = Agent(state, encoder, head)  # type: ignore[arg-type]
    server = Server()
    agent.router = Router(server, Token())
    # KeywordHead says 0.99: always unsure; the user said the server may be asked.
    await agent.set_settings({"threshold": 0.995, "consent": "always"})
    sync = DeviceSync(state, server, clock=clock, random=lambda: 0.5)
    session = Session(agent, sync, clock=clock, random=lambda: 0.5)
    monkeypatch.setattr(worker_api, "_session", session)
    yield Worker(session, server, clock)
    await state.store.close()


async def test_a_turn_and_what_the_worker_is_told_after_it(worker: Worker) -> None:
    worker.server.answers = ["task.add"]
    reply = await worker.call("ask", "remind me to water the plants", NOW)
    assert reply["ok"] is True
    assert reply["value"]["text"].startswith("Added “water the plants”")
    after = reply["after"]
    # An unpaired device: nothing automatic is due, and the page hears the status once.
    assert after["next_at"] is None
    assert after["sync"]["state"] == "local" and after["sync"]["pending"] > 0
    again = await worker.call("syncStatus")
    assert again["value"] == after["sync"] and "sync" not in again["after"]  # no news

    failed = await worker.call("ask", "hi", "yesterday")
    assert failed["error"] == {
        "type": "ArgumentError",
        "message": "now must be the device's local time in ISO 8601 with its UTC offset, "
        "like 2026-11-18T10:00:00+01:00, got 'yesterday'",
        "field": "now",
    }
    # A clock past what the agent reckons with is refused, not crashed on (issue 15, row 1).
    far = await worker.call("ask", "remind me to buy milk tomorrow", "9999-12-31T23:59:59+14:00")
    assert far["error"]["field"] == "now"
    assert "between the years 1900 and 9000" in far["error"]["message"]
    assert (await worker.call("ask", 42, NOW))["error"]["field"] == "text"


async def test_the_page_removes_a_note_and_restores_it_with_undo(worker: Worker) -> None:
    worker.server.answers = ["note.add"]
    await worker.call("ask", "note that the gate code is 4321", NOW)
    (note,) = worker.session.agent.state.notes.values()
    assert (await worker.call("removeRecord", "notes", note["id"]))["value"] == {
        "removed": note["id"]
    }
    restored = await worker.call("restoreRecord", "notes", note["id"])
    assert restored["value"] == note and restored["after"]["sync"]["pending"] > 0
    again = await worker.call("restoreRecord", "notes", note["id"])
    assert again["error"] == {
        "type": "AgentError",
        "message": "“the gate code is 4321” isn't deleted, so there's nothing to restore.",
    }


async def test_a_queued_turn_is_asked_again_when_due_and_its_opinion_reported(
    worker: Worker,
) -> None:
    reply = await worker.call("ask", "remind me to water the plants", NOW)  # server offline
    assert reply["value"]["queued"] is True
    # Not again at once: the server was just unreachable.
    assert reply["after"]["next_at"] == T0 + RETRY_BASE_S
    assert (await worker.call("tick"))["after"]["next_at"] == T0 + RETRY_BASE_S  # not due
    assert worker.server.asked == 1

    worker.clock.now = T0 + RETRY_BASE_S
    worker.server.answers = ["note.add"]  # the server reads it differently
    ticked = await worker.call("tick")
    assert worker.server.asked == 2
    assert ticked["after"]["chat"] == 1  # the worker tells the chat to re-render
    assert ticked["after"]["next_at"] is None  # the queue is empty
    assert "chat" not in (await worker.call("syncStatus"))["after"]  # told once
    history = (await worker.call("history"))["value"]
    assert history[-1]["text"].startswith("Second opinion on “remind me to water the plants”")


async def test_a_failed_look_backs_off_and_online_lifts_the_wait(worker: Worker) -> None:
    for text in ("remind me to call mum", "remind me to buy milk"):
        await worker.call("ask", text, NOW)
    worker.clock.now = T0 + RETRY_BASE_S
    ticked = await worker.call("tick")  # still offline: one request tried, then it stops
    assert worker.server.asked == 3
    queue = worker.session.agent.state.queue
    assert sorted(int(item["attempts"]) for item in queue.values()) == [0, 1]
    # The untried one waits too, rather than being sent to an unreachable server at once.
    assert ticked["after"]["next_at"] == worker.clock() + RETRY_BASE_S

    online = await worker.call("online")
    assert online["after"]["next_at"] == 0.0  # the untried request is due at once
    worker.server.answers = ["task.add"]
    await worker.call("tick")
    assert worker.server.asked == 4
    assert [int(item["attempts"]) for item in queue.values()] == [1]  # its own backoff stands
    next_at = (await worker.call("syncStatus"))["after"]["next_at"]
    assert next_at == T0 + RETRY_BASE_S + 0.5 * 10  # 0.5 of the 10 s ceiling


async def test_a_server_that_agrees_is_reported_too(worker: Worker) -> None:
    reply = await worker.call("ask", "remind me to water the plants", NOW)  # server offline
    worker.clock.now = T0 + RETRY_BASE_S
    worker.server.answers = ["task.add"]  # the device's own reading: no new message
    ticked = await worker.call("tick")
    # "✓ server agrees" changes a message the page shows, and the stats: re-render.
    assert ticked["after"]["chat"] == 1
    original = (await worker.call("history"))["value"][-1]
    assert original["id"] == reply["value"]["message_id"]
    assert original["confirmed_by"] == "server-fp32"


async def test_without_consent_the_queue_is_not_asked_and_nothing_is_due(
    worker: Worker,
) -> None:
    await worker.call("ask", "remind me to water the plants", NOW)  # queued with consent
    changed = await worker.call("setSettings", {"consent": "unasked"})
    assert changed["value"]["cloud_help"] is False and changed["after"]["next_at"] is None
    worker.clock.now = T0 + RETRY_BASE_S
    await worker.call("online")
    assert (await worker.call("tick"))["after"]["next_at"] is None
    assert worker.server.asked == 1
    question = await worker.call("ask", "remind me to buy milk", NOW)
    assert question["value"]["asks_consent"] is True and worker.server.asked == 1
    worker.server.answers = ["task.add", "task.add"]
    answered = await worker.call("answerConsent", question["value"]["message_id"], "always", NOW)
    assert answered["value"]["source"] == "cloud" and worker.server.asked == 2
    assert answered["after"]["next_at"] == 0.0  # consent given: the old request is due
    await worker.call("tick")
    assert worker.server.asked == 3 and worker.session.agent.state.queue == {}


def test_second_opinions_wait_for_the_earliest_request_and_not_while_a_look_runs() -> None:
    schedule = Schedule()
    queue: dict[str, Any] = {"a": {"next_at": 50.0, "message_id": "1"}}
    assert schedule.next_at({}) is None
    assert schedule.next_at(queue) == 50.0
    schedule.unreachable(100.0)
    assert schedule.next_at(queue) == 100.0 + RETRY_BASE_S
    schedule.running = True
    assert schedule.next_at(queue) is None
    schedule.running = False
    schedule.online()
    assert schedule.next_at(queue) == 50.0
    schedule.looked(queue, 40.0)  # nothing was left due: no wait added
    assert schedule.next_at(queue) == 50.0
