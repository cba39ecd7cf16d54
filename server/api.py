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


BEARER_CHALLENGE = 'Bearer realm="py_agent"'


def bearer_token(request: Request, how_to_get_one: str) -> str:
    """The request's ``Authorization: Bearer`` token, or a 401 saying what is wrong
    (``how_to_get_one`` tells a caller without a token where tokens come from)."""
    header = request.headers.get("authorization")
    if header is None:
        raise ApiError(
            401,
            f"missing 'Authorization: Bearer <token>' header ({how_to_get_one})",
            headers={"WWW-Authenticate": BEARER_CHALLENGE},
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "the Authorization header must be 'Bearer <token>'",
            headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_request"'},
        )
    return token


async def info(request: Request) -> JSONResponse:
    return JSONResponse({"name": "py_agent", "version": py_agent.__version__, "api": "v1"})


routes = [Route("/info", info, methods=["GET"])]
