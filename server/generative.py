"""Free-text answers to out_of_scope requests from an OpenAI-compatible chat-completions
backend: a cloud API, or the embedded SmolLM2 that ``make generative`` serves.

The seam with the inference route is ``app.state.answer``: ``answer(text)`` gives the
backend's answer, or None whenever there is none worth giving (backend down, slow, failing
or answering gibberish). It never raises, so the route can always fall back to its fixed
"I can't answer that". Nothing here logs the user's text: it is theirs.

The same client (one connection pool) carries server/structured.py's structured readings,
through `GenerativeClient.complete`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from .settings import GenerativeSettings

log = logging.getLogger("py_agent.server.generative")

Answer = Callable[[str], Awaitable[str | None]]

# Small models follow short, concrete instructions best; the last sentence is the one that
# matters most: the backend never sees the user's tasks or notes and must not invent them.
SYSTEM_PROMPT = (
    "You are the helper behind a private tasks-and-notes assistant. Answer the user's "
    "question briefly, in at most three sentences, in plain text. If you are not sure, say "
    "so. You have no live information: no weather, news, prices or today's date. You cannot "
    "see the user's tasks, notes, calendar, messages or any other personal data: if the "
    "question needs them, say that you cannot see them and do not make anything up."
)
# An out_of_scope utterance is a chat line; anything longer is not worth paying a backend for.
MAX_QUESTION_CHARS = 2000
# The chat bubble's limit, whatever max_tokens the backend honours (some ignore it).
MAX_ANSWER_CHARS = 800
# A chat completion of a few hundred tokens is a few KB; more means a broken backend.
MAX_RESPONSE_BYTES = 1 << 20

_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_LIST_NUMBER = re.compile(r"(?:^|\s)\d{1,2}$")


class BadResponse(Exception):
    """The backend answered, but not with a usable chat completion."""


class BackendError(Exception):
    """No usable completion; ``reason`` is one word for metrics: timeout, connection
    (refused, reset, DNS …), status (not 200) or unusable (not a chat completion). The
    message is for the log and never holds the user's words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class GenerativeClient:
    """One pooled HTTP client per app; ``transport`` is for tests to fake the backend."""

    def __init__(
        self, settings: GenerativeSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        key = settings.api_key
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=headers,
            timeout=settings.timeout_s,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def answer(self, text: str) -> str | None:
        question = text.strip()[:MAX_QUESTION_CHARS]
        if not question:
            return None
        try:
            content, finish_reason = await self.complete(
                self.request_body(question), self.settings.timeout_s
            )
        except BackendError as exc:
            log.warning("%s: %s", self.where, exc)
            return None
        return cap(content, MAX_ANSWER_CHARS, cut_off=finish_reason == "length")

    @property
    def where(self) -> str:
        """The backend as log lines name it (never the user's words)."""
        return f"generative backend {self.settings.base_url}"

    async def complete(self, payload: dict[str, Any], timeout_s: float) -> tuple[str, Any]:
        """The first choice's message text and finish_reason for the chat-completions
        request ``payload``, within ``timeout_s`` for the whole exchange; raises
        BackendError otherwise. server/structured.py asks through this too, so both
        share one connection pool and one notion of a usable completion."""
        started = time.perf_counter()
        try:
            # httpx's timeout bounds each read, not the whole exchange; a backend that
            # trickles bytes would otherwise hold the request open indefinitely.
            async with asyncio.timeout(timeout_s):
                status, raw = await self._post(payload)
        except (TimeoutError, httpx.TimeoutException):
            raise BackendError("timeout", f"no answer within {timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise BackendError("connection", f"{type(exc).__name__}: {exc}") from None
        except BadResponse as exc:
            raise BackendError("unusable", f"unusable response: {exc}") from None
        if status != 200:
            snippet = raw[:200].decode("utf-8", "replace")
            raise BackendError("status", f"HTTP {status}: {snippet}")
        try:
            content, finish_reason = parse_completion(raw)
        except BadResponse as exc:
            raise BackendError("unusable", f"unusable response: {exc}") from None
        log.debug("%s: answered in %.0f ms", self.where, (time.perf_counter() - started) * 1000)
        return content, finish_reason

    def request_body(self, question: str) -> dict[str, Any]:
        """The chat-completions request for ``question``; bench/generative.py streams it."""
        return {
            "model": self.settings.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": question},
            ],
            "max_tokens": self.settings.max_tokens,
            "temperature": 0.2,  # factual short answers, not creative writing
            "stream": False,
        }

    async def _post(self, payload: dict[str, Any]) -> tuple[int, bytes]:
        async with self._http.stream("POST", "/chat/completions", json=payload) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise BadResponse(f"body over {MAX_RESPONSE_BYTES} bytes")
            return response.status_code, bytes(body)


def parse_completion(raw: bytes) -> tuple[str, Any]:
    """The first choice's message text and finish_reason, from a chat.completion body."""
    try:
        body = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        raise BadResponse(f"not JSON ({exc})") from None
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        raise BadResponse("no choices")
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise BadResponse("no message text in the first choice")
    return content.strip(), first.get("finish_reason")


def cap(text: str, limit: int, *, cut_off: bool) -> str:
    """``text`` within ``limit`` characters. When it had to be shortened, or the backend
    stopped at max_tokens (``cut_off``), it ends at the last full sentence if that keeps
    at least half of it, else at a word, with an ellipsis: never mid-word."""
    if len(text) <= limit and not cut_off:
        return text
    head = text[:limit]
    sentence_ends = [
        match.end()
        for match in _SENTENCE_END.finditer(head)
        if not _LIST_NUMBER.search(head, 0, match.start())  # "8." opens an item, ends nothing
    ]
    if sentence_ends and sentence_ends[-1] >= len(head) // 2:
        return head[: sentence_ends[-1]]
    if len(text) > limit and not text[limit].isspace():
        space = head.rfind(" ")  # drop the word the limit cut through
        if space >= len(head) // 2:
            head = head[:space]
    return head.rstrip(" ,;:-") + "…"
