"""Assembles the Starlette app: health, the versioned API, and the static web app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

import py_agent

from . import api, infer_api, metrics, sync_api, updates_api
from .errors import UnexpectedErrorMiddleware
from .faults import FaultMiddleware
from .generative import GenerativeClient
from .headers import HeadersMiddleware
from .installs import InstallStore, InstallStoreError
from .settings import Settings, SettingsError
from .static import StaticSite
from .store import SpaceQuota, SQLiteSyncStore, StorageUnavailable, StoreError
from .structured import StructuredReader

log = logging.getLogger("py_agent.server")
STORAGE_RETRY_AFTER_S = 60


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": py_agent.__version__})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(api.API_PREFIX):
        body = {"error": exc.detail, "path": request.url.path}
        if isinstance(exc, api.ApiError) and exc.field is not None:
            body["field"] = exc.field
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def storage_unavailable(request: Request, exc: Exception) -> Response:
    # The disk is full or read-only: the write is refused, reads go on, and the client
    # (which keeps its ops) is told when to try again.
    log.error("a write was refused, the sync database cannot be written: %s", exc)
    return JSONResponse(
        {
            "error": "the server cannot store anything just now (its disk is full or "
            "read-only); nothing was lost on your side: try again later",
            "path": request.url.path,
        },
        status_code=503,
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)},
    )


def create_app(
    settings: Settings,
    *,
    clock: sync_api.Clock = time.monotonic,
    wall_clock: sync_api.Clock = time.time,
) -> Starlette:
    """The app; ``clock`` (rate limits) and ``wall_clock`` (expiry) are for tests to fake.

    The sync store is opened (and its schema migrated) here, so a bad database
    stops the server at start-up; it is closed when the app shuts down.
    """
    try:
        quota = SpaceQuota(max_ops=settings.space_max_ops, max_bytes=settings.space_max_bytes)
        store = SQLiteSyncStore(settings.sync_db, quota)
    except StoreError as exc:
        raise SettingsError(f"--data-dir {settings.data_dir}: {exc}") from exc
    sync = sync_api.SyncService(settings, store, clock=clock, wall_clock=wall_clock)
    try:
        installs = InstallStore(settings.installs_db)
    except InstallStoreError as exc:
        raise SettingsError(f"--data-dir {settings.data_dir}: {exc}") from exc
    registry = CollectorRegistry()
    infer = infer_api.InferService(
        settings, store, installs, registry, clock=clock, wall_clock=wall_clock
    )
    generative = None if settings.generative is None else GenerativeClient(settings.generative)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        preload = asyncio.create_task(infer.preload())
        yield
        await preload
        await sync.state_worker.close()
        infer.close()
        await installs.close()
        await store.close()
        if generative is not None:
            await generative.aclose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics.metrics, methods=["GET"]),
            Mount(
                api.API_PREFIX,
                routes=[
                    *api.routes,
                    *sync_api.routes,
                    *infer_api.routes,
                    *updates_api.routes(settings.updates_repository, wall_clock),
                ],
            ),
            Mount("/", app=StaticSite(directory=settings.dist_dir, html=True)),
        ],
        middleware=[
            Middleware(HeadersMiddleware),
            Middleware(UnexpectedErrorMiddleware),
            *([Middleware(FaultMiddleware)] if settings.test_faults else []),
        ],
        exception_handlers={HTTPException: http_error, StorageUnavailable: storage_unavailable},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sync = sync
    app.state.infer = infer
    app.state.metrics_registry = registry
    # The seams with /api/v1/infer: None means no backend, so out_of_scope gets the
    # fallback and the server model's reading is the only one.
    app.state.answer = None if generative is None else generative.answer
    app.state.structured = None if generative is None else StructuredReader(generative)
    return app
