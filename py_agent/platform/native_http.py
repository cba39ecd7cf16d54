"""Native HTTP: httpx."""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from .interfaces import HttpResponse, JsonValue, TransportError


class HttpxTransport:
    def __init__(self, base_url: str) -> None:
        self._base_url = base_url

    async def request(
        self,
        method: str,
        url: str,
        body: JsonValue = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> HttpResponse:
        async with httpx.AsyncClient(base_url=self._base_url, timeout=timeout_s) as client:
            try:
                response = await client.request(method, url, json=body, headers=dict(headers or {}))
            except httpx.HTTPError as exc:
                timed_out = isinstance(exc, httpx.TimeoutException)
                raise TransportError(f"{method} {url}: {exc!r}", timed_out=timed_out) from exc
        headers = {name.lower(): value for name, value in response.headers.items()}
        return HttpResponse(response.status_code, json_or_text(response.text), headers)


def json_or_text(text: str) -> JsonValue:
    try:
        return json.loads(text)
    except ValueError:
        return text


def http_transport(base_url: str) -> HttpxTransport:
    return HttpxTransport(base_url)
