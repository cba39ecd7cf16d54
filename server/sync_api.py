"""Sync routes: spaces, pairing, devices, and the push/pull exchange of ops.

A *space* holds the data of one user; each of the user's devices is paired into
it with a pairing code and then syncs with a bearer token:

    POST /api/v1/spaces                          → 201 {space_id, pairing_code}
    POST /api/v1/devices {pairing_code, name}    → 201 {device_id, space_id, token}
    POST /api/v1/spaces/{id}/pairing-code        → 201 {space_id, pairing_code} (revokes the old)
    POST /api/v1/sync {cursor, ops}              → {acked, ops, cursor, has_more}
    GET  /api/v1/spaces/{id}/state?limit&after   → {space_id, seq, records, conflicts, next}
    GET  /api/v1/spaces/{id}/events              → a Server-Sent Events stream of the
                                                   space's newest cursor (``server.live``)

Secrets are stored only as sha256: a pairing code carries 80 random bits and a
token 256, so a fast hash is enough (nothing to brute-force offline), and the
failed-pairing limit per client IP stops guessing online.

``/state`` answers the merged state a page at a time: up to ``limit`` records (at most
and by default the ``state_page_size`` setting) in (collection, record_id) order, with
their conflicts, and ``next``, the opaque cursor to pass as ``after`` for the following
page (null on the last). Each page is built at the newest op, ``seq``: a client that
wants one consistent snapshot reads the pages again if ``seq`` changed between them. A
small space is one page. The pages are built in a worker process
(``server.state_worker``) that keeps the merged spaces, sent by seq the stored ops it
lacks, so neither a large space nor its rebuild after a restart holds up other requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from py_agent.sync.hlc import DEFAULT_MAX_DRIFT_MS, WALL_DIGITS
from py_agent.sync.merge import RecordKey
from py_agent.sync.ops import Op, OpError

from .api import BEARER_CHALLENGE, ApiError, bearer_token
from .live import PING_S, SEND_TIMEOUT_S, Listener, SpaceChanges, TooManyStreams
from .settings import Settings
from .state_worker import StateWorker, WorkerUnavailable, decode_cursor
from .store import (
    CursorAheadError,
    Device,
    OpConflictError,
    Page,
    QuotaExceeded,
    StorageUnavailable,
    SyncStore,
)

log = logging.getLogger("py_agent.server.sync")

Clock = Callable[[], float]

MAX_OPS_PER_PUSH = 1000
# Crockford's base32: digits and capitals without I, L, O, U, so a code read
# aloud or typed from a phone cannot be misread; 16 characters are 80 bits.
PAIRING_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PAIRING_GROUPS, PAIRING_GROUP_SIZE = 4, 4
_PAIRING_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})
_CURSOR = re.compile(r"[0-9]{1,18}")
_OP_FIELD = re.compile(r"\.[a-z_]+(?:\[[0-9]+\])?")
DEVICE_NAME_MAX = 64
WORKER_RETRY_AFTER_S = 5  # a state worker that died is replaced at the next read
# The live stream ends its lines with "\n" alone, so the page's reader
# (web/src/live_sync.js) splits on one separator.
EVENT_SEP = "\n"


# -- secrets ---------------------------------------------------------------------------


def new_pairing_code() -> str:
    chars = [secrets.choice(PAIRING_ALPHABET) for _ in range(PAIRING_GROUPS * PAIRING_GROUP_SIZE)]
    groups = [
        "".join(chars[i : i + PAIRING_GROUP_SIZE]) for i in range(0, len(chars), PAIRING_GROUP_SIZE)
    ]
    return "-".join(groups)


def normalise_pairing_code(text: str) -> str | None:
    """The code's 16 characters, forgiving case, spaces, dashes and O/I/L for 0/1."""
    code = text.upper().translate(_PAIRING_TYPOS)
    if len(code) != PAIRING_GROUPS * PAIRING_GROUP_SIZE or not set(code) <= set(PAIRING_ALPHABET):
        return None
    return code


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_pairing_code_and_hash() -> tuple[str, str]:
    code = new_pairing_code()
    return code, sha256_hex(code.replace("-", ""))


# A device's "last seen" is written at most this often (seconds): a write per request
# would double the database's work.
SEEN_EVERY_S = 60.0


# -- limits ----------------------------------------------------------------------------


class TokenBuckets:
    """A token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)

    def take(self, key: str, *, spend: bool = True) -> float:
        """0 if the key may go ahead (a token is spent, unless ``spend`` is False), else
        seconds until it may."""
        now = self.clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0 if spend else tokens, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


class FailureWindow:
    """Failures per key over the last ``window`` seconds; ``limit`` of them block the key."""

    SWEEP_AT = 10_000  # keys held before the stale ones are dropped

    def __init__(self, limit: int, window: float, clock: Clock) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def attempt(self, key: str) -> tuple[float, float]:
        """Start an attempt: ``(0, stamp)`` if the key may try, counted as a failure at once
        (``forgive(key, stamp)`` takes it back if it succeeds); else ``(seconds until the
        oldest failure ages out, 0)``. Checking and counting in one step, with no await
        between, is what keeps a concurrent burst to the limit: counting only after a
        failed attempt let every attempt in flight through."""
        now = self.clock()
        failures = self._recent(key, now)
        if len(failures) >= self.limit:
            return failures[0] + self.window - now, 0.0
        failures.append(now)
        if len(self._failures) > self.SWEEP_AT:
            for stale in [k for k, f in self._failures.items() if f[-1] <= now - self.window]:
                del self._failures[stale]
        return 0.0, now

    def forgive(self, key: str, stamp: float) -> None:
        """An attempt that did not fail: its provisional failure is taken back."""
        failures = self._failures.get(key)
        if failures is not None and stamp in failures:
            failures.remove(stamp)
            if not failures:
                del self._failures[key]  # keeps the table to keys that failed lately


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


# -- the service the routes share --------------------------------------------------------


@dataclass
class SyncService:
    settings: Settings
    store: SyncStore
    clock: Clock = time.monotonic  # rate limits
    wall_clock: Clock = time.time  # expiry of pairing codes, stored timestamps
    state_worker: StateWorker = field(init=False)  # builds the /state pages
    changes: SpaceChanges = field(init=False)  # the live streams
    sync_limit: TokenBuckets = field(init=False)  # per device
    pairing_failures: FailureWindow = field(init=False)  # per client address
    space_limit: TokenBuckets = field(init=False)  # per client address
    state_limit: TokenBuckets = field(init=False)  # GET /state per device
    all_spaces_limit: TokenBuckets = field(init=False)  # every client together

    async def saw(self, device: Device) -> None:
        """Notes that the device was heard from, at most once a minute each (a write)."""
        now = self.clock()
        if now - self._seen.get(device.device_id, -math.inf) < SEEN_EVERY_S:
            return
        self._seen[device.device_id] = now
        # A full disk must not stop reads; it is logged where a write is refused.
        with contextlib.suppress(StorageUnavailable):
            await self.store.seen(device.device_id, self.wall_clock())

    def __post_init__(self) -> None:
        s = self.settings
        self._seen: dict[str, float] = {}
        self.state_worker = StateWorker(self.store, s.replica_cache_bytes)
        self.changes = SpaceChanges(s.live_streams_per_device, s.live_streams_per_space)
        self.sync_limit = TokenBuckets(s.sync_rate_per_s, s.sync_burst, self.clock)
        self.state_limit = TokenBuckets(
            s.state_reads_per_min / 60.0, s.state_reads_per_min, self.clock
        )
        self.space_limit = TokenBuckets(s.spaces_per_min / 60.0, s.spaces_per_min, self.clock)
        self.all_spaces_limit = TokenBuckets(
            s.spaces_per_min_total / 60.0, s.spaces_per_min_total, self.clock
        )
        self.pairing_failures = FailureWindow(s.pairing_failures_per_min, 60.0, self.clock)


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


def service(request: Request) -> SyncService:
    return cast(SyncService, request.app.state.sync)


# -- request helpers ---------------------------------------------------------------------


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refusing more than ``limit`` bytes as soon as it is known."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise ApiError(400, f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise ApiError(413, f"request body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # a chunked body, or one longer than it declared
                raise ApiError(413, f"request body is over the {limit}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "the client went away before sending the whole body") from None
    if size == 0:
        raise ApiError(400, "request body is empty: expected a JSON object")
    try:
        return json.loads(b"".join(chunks), parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, "request body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def expect_object(
    value: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(422, f"request body must be a JSON object, got {_json_type(value)}")
    for name in required:
        if name not in value:
            raise ApiError(422, f"{name!r} is required", field=name)
    for name in value:
        if name not in required and name not in optional:
            expected = ", ".join(repr(n) for n in (*required, *optional))
            raise ApiError(422, f"unexpected field {name!r} (expected {expected})", field=name)
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    return names.get(type(value), "an array" if isinstance(value, list) else "an object")


async def authenticate(request: Request) -> Device:
    svc = service(request)
    token = bearer_token(request, "pair the device with POST /api/v1/devices to get a token")
    device = await svc.store.device_by_token_hash(sha256_hex(token))
    if device is None:
        raise ApiError(
            401,
            "unknown device token: pair this device again (it may have been removed from "
            "its space)",
            headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_token"'},
        )
    await svc.saw(device)
    return device


async def device_of_space(request: Request) -> Device:
    """The authenticated device, refused unless it belongs to the space in the path."""
    device = await authenticate(request)
    if device.space_id != request.path_params["space_id"]:
        raise ApiError(403, "this device belongs to another space")
    return device


def parse_cursor(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, str) or not _CURSOR.fullmatch(value):
        raise ApiError(
            422,
            "'cursor' must be null (a device's first sync) or the cursor string "
            "the previous /sync answered",
            field="cursor",
        )
    return int(value)


def parse_ops(value: Any, device: Device, now_s: float) -> list[Op]:
    """The pushed ops, validated. ``now_s`` is the server's wall clock: an op stamped more
    than a day ahead of it is refused, because every device observing it on pull would
    refuse it too (its clock must not be dragged into the future) and sync would stall."""
    if not isinstance(value, list):
        raise ApiError(422, f"'ops' must be an array, got {_json_type(value)}", field="ops")
    if len(value) > MAX_OPS_PER_PUSH:
        raise ApiError(
            422,
            f"'ops' holds {len(value)} ops; push at most {MAX_OPS_PER_PUSH} per request",
            field="ops",
        )
    ops: list[Op] = []
    for index, item in enumerate(value):
        where = f"ops[{index}]"
        try:
            op = Op.from_json(item, where=where)
        except OpError as exc:
            raise ApiError(422, str(exc), field=_op_error_field(exc, where)) from None
        if op.device_id != device.device_id:
            raise ApiError(
                422,
                f"{where}.device_id is {op.device_id!r} but the request is authenticated "
                f"as device {device.device_id!r}: a device pushes only its own ops",
                field=f"{where}.device_id",
            )
        # Op checked the hlc, so it starts with the wall-clock ms in WALL_DIGITS digits.
        ahead_ms = int(op.hlc[:WALL_DIGITS]) - now_s * 1000
        if ahead_ms > DEFAULT_MAX_DRIFT_MS:
            raise ApiError(
                422,
                f"{where}.hlc is {ahead_ms / 3_600_000:.0f} h ahead of the server's clock: "
                "fix this device's clock, then sync again",
                field=f"{where}.hlc",
            )
        ops.append(op)
    return ops


def _op_error_field(exc: OpError, where: str) -> str:
    """The field an ``OpError`` message starts with: ``ops[3].hlc must be …``,
    ``ops[3] is missing hlc``, ``ops[3].parents[1] must …``, ``ops[3] must be …``."""
    message = str(exc).removeprefix(where)
    named = _OP_FIELD.match(message)
    if named:
        return where + named.group(0)
    missing = re.match(r" (?:is missing|has unknown fields) ([^,\s]+)", message)
    return f"{where}.{missing.group(1)}" if missing else where


# -- routes ------------------------------------------------------------------------------


async def create_space(request: Request) -> JSONResponse:
    svc = service(request)
    client = request.client.host if request.client else "unknown"
    # Spaces are free to make, and each comes with devices and their sync budgets: limited
    # per address, and for everyone together, so many addresses can't make them unbounded.
    limits = ((svc.space_limit, client, "this address"), (svc.all_spaces_limit, "*", "everyone"))
    for limit, key, whose in limits:  # a refusal spends from neither
        wait = limit.take(key, spend=False)
        if wait > 0:
            raise ApiError(
                429,
                f"too many spaces created lately by {whose}; try again later",
                headers=retry_after_header(wait),
            )
    for limit, key, _ in limits:
        limit.take(key)
    space_id = secrets.token_hex(16)
    code, code_hash = new_pairing_code_and_hash()
    now = svc.wall_clock()
    await svc.store.create_space(space_id, code_hash, now, now + svc.settings.pairing_code_ttl_s)
    log.info("created space %s", space_id)
    return JSONResponse({"space_id": space_id, "pairing_code": code}, status_code=201)


async def new_pairing_code_route(request: Request) -> JSONResponse:
    svc = service(request)
    device = await device_of_space(request)
    code, code_hash = new_pairing_code_and_hash()
    now = svc.wall_clock()
    await svc.store.replace_pairing_code(
        device.space_id, code_hash, now, now + svc.settings.pairing_code_ttl_s
    )
    return JSONResponse({"space_id": device.space_id, "pairing_code": code}, status_code=201)


async def add_device(request: Request) -> JSONResponse:
    svc = service(request)
    client = request.client.host if request.client else "unknown"
    wait, stamp = svc.pairing_failures.attempt(client)
    if wait > 0:
        raise ApiError(
            429,
            "too many failed pairing attempts from this address; try again later",
            headers=retry_after_header(wait),
        )
    try:
        response = await _pair(request, svc)
    except ApiError as exc:
        if exc.status_code not in (400, 403, 413, 422):  # not the client's failure
            svc.pairing_failures.forgive(client, stamp)
        raise
    except Exception:
        svc.pairing_failures.forgive(client, stamp)
        raise
    svc.pairing_failures.forgive(client, stamp)
    return response


async def _pair(request: Request, svc: SyncService) -> JSONResponse:
    body = expect_object(
        await read_json(request, svc.settings.max_body_bytes), ("pairing_code", "name")
    )
    raw_code, name = body["pairing_code"], body["name"]
    if not isinstance(raw_code, str):
        raise ApiError(422, "'pairing_code' must be a string", field="pairing_code")
    if (
        not isinstance(name, str)
        or not 1 <= len(name.strip()) <= DEVICE_NAME_MAX
        or not name.isprintable()
    ):
        raise ApiError(
            422,
            f"'name' must be a string of 1 to {DEVICE_NAME_MAX} printable characters",
            field="name",
        )
    code = normalise_pairing_code(raw_code)
    if code is None:
        raise ApiError(
            403,
            "that is not a pairing code: it has 16 letters and digits, like ABCD-EFGH-JKMN-PQRS",
        )
    pairing = await svc.store.pairing_code(sha256_hex(code))
    now = svc.wall_clock()
    if pairing is None:
        raise ApiError(403, "pairing code not recognised: check it, or make a new one")
    if pairing.revoked:
        raise ApiError(403, "pairing code was replaced by a newer one: use the new code")
    if pairing.expires_at <= now:
        raise ApiError(
            403, "pairing code has expired: make a new one on a device that is already paired"
        )
    device_id, token = secrets.token_hex(8), secrets.token_urlsafe(32)
    limit = svc.settings.devices_per_pairing_code
    paired = await svc.store.add_device(
        pairing.space_id,
        device_id,
        name.strip(),
        sha256_hex(token),
        now,
        code_hash=sha256_hex(code),
        max_uses=limit,
    )
    if not paired:
        raise ApiError(
            403,
            f"pairing code has paired {limit} devices, its limit: make a new one on a device "
            "that is already paired",
        )
    log.info("paired device %s into space %s", device_id, pairing.space_id)
    return JSONResponse(
        {"device_id": device_id, "space_id": pairing.space_id, "token": token}, status_code=201
    )


def spend(limit: TokenBuckets, key: str, refusal: str) -> None:
    """A token of ``key``'s bucket, or 429 saying ``refusal`` and when to try again."""
    wait = limit.take(key)
    if wait > 0:
        raise ApiError(429, refusal, headers=retry_after_header(wait))


def spend_sync_token(svc: SyncService, device: Device) -> None:
    """One of the device's sync requests (or live streams opened), refused with 429 when it
    has none left."""
    spend(svc.sync_limit, device.device_id, "too many sync requests from this device; slow down")


async def sync(request: Request) -> Response:
    svc = service(request)
    device = await authenticate(request)
    spend_sync_token(svc, device)
    body = expect_object(await read_json(request, svc.settings.max_body_bytes), ("cursor", "ops"))
    after = parse_cursor(body["cursor"])
    ops = parse_ops(body["ops"], device, svc.wall_clock())
    # Pull before push: the page holds only other devices' ops, so the push cannot
    # change it, and a cursor refused here leaves the push unstored.
    try:
        page = await svc.store.pull(
            device.space_id, device.device_id, after, svc.settings.sync_page_size
        )
    except CursorAheadError as exc:
        raise ApiError(422, str(exc), field="cursor") from None
    acked: list[str] = []
    if ops:
        try:
            pushed = await svc.store.push(device.space_id, device.device_id, ops, svc.wall_clock())
        except OpConflictError as exc:
            raise ApiError(
                422, f"ops[{exc.index}].op_id: {exc}", field=f"ops[{exc.index}].op_id"
            ) from None
        except QuotaExceeded as exc:
            raise ApiError(413, f"the space is full: {exc}") from None
        acked = pushed.acked
        if pushed.new:
            last_seq = pushed.first_seq + len(pushed.new) - 1
            svc.changes.publish(device.space_id, last_seq)
            # The page ran up to the head, and this push's ops follow on from it: the
            # device has every op up to its own last one, so its cursor moves past its
            # own ops and the change its push announced does not send it pulling again.
            if not page.has_more and pushed.first_seq == page.last_seq + 1:
                page = page._replace(last_seq=last_seq)
    return sync_answer(acked, page)


def sync_answer(acked: list[str], page: Page) -> Response:
    """The /sync answer ``{acked, ops, cursor, has_more}``, as JSONResponse would render it.
    The stored ops are canonical JSON already, so they are copied in as text: parsing
    and re-encoding them was most of the cost of a pull."""
    acked_json = json.dumps(acked, ensure_ascii=False, separators=(",", ":"))
    ops_json = ",".join(stored.body for stored in page.ops)
    has_more = "true" if page.has_more else "false"
    text = (
        f'{{"acked":{acked_json},"ops":[{ops_json}],'
        f'"cursor":"{page.last_seq}","has_more":{has_more}}}'
    )
    return Response(text.encode(), media_type="application/json")


async def space_state(request: Request) -> Response:
    """A page of the merged state, built in the worker process (a large space took
    seconds, which on the server's event loop, or a thread of it, stalled every other
    request), and limited per device."""
    svc = service(request)
    device = await device_of_space(request)
    limit = parse_page_limit(request.query_params.get("limit"), svc.settings.state_page_size)
    after = parse_after(request.query_params.get("after"))
    spend(svc.state_limit, device.device_id, "too many state reads from this device; slow down")
    try:
        body = await svc.state_worker.page(device.space_id, after, limit)
    except WorkerUnavailable as exc:
        raise ApiError(503, str(exc), headers=retry_after_header(WORKER_RETRY_AFTER_S)) from None
    return Response(body, media_type="application/json")


def parse_page_limit(value: str | None, most: int) -> int:
    if value is None:
        return most
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= most):
        raise ApiError(
            422, f"'limit' must be a whole number of records from 1 to {most}", field="limit"
        )
    return int(value)


def parse_after(value: str | None) -> RecordKey | None:
    if value is None:
        return None
    key = decode_cursor(value)
    if key is None:
        raise ApiError(
            422,
            "'after' must be the 'next' cursor of the previous page, as it was given",
            field="after",
        )
    return key


async def space_events(request: Request) -> Response:
    """The live stream: authenticated like /sync, and opening one spends a sync token,
    so a device reconnecting in a loop is slowed down like one syncing in a loop."""
    svc = service(request)
    device = await device_of_space(request)
    spend_sync_token(svc, device)
    try:
        listener = svc.changes.open(device.space_id, device.device_id)
    except TooManyStreams as exc:
        raise ApiError(429, str(exc), headers=retry_after_header(PING_S)) from None
    # Read after the listener is open: a push committed in between is either in this
    # cursor or published to the listener, never in neither.
    try:
        head = await svc.store.last_seq(device.space_id)
    except BaseException:
        svc.changes.close(listener)
        raise
    listener.cursor = max(listener.cursor, head)
    listener.changed.clear()
    return EventSourceResponse(
        _changes(svc.changes, listener),
        ping=PING_S,
        send_timeout=SEND_TIMEOUT_S,
        sep=EVENT_SEP,
        # The generator's own cleanup does not run when it never started (a HEAD request,
        # or a client gone before the first event); this does.
        background=BackgroundTask(svc.changes.close, listener),
    )


async def _changes(changes: SpaceChanges, listener: Listener) -> AsyncIterator[ServerSentEvent]:
    try:
        cursor: int | None = listener.cursor
        while cursor is not None:
            yield ServerSentEvent(str(cursor), event="changed", id=str(cursor), sep=EVENT_SEP)
            cursor = await changes.next(listener)
    finally:
        changes.close(listener)


async def list_devices(request: Request) -> JSONResponse:
    svc = service(request)
    me = await authenticate(request)
    devices = await svc.store.devices(me.space_id)
    return JSONResponse(
        {
            "space_id": me.space_id,
            "devices": [
                {
                    "device_id": device.device_id,
                    "name": device.name,
                    "created_at": _iso(device.created_at),
                    "last_seen": _iso(device.last_seen),
                    "this_device": device.device_id == me.device_id,
                }
                for device in devices
            ],
        }
    )


async def _device_of_my_space(request: Request) -> tuple[SyncService, Device, Device]:
    """The caller and the device named in the path, refused unless both share a space."""
    svc = service(request)
    me = await authenticate(request)
    device_id = request.path_params["device_id"]
    other = await svc.store.device(device_id)
    if other is None:
        raise ApiError(404, f"there is no device {device_id!r} (it may be removed already)")
    if other.space_id != me.space_id:
        raise ApiError(403, "that device belongs to another space")
    return svc, me, other


async def remove_device(request: Request) -> Response:
    """Any device of a space can remove any (itself too): its token stops working at once,
    its live streams end; what it synced stays."""
    svc, me, other = await _device_of_my_space(request)
    await svc.store.remove_device(other.device_id)
    svc.changes.drop_device(other.space_id, other.device_id)
    log.info(
        "device %s removed device %s from space %s", me.device_id, other.device_id, me.space_id
    )
    return Response(status_code=204)


async def replace_token(request: Request) -> JSONResponse:
    """A device's new token; the old one stops working at once."""
    svc, me, other = await _device_of_my_space(request)
    if other.device_id != me.device_id:
        raise ApiError(403, "a device can replace only its own token")
    token = secrets.token_urlsafe(32)
    await svc.store.replace_token(me.device_id, sha256_hex(token))
    return JSONResponse({"device_id": me.device_id, "token": token}, status_code=201)


routes = [
    Route("/spaces", create_space, methods=["POST"]),
    Route("/spaces/{space_id}/pairing-code", new_pairing_code_route, methods=["POST"]),
    Route("/spaces/{space_id}/state", space_state, methods=["GET"]),
    Route("/spaces/{space_id}/events", space_events, methods=["GET"]),
    Route("/devices", add_device, methods=["POST"]),
    Route("/devices", list_devices, methods=["GET"]),
    Route("/devices/{device_id}", remove_device, methods=["DELETE"]),
    Route("/devices/{device_id}/token", replace_token, methods=["POST"]),
    Route("/sync", sync, methods=["POST"]),
]
