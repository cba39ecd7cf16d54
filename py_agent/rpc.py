"""What the web worker exposes to the page (web/src/worker.js).

JSON text in and out, so no Python or JS proxy outlives a call.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any

from . import diagnostics
from .agent import Agent, AgentError
from .device_sync import DeviceSync, ServerIdentity, conflicts_json
from .encoder import Encoder, EncoderError, load_encoder
from .intents import load_intent_head
from .platform import http_transport, inference_runtime
from .router import Router
from .state import open_state

# Relative to the worker: web/dist/models/, laid out by build.py.
MODELS_ROOT = "models"
# The IndexedDB database holding the user's data.
STATE_DB = "py_agent"

_runtime = inference_runtime()
_encoder: Encoder | None = None
_agent: Agent | None = None
_sync: DeviceSync | None = None
# Relative URLs: the worker's fetch resolves them against the origin it was served from.
_transport = http_transport("")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _texts(texts_json: str) -> list[str]:
    texts = json.loads(texts_json)
    if not isinstance(texts, list):
        raise EncoderError("texts must be a JSON array of strings")
    return texts


def _loaded() -> Encoder:
    if _encoder is None:
        raise EncoderError("the model is not loaded yet")
    return _encoder


async def load_model() -> str:
    """Load the encoder and intent head, open the user's data, and start the agent."""
    global _encoder, _agent, _sync
    _encoder = await load_encoder(MODELS_ROOT, _runtime)
    head = await load_intent_head(MODELS_ROOT)
    manifest = _encoder.manifest
    state = await open_state(STATE_DB, model=f"{manifest.name}/{manifest.version}")
    _agent = Agent(state, _encoder, head)
    _sync = DeviceSync(state, _transport, after_pull=_agent.prepare)
    _agent.sync = _sync.chat_reply
    _agent.router = Router(_transport, ServerIdentity(state, _sync))
    await _agent.prepare()
    return _dumps(
        {"name": manifest.name, "version": manifest.version, "dimension": _encoder.dimension}
    )


def _running() -> Agent:
    if _agent is None:
        raise AgentError("the agent is not started yet")
    return _agent


def _syncing() -> DeviceSync:
    if _sync is None:
        raise AgentError("the agent is not started yet")
    return _sync


def _now(now_iso: str) -> datetime:
    try:
        now = datetime.fromisoformat(now_iso)
    except (TypeError, ValueError) as exc:
        raise AgentError(f"now must be an ISO time with offset, got {now_iso!r}") from exc
    if now.tzinfo is None:
        raise AgentError(f"now must carry its UTC offset, got {now_iso!r}")
    return now


async def ask(text: str, now_iso: str) -> str:
    """One chat turn. ``now_iso`` is the user's local time with its UTC offset."""
    reply = await _running().handle(text, _now(now_iso))
    return _dumps(reply.to_json())


async def edit_record(
    collection: str, record_id: str, changes_json: str, now_iso: str | None = None
) -> str:
    """Change a task or note from the page; answers the updated record."""
    changes = json.loads(changes_json)
    now = datetime.now().astimezone() if now_iso is None else _now(now_iso)
    return _dumps(await _running().edit(collection, record_id, changes, now))


async def remove_record(collection: str, record_id: str) -> str:
    await _running().remove(collection, record_id)
    return _dumps({"removed": record_id})


async def conflicts() -> str:
    return _dumps(conflicts_json(_running().state))


async def resolve_conflict(conflict_id: str, op_id: str) -> str:
    await _running().resolve(conflict_id, op_id)
    return _dumps(_syncing().status())


async def sync_status() -> str:
    return _dumps(_syncing().status())


async def sync_run() -> str:
    return _dumps(await _syncing().run())


async def sync_create_space(device_name: str) -> str:
    return _dumps(await _syncing().create_space(device_name))


async def sync_join(pairing_code: str, device_name: str) -> str:
    return _dumps(await _syncing().join(pairing_code, device_name))


async def sync_new_pairing_code() -> str:
    return _dumps(await _syncing().new_pairing_code())


async def sync_leave() -> str:
    return _dumps(await _syncing().leave())


async def snapshot() -> str:
    return _dumps(_running().snapshot())


async def history() -> str:
    return _dumps(await _running().state.history())


async def embed(texts_json: str) -> str:
    encoder = _loaded()
    return _dumps([(await encoder.embed(text)).tolist() for text in _texts(texts_json)])


async def tokenize(texts_json: str) -> str:
    encoder = _loaded()
    return _dumps([encoder.tokenizer.encode(text) for text in _texts(texts_json)])


async def embedding_latency(texts_json: str, warmup_s: float, seconds: float) -> str:
    return _dumps(
        await diagnostics.embedding_latency(_loaded(), _texts(texts_json), warmup_s, seconds)
    )


async def note_search_latency(queries_json: str, seconds: float) -> str:
    return _dumps(await diagnostics.note_search_latency(_running(), _texts(queries_json), seconds))


async def environment() -> str:
    return _dumps(diagnostics.environment(_runtime))


async def run_model(model: bytes | memoryview, feeds_json: str) -> str:
    feeds = json.loads(feeds_json)
    if not isinstance(feeds, dict):
        raise diagnostics.FeedError("feeds must be a JSON object of {name: {dtype, shape, data}}")
    return _dumps(await diagnostics.run_model(_runtime, bytes(model), feeds))


async def self_check() -> str:
    return _dumps(await diagnostics.self_check(_runtime, _transport, diagnostics.SELF_CHECK_DB))


async def set_client(tz: str, locale: str) -> str:
    """The page's IANA time zone and locale, sent with requests the server is asked about."""
    router = _running().router
    if router is not None:
        router.tz = tz if isinstance(tz, str) and 0 < len(tz) <= 64 else "UTC"
        router.locale = locale if isinstance(locale, str) and 0 < len(locale) <= 35 else "en"
    return _dumps({"tz": tz, "locale": locale})


async def settings() -> str:
    return _dumps(asdict(_running().settings))


async def set_settings(changes_json: str) -> str:
    """``{"cloud_help": bool, "threshold": 0..1}``, either or both."""
    return _dumps(asdict(await _running().set_settings(json.loads(changes_json))))


async def stats() -> str:
    """Fallback rate, cloud latency p50/p95, local/cloud agreement, queue length."""
    return _dumps(_running().stats())


async def drain_queue() -> str:
    """Ask the server again about requests answered tentatively; answers how many new
    chat messages that made and how many requests are still queued."""
    agent = _running()
    added = await agent.drain(time.time(), random.random)
    return _dumps({"added": added, "queue": len(agent.state.queue)})


async def apply_proposal(message_id: str, now_iso: str) -> str:
    """Carry out the action a second opinion proposed."""
    reply = await _running().apply(message_id, _now(now_iso))
    return _dumps(reply.to_json())


async def export_data() -> str:
    """Every task and note in the export format (``py_agent.export``), as the file's text."""
    from . import export

    return export.export_data(_running().state).to_text()


async def import_data(json_text: str) -> str:
    """Merge an export file's text into the user's data, in one commit; answers
    ``{"summary": "imported 2 tasks and 1 note", ...}``. A bad file changes nothing and
    raises ``DataFormatError`` naming each problem."""
    from . import export

    agent = _running()
    data = export.parse_user_data(json_text)
    summary = await export.import_data(
        agent.state, data, _loaded().embed, datetime.now().astimezone()
    )
    return _dumps(summary.to_json())
