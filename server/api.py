"""Routes under /api/v1."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import py_agent

API_PREFIX = "/api/v1"


async def info(request: Request) -> JSONResponse:
    return JSONResponse({"name": "py_agent", "version": py_agent.__version__, "api": "v1"})


routes = [Route("/info", info, methods=["GET"])]
