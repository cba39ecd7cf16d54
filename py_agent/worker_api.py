"""What the web worker exposes to the page: one registry of async functions.

``web/src/worker.js`` hands every call from the page to ``api.dispatch(name, args_json)``
(``py_agent.registry``: arguments checked against these annotations, results and errors as
JSON records); the page's ``window.pyAgent`` is a proxy over the same names in camelCase,
and ``web/src/types.js`` -- their signatures and the records of ``py_agent.records`` as
JSDoc -- is generated from this module by ``python -m tools.js_types``.

This module also owns time for the worker: after every call it tells the worker when
automatic work is next due (``After.next_at``: a sync, a second opinion), and the worker's
one timer calls ``tick`` then. See ``py_agent.device_sync`` for when a sync is due and
``py_agent.second_opinion.Schedule`` for second opinions.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import cast

from . import diagnostics, export, second_opinion
from .agent import PAGE_VIEWS, Agent, AgentError, Reply
from .dates import NowError, parse_now
from .device_sync import DeviceSync, PairingError, ServerIdentity, conflicts_json
from .encoder import Encoder, EncoderError, load_encoder
from .intents import load_intent_head
from .platform import InferenceRuntime, Transport, http_transport, inference_runtime
from .records import (
    After,
    Collection,
    Conflict,
    Environment,
    ImportResult,
    LiveStream,
    Message,
    ModelInfo,
    Note,
    RecordChanges,
    Removed,
    RunResult,
    SelfCheck,
    SettingsChanges,
    Snapshot,
    SpaceDevice,
    Stats,
    SyncStatus,
    Task,
    Tensor,
    Text,
)
from .registry import ArgumentError, Registry
from .router import ConsentChoice, Router, RouterSettings
from .state import open_state

# Relative to the worker: web/dist/models/, laid out by build.py.
MODELS_ROOT = "models"
# The IndexedDB database holding the user's data.
STATE_DB = "py_agent"
# Sync status fields that count down by themselves: a status is news only if the rest changed.
_COUNTDOWN = ("retry_in_s", "next_in_s")

# Refusals (a bad request, a wrong pairing code) cross without a traceback in the console.
api = Registry(quiet=(ValueError, PairingError))


@cache
def _runtime() -> InferenceRuntime:
    return inference_runtime()


@cache
def _transport() -> Transport:
    # Relative URLs: the worker's fetch resolves them against the origin it was served from.
    return http_transport("")


class Session:
    """The started agent, its sync, and what is due when."""

    def __init__(
        self,
        agent: Agent,
        sync: DeviceSync,
        *,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.agent = agent
        self.sync = sync
        self.opinions = second_opinion.Schedule()
        self._clock = clock
        self._random = random
        self._published: dict[str, object] | None = None
        self._opinions_settled = 0

    def next_at(self) -> float | None:
        due = [self.sync.next_at(), self.opinions.next_at(self.agent.queue_to_ask())]
        return min((at for at in due if at is not None), default=None)

    async def tick(self) -> None:
        """Run whatever is due: the sync and the second opinions, side by side (a sync
        waiting out a stalled server does not hold up the other)."""
        results = await asyncio.gather(self.sync.tick(), self._ask_again(), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _ask_again(self) -> None:
        now = self._clock()
        due = self.opinions.next_at(self.agent.queue_to_ask())
        if due is None or due > now:
            return
        self.opinions.running = True
        try:
            self._opinions_settled += await self.agent.drain(now, self._random)
        except BaseException:
            self.opinions.unreachable(now)  # not again at once: the next tick would fail too
            raise
        finally:
            self.opinions.running = False
        self.opinions.looked(self.agent.queue_to_ask(), now)

    def turn_queued(self) -> None:
        """A turn could not ask the server: its second opinion waits a little."""
        self.opinions.unreachable(self._clock())

    def online(self) -> None:
        self.sync.wake()
        self.opinions.online()

    def after(self) -> After:
        """After every call: local changes noted, when work is next due, what changed."""
        self.sync.note_changes()
        after: After = {"next_at": self.next_at()}
        status = self.sync.status()
        news = {key: value for key, value in status.items() if key not in _COUNTDOWN}
        if news != self._published:
            self._published = news
            after["sync"] = status
        # Every settled request, not only those that added a message: "✓ server agrees"
        # changes a message already shown, and any of them the stats. And the follow-ups
        # on contested deletes, which a pull or a choice adds or settles.
        changed = self._opinions_settled + self.agent.chat_changed
        if changed:
            after["chat"] = changed
            self._opinions_settled = self.agent.chat_changed = 0
        return after


_encoder: Encoder | None = None
_session: Session | None = None


def _after() -> After:
    return {"next_at": None} if _session is None else _session.after()


api.after = _after


def _loaded() -> Encoder:
    if _encoder is None:
        raise EncoderError("The model is still loading: try again in a moment.")
    return _encoder


def _started() -> Session:
    if _session is None:
        raise AgentError("The assistant is still starting: try again in a moment.")
    return _session


def _running() -> Agent:
    return _started().agent


def _now(now: str) -> datetime:
    try:
        return parse_now(now)
    except NowError as exc:
        raise ArgumentError(f"now {exc}", "now") from None


# -- starting --------------------------------------------------------------------------------


@api.exposed
async def load_model(tz: str, locale: str) -> ModelInfo:
    """Load the encoder and intent head, open the user's data and start the agent. ``tz``
    (IANA) and ``locale`` are the page's, sent with requests the server is asked about."""
    global _encoder, _session
    _encoder = await load_encoder(MODELS_ROOT, _runtime())
    head = await load_intent_head(MODELS_ROOT)
    manifest = _encoder.manifest
    model = f"{manifest.name}/{manifest.version}"
    state = await open_state(STATE_DB, model=model, views=PAGE_VIEWS)
    agent = Agent(state, _encoder, head)
    sync = DeviceSync(state, _transport(), after_pull=agent.prepare)
    agent.sync = sync.chat_reply
    agent.router = Router(_transport(), ServerIdentity(state, sync))
    agent.router.tz = tz if 0 < len(tz) <= 64 else "UTC"
    agent.router.locale = locale if 0 < len(locale) <= 35 else "en"
    await agent.prepare()
    _session = Session(agent, sync)
    return {"name": manifest.name, "version": manifest.version, "dimension": _encoder.dimension}


@api.exposed
async def tick() -> None:
    """Run the automatic work that is due (the worker's timer calls this at next_at)."""
    await _started().tick()


@api.exposed
async def online() -> None:
    """The browser came back online: sync and ask for second opinions without waiting
    out the backoff."""
    _started().online()


@api.exposed
async def set_visible(visible: bool) -> None:
    """The page was hidden or shown: a hidden page does not pull periodically."""
    _started().sync.set_visible(visible)


# -- the chat ----------------------------------------------------------------------------------


@api.exposed
async def ask(text: str, now: str) -> Reply:
    """One chat turn; ``now`` is the user's local time with its UTC offset. Resolves after
    the turn's writes are committed."""
    session = _started()
    reply = await session.agent.handle(text, _now(now))
    if reply.queued:
        session.turn_queued()
    return reply


@api.exposed
async def apply_proposal(message_id: str, now: str) -> Reply:
    """Carry out the action a second opinion proposed."""
    return await _running().apply(message_id, _now(now))


@api.exposed
async def answer_consent(message_id: str, choice: ConsentChoice, now: str) -> Reply:
    """The user's answer to "Ask the server?" (a reply with ``asks_consent``): kept for
    later requests ("always", "never"; "not_now" asks again next time), and the request
    carried out -- with the server's reading only on "always"."""
    session = _started()
    reply = await session.agent.answer_consent(message_id, choice, _now(now))
    if reply.queued:
        session.turn_queued()
    return reply


@api.exposed
async def history() -> list[Message]:
    """The conversation so far, oldest first."""
    return cast(list[Message], await _running().state.history())


# -- the user's data ----------------------------------------------------------------------


@api.exposed
async def snapshot() -> Snapshot:
    """Tasks, notes and cache counters for the page's panes."""
    return cast(Snapshot, _running().snapshot())


@api.exposed
async def edit_record(
    collection: Collection, record_id: str, changes: RecordChanges, now: str | None = None
) -> Task | Note:
    """Change a task or note from the page; answers the updated record."""
    when = datetime.now().astimezone() if now is None else _now(now)
    return cast(Task | Note, await _running().edit(collection, record_id, dict(changes), when))


@api.exposed
async def remove_record(collection: Collection, record_id: str) -> Removed:
    await _running().remove(collection, record_id)
    return {"removed": record_id}


@api.exposed
async def restore_record(collection: Collection, record_id: str) -> Task | Note:
    """Bring back a task or note removed on this device (the "Undo" after removing it),
    undoing just that removal; answers the restored record."""
    return cast(Task | Note, await _running().restore(collection, record_id))


@api.exposed
async def export_data() -> str:
    """Every task and note as an export file's text (the format is in py_agent/export.py)."""
    return export.export_data(_running().state).to_text()


@api.exposed
async def import_data(text: str) -> ImportResult:
    """Merge an export file's text into the user's data, in one commit. A bad file changes
    nothing and raises ``DataFormatError`` naming each problem."""
    agent = _running()
    data = export.parse_user_data(text)
    summary = await export.import_data(
        agent.state, data, _loaded().embed, datetime.now().astimezone()
    )
    return cast(ImportResult, summary.to_json())


# -- sync --------------------------------------------------------------------------------------


@api.exposed
async def sync_status() -> SyncStatus:
    return _started().sync.status()


@api.exposed
async def sync_now() -> SyncStatus:
    """Sync at once (after any exchange under way); answers the status it ended with."""
    return await _started().sync.run()


@api.exposed
async def live_stream() -> LiveStream | None:
    """Where to open the live-sync stream, and with which token; None while unpaired."""
    return _started().sync.live_stream()


@api.exposed
async def set_live(live: bool) -> None:
    """The page's live-sync stream opened or closed: while it is closed, the device polls."""
    _started().sync.set_live(live)


@api.exposed
async def space_changed(cursor: str) -> None:
    """The live-sync stream says the space's ops run up to ``cursor``: pull if behind."""
    _started().sync.space_changed(cursor)


@api.exposed
async def create_space(device_name: str) -> SyncStatus:
    return await _started().sync.create_space(device_name)


@api.exposed
async def join_space(pairing_code: str, device_name: str) -> SyncStatus:
    return await _started().sync.join(pairing_code, device_name)


@api.exposed
async def new_pairing_code() -> SyncStatus:
    """A fresh pairing code for the next device (codes expire; this revokes the old one)."""
    return await _started().sync.new_pairing_code()


@api.exposed
async def space_devices() -> list[SpaceDevice]:
    """The devices of this device's space, as the server lists them."""
    return await _started().sync.devices()


@api.exposed
async def remove_device(device_id: str) -> list[SpaceDevice]:
    """Takes another device out of the space (its token stops working); the devices left."""
    return await _started().sync.remove_device(device_id)


@api.exposed
async def leave_space() -> SyncStatus:
    return await _started().sync.leave()


@api.exposed
async def conflicts() -> list[Conflict]:
    return conflicts_json(_running().state)


@api.exposed
async def resolve_conflict(conflict_id: str, op_id: str) -> SyncStatus:
    session = _started()
    await session.agent.resolve(conflict_id, op_id)
    return session.sync.status()


# -- server help -------------------------------------------------------------------------------


@api.exposed
async def settings() -> RouterSettings:
    """Whether (the user's consent) and when (below the threshold) the server's model is
    asked."""
    return _running().settings


@api.exposed
async def set_settings(changes: SettingsChanges) -> RouterSettings:
    return await _running().set_settings(dict(changes))


@api.exposed
async def stats() -> Stats:
    """Fallback rate, server latency p50/p95, device/server agreement, queue length."""
    return cast(Stats, _running().stats())


# -- the model and diagnostics -------------------------------------------------------------


@api.exposed
async def embed(texts: list[Text]) -> list[list[float]]:
    """Embeddings of texts (one model run each), as arrays of numbers."""
    encoder = _loaded()
    return [(await encoder.embed(text)).tolist() for text in texts]


@api.exposed
async def tokenize(texts: list[Text]) -> list[list[int]]:
    encoder = _loaded()
    return [encoder.tokenizer.encode(text) for text in texts]


@api.exposed
async def embedding_latency(texts: list[Text], warmup_s: float, seconds: float) -> list[float]:
    """Text → embedding latency measured inside the worker (ms per call), after a warm-up."""
    return await diagnostics.embedding_latency(_loaded(), texts, warmup_s, seconds)


@api.exposed
async def note_search_latency(queries: list[Text], seconds: float) -> list[float]:
    """Milliseconds per note search over all stored notes (the search step alone)."""
    return await diagnostics.note_search_latency(_running(), queries, seconds)


@api.exposed
async def environment() -> Environment:
    return cast(Environment, diagnostics.environment(_runtime()))


@api.exposed
async def run_model(model: bytes, feeds: dict[str, Tensor]) -> RunResult:
    """Run an ONNX model given as bytes on feeds ({name: {dtype, shape, data}})."""
    return cast(RunResult, await diagnostics.run_model(_runtime(), model, feeds))


@api.exposed
async def self_check() -> SelfCheck:
    """numpy, IndexedDB and the server, exercised from Python."""
    result = await diagnostics.self_check(_runtime(), _transport(), diagnostics.SELF_CHECK_DB)
    return cast(SelfCheck, result)
