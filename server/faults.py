"""A test-only fault switch: the server answers chosen requests with an error, or late,
so that browser tests can watch the app cope with a failing server.

It exists only when the server was started with ``PY_AGENT_TEST_FAULTS=1``
(``Settings.test_faults``): otherwise this middleware is not mounted, and its endpoint
is a 404 like any unknown API path. Faults live in memory and die with the process.

    POST   /api/v1/_test/faults {path_prefix, count, status, stall_s, retry_after}
           → 201 {"armed": {...}}: the next ``count`` requests whose path starts with
             ``path_prefix`` are read in full, held ``stall_s`` seconds, and then either
             answered ``status`` (the app never sees them) or, with ``status`` null,
             handed to the app late. A stall longer than the client's timeout is a lost
             response: the app still does the work, the client never hears of it.
    GET    /api/v1/_test/faults → {"faults": [{..., "remaining": n}], "injected": total,
                                     "active": requests still being stalled or answered}
    DELETE /api/v1/_test/faults → 204, every fault disarmed and the count started over

Faults are used up in the order they were armed; a request uses at most one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("py_agent.server.faults")

CONTROL_PATH = "/api/v1/_test/faults"
MAX_STALL_S = 120.0
MAX_COUNT = 100_000

Sleep = Callable[[float], Awaitable[None]]


class FaultSpecError(ValueError):
    pass


@dataclass
class Fault:
    path_prefix: str
    remaining: int
    status: int | None  # None: pass the request on after the stall
    stall_s: float
    retry_after: int | None  # seconds, sent as Retry-After with ``status``

    @classmethod
    def from_json(cls, body: Any) -> Fault:
        if not isinstance(body, dict):
            raise FaultSpecError("the body must be a JSON object")
        known = {"path_prefix", "count", "status", "stall_s", "retry_after"}
        if unknown := sorted(set(body) - known):
            raise FaultSpecError(f"unknown fields {unknown}; expected some of {sorted(known)}")
        prefix = body.get("path_prefix", "/api/")
        count = body.get("count", 1)
        status = body.get("status")
        stall_s = body.get("stall_s", 0)
        retry_after = body.get("retry_after")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise FaultSpecError("path_prefix must be a path starting with '/'")
        if not _is_int(count) or not 1 <= count <= MAX_COUNT:
            raise FaultSpecError(f"count must be a whole number from 1 to {MAX_COUNT}")
        if status is not None and (not _is_int(status) or not 400 <= status <= 599):
            raise FaultSpecError("status must be null or an HTTP error status (400-599)")
        if isinstance(stall_s, bool) or not isinstance(stall_s, int | float):
            raise FaultSpecError("stall_s must be a number of seconds")
        if not 0 <= stall_s <= MAX_STALL_S:
            raise FaultSpecError(f"stall_s must be between 0 and {MAX_STALL_S}")
        if retry_after is not None and (not _is_int(retry_after) or retry_after < 0):
            raise FaultSpecError("retry_after must be null or a whole number of seconds")
        if status is None and retry_after is not None:
            raise FaultSpecError("retry_after goes with a status")
        if status is None and stall_s == 0:
            raise FaultSpecError("a fault needs a status, a stall, or both")
        return cls(prefix, count, status, float(stall_s), retry_after)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class FaultMiddleware:
    """Mount it inside the isolation-headers middleware, so injected answers carry them too."""

    def __init__(self, app: ASGIApp, sleep: Sleep = asyncio.sleep) -> None:
        self.app = app
        self.sleep = sleep
        log.warning("test fault switch ON: %s can make this server fail on purpose", CONTROL_PATH)
        self.faults: list[Fault] = []
        self.injected = 0
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == CONTROL_PATH:
            response = await self._control(Request(scope, receive))
            await response(scope, receive, send)
            return
        fault = self._take(scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.injected += 1
        self.active += 1
        try:
            await self._inject(fault, scope, receive, send)
        finally:
            self.active -= 1

    async def _inject(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        # Read the whole body before stalling: a client that gives up meanwhile must not
        # keep a late request from reaching the app (that is the lost-response case).
        body = await _read_body(receive)
        log.warning(
            "injected fault on %s %s: stall %.1f s, then %s",
            scope["method"],
            scope["path"],
            fault.stall_s,
            fault.status or "the app",
        )
        if fault.stall_s:
            await self.sleep(fault.stall_s)
        if fault.status is None:
            await self.app(scope, _replay(body, receive), send)
            return
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        injected = JSONResponse(
            {"error": f"injected fault (status {fault.status})", "path": scope["path"]},
            status_code=fault.status,
            headers=headers,
        )
        await injected(scope, receive, send)

    def _take(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and path.startswith(fault.path_prefix):
                fault.remaining -= 1
                return fault
        return None

    async def _control(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(
                {
                    "faults": [asdict(fault) for fault in self.faults],
                    "injected": self.injected,
                    "active": self.active,
                }
            )
        if request.method == "DELETE":
            self.faults.clear()
            self.injected = 0
            return Response(status_code=204)
        if request.method != "POST":
            return JSONResponse(
                {"error": "use GET, POST or DELETE"},
                status_code=405,
                headers={"Allow": "GET, POST, DELETE"},
            )
        try:
            fault = Fault.from_json(json.loads(await request.body()))
        except ValueError as exc:  # FaultSpecError, or the body is not JSON
            return JSONResponse({"error": str(exc), "path": CONTROL_PATH}, status_code=422)
        self.faults.append(fault)
        return JSONResponse({"armed": asdict(fault)}, status_code=201)


async def _read_body(receive: Receive) -> list[Message]:
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` for the app: the body read before the stall, then the client's own."""
    queued = list(messages)

    async def replayed() -> Message:
        return queued.pop(0) if queued else await receive()

    return replayed
