"""Assembles the Starlette app: health, the versioned API, and the static web app."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

import py_agent

from . import api
from .headers import ISOLATION_HEADERS, IsolationHeadersMiddleware
from .settings import Settings
from .static import StaticSite

log = logging.getLogger("py_agent.server")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": py_agent.__version__})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(api.API_PREFIX):
        return JSONResponse(
            {"error": exc.detail, "path": request.url.path},
            status_code=exc.status_code,
            headers=exc.headers,
        )
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    # Runs outside the middleware stack, hence the explicit isolation headers.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"error": "internal error; the server log has the details"},
        status_code=500,
        headers=ISOLATION_HEADERS,
    )


def create_app(settings: Settings) -> Starlette:
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Mount(api.API_PREFIX, routes=api.routes),
            Mount("/", app=StaticSite(directory=settings.dist_dir, html=True)),
        ],
        middleware=[Middleware(IsolationHeadersMiddleware)],
        exception_handlers={HTTPException: http_error, Exception: unexpected_error},
    )
    app.state.settings = settings
    return app
