"""Routes under /api/v1, and the error every API route raises."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import py_agent

API_PREFIX = "/api/v1"


class ApiError(HTTPException):
    """Answered as ``{"error": detail, "path": …, "field": field}``; ``field`` names
    the offending part of the request body (``"ops[3].hlc"``) when there is one."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, _utf8(detail), headers)
        self.field = None if field is None else _utf8(field)


def _utf8(text: str) -> str:
    """``text`` with lone surrogates (valid in JSON input, not in UTF-8) escaped, so that
    echoing a client's bad key back never fails to encode."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def info(request: Request) -> JSONResponse:
    return JSONResponse({"name": "py_agent", "version": py_agent.__version__, "api": "v1"})


routes = [Route("/info", info, methods=["GET"])]
