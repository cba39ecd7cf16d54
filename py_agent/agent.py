"""The agent: one turn is text in → understanding → a skill → one committed change → reply.

Understanding is the on-device encoder's embedding of the utterance fed to the
intent head, cached by the normalised utterance. A turn's writes, both conversation
messages and the undo stack go to the store in one transaction, and the reply is
returned only after it committed.

When the server's model read the request (the cascade asked it), the skill acts on the
server's slots; slots that do not have their intent's shape fall back to reading the
text on the device. A reply to an action the device carried out unsure of its reading
(confidence below the threshold, no server reading) is marked as a guess (source
"tentative"), with or without server help.

The conversation remembers, in memory only, the last task a turn added, edited,
completed or listed alone: "it"/"that" in the next request.

Changes run one at a time: a turn, an edit from the page and a second opinion each hold
the agent's lock from reading the data to committing, so two tabs (or a tab and a second
opinion) acting at once never build on the same stale read -- the undo stack, the
counters and the "it" of one would otherwise overwrite the other's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast, get_args

import numpy as np
from numpy.typing import NDArray

from . import second_opinion
from .cache import TTLCache, normalise_utterance
from .encoder import Encoder, EncoderError
from .intents import IntentHead, IntentPrediction
from .platform import Delete, JsonObject, Put, Write
from .router import (
    CONSENTS,
    DEFAULT_THRESHOLD,
    CloudAnswer,
    CloudUnavailable,
    ConsentChoice,
    Route,
    Router,
    RouterSettings,
    setting_error,
    settings_after,
    stored_consent,
)
from .skills import answers, conflicts, conversation, history, notes, task_edit, tasks, undo
from .skills.editing import EditError, apply_edit, describe_edit
from .skills.matching import label
from .skills.outcome import Outcome, Pending, TargetAction
from .slots import (
    EditSlots,
    HistorySlots,
    SlotsError,
    TargetSlots,
    TaskSlots,
    list_query,
    parse_slots_json,
)
from .state import SYNCED, RecordViews, SetField, State, creation_order, embedding_key
from .sync.ops import TOMBSTONE

MAX_TEXT_CHARS = 2000
STATS_LATENCIES = 200  # cloud latencies kept for the percentiles
TENTATIVE_QUEUED = (
    "\n(A guess: I'm not sure I understood, and couldn't reach the server to check. "
    "I'll ask it again when it can be reached.)"
)
TENTATIVE = "\n(A guess: I'm not sure I understood, and the server couldn't help.)"
GUESS = "\n(A guess: I wasn't sure I understood. Say “undo” if that's wrong.)"
# Asked, with its three answers, instead of acting while the user has not said whether
# the server may be asked (router.Consent).
CONSENT_QUESTION = "I'm not sure what you mean. Ask the server? Only these words are sent."
CACHE_SIZE = 512
CACHE_TTL_S = 3600.0
TARGET_ACTIONS: dict[str, TargetAction] = {"task.complete": "complete", "task.delete": "delete"}
_Slots = TypeVar("_Slots")
_LOCAL = object()  # no usable slots from the server: the skill reads the text itself


def _given(value: object, kind: type[_Slots]) -> _Slots | None:
    return value if isinstance(value, kind) else None


@dataclass(frozen=True)
class Understanding:
    embedding: NDArray[np.float32]
    prediction: IntentPrediction


@dataclass
class Reply:
    text: str
    intent: str
    confidence: float
    latency_ms: float
    cached: bool
    changed: list[str] = field(default_factory=list)
    asking: bool = False
    source: str = "local"  # "local", "cloud" (the server's model read it) or "tentative"
    queued: bool = False  # tentative, and queued to ask the server again
    model: str | None = None
    message_id: str | None = None
    asks_consent: bool = False  # nothing done yet: may the server be asked? (the buttons)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AgentError(ValueError):
    """The request cannot be handled as given (empty, too long, not text)."""


class Agent:
    def __init__(self, state: State, encoder: Encoder, head: IntentHead) -> None:
        self.state = state
        self.encoder = encoder
        self.head = head
        self.cache: TTLCache[Understanding] = TTLCache(CACHE_SIZE, CACHE_TTL_S)
        self.pending: Pending | None = None
        self.last_task: str | None = None  # what "it" means (see the module docstring)
        # Runs a sync and says how it went; None on a device that cannot sync.
        self.sync: Callable[[], Awaitable[str]] | None = None
        # Asks the server's model when the device's is unsure; None: never asks.
        self.router: Router | None = None
        # Chat messages added or changed outside a turn (follow-ups on conflicts) that the
        # page has not been told of: it re-reads the chat.
        self.chat_changed = 0
        self._changing = asyncio.Lock()  # see the module docstring
        # An edit changed a record's embedded text and left the new vector to embed after
        # its commit (see _edit); pulls leave theirs too, until the device's pass after
        # them (prepare): the state's revision counts them.
        self._unembedded = False
        self._embedded_revision = state.revision
        # One follow-up pass at a time. Not _changing: a "sync now" turn holds that while
        # its pull runs prepare.
        self._following_up = asyncio.Lock()

    async def prepare(self) -> None:
        """Embed records that have no vector from the current model (migrated data,
        or a new model), and store the settings where none are, or where they were stored
        before consent was asked for (the page shows the stored ones before the agent
        starts), in one commit."""
        vectors = await self._missing_vectors()
        stored = self.state.meta.get("settings", {})
        defaults = [] if "consent" in stored else self._settings_writes(self.settings)
        if vectors or defaults:
            await self.state.save(defaults, vectors)
        await self._follow_up_conflicts()

    async def _missing_vectors(self) -> list[tuple[str, str, NDArray[np.float32]]]:
        """Vectors for the records that have none from the current model. A record whose
        text changed while it was embedded (an edit meanwhile) is left to the next pass."""
        wanted = [
            (collection, str(record["id"]), str(record[key]))
            for collection, key in SYNCED.items()
            for record in self.state.missing_vectors(collection)
        ]
        embedded = [(c, i, text, await self.encoder.embed(text)) for c, i, text in wanted]
        records = self.state.records
        return [
            (c, i, v) for c, i, text, v in embedded if records[c].get(i, {}).get(SYNCED[c]) == text
        ]

    async def _embed_changed(self) -> None:
        """Store the vectors that edits and pulls left to embed, before a turn matches
        against them; the device's pass once changes pause (``prepare``) does it too."""
        if not self._unembedded and self.state.revision == self._embedded_revision:
            return
        self._unembedded, self._embedded_revision = False, self.state.revision
        vectors = await self._missing_vectors()
        if vectors:
            await self.state.save([], vectors)

    async def _follow_up_conflicts(self) -> None:
        """Correct the chat's replies about records whose delete became contested or was
        settled (``py_agent.skills.conflicts``): after a pull, and after a choice here."""
        async with self._following_up:
            writes = await conflicts.follow_ups(self.state, datetime.now().astimezone())
            if writes:
                await self.state.save(writes)
                self.chat_changed += conflicts.changed_chat(writes)

    async def understand(self, text: str) -> tuple[Understanding, bool]:
        key = normalise_utterance(text)
        cached = self.cache.get(key)
        if cached is not None:
            return cached, True
        embedding = await self.encoder.embed(text)
        understanding = Understanding(embedding, self.head.predict(embedding))
        self.cache.put(key, understanding)
        return understanding, False

    async def handle(self, text: object, now: datetime) -> Reply:
        async with self._changing:
            return await self._handle(text, now)

    async def _handle(self, text: object, now: datetime) -> Reply:
        started = time.perf_counter()
        if not isinstance(text, str):
            raise AgentError(f"a request must be text, got {type(text).__name__}")
        if not text.strip():
            raise AgentError("the request is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise AgentError(
                f"the request is {len(text)} characters; the limit is {MAX_TEXT_CHARS}"
            )

        answered = await self._answer_pending(text, now)
        user = self.state.message("user", text, now)
        if answered is not None:
            return await self._respond(text, now, started, answered, None, False, user)
        understanding, cached = await self.understand(text)
        route = await self._route(text, now, understanding.prediction, self.settings)
        if route.needs_consent:
            outcome = Outcome(CONSENT_QUESTION)
        else:
            outcome = await self._act(route.intent, text, now, understanding.embedding, route.cloud)
        return await self._respond(text, now, started, outcome, route, cached, user)

    async def _respond(
        self,
        text: str,
        now: datetime,
        started: float,
        outcome: Outcome,
        route: Route | None,
        cached: bool,
        opening: Put,
    ) -> Reply:
        """Commit a request's outcome with ``opening`` (the user's message, or the
        answered consent question) and the agent's reply; answers the reply."""
        self.pending = outcome.pending
        self.last_task = outcome.touched or self.last_task
        latency_ms = (time.perf_counter() - started) * 1000
        intent, confidence = ("answer", 1.0) if route is None else (route.intent, route.confidence)
        source = "local" if route is None else route.source
        reply_text = outcome.reply
        if route is not None and route.source == "tentative":
            reply_text += TENTATIVE_QUEUED if route.queued else TENTATIVE
        elif route is not None and self._guessed(route, outcome):
            source = "tentative"
            reply_text += GUESS
        details: dict[str, Any] = {
            "intent": intent,
            "confidence": round(confidence, 4),
            "source": source,
        }
        if records := conflicts.touched(outcome.writes):
            details["records"] = records  # what a later conflict may make this reply wrong about
        if route is not None and route.cloud is not None:
            details["model"] = route.cloud.model
            details["cloud_ms"] = round(route.cloud.latency_ms, 1)
            details["local_intent"] = route.local.intent
        asks_consent = route is not None and route.needs_consent
        if asks_consent:
            details["consent_question"] = {"text": text, "now": now.isoformat()}
        agent = self.state.message(
            "agent", reply_text, now, latency_ms=round(latency_ms, 2), **details
        )
        # A question is not an answer yet: the request counts once it is answered.
        extra = [] if route is None or asks_consent else [self._count(route, source)]
        if route is not None and route.queued:
            extra.append(second_opinion.queued(text, now, agent.key, route.local))
        writes = [*outcome.writes, opening, agent, *extra, *self._undo_entry(outcome)]
        await self.state.save(writes, outcome.vectors)
        return Reply(
            text=reply_text,
            intent=intent,
            confidence=confidence,
            latency_ms=(time.perf_counter() - started) * 1000,
            cached=cached,
            changed=outcome.changed,
            asking=outcome.pending is not None,
            source=source,
            queued=route is not None and route.queued,
            model=None if route is None or route.cloud is None else route.cloud.model,
            message_id=agent.key,
            asks_consent=asks_consent,
        )

    async def answer_consent(self, message_id: object, choice: object, now: datetime) -> Reply:
        """The user answered a consent question: keep their choice ("always", "never";
        "not_now" keeps none) and carry out the request it was about, asking the server
        only on "always" (``router.settings_after``). Each question is answered once."""
        if choice not in get_args(ConsentChoice):
            raise AgentError(f"the answer must be always, not_now or never, got {choice!r}")
        answer = cast(ConsentChoice, choice)
        async with self._changing:
            started = time.perf_counter()
            message = await self.state.store.get("messages", str(message_id))
            question = None if message is None else message.get("consent_question")
            if message is None or not isinstance(question, dict):
                raise AgentError(f"message {message_id!r} asks nothing")
            if message.get("consent_answer"):
                raise AgentError("that question was already answered")
            kept, for_this = settings_after(self.settings, answer)
            if kept != self.settings:
                await self.state.save(self._settings_writes(kept))
            text, asked_at = str(question["text"]), datetime.fromisoformat(str(question["now"]))
            understanding, cached = await self.understand(text)
            route = await self._route(text, asked_at, understanding.prediction, for_this)
            outcome = await self._act(
                route.intent, text, asked_at, understanding.embedding, route.cloud
            )
            answered = Put("messages", str(message_id), {**message, "consent_answer": answer})
            return await self._respond(text, now, started, outcome, route, cached, answered)

    # -- the cascade -------------------------------------------------------------------

    @property
    def settings(self) -> RouterSettings:
        stored = self.state.meta.get("settings", {})
        return RouterSettings(
            threshold=float(stored.get("threshold", DEFAULT_THRESHOLD)),
            consent=stored_consent(stored),
        )

    async def set_settings(self, changes: object) -> RouterSettings:
        """Change the user's settings: ``threshold`` (0-1), ``consent`` ("unasked",
        "always", "never"), or ``cloud_help`` (bool), the older switch: on is "always",
        off "never"."""
        if not isinstance(changes, dict) or not changes:
            raise AgentError("There's no setting to change.")
        current: dict[str, Any] = {"threshold": self.settings.threshold}
        current["consent"] = self.settings.consent
        for name, value in changes.items():
            if name == "consent" and value in CONSENTS:
                current[name] = value
            elif name == "cloud_help" and isinstance(value, bool):
                current["consent"] = "always" if value else "never"
            elif (
                name == "threshold"
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and 0.0 <= value <= 1.0
            ):
                current[name] = float(value)
            else:
                raise AgentError(setting_error(str(name), value))
        settings = RouterSettings(**current)
        async with self._changing:
            await self.state.save(self._settings_writes(settings))
        return settings

    def _settings_writes(self, settings: RouterSettings) -> list[Write]:
        """meta/settings with every field, which the page reads from the store; and on
        "never", the queued requests dropped: they were to be sent to the server."""
        stored = {
            "threshold": settings.threshold,
            "cloud_help": settings.cloud_help,
            "consent": settings.consent,
        }
        drop = self.state.queue if settings.consent == "never" else {}
        return [Put("meta", "settings", stored), *(Delete("queue", key) for key in drop)]

    async def _route(
        self, text: str, now: datetime, local: IntentPrediction, settings: RouterSettings
    ) -> Route:
        if self.router is None:
            return Route(local.intent, local.confidence, "local", False, "no server", local)
        return await self.router.route(text, now, local, settings)

    def _guessed(self, route: Route, outcome: Outcome) -> bool:
        """The device changed the user's data on a reading it was unsure of, with no
        server reading to go by (cloud help off, or no server)."""
        return (
            route.cloud is None
            and route.intent in second_opinion.ACTIONS
            and route.local.confidence < self.settings.threshold
            and bool(outcome.changed)
        )

    def _undo_entry(self, outcome: Outcome) -> list[Write]:
        """The undo stack with this outcome's change on top, when it changed something."""
        return undo.push(self.state, outcome.writes, outcome.did) if outcome.undoable else []

    def _count(self, route: Route, source: str) -> Put:
        """The turn's contribution to the agent's counters (stored with the turn)."""
        stats = dict(self.state.meta.get("stats", {}))
        stats["turns"] = int(stats.get("turns", 0)) + 1
        if route.asked:
            stats["asked"] = int(stats.get("asked", 0)) + 1
        if route.cloud is not None:
            self._count_answer(stats, route.local.intent, route.cloud)
        if source == "tentative":
            stats["tentative"] = int(stats.get("tentative", 0)) + 1
        return Put("meta", "stats", stats)

    @staticmethod
    def _count_answer(stats: JsonObject, local_intent: str, cloud: CloudAnswer) -> None:
        stats["answered"] = int(stats.get("answered", 0)) + 1
        stats["agreed"] = int(stats.get("agreed", 0)) + int(cloud.intent == local_intent)
        latencies = [*stats.get("latencies_ms", []), round(cloud.latency_ms, 1)]
        stats["latencies_ms"] = latencies[-STATS_LATENCIES:]

    def stats(self) -> JsonObject:
        """Fallback rate, cloud latency, local/cloud agreement and queue length."""
        stats = self.state.meta.get("stats", {})
        turns, asked, answered = (int(stats.get(k, 0)) for k in ("turns", "asked", "answered"))
        latencies = sorted(float(v) for v in stats.get("latencies_ms", []))

        def percentile(q: float) -> float | None:
            return (
                latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None
            )

        return {
            "turns": turns,
            "fallback_rate": asked / turns if turns else None,
            "cloud_answered": answered,
            "tentative": int(stats.get("tentative", 0)),
            "agreement": int(stats.get("agreed", 0)) / answered if answered else None,
            "cloud_p50_ms": percentile(0.5),
            "cloud_p95_ms": percentile(0.95),
            "queue": len(self.state.queue),
            "settings": asdict(self.settings),
        }

    def queue_to_ask(self) -> dict[str, JsonObject]:
        """The queued requests the server may be asked about: none without consent."""
        if self.router is None or self.settings.consent != "always":
            return {}
        return self.state.queue

    async def drain(self, wall_s: float, random: Callable[[], float]) -> int:
        """Ask the server again about the queued requests; answers how many it settled
        (answered or dropped), each of which changed the chat or the stats: a new
        message, "✓ server agrees" on the original, or a shorter queue. Stops at the
        first failure that may pass (offline)."""
        if self.router is None:
            return 0
        settled = 0
        for item in second_opinion.due(self.queue_to_ask(), wall_s):
            text, now = str(item["text"]), datetime.fromisoformat(str(item["now"]))
            try:
                cloud = await self.router.ask(text, now, self.settings.deadline_s)
            except CloudUnavailable as exc:
                if not exc.retry:
                    await self.state.save([Delete("queue", str(item["id"]))])
                    settled += 1
                    continue
                await self.state.save([second_opinion.retry_later(item, wall_s, random)])
                break
            async with self._changing:
                await self._second_opinion(item, text, now, cloud)
            settled += 1
        return settled

    async def _second_opinion(
        self, item: JsonObject, text: str, now: datetime, cloud: CloudAnswer
    ) -> None:
        stats = dict(self.state.meta.get("stats", {}))
        local_intent = str(item["local_intent"])
        self._count_answer(stats, local_intent, cloud)
        writes: list[Write] = [Delete("queue", str(item["id"])), Put("meta", "stats", stats)]
        original_id = str(item["message_id"])
        original = await self.state.store.get("messages", original_id)
        if cloud.intent == local_intent:
            if original is not None:
                writes.append(
                    Put("messages", original_id, {**original, "confirmed_by": cloud.model})
                )
            await self.state.save(writes)
            return
        meaning = second_opinion.DESCRIPTIONS.get(cloud.intent, cloud.intent)
        details: dict[str, Any] = {
            "intent": cloud.intent,
            "confidence": round(cloud.confidence, 4),
            "source": "cloud",
            "model": cloud.model,
            "refines": original_id,
        }
        if cloud.intent in second_opinion.ACTIONS:
            reply = f"Second opinion on “{text}”: the server reads it as {meaning}. Apply that?"
            details["proposal"] = {"intent": cloud.intent, "text": text, "now": now.isoformat()}
        else:
            embedding = await self._embed(text)
            outcome = await self._act(cloud.intent, text, now, embedding, cloud)
            reply = f"Second opinion on “{text}” ({meaning}): {outcome.reply}"
        writes.append(self.state.message("agent", reply, now, **details))
        await self.state.save(writes)

    async def apply(self, message_id: object, now: datetime) -> Reply:
        """Carry out the action a second opinion proposed (once)."""
        async with self._changing:
            return await self._apply(message_id, now)

    async def _apply(self, message_id: object, now: datetime) -> Reply:
        started = time.perf_counter()
        message = await self.state.store.get("messages", str(message_id))
        proposal = None if message is None else message.get("proposal")
        if message is None or not isinstance(proposal, dict):
            raise AgentError(f"message {message_id!r} proposes nothing to apply")
        if message.get("applied"):
            raise AgentError("that proposal was already applied")
        intent, text = str(proposal["intent"]), str(proposal["text"])
        asked_at = datetime.fromisoformat(str(proposal["now"]))
        outcome = await self._act(intent, text, asked_at, await self._embed(text), None)
        reply = self.state.message("agent", outcome.reply, now, intent=intent, source="cloud")
        applied = Put("messages", str(message_id), {**message, "applied": True})
        writes = [*outcome.writes, applied, reply, *self._undo_entry(outcome)]
        await self.state.save(writes, outcome.vectors)
        self.pending = outcome.pending
        self.last_task = outcome.touched or self.last_task
        return Reply(
            text=outcome.reply,
            intent=intent,
            confidence=1.0,
            latency_ms=(time.perf_counter() - started) * 1000,
            cached=False,
            changed=outcome.changed,
            source="cloud",
            message_id=reply.key,
        )

    async def _answer_pending(self, text: str, now: datetime) -> Outcome | None:
        if self.pending is None:
            return None
        outcome = await answers.answer(self.state, text, now, self.pending, self._embed)
        if outcome is None:
            self.pending = None  # not an answer: treat it as a new request
        return outcome

    @staticmethod
    def _server_slots(intent: str, cloud: CloudAnswer | None) -> object:
        """The server's slots for ``intent`` (`slots.parse_slots_json`), or ``_LOCAL``."""
        if cloud is None:
            return _LOCAL
        try:
            return parse_slots_json(intent, cloud.slots)
        except SlotsError:
            return _LOCAL

    async def _act(
        self,
        intent: str,
        text: str,
        now: datetime,
        embedding: NDArray[np.float32],
        cloud: CloudAnswer | None,
    ) -> Outcome:
        await self._embed_changed()
        state, embed, last = self.state, self._embed, self.last_task
        read = self._server_slots(intent, cloud)
        if intent == "task.add":
            return await tasks.add(state, text, now, embed, _given(read, TaskSlots))
        if intent == "task.list":
            named = list_query(text) if read is _LOCAL else _given(read, str)
            return await tasks.list_tasks(state, text, now, named)
        if intent in TARGET_ACTIONS:
            action, target = TARGET_ACTIONS[intent], _given(read, TargetSlots)
            return await tasks.act_on(state, text, now, action, embed, target, last)
        if intent == "task.edit":
            return await task_edit.edit(state, text, now, embed, _given(read, EditSlots), last)
        if intent == "note.add":
            return await notes.add(state, text, now, embed, _given(read, str))
        if intent == "note.delete":
            return await notes.forget(state, text, embed, _given(read, str))
        if intent == "note.search":
            return notes.search(state, embedding)
        if intent == "note.list":
            return notes.list_notes(state)
        if intent == "history":
            return await history.history(state, text, now, embed, _given(read, HistorySlots))
        if intent == "undo":
            return await undo.undo(state, embed)
        if intent == "sync.now":
            return conversation.sync_now(None if self.sync is None else await self.sync())
        if intent == "help":
            return conversation.help_reply()
        if intent == "greeting":
            return conversation.greeting(text)
        return conversation.out_of_scope(text, None if cloud is None else cloud.answer)

    async def _embed(self, text: str) -> NDArray[np.float32]:
        try:
            return await self.encoder.embed(text)
        except EncoderError:
            return np.zeros(self.encoder.dimension, dtype=np.float32)

    # -- direct edits from the page ----------------------------------------------------

    def _collection(self, collection: object) -> str:
        if not isinstance(collection, str) or collection not in SYNCED:
            raise AgentError("Only tasks and notes can be changed here.")
        return collection

    def _record(self, collection: object, record_id: object) -> JsonObject:
        name = self._collection(collection)
        record = self.state.records[name].get(str(record_id))
        if record is None:
            raise AgentError(
                f"That {name[:-1]} isn't here any more: it may have been deleted on another device."
            )
        return record

    async def _vectors_for(
        self, collection: str, record_id: str, old: JsonObject, new: JsonObject
    ) -> list[tuple[str, str, NDArray[np.float32]]]:
        embedded = SYNCED[collection]
        if new.get(embedded) == old.get(embedded):
            return []
        return [(collection, record_id, await self._embed(str(new[embedded])))]

    async def edit(
        self, collection: object, record_id: object, changes: object, now: datetime
    ) -> JsonObject:
        """Change fields of a task (title, done, due date and time, list, repeat) or a
        note (text). Checking off a repeating task completes its occurrence and moves it
        on, as in the chat."""
        async with self._changing:
            return await self._edit(collection, record_id, changes, now)

    async def _edit(
        self, collection: object, record_id: object, changes: object, now: datetime
    ) -> JsonObject:
        record = self._record(collection, record_id)
        name, key = str(collection), str(record_id)
        others = _checking_off_repeating(record, changes)
        try:
            if others is None:
                updated = apply_edit(name, record, changes, now)
            else:
                updated = apply_edit(name, record, others, now) if others else dict(record)
        except EditError as exc:
            raise AgentError(str(exc)) from None
        vectors: list[tuple[str, str, NDArray[np.float32]]] = []
        if others is not None:
            outcome = await tasks.complete(self.state, updated, now, self._embed)
            writes, vectors, did = outcome.writes, list(outcome.vectors), outcome.did
        else:
            writes, did = [Put(name, key, updated)], describe_edit(record, updated)
        # New text is embedded after the commit, so that the change goes out to the other
        # devices at once: by the device's pass once changes pause (prepare), or by the
        # next turn if it comes first. The old vector goes in this commit: it no longer says
        # what the record says.
        retitled = updated.get(SYNCED[name]) != record.get(SYNCED[name])
        stale = [Delete("embeddings", embedding_key(name, key))] if retitled else []
        await self.state.save([*writes, *stale, *undo.push(self.state, writes, did)], vectors)
        if retitled:
            self.state.vectors[name].remove(key)
            self._unembedded = True
        return self.state.records[name][key]

    async def remove(self, collection: object, record_id: object) -> None:
        async with self._changing:
            await self._remove(collection, record_id)

    async def _remove(self, collection: object, record_id: object) -> None:
        record = self._record(collection, record_id)
        name, key = str(collection), str(record_id)
        writes: list[Write] = [Delete(name, key), Delete("embeddings", embedding_key(name, key))]
        what = "forgetting the note" if name == "notes" else "deleting"
        await self.state.save(
            [*writes, *undo.push(self.state, writes, f"{what} “{label(record)}”")]
        )

    async def restore(self, collection: object, record_id: object) -> JsonObject:
        """Bring back a task or note this device deleted by undoing just that delete (the
        page's "Undo" on its notice), whatever was changed since; answers the record."""
        async with self._changing:
            return await self._restore(collection, record_id)

    async def _restore(self, collection: object, record_id: object) -> JsonObject:
        name, key = self._collection(collection), str(record_id)
        restoring = await undo.restore(self.state, name, key, self._embed)
        if restoring is None:
            current = self.state.records[name].get(key)
            if current is not None:
                raise AgentError(
                    f"“{label(current)}” isn't deleted, so there's nothing to restore."
                )
            raise AgentError(
                f"{self._last_called(name, key)} can't be restored: it wasn't deleted on "
                "this device, or too long ago."
            )
        writes, vectors = restoring
        await self.state.save(writes, vectors)
        return self.state.records[name][key]

    def _last_called(self, collection: str, record_id: str) -> str:
        """A deleted record as quoted: the title or text it last had, as far as this device
        knows (a record deleted elsewhere may never have been shown here)."""
        embedded = SYNCED[collection]
        ops = self.state.replica.record_ops(collection, record_id)
        values = [op.value for op in ops if op.field == embedded]
        return f"“{label({embedded: values[-1]})}”" if values else f"That {collection[:-1]}"

    async def resolve(self, conflict_id: object, op_id: object) -> None:
        """Settle a conflict by keeping the version written by op ``op_id``."""
        async with self._changing:
            await self._resolve(conflict_id, op_id)

    async def _resolve(self, conflict_id: object, op_id: object) -> None:
        conflict = self.state.conflict(str(conflict_id))
        if conflict is None:
            raise AgentError("That conflict is already settled (perhaps on another device).")
        version = next((v for v in conflict.versions if v.op_id == op_id), None)
        if version is None:
            raise AgentError("That isn't one of the conflict's versions: choose one shown.")
        name, key = conflict.collection, conflict.record_id
        old = self.state.records[name].get(key, {})
        vectors = await self._vectors_for(name, key, old, {**old, conflict.field: version.value})
        changes: list[SetField | Write] = [SetField(name, key, conflict.field, version.value)]
        if conflict.field == TOMBSTONE and version.value is True:  # kept deleted: as remove does
            changes.append(Delete("embeddings", embedding_key(name, key)))
        await self.state.save(changes, vectors)
        await self._follow_up_conflicts()

    def snapshot(self) -> dict[str, Any]:
        """Tasks and notes for the page's panes."""
        tasks_shown = sorted(self.state.tasks.values(), key=creation_order)
        return {
            "tasks": [_task_view(task) for task in tasks_shown],
            "notes": sorted(self.state.notes.values(), key=creation_order),
            "cache": self.cache.stats(),
        }


def _checking_off_repeating(record: JsonObject, changes: object) -> dict[str, Any] | None:
    """The other changes, when ``changes`` check off an open repeating task; else None."""
    if (
        not isinstance(changes, dict)
        or changes.get("done") is not True
        or not record.get("repeat")
        or record.get("done")
    ):
        return None
    return {field: value for field, value in changes.items() if field != "done"}


def _task_view(task: JsonObject) -> JsonObject:
    """A task for the page: every field (older records lack ``list`` and ``repeat``) and
    its repeat rule in words."""
    repeat = task.get("repeat")
    return {
        "list": None,
        "repeat": None,
        **task,
        "repeat_text": tasks.describe_repeat(repeat) if repeat else None,
    }


def _note_view(note: JsonObject) -> JsonObject:
    return note


# Tasks and notes as the page shows them: in snapshot(), and stored by State for the page
# to show before Python starts (open_state's ``views``). A change here needs a migration
# of the stored views (py_agent.state).
PAGE_VIEWS: RecordViews = {"tasks": _task_view, "notes": _note_view}
