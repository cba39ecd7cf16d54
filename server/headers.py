"""Headers on every response: cross-origin isolation, and the security headers.

onnxruntime-web runs threads on SharedArrayBuffer, which a page only gets
when it is crossOriginIsolated: COOP same-origin on the document plus COEP
require-corp on it and on every script it loads. A missing COEP on ORT's
threaded .mjs makes ORT wait forever for its threads instead of failing.

The Content-Security-Policy lets only this origin's files run: no inline script or
style, no eval -- except compiling WebAssembly ('wasm-unsafe-eval'), which Pyodide and
onnxruntime-web need -- and no connection anywhere but here. Nothing may frame the app,
no referrer leaves it, and no response is sniffed into another type.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class HeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_isolated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (*ISOLATION_HEADERS.items(), *SECURITY_HEADERS.items()):
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_isolated)
