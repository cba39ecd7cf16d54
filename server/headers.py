"""Cross-origin isolation headers on every response.

onnxruntime-web runs threads on SharedArrayBuffer, which a page only gets
when it is crossOriginIsolated: COOP same-origin on the document plus COEP
require-corp on it and on every script it loads. A missing COEP on ORT's
threaded .mjs makes ORT wait forever for its threads instead of failing.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class IsolationHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_isolated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ISOLATION_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_isolated)
