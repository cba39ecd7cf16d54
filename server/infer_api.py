"""The hybrid path's server side: a device unsure of an utterance asks the server's model.

    POST /api/v1/installs                         → 201 {install_id, token}
    POST /api/v1/infer {text, now, tz?, locale?}  → 200 {intent, confidence, slots, answer,
                                                         model, reader}

Only the utterance travels (with the device's local time, for due dates); the device acts on
the answer itself. ``Authorization: Bearer <token>`` takes a paired device's sync token or,
for a device that never paired, an install token from POST /installs.

Who reads the utterance (``reader``):

- ``"model"``: the server model. ``confidence`` is its calibrated probability of ``intent``,
  ``slots`` are py_agent's own (`py_agent.slots.slots_json`), ``model`` names its head.
- ``"backend"``: the generative backend's structured reading (server/structured.py), asked
  only when the server model's confidence is under READING_BELOW and the app has a backend
  (``app.state.structured``). ``slots`` are the backend's, validated by
  `py_agent.slots.parse_slots_json`; ``confidence`` is the backend's own when it gave one
  in [0, 1], else the server model's probability of that intent; ``model`` is
  ``"<server head> + <backend model>"``. A reading that fails in any way leaves the
  server model's, and the request is answered all the same.

``slots`` have the JSON shape `py_agent.slots.slots_json` documents for the intent, either
way. ``answer`` is a free-text reply to an out_of_scope utterance, else null: from the
structured reading when one was asked for, else from ``app.state.answer`` (an async
``text -> str | None``) when the server model read out_of_scope. One backend call per
request at most: after a structured reading was asked for (used, failed or busy), no answer
is asked separately.

Errors: 400 for a body that is not JSON, 413 for a body over ``infer_max_body_bytes``, 422
naming the field for anything else wrong in it (``text`` missing, not a string, blank or over
2,000 characters; ``now`` not an ISO time with a UTC offset; ``tz`` or ``locale`` malformed),
401 without a valid token, 429 with Retry-After past the per-token rate, 503 while the server
model is not built.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from py_agent.agent import MAX_TEXT_CHARS
from py_agent.dates import NowError, parse_now
from py_agent.intents import IntentPrediction
from py_agent.slots import slots_json

from .api import BEARER_CHALLENGE, ApiError, bearer_token
from .inference import Batcher, InferenceThread, ModelUnavailable, ServerModel, load_server_model
from .installs import InstallStore
from .metrics import InferMetrics
from .settings import Settings
from .store import SyncStore
from .structured import Reading, ReadingFailed, StructuredReader
from .sync_api import (
    Clock,
    TokenBuckets,
    expect_object,
    read_json,
    retry_after_header,
    sha256_hex,
)

log = logging.getLogger("py_agent.server.infer")

Loader = Callable[[Path, int], Awaitable[ServerModel]]
Answer = Callable[[str], Awaitable[str | None]]

# An IANA zone name ("Europe/Paris", "America/Argentina/Buenos_Aires", "UTC", "Etc/GMT+5").
_TZ = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,3}")
# A BCP 47 language tag ("en", "en-GB", "zh-Hant-TW"); "_" too, as POSIX locales write it.
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
TZ_MAX, LOCALE_MAX = 64, 35
# After a failed load, requests answer 503 from memory for this long before loading again,
# so a broken model file is not re-read and re-hashed for every request.
RETRY_LOAD_S = 10.0


@dataclass
class InferService:
    settings: Settings
    sync_store: SyncStore
    installs: InstallStore
    registry: CollectorRegistry
    clock: Clock = time.monotonic
    wall_clock: Clock = time.time
    loader: Loader = load_server_model
    """Replaceable before the first request (tests wrap the real model)."""
    metrics: InferMetrics = field(init=False)
    limit: TokenBuckets = field(init=False)  # per token
    install_limit: TokenBuckets = field(init=False)  # per client address
    _thread: InferenceThread | None = field(default=None, init=False)
    _batcher: Batcher | None = field(default=None, init=False)
    _load_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _failure: tuple[str, float] | None = field(default=None, init=False)  # message, until

    def __post_init__(self) -> None:
        s = self.settings
        self.metrics = InferMetrics(self.registry)
        self.limit = TokenBuckets(s.infer_rate_per_s, s.infer_burst, self.clock)
        self.install_limit = TokenBuckets(s.installs_per_min / 60.0, s.installs_per_min, self.clock)

    @property
    def model_name(self) -> str:
        return "none" if self._batcher is None else self._batcher.model.name

    async def batcher(self) -> Batcher:
        """The batcher over the loaded model, loading it first if needed; raises
        ModelUnavailable when it cannot be loaded."""
        if self._batcher is not None:
            return self._batcher
        async with self._load_lock:
            if self._batcher is not None:
                return self._batcher
            if self._failure is not None and self.clock() < self._failure[1]:
                raise ModelUnavailable(self._failure[0])
            if self._thread is None:
                self._thread = InferenceThread()
            # Loading reads, hashes and compiles ~90 MB: on the inference thread too.
            try:
                model = await self._thread.run(
                    self.loader(self.settings.models_dir, self.settings.infer_threads)
                )
            except ModelUnavailable as exc:
                self._failure = (str(exc), self.clock() + RETRY_LOAD_S)
                raise
            self._failure = None
            name = model.name
            self._batcher = Batcher(
                model,
                self._thread,
                max_batch=self.settings.infer_max_batch,
                on_batch=lambda size: self.metrics.batch_size.labels(name).observe(size),
                on_queue=self.metrics.queue_depth.set,
            )
            log.info("server model %s loaded", name)
            return self._batcher

    async def preload(self) -> None:
        """Loads the model ahead of the first request; a failure is only logged (requests
        answer 503 with the reason until the model is built)."""
        try:
            await self.batcher()
        except ModelUnavailable as exc:
            log.warning("%s", exc)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.close()
            self._thread = None


def service(request: Request) -> InferService:
    return cast(InferService, request.app.state.infer)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def create_install(request: Request) -> JSONResponse:
    svc = service(request)
    wait = svc.install_limit.take(client_address(request))
    if wait > 0:
        raise ApiError(
            429,
            "too many installs registered from this address; try again later",
            headers=retry_after_header(wait),
        )
    install_id, token = secrets.token_hex(8), secrets.token_urlsafe(32)
    await svc.installs.add(install_id, sha256_hex(token), svc.wall_clock())
    svc.metrics.installs.inc()
    return JSONResponse({"install_id": install_id, "token": token}, status_code=201)


async def caller(request: Request, svc: InferService) -> str:
    """``install:<id>`` or ``device:<id>`` for the request's bearer token, else a 401."""
    token = bearer_token(
        request,
        "a paired device's token, or an install token from POST /api/v1/installs",
    )
    token_hash = sha256_hex(token)
    install_id = await svc.installs.install_by_token_hash(token_hash)
    if install_id is not None:
        return f"install:{install_id}"
    device = await svc.sync_store.device_by_token_hash(token_hash)
    if device is not None:
        return f"device:{device.device_id}"
    raise ApiError(
        401,
        "unknown token: register with POST /api/v1/installs or pair the device again",
        headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_token"'},
    )


@dataclass(frozen=True)
class InferRequest:
    text: str
    now: datetime
    tz: str | None


def parse_request(body: Any) -> InferRequest:
    body = expect_object(body, ("text", "now"), ("tz", "locale"))
    text = body["text"]
    if not isinstance(text, str):
        raise ApiError(422, "'text' must be a string", field="text")
    if not text.strip():
        raise ApiError(422, "'text' is empty: send the utterance to understand", field="text")
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(
            422,
            f"'text' is {len(text)} characters; the limit is {MAX_TEXT_CHARS}",
            field="text",
        )
    try:
        now = parse_now(body["now"])
    except NowError as exc:
        raise ApiError(422, f"'now' {exc}", field="now") from None
    for name, pattern, limit, example in (
        ("tz", _TZ, TZ_MAX, "Europe/Paris"),
        ("locale", _LOCALE, LOCALE_MAX, "en-GB"),
    ):
        value = body.get(name)
        if value is not None and not (
            isinstance(value, str) and len(value) <= limit and pattern.fullmatch(value)
        ):
            raise ApiError(422, f"{name!r} must be null or a string like {example!r}", field=name)
    return InferRequest(text, now, body.get("tz"))


async def structured_reading(
    svc: InferService, reader: StructuredReader, parsed: InferRequest
) -> Reading | None:
    """The backend's reading, or None (counted by reason, logged without the user's words)
    when there is none to use: nothing about the backend ever makes /infer fail."""
    svc.metrics.readings_attempted.inc()
    try:
        reading = await reader.read(parsed.text, parsed.now, parsed.tz)
    except ReadingFailed as exc:
        svc.metrics.readings_failed.labels(exc.reason).inc()
        log.warning(
            "%s: structured reading not used (%s): %s", reader.client.where, exc.reason, exc
        )
        return None
    except Exception as exc:
        # A bug on this side. Its message may quote the reading, so only where it was.
        svc.metrics.readings_failed.labels("error").inc()
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "structured reading failed: %s at %s:%s",
            type(exc).__name__,
            frame.filename,
            frame.lineno,
        )
        return None
    svc.metrics.readings_used.inc()
    return reading


async def generative_answer(
    request: Request, prediction: IntentPrediction, text: str
) -> str | None:
    answer: Answer | None = getattr(request.app.state, "answer", None)
    if answer is None or prediction.intent != "out_of_scope":
        return None
    try:
        return await answer(text)
    except Exception:  # the intent is still worth answering without the backend's words
        log.exception("the generative backend failed")
        return None


OUTCOMES = {
    400: "invalid",
    413: "invalid",
    422: "invalid",
    401: "unauthorized",
    429: "rate_limited",
    503: "unavailable",
}


async def infer(request: Request) -> JSONResponse:
    svc = service(request)
    started = time.perf_counter()
    try:
        response = await _infer(request, svc)
    except ApiError as exc:
        outcome = OUTCOMES.get(exc.status_code, "error")
        svc.metrics.requests.labels(svc.model_name, outcome).inc()
        raise
    except Exception:
        svc.metrics.requests.labels(svc.model_name, "error").inc()
        raise
    svc.metrics.requests.labels(svc.model_name, "ok").inc()
    svc.metrics.latency.labels(svc.model_name).observe(time.perf_counter() - started)
    return response


async def _infer(request: Request, svc: InferService) -> JSONResponse:
    who = await caller(request, svc)
    wait = svc.limit.take(who)
    if wait > 0:
        raise ApiError(
            429,
            "too many inference requests with this token; slow down",
            headers=retry_after_header(wait),
        )
    parsed = parse_request(await read_json(request, svc.settings.infer_max_body_bytes))
    try:
        batcher = await svc.batcher()
    except ModelUnavailable as exc:
        raise ApiError(503, str(exc), headers=retry_after_header(RETRY_LOAD_S)) from None
    prediction = await batcher.predict(parsed.text)
    reader: StructuredReader | None = getattr(request.app.state, "structured", None)
    if reader is not None and reader.wanted(prediction.confidence):
        reading = await structured_reading(svc, reader, parsed)
        if reading is not None:
            confidence = reading.confidence
            if confidence is None:
                confidence = prediction.probabilities.get(reading.intent, 0.0)
            return JSONResponse(
                {
                    "intent": reading.intent,
                    "confidence": round(confidence, 6),
                    "slots": reading.slots,
                    "answer": reading.answer,
                    "model": f"{batcher.model.name} + {reader.model}",
                    "reader": "backend",
                }
            )
        answer = None  # the backend was just asked (or is busy): not twice per request
    else:
        answer = await generative_answer(request, prediction, parsed.text)
    return JSONResponse(
        {
            "intent": prediction.intent,
            "confidence": round(prediction.confidence, 6),
            "slots": slots_json(prediction.intent, parsed.text, parsed.now),
            "answer": answer,
            "model": batcher.model.name,
            "reader": "model",
        }
    )


routes = [
    Route("/installs", create_install, methods=["POST"]),
    Route("/infer", infer, methods=["POST"]),
]
