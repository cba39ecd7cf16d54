"""How many connections a client may hold open, and for how long (issue 15, row 5).

uvicorn 0.54 closes an idle kept-alive connection (``timeout_keep_alive``) but gives a
client unlimited time to send a request's headers or body, and has no cap on open
connections: 200 idle, half-sent or trickling connections stayed open for good, and under a
256-file limit 250 of them made health checks time out while asyncio logged "accept() out
of system resource" again and again. The alternatives fall short too: hypercorn's
``read_timeout`` restarts at every read (a client sending a byte a second never trips it)
and it has no cap; granian has a header timeout but no body timeout or cap, and would
replace the server every test runs on. So the app stays on uvicorn, and its h11 protocol is
extended at the seam uvicorn offers for that (``Config(http=<protocol class>)``):

* a new connection past ``max_connections``, or past ``max_connections_per_address`` from
  one address (trusted proxies aside: every client behind them shares their address), is
  answered 503 with ``Retry-After`` and closed at once, so open files stay bounded and
  one client cannot take every slot;
* a request's headers must be in within ``header_timeout_s`` of the connection opening or
  of the previous response ending, and its body within ``body_timeout_s`` of its headers;
  otherwise the connection is closed;
* an idle kept-alive connection closes after ``keep_alive_timeout_s`` (uvicorn's timer).

The cap is also kept under the process's open-file limit (whose soft value is raised as far
as the hard one allows at start), so accept() never runs out of descriptors.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, cast

import h11
import uvicorn
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as MetricCounter
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import Settings

log = logging.getLogger("py_agent.server.connections")

# Descriptors kept for what is not a client connection: the databases and their WAL files,
# the model files, the log, the state worker's pipes.
OWN_FILES = 64
# asyncio accepts up to the listen backlog's count of waiting connections at each turn of
# its loop, and a new connection reaches the guard two turns later, its file closed (when
# refused) one turn after that: about four backlogs of files can be open beyond the
# connections the guard holds. So the backlog shrinks under a small open-file limit (and a
# burst of new connections then waits for the kernel's retries); uvicorn's 2,048 otherwise.
MAX_BACKLOG = 2048
BURSTS_IN_FLIGHT = 4


@dataclass(frozen=True)
class FileBudget:
    connections: int  # client connections held at most
    per_address: int  # of which one address holds at most
    backlog: int  # the listen backlog


def file_budget(open_files: int, max_connections: int, per_address: int) -> FileBudget:
    """How an open-file limit is shared between held connections and accept bursts. One
    address never gets more than half the connections, so a limit that allows fewer than
    the settings ask still leaves room for everyone else."""
    spare = max(0, open_files - OWN_FILES)
    backlog = max(8, min(MAX_BACKLOG, spare // (2 * BURSTS_IN_FLIGHT)))
    connections = max(1, min(max_connections, spare - BURSTS_IN_FLIGHT * backlog))
    return FileBudget(connections, max(1, min(per_address, connections // 2)), backlog)


RETRY_AFTER_S = 5
# A refused connection is logged at most this often (seconds), with the count since.
REFUSAL_LOG_EVERY_S = 60.0

Reason = Literal["too_many_connections", "too_many_from_address", "header_timeout", "body_timeout"]
REASONS: tuple[Reason, ...] = (
    "too_many_connections",
    "too_many_from_address",
    "header_timeout",
    "body_timeout",
)


class ConnectionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "py_agent_connections_open", "Client connections open now", registry=registry
        )
        self.closed = MetricCounter(
            "py_agent_connections_closed",
            "Connections the server closed to protect itself, by reason (too_many_connections, "
            "too_many_from_address, header_timeout, body_timeout)",
            ["reason"],
            registry=registry,
        )
        for reason in REASONS:  # every reason exported from the start, at 0
            self.closed.labels(reason)


def _trusted(proxies: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part, strict=False) for part in (proxies or "").split(",") if part]


@dataclass
class ConnectionGuard:
    """The limits, and the connections open now, shared by every connection of a server."""

    max_connections: int
    per_address: int
    header_timeout_s: float
    body_timeout_s: float
    metrics: ConnectionMetrics
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=list
    )
    open: int = 0
    by_address: Counter[str] = field(default_factory=Counter)
    _refused: int = 0
    _refusal_logged_at: float = -REFUSAL_LOG_EVERY_S

    def _counts_per_address(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:  # a Unix socket's path: no address to count
            return False
        return not any(ip in network for network in self.trusted_proxies)

    def admit(self, address: str | None) -> Reason | None:
        """Takes a slot for a new connection, or says why there is none."""
        if self.open >= self.max_connections:
            return self._refuse("too_many_connections")
        counted = address is not None and self._counts_per_address(address)
        if counted and address is not None:
            if self.by_address[address] >= self.per_address:
                return self._refuse("too_many_from_address")
            self.by_address[address] += 1
        self.open += 1
        self.metrics.open.set(self.open)
        return None

    def release(self, address: str | None) -> None:
        self.open -= 1
        self.metrics.open.set(self.open)
        if address is not None and address in self.by_address:
            self.by_address[address] -= 1
            if not self.by_address[address]:
                del self.by_address[address]  # keeps the table to addresses connected now

    def timed_out(self, reason: Reason) -> None:
        self.metrics.closed.labels(reason).inc()

    def _refuse(self, reason: Reason) -> Reason:
        self.metrics.closed.labels(reason).inc()
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_EVERY_S:
            # One line a minute at most: a flood of connections must not flood the log.
            log.warning(
                "refusing connections (%d since the last such line; latest: %s); limits: %d "
                "open, %d per address",
                self._refused,
                reason.replace("_", " "),
                self.max_connections,
                self.per_address,
            )
            self._refused, self._refusal_logged_at = 0, now
        return reason


_REFUSAL_TEXT = b"too many connections; try again in a moment"
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: %d\r\n"
    b"Connection: close\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n"
    b"%s"
) % (RETRY_AFTER_S, len(_REFUSAL_TEXT), _REFUSAL_TEXT)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the guard's cap and deadlines."""

    guard: ClassVar[ConnectionGuard]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._address = self.client[0] if self.client else None
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: Reason | None = None
        refused = self.guard.admit(self._address)
        self._admitted = refused is None
        if refused is not None:
            # Answered before its request is read: holding the file open to read it first
            # is what the cap is there to prevent.
            self.transport.write(_REFUSAL)
            self.transport.close()
            return
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        if self._admitted:
            self._admitted = False
            self.guard.release(self._address)
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # uvicorn waits for a request in progress to end, and one whose client still owes
        # its body would hold the shutdown until its deadline: it cannot be answered anyway.
        if self._waiting_for is not None and not self.transport.is_closing():
            self._arm(None)
            self.transport.close()
            return
        super().shutdown()

    def handle_events(self) -> None:
        super().handle_events()
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the next request's cycle when there is one
        self._follow()

    def _follow(self) -> None:
        """Sets the deadline for what the client owes now: the next request's headers, the
        body of this one, or nothing while the app answers."""
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        owed: Reason | None
        if state is h11.IDLE:
            owed = "header_timeout"
        elif state is h11.SEND_BODY:
            owed = "body_timeout"
        else:
            owed = None
        if owed != self._waiting_for:
            self._arm(owed)

    def _arm(self, owed: Reason | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = owed
        if owed is not None:
            seconds = (
                self.guard.header_timeout_s
                if owed == "header_timeout"
                else self.guard.body_timeout_s
            )
            self._deadline = self.loop.call_later(seconds, self._expire, owed)

    def _expire(self, owed: Reason) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.guard.timed_out(owed)
            self.transport.close()


def raise_open_file_limit(wanted: int) -> int:
    """The open-file limit, its soft value first raised as far as the hard one lets it,
    up to ``wanted``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    return wanted if soft == resource.RLIM_INFINITY else soft


def uvicorn_config(app: Starlette, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """How uvicorn serves the app: through the guarded protocol, and believing forwarded
    headers only from the proxies the settings name (uvicorn's own default believes
    127.0.0.1, so any local client could rotate X-Forwarded-For past the per-address
    limits). ``overrides`` are uvicorn's own options (tests quieten its log)."""
    wanted = settings.max_connections + OWN_FILES + BURSTS_IN_FLIGHT * MAX_BACKLOG
    budget = file_budget(
        raise_open_file_limit(wanted),
        settings.max_connections,
        settings.max_connections_per_address,
    )
    if budget.connections < settings.max_connections:
        log.warning(
            "the open-file limit allows %d connections, %d per address, fewer than "
            "max_connections (%d): raise it (ulimit -n) to allow more",
            budget.connections,
            budget.per_address,
            settings.max_connections,
        )
    guard = ConnectionGuard(
        max_connections=budget.connections,
        per_address=budget.per_address,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        metrics=ConnectionMetrics(cast(CollectorRegistry, app.state.metrics_registry)),
        trusted_proxies=_trusted(settings.trusted_proxies),
    )
    protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})
    proxies = settings.trusted_proxies
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "http": protocol,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "backlog": budget.backlog,
        "proxy_headers": proxies is not None,
        "forwarded_allow_ips": proxies or "",
    }
    return uvicorn.Config(app, **(options | overrides))
