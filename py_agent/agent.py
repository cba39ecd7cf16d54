"""The agent: one turn is text in → understanding → a skill → one committed change → reply.

Understanding is the on-device encoder's embedding of the utterance fed to the
intent head, cached by the normalised utterance. A turn's writes and both
conversation messages go to the store in one transaction, and the reply is
returned only after it committed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .cache import TTLCache, normalise_utterance
from .encoder import Encoder, EncoderError
from .intents import IntentHead, IntentPrediction
from .platform import Delete, JsonObject, Put
from .skills import conversation, notes, tasks
from .skills.editing import EditError, apply_edit
from .skills.outcome import Outcome
from .state import SYNCED, SetField, State, embedding_key

MAX_TEXT_CHARS = 2000
CACHE_SIZE = 512
CACHE_TTL_S = 3600.0


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
        self.pending: dict[str, object] | None = None
        # Runs a sync and says how it went; None on a device that cannot sync.
        self.sync: Callable[[], Awaitable[str]] | None = None

    async def prepare(self) -> None:
        """Embed records that have no vector from the current model (migrated data,
        or a new model), in one commit."""
        vectors = [
            (collection, str(record["id"]), await self.encoder.embed(str(record[key])))
            for collection, key in SYNCED.items()
            for record in self.state.missing_vectors(collection)
        ]
        if vectors:
            await self.state.save([], vectors)

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
        started = time.perf_counter()
        if not isinstance(text, str):
            raise AgentError(f"a request must be text, got {type(text).__name__}")
        if not text.strip():
            raise AgentError("the request is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise AgentError(
                f"the request is {len(text)} characters; the limit is {MAX_TEXT_CHARS}"
            )

        answered = self._answer_pending(text, now)
        if answered is not None:
            outcome, intent, confidence, cached = answered, "answer", 1.0, False
        else:
            understanding, cached = await self.understand(text)
            intent = understanding.prediction.intent
            confidence = understanding.prediction.confidence
            outcome = await self._act(intent, text, now, understanding.embedding)
        self.pending = outcome.pending

        latency_ms = (time.perf_counter() - started) * 1000
        details = {"intent": intent, "confidence": round(confidence, 4)}
        await self.state.save(
            [
                *outcome.writes,
                self.state.message("user", text, now),
                self.state.message(
                    "agent", outcome.reply, now, latency_ms=round(latency_ms, 2), **details
                ),
            ],
            outcome.vectors,
        )
        return Reply(
            text=outcome.reply,
            intent=intent,
            confidence=confidence,
            latency_ms=(time.perf_counter() - started) * 1000,
            cached=cached,
            changed=outcome.changed,
            asking=outcome.pending is not None,
        )

    def _answer_pending(self, text: str, now: datetime) -> Outcome | None:
        if self.pending is None:
            return None
        outcome = tasks.answer_pending(self.state, text, now, self.pending)
        if outcome is None:
            self.pending = None  # not an answer: treat it as a new request
        return outcome

    async def _act(
        self, intent: str, text: str, now: datetime, embedding: NDArray[np.float32]
    ) -> Outcome:
        embed = self._embed
        if intent == "task.add":
            return await tasks.add(self.state, text, now, embed)
        if intent == "task.list":
            return await tasks.list_tasks(self.state, text, now)
        if intent in ("task.complete", "task.delete"):
            action = intent.removeprefix("task.")
            return await tasks.act_on(self.state, text, now, action, embed)
        if intent == "note.add":
            return await notes.add(self.state, text, now, embed)
        if intent == "note.search":
            return notes.search(self.state, embedding)
        if intent == "note.list":
            return notes.list_notes(self.state)
        if intent == "sync.now":
            return conversation.sync_now(None if self.sync is None else await self.sync())
        if intent == "help":
            return conversation.help_reply()
        if intent == "greeting":
            return conversation.greeting(text)
        return conversation.out_of_scope()

    async def _embed(self, text: str) -> NDArray[np.float32]:
        try:
            return await self.encoder.embed(text)
        except EncoderError:
            return np.zeros(self.encoder.dimension, dtype=np.float32)

    # -- direct edits from the page ----------------------------------------------------

    def _record(self, collection: object, record_id: object) -> JsonObject:
        if not isinstance(collection, str) or collection not in SYNCED:
            raise AgentError(f"collection must be one of {', '.join(SYNCED)}, got {collection!r}")
        record = self.state.records[collection].get(str(record_id))
        if record is None:
            raise AgentError(
                f"there is no {collection[:-1]} {record_id!r} (it may have been deleted "
                "on another device)"
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
        """Change fields of a task or note (title, done, due date; a note's text)."""
        record = self._record(collection, record_id)
        name, key = str(collection), str(record_id)
        try:
            updated = apply_edit(name, record, changes, now)
        except EditError as exc:
            raise AgentError(str(exc)) from None
        vectors = await self._vectors_for(name, key, record, updated)
        await self.state.save([Put(name, key, updated)], vectors)
        return self.state.records[name][key]

    async def remove(self, collection: object, record_id: object) -> None:
        self._record(collection, record_id)
        name, key = str(collection), str(record_id)
        await self.state.save([Delete(name, key), Delete("embeddings", embedding_key(name, key))])

    async def resolve(self, conflict_id: object, op_id: object) -> None:
        """Settle a conflict by keeping the version written by op ``op_id``."""
        conflict = self.state.conflict(str(conflict_id))
        if conflict is None:
            raise AgentError("that conflict is already settled (perhaps on another device)")
        version = next((v for v in conflict.versions if v.op_id == op_id), None)
        if version is None:
            raise AgentError(f"the conflict has no version {op_id!r}")
        name, key = conflict.collection, conflict.record_id
        old = self.state.records[name].get(key, {})
        vectors = await self._vectors_for(name, key, old, {**old, conflict.field: version.value})
        await self.state.save([SetField(name, key, conflict.field, version.value)], vectors)

    def snapshot(self) -> dict[str, Any]:
        """Tasks and notes for the page's panes."""
        return {
            "tasks": sorted(self.state.tasks.values(), key=lambda t: str(t["created_at"])),
            "notes": sorted(self.state.notes.values(), key=lambda n: str(n["created_at"])),
            "cache": self.cache.stats(),
        }
