"""The device side of sync, sans-IO: a state machine fed by an injected transport.

``SyncClient.sync()`` pushes the device's outbox to ``POST /api/v1/sync`` in batches and
pulls the other devices' ops page by page, until nothing is left either way. All I/O goes
through two injected interfaces -- a ``SyncLog`` (the device's outbox, cursor and merged
state: IndexedDB in the browser, SQLite natively) and a ``Transport`` (fetch, httpx, or
the server app in-process in tests) -- and time and randomness are functions passed in,
so the same code runs in Pyodide and CPython and tests run without sleeping.

Never lose, never duplicate:

- an op leaves the outbox only after the server acknowledged it (an ack means the push
  was committed), so a push whose answer was lost is simply sent again and the server
  acknowledges it again without storing it twice;
- pulled ops and the new cursor are stored in one ``SyncLog.receive`` transaction, so a
  crash between them cannot skip ops; a page pulled twice is merged idempotently.

Failures, and what happens next (``status`` says what went wrong in words a user can act
on, and when the retry is due):

============================  ========  ==============================================
what happened                 state     next automatic attempt
============================  ========  ==============================================
no answer (offline)           offline   exponential backoff with full jitter
no answer in time (timeout)   error     exponential backoff with full jitter
5xx                           error     ``Retry-After`` if given, else backoff
429                           error     ``Retry-After`` if given, else backoff
413                           --        at once, with half the batch (down to 1 op)
401 / 403                     error     none: the device must be paired again
422, other 4xx                error     none: a bug, retrying would fail the same way
============================  ========  ==============================================

Backoff: the n-th consecutive failure (n = 0, 1, ...) waits
``random() * min(backoff_max_s, backoff_base_s * 2**n)`` ("full jitter"); a success
resets n. The client runs no timer itself: the host reads ``status.retry_at`` (or asks
``due()``) and calls ``sync()``.

``Retry-After`` (the server sends it with 429) is honoured when it is a number of seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from py_agent.platform.interfaces import HttpResponse, StoreError, Transport, TransportError

from .hlc import HLCError
from .ops import Op, OpError

SYNC_PATH = "/api/v1/sync"
_T = TypeVar("_T")
SyncState = Literal["synced", "pending", "syncing", "offline", "error"]


class SyncLog(Protocol):
    """Where the device keeps its side of sync (implemented over IndexedDB/SQLite later)."""

    async def pending(self, limit: int) -> list[Op]:
        """Up to ``limit`` ops of the outbox, oldest first."""
        ...

    async def pending_count(self) -> int: ...

    async def acknowledge(self, op_ids: Sequence[str]) -> None:
        """Remove acknowledged ops from the outbox (called only after the server acked them)."""
        ...

    async def cursor(self) -> str | None: ...

    async def receive(self, ops: Sequence[Op], cursor: str) -> None:
        """Apply pulled ops and store the new cursor in ONE transaction."""
        ...


@dataclass(frozen=True)
class SyncAccount:
    """A device's pairing: where it syncs, and as whom."""

    server_url: str  # "" = the origin the app was served from
    space_id: str
    device_id: str
    token: str

    def to_json(self) -> dict[str, str]:
        return {
            "server_url": self.server_url,
            "space_id": self.space_id,
            "device_id": self.device_id,
            "token": self.token,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SyncAccount:
        return cls(
            str(data["server_url"]),
            str(data["space_id"]),
            str(data["device_id"]),
            str(data["token"]),
        )


@dataclass(frozen=True)
class ClientStatus:
    state: SyncState
    pending: int
    retry_at: float | None  # when the next automatic attempt is due (None: none scheduled)
    error: str | None  # readable: "server error 503" (when it is retried is retry_at)
    last_synced_at: float | None


class _Stop(Exception):
    """Ends a sync run: ``state`` and ``message``; ``retry_after_s`` None means no retry."""

    def __init__(
        self, state: SyncState, message: str, *, retry: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.state = state
        self.message = message
        self.retry = retry
        self.retry_after_s = retry_after_s


class SyncClient:
    def __init__(
        self,
        log: SyncLog,
        transport: Transport,
        account: SyncAccount,
        *,
        clock: Callable[[], float],
        random: Callable[[], float],
        push_batch: int = 500,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        timeout_s: float = 10.0,
    ) -> None:
        if push_batch < 1:
            raise ValueError(f"push_batch must be at least 1, got {push_batch}")
        if not 0 < backoff_base_s <= backoff_max_s:
            raise ValueError(
                f"need 0 < backoff_base_s <= backoff_max_s, got {backoff_base_s}, {backoff_max_s}"
            )
        self._log = log
        self._transport = transport
        self._account = account
        self._clock = clock
        self._random = random
        self.push_batch = push_batch  # halved on 413, and kept: the server's limit stays
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._timeout_s = timeout_s
        self._url = account.server_url.rstrip("/") + SYNC_PATH
        self._running = False
        self._attempt = 0  # consecutive failures
        self._retry_at: float | None = None
        self._state: SyncState = "pending"  # not synced yet
        self._pending = 0
        self._error: str | None = None
        self._last_synced_at: float | None = None

    # -- what the host reads -------------------------------------------------------------

    @property
    def status(self) -> ClientStatus:
        return ClientStatus(
            self._state, self._pending, self._retry_at, self._error, self._last_synced_at
        )

    def due(self) -> bool:
        """True when a scheduled retry's time has come (the host's timer asks this)."""
        return not self._running and self._retry_at is not None and self._clock() >= self._retry_at

    async def refresh(self) -> ClientStatus:
        """Re-reads the outbox size (after a local write): "synced" becomes "pending"."""
        self._pending = await self._log.pending_count()
        if self._state in ("synced", "pending"):
            self._state = "pending" if self._pending else "synced"
        return self.status

    # -- the exchange --------------------------------------------------------------------

    async def sync(self) -> ClientStatus:
        """Push the outbox and pull until both sides are caught up, or until a failure.

        A call while another runs returns the current status without starting another.
        Never raises for network, server or local-store failures: the status says what
        went wrong and whether (and when) a retry is scheduled.
        """
        if self._running:
            return self.status
        self._running = True
        try:
            self._state, self._error, self._retry_at = "syncing", None, None
            try:
                self._pending = await self._local(self._log.pending_count())
                await self._exchange()
            except _Stop as stop:
                self._fail(stop)
            else:
                self._attempt = 0
                self._state = "pending" if self._pending else "synced"
                self._last_synced_at = self._clock()
            return self.status
        finally:
            self._running = False

    async def _exchange(self) -> None:
        while True:
            batch = await self._local(self._log.pending(self.push_batch))
            cursor = await self._local(self._log.cursor())
            body = {"cursor": cursor, "ops": [op.to_json() for op in batch]}
            try:
                response = await self._transport.request(
                    "POST",
                    self._url,
                    body,
                    headers={"Authorization": f"Bearer {self._account.token}"},
                    timeout_s=self._timeout_s,
                )
            except TransportError as exc:
                if exc.timed_out:  # the network works; the server is slow or stuck
                    raise _Stop("error", "the server did not answer in time", retry=True) from None
                raise _Stop("offline", "offline: can't reach the server", retry=True) from None
            if response.status == 413 and len(batch) > 1:
                self.push_batch = max(1, len(batch) // 2)
                continue
            if response.status != 200:
                raise self._refusal(response)
            acked, pulled, new_cursor, has_more = self._parse(response.body)
            sent = {op.op_id for op in batch}
            acked = [op_id for op_id in acked if op_id in sent]
            if acked:
                await self._local(self._log.acknowledge(acked))
            try:
                await self._log.receive(pulled, new_cursor)
            except (HLCError, OpError) as exc:  # a clock far ahead, or an op id reused
                raise _Stop(
                    "error", f"can't merge the server's changes: {exc}", retry=True
                ) from None
            except StoreError as exc:
                raise _Stop("error", f"this device's storage failed: {exc}", retry=True) from None
            self._attempt = 0  # the server answered: the next failure starts over
            self._pending = await self._local(self._log.pending_count())
            if batch and not acked:
                raise _Stop(
                    "error", "the server did not acknowledge the pushed changes", retry=True
                )
            if not has_more and not self._pending:
                return
            if has_more and not pulled and new_cursor == cursor and not acked:
                raise _Stop("error", "the server's answer made no progress", retry=True)

    async def _local(self, step: Awaitable[_T]) -> _T:
        try:
            return await step
        except StoreError as exc:
            raise _Stop("error", f"this device's storage failed: {exc}", retry=True) from None

    def _parse(self, body: object) -> tuple[list[str], list[Op], str, bool]:
        def bad(what: str) -> _Stop:
            return _Stop("error", f"the server's answer is malformed: {what}", retry=True)

        if not isinstance(body, dict):
            raise bad("not a JSON object")
        acked, ops, cursor, has_more = (body.get(k) for k in ("acked", "ops", "cursor", "has_more"))
        if not isinstance(acked, list) or not all(isinstance(a, str) for a in acked):
            raise bad("'acked' must be a list of op ids")
        if not isinstance(ops, list):
            raise bad("'ops' must be a list")
        if not isinstance(cursor, str):
            raise bad("'cursor' must be a string")
        if not isinstance(has_more, bool):
            raise bad("'has_more' must be true or false")
        try:
            pulled = [Op.from_json(item, where=f"ops[{i}]") for i, item in enumerate(ops)]
        except OpError as exc:
            raise bad(str(exc)) from None
        return acked, pulled, cursor, has_more

    def _refusal(self, response: HttpResponse) -> _Stop:
        status = response.status
        detail, field = error_detail(response.body)
        if status in (401, 403):
            return _Stop(
                "error", f"this device was unpaired: pair it again ({detail})", retry=False
            )
        if status == 429:
            return _Stop(
                "error",
                "the server is busy (too many requests)",
                retry=True,
                retry_after_s=_retry_after(response),
            )
        if status >= 500:
            return _Stop(
                "error", f"server error {status}", retry=True, retry_after_s=_retry_after(response)
            )
        if status == 413:
            return _Stop(
                "error", f"a change is too large for the server to accept ({detail})", retry=False
            )
        where = f" in {field}" if field else ""
        return _Stop(
            "error",
            f"the server refused the sync request (error {status}{where}: {detail}); "
            "this is a bug in the app, so sync stopped until it is updated",
            retry=False,
        )

    def _fail(self, stop: _Stop) -> None:
        self._state = stop.state
        if not stop.retry:
            self._retry_at = None
            self._error = stop.message
            return
        delay = stop.retry_after_s
        if delay is None:
            ceiling = min(self._backoff_max_s, self._backoff_base_s * 2.0 ** min(self._attempt, 64))
            delay = self._random() * ceiling
        self._attempt += 1
        self._retry_at = self._clock() + delay
        self._error = stop.message


def error_detail(body: object) -> tuple[str, str | None]:
    """The server's ``{"error": …, "field": …}``, or the body as text."""
    if isinstance(body, dict):
        field = body.get("field")
        return str(body.get("error", body)), field if isinstance(field, str) else None
    text = str(body).strip()
    return (text[:200] or "no details"), None


def _retry_after(response: HttpResponse) -> float | None:
    """``Retry-After`` in seconds, if the response has one that is a number."""
    text = response.headers.get("retry-after", "").strip()
    return float(text) if text.isascii() and text.isdigit() else None
