"""The last resort for an exception no route turned into a response.

Starlette's own handler for ``Exception`` answers 500 and then re-raises, so the ASGI
server logs the error a second time and drops the keep-alive connection without saying
so. Here the error is logged once, answered with a 500 that says ``Connection: close``
(the connection is not reused after an unknown failure), and not re-raised.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("py_agent.server")

INTERNAL_ERROR = "internal error; the server log has the details"


class UnexpectedErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                # Half a response is out: nothing to add; the server ends the connection.
                return
            response = JSONResponse(
                {"error": INTERNAL_ERROR}, status_code=500, headers={"Connection": "close"}
            )
            await response(scope, receive, send)
