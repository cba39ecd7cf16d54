"""The cloud cascade: each branch of the router, the install token, the user's consent,
and the agent's tentative answers, queue, second opinions and settings -- with a scripted
transport."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import KeywordHead, WordsEncoder

from py_agent.agent import Agent, AgentError
from py_agent.device_sync import DeviceSync, ServerIdentity
from py_agent.intents import IntentPrediction
from py_agent.platform import HttpResponse, Put, TransportError
from py_agent.router import (
    CloudUnavailable,
    Router,
    RouterSettings,
    settings_after,
    stored_consent,
)
from py_agent.state import open_state

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
UNSURE = IntentPrediction("task.add", 0.4, {"task.add": 0.4})
SURE = IntentPrediction("task.add", 0.9, {"task.add": 0.9})
ALWAYS = RouterSettings(consent="always")


def answer(intent: str = "task.add", model: str = "server-fp32", **extra: Any) -> HttpResponse:
    body = {"intent": intent, "confidence": 0.97, "slots": {}, "answer": None, "model": model}
    return HttpResponse(200, {**body, **extra})


class Script:
    """A transport answering from a list: an HttpResponse, or an exception to raise."""

    def __init__(self, *answers: HttpResponse | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, Any, dict[str, str], float]] = []

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> HttpResponse:
        self.requests.append((method, url, body, dict(headers or {}), timeout_s))
        if not self.answers:
            raise AssertionError(f"unexpected request {method} {url}")
        next_answer = self.answers.pop(0)
        if isinstance(next_answer, Exception):
            raise next_answer
        return next_answer


class Token:
    def __init__(self) -> None:
        self.forgotten = 0

    async def token(self) -> str:
        return "tok"

    async def forget(self) -> None:
        self.forgotten += 1


async def test_only_an_unsure_reading_with_consent_leaves_the_device() -> None:
    script = Script()
    router = Router(script, Token())
    route = await router.route("add milk", NOW, SURE, RouterSettings(threshold=0.6))
    assert (route.source, route.intent, route.reason) == ("local", "task.add", "confident")
    never = RouterSettings(threshold=0.6, consent="never")
    route = await router.route("add milk", NOW, UNSURE, never)
    assert (route.source, route.queued, route.reason) == ("local", False, "server help is off")
    assert not route.needs_consent and not route.asked
    route = await router.route("add milk", NOW, UNSURE, RouterSettings(threshold=0.6))
    assert (route.needs_consent, route.reason, route.asked) == (True, "needs consent", False)
    assert script.requests == []


def test_consent_is_unasked_until_the_user_answers_and_not_now_keeps_nothing() -> None:
    assert RouterSettings().consent == "unasked" and RouterSettings().cloud_help is False
    assert RouterSettings(consent="always").cloud_help is True
    with pytest.raises(ValueError, match=r"^Choose when the server may be asked"):
        RouterSettings(consent="maybe")  # type: ignore[arg-type]
    unasked = RouterSettings(threshold=0.5)
    for choice, kept, this_request in [
        ("always", "always", "always"),
        ("never", "never", "never"),
        ("not_now", "unasked", "never"),
    ]:
        after, routed = settings_after(unasked, choice)  # type: ignore[arg-type]
        assert (after.consent, routed.consent, after.threshold) == (kept, this_request, 0.5)


def test_settings_stored_before_consent_ask_again_unless_help_was_switched_off() -> None:
    # The switch defaulted to on, so on was never an answer; off was.
    assert stored_consent({"threshold": 0.9, "cloud_help": True}) == "unasked"
    assert stored_consent({"cloud_help": False}) == "never"
    assert stored_consent({}) == "unasked"
    assert stored_consent({"cloud_help": False, "consent": "always"}) == "always"
    assert stored_consent({"consent": "sometimes"}) == "unasked"


async def test_an_unsure_reading_asks_the_server_with_the_utterance_only() -> None:
    script = Script(answer("note.add"))
    router = Router(script, Token(), server_url="https://example.test/")
    router.tz, router.locale = "Europe/Paris", "fr-FR"
    settings = RouterSettings(consent="always", deadline_s=1.5)
    route = await router.route("jot: gate 4321", NOW, UNSURE, settings)
    assert (route.source, route.intent, route.confidence) == ("cloud", "note.add", 0.97)
    assert route.cloud is not None and route.cloud.model == "server-fp32"
    ((method, url, body, headers, timeout),) = script.requests
    assert (method, url, timeout) == ("POST", "https://example.test/api/v1/infer", 1.5)
    assert body == {
        "text": "jot: gate 4321",
        "now": NOW.isoformat(),
        "tz": "Europe/Paris",
        "locale": "fr-FR",
    }
    assert headers == {"Authorization": "Bearer tok"}


@pytest.mark.parametrize(
    ("failure", "reason", "queued"),
    [
        (TransportError("deadline", timed_out=True), "timeout", True),
        (TransportError("connection refused"), "offline", True),
        (HttpResponse(503, {"error": "busy"}), "server error 503", True),
        (HttpResponse(429, {"error": "slow down"}), "server error 429", True),
        (HttpResponse(422, {"error": "text too long"}), "refused the request (422", False),
        (answer("make.coffee"), "unknown intent", False),
        (answer(confidence="high"), "'confidence' must be a number", False),
        (HttpResponse(200, ["not", "an", "object"]), "not a JSON object", False),
    ],
)
async def test_when_the_server_cannot_answer_the_local_guess_is_tentative(
    failure: HttpResponse | Exception, reason: str, queued: bool
) -> None:
    router = Router(Script(failure), Token())
    route = await router.route("add milk", NOW, UNSURE, ALWAYS)
    assert (route.source, route.intent, route.queued) == ("tentative", "task.add", queued)
    assert reason in route.reason


async def test_an_unknown_token_is_forgotten_so_the_next_ask_gets_a_new_one() -> None:
    token = Token()
    router = Router(Script(HttpResponse(401, {"error": "unknown token"})), token)
    route = await router.route("add milk", NOW, UNSURE, ALWAYS)
    assert (route.source, route.queued, token.forgotten) == ("tentative", True, 1)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="threshold"):
        RouterSettings(threshold=1.5)
    with pytest.raises(ValueError, match="deadline_s"):
        RouterSettings(deadline_s=0)


async def test_an_unpaired_device_registers_an_install_token_once(tmp_path: Path) -> None:
    state = await open_state(str(tmp_path / "a.db"), "m")
    created = HttpResponse(201, {"install_id": "i1", "token": "install-token"})
    script = Script(TransportError("offline"), created)
    identity = ServerIdentity(state, DeviceSync(state, script))
    with pytest.raises(CloudUnavailable, match="offline"):
        await identity.token()
    assert await identity.token() == "install-token"
    assert await identity.token() == "install-token"  # stored: asked once
    assert [r[1] for r in script.requests] == ["/api/v1/installs"] * 2
    reopened = await open_state(str(tmp_path / "a.db"), "m")
    assert reopened.meta["install"]["token"] == "install-token"
    await identity.forget()
    assert "install" not in state.meta


# -- the agent with the cascade -------------------------------------------------------------


@pytest.fixture
async def cascade(tmp_path: Path) -> tuple[Agent, Script]:
    encoder, head = WordsEncoder(), KeywordHead()
    real_embed = encoder.embed

    async def remembering(text: str) -> Any:
        vector = await real_embed(text)
        head.text_of[vector.tobytes()] = text
        return vector

    encoder.embed = remembering  # type: ignore[method-assign]
    state = await open_state(str(tmp_path / "agent.db"), model="words/1")
    agent = Agent(state, encoder, head)  # type: ignore[arg-type]
    script = Script()
    agent.router = Router(script, Token())
    # KeywordHead says 0.99: always unsure; the user said the server may be asked.
    await agent.set_settings({"threshold": 0.995, "consent": "always"})
    return agent, script


async def test_offline_turns_are_tentative_then_confirmed_when_the_server_agrees(
    cascade: tuple[Agent, Script],
) -> None:
    agent, script = cascade
    script.answers = [TransportError("offline")]
    reply = await agent.handle("remind me to water the plants", NOW)
    assert (reply.source, reply.queued) == ("tentative", True)
    assert "I'll ask it again" in reply.text and "Added “water the plants”" in reply.text
    assert len(agent.state.queue) == 1 and len(agent.state.tasks) == 1

    script.answers = [TransportError("still offline")]
    assert await agent.drain(NOW.timestamp(), lambda: 0.5) == 0
    (item,) = agent.state.queue.values()
    assert item["attempts"] == 1 and item["next_at"] == NOW.timestamp() + 0.5 * 10
    assert await agent.drain(NOW.timestamp(), lambda: 0.5) == 0  # not due yet: not asked
    assert len(script.requests) == 2

    script.answers = [answer("task.add")]
    assert await agent.drain(NOW.timestamp() + 10, lambda: 0.5) == 1  # settled: the page hears
    assert agent.state.queue == {}
    original = await agent.state.store.get("messages", str(reply.message_id))
    assert original is not None and original["confirmed_by"] == "server-fp32"
    stats = agent.stats()
    assert (stats["turns"], stats["fallback_rate"], stats["tentative"]) == (1, 1.0, 1)
    assert (stats["cloud_answered"], stats["agreement"], stats["queue"]) == (1, 1.0, 0)
    assert len(agent.state.tasks) == 1  # nothing applied twice


async def test_a_different_reading_is_offered_and_applied_only_when_asked(
    cascade: tuple[Agent, Script],
) -> None:
    agent, script = cascade
    script.answers = [TransportError("offline"), TransportError("offline")]
    await agent.handle("remind me to buy milk", NOW)
    await agent.handle("show my notes", NOW)
    script.answers = [answer("note.add"), answer("help")]
    assert await agent.drain(NOW.timestamp(), lambda: 0.5) == 2
    history = await agent.state.history()
    offer, read_only = history[-2], history[-1]
    assert offer["proposal"]["intent"] == "note.add" and offer["refines"] == history[1]["id"]
    assert "Apply that?" in offer["text"]
    assert read_only["text"].startswith("Second opinion on “show my notes” (a request for help)")
    assert agent.state.notes == {}  # offered, not applied

    applied = await agent.apply(offer["id"], NOW)
    assert applied.text.startswith("Noted:") and len(agent.state.notes) == 1
    with pytest.raises(AgentError, match="already applied"):
        await agent.apply(offer["id"], NOW)
    with pytest.raises(AgentError, match="proposes nothing"):
        await agent.apply(read_only["id"], NOW)


async def test_an_answer_from_the_server_is_marked_and_out_of_scope_gets_its_text(
    cascade: tuple[Agent, Script],
) -> None:
    agent, script = cascade
    script.answers = [answer("out_of_scope", answer="Paris is the capital of France.")]
    reply = await agent.handle("what's the capital of france", NOW)
    assert (reply.source, reply.model, reply.text) == (
        "cloud",
        "server-fp32",
        "Paris is the capital of France.\n(Answered by the server's language model: "
        "it can be wrong.)",
    )
    stored = (await agent.state.history())[-1]
    assert (stored["source"], stored["local_intent"]) == ("cloud", "out_of_scope")


async def test_settings_are_validated_and_kept(cascade: tuple[Agent, Script]) -> None:
    agent, script = cascade
    for changes, message in [
        ({"threshold": 5}, "The threshold is a number from 0 to 1 (you entered 5)."),
        ({"threshold": "high"}, "The threshold is a number from 0 to 1 (you entered high)."),
        ({"threshold": None}, "The threshold is a number from 0 to 1."),
        ({"cloud_help": "yes"}, "Server help is either on or off."),
        (
            {"consent": "sometimes"},
            "Choose when the server may be asked: “Ask me first”, “Always” or “Never”.",
        ),
        ({"colour": "red"}, "There's no setting called “colour”."),
        ({}, "There's no setting to change."),
    ]:
        with pytest.raises(AgentError) as refused:
            await agent.set_settings(changes)
        assert str(refused.value) == message
    await agent.set_settings({"cloud_help": False})  # the older switch: off is "never"
    assert agent.settings.consent == "never"
    reply = await agent.handle("remind me to buy milk", NOW)
    # Below the threshold, and no server reading: acted on, and marked as a guess.
    assert (reply.source, script.requests) == ("tentative", [])
    assert reply.text.endswith("Say “undo” if that's wrong.)")
    stored = await agent.state.store.get("meta", "settings")
    assert stored == {"threshold": 0.995, "cloud_help": False, "consent": "never"}
    await agent.set_settings({"cloud_help": True})
    assert agent.settings.consent == "always"


# -- consent --------------------------------------------------------------------------------


async def test_settings_stored_before_consent_are_stored_again_with_it(tmp_path: Path) -> None:
    state = await open_state(str(tmp_path / "old.db"), model="words/1")
    await state.save([Put("meta", "settings", {"threshold": 0.8, "cloud_help": True})])
    agent = Agent(state, WordsEncoder(), KeywordHead())  # type: ignore[arg-type]
    await agent.prepare()
    stored = await state.store.get("meta", "settings")
    assert stored == {"threshold": 0.8, "cloud_help": False, "consent": "unasked"}


async def test_before_consent_an_unsure_request_is_a_question_and_nothing_is_sent(
    cascade: tuple[Agent, Script],
) -> None:
    agent, script = cascade
    await agent.set_settings({"consent": "unasked"})
    reply = await agent.handle("remind me to water the plants", NOW)
    assert reply.asks_consent and reply.changed == []
    assert reply.text == "I'm not sure what you mean. Ask the server? Only these words are sent."
    assert script.requests == [] and agent.state.tasks == {}
    question = (await agent.state.history())[-1]
    assert question["consent_question"] == {
        "text": "remind me to water the plants",
        "now": NOW.isoformat(),
    }
    assert agent.stats()["turns"] == 0  # counted once answered
    again = await agent.handle("help", NOW)  # unanswered is not "never": every time
    assert again.asks_consent and script.requests == []


async def test_not_now_carries_out_the_guess_and_the_next_request_asks_again(
    cascade: tuple[Agent, Script],
) -> None:
    agent, script = cascade
    await agent.set_settings({"consent": "unasked"})
    question = await agent.handle("remind me to water the plants", NOW)
    reply = await agent.answer_consent(question.message_id, "not_now", NOW)
    assert (reply.source, reply.asks_consent, script.requests) == ("tentative", False, [])
    assert reply.text.startswith("Added “water the plants”") and "A guess" in reply.text
    assert agent.settings.consent == "unasked"
    stored = await agent.state.store.get("messages", str(question.message_id))
    assert stored is not None and stored["consent_answer"] == "not_now"
    with pytest.raises(AgentError, match="already answered"):
        await agent.answer_consent(question.message_id, "always", NOW)
    assert (await agent.handle("remind me to buy milk", NOW)).asks_consent
    stats = agent.stats()
    assert (stats["turns"], stats["fallback_rate"]) == (1, 0.0)  # nothing was sent


async def test_never_is_kept_drops_the_queue_and_nothing_is_sent_again(
    cascade: tuple[Agent, Script],
) -> None:
    agent, script = cascade
    script.answers = [TransportError("offline")]
    await agent.handle("remind me to buy stamps", NOW)  # queued while consent was given
    await agent.set_settings({"consent": "unasked"})
    assert await agent.drain(NOW.timestamp(), lambda: 0.5) == 0  # no consent: not sent
    assert agent.queue_to_ask() == {} and len(script.requests) == 1
    question = await agent.handle("remind me to water the plants", NOW)
    reply = await agent.answer_consent(question.message_id, "never", NOW)
    assert reply.source == "tentative" and "Added “water the plants”" in reply.text
    assert (agent.settings.consent, agent.state.queue) == ("never", {})
    later = await agent.handle("remind me to buy milk", NOW)
    assert not later.asks_consent and later.source == "tentative"
    assert len(script.requests) == 1


async def test_always_sends_that_very_request_and_later_ones(
    cascade: tuple[Agent, Script],
) -> None:
    agent, script = cascade
    await agent.set_settings({"consent": "unasked"})
    question = await agent.handle("jot down the gate code 4321", NOW)
    script.answers = [answer("note.add"), answer("task.add")]
    with pytest.raises(AgentError, match="asks nothing"):
        await agent.answer_consent("no-such-message", "always", NOW)
    with pytest.raises(AgentError, match="always, not_now or never"):
        await agent.answer_consent(question.message_id, "sometimes", NOW)
    reply = await agent.answer_consent(question.message_id, "always", NOW)
    assert (reply.source, reply.model, reply.intent) == ("cloud", "server-fp32", "note.add")
    assert script.requests[0][2]["text"] == "jot down the gate code 4321"
    assert script.requests[0][2]["now"] == NOW.isoformat()  # asked as of the question
    assert agent.settings.consent == "always"
    later = await agent.handle("remind me to buy milk", NOW)
    assert (later.asks_consent, later.source) == (False, "cloud")
    assert len(script.requests) == 2
    stats = agent.stats()
    assert (stats["turns"], stats["fallback_rate"], stats["cloud_answered"]) == (2, 1.0, 2)
