"""The cascade: act on the device's own understanding when it is confident, ask the
server's larger model when it is not, and answer tentatively -- queuing the request
to ask again -- when the server cannot be asked.

Only the utterance, its time and the user's time zone and locale leave the device,
never tasks or notes; whatever the server says, the intent is carried out on the
device, on the device's data.

Nothing leaves without the user's consent (``RouterSettings.consent``): until they
answer, an unsure request is not carried out but answered with a question -- ask the
server? -- whose answers are "always", "not now" (for this one request: it is
carried out on the device's own reading, and the next unsure request asks again) and
"never" (``settings_after``).

=====================================  ======  =========  ======  ===================
situation                              acts    source     queued  reason
=====================================  ======  =========  ======  ===================
confidence >= threshold                local   local      no      confident
consent "never" (or "not now")         local   local      no      server help is off
consent "unasked"                      --      local      no      needs consent
server answered                        server  cloud      no      asked the server
no answer (offline, deadline passed)   local   tentative  yes     offline / timeout
server error (5xx, 429)                local   tentative  yes     server error 503
refused (401/4xx) or malformed answer  local   tentative  no      what was wrong
=====================================  ======  =========  ======  ===================
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from .intents import INTENTS, IntentPrediction
from .platform import HttpResponse, JsonObject, Transport, TransportError
from .sync.client import error_detail

INFER_PATH = "/api/v1/infer"
# Chosen on the validation split by bench/understanding.py: the highest cascade accuracy
# sending at most 20% of requests to the server (docs/understanding.md).
DEFAULT_THRESHOLD = 0.94
DEFAULT_DEADLINE_S = 2.0
Source = Literal["local", "cloud", "tentative"]
# May the server be asked: not yet (ask the user first), always, never.
Consent = Literal["unasked", "always", "never"]
# The user's answer to the question; "not_now" answers for one request only.
ConsentChoice = Literal["always", "not_now", "never"]
CONSENTS: tuple[Consent, ...] = get_args(Consent)


class Credentials(Protocol):
    """The bearer token the server knows this device by."""

    async def token(self) -> str:
        """Raises ``CloudUnavailable`` when no token can be had (e.g. offline)."""
        ...

    async def forget(self) -> None:
        """The server refused the token: get a new one next time."""
        ...


class CloudUnavailable(Exception):
    """The server's model could not answer; ``retry`` says whether asking later may help."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True)
class CloudAnswer:
    intent: str
    confidence: float
    slots: JsonObject
    answer: str | None
    model: str
    latency_ms: float

    def to_json(self) -> JsonObject:
        return {
            "intent": self.intent,
            "confidence": self.confidence,
            "slots": self.slots,
            "answer": self.answer,
            "model": self.model,
            "latency_ms": self.latency_ms,
        }


def setting_error(name: str, value: object) -> str:
    """Why ``value`` cannot be the setting ``name``, in the words of the page's Server help
    pane (shown there as it is)."""
    if name == "threshold":
        entered = "" if value is None else f" (you entered {_as_typed(value)})"
        return f"The threshold is a number from 0 to 1{entered}."
    if name == "consent":
        return "Choose when the server may be asked: “Ask me first”, “Always” or “Never”."
    if name == "cloud_help":
        return "Server help is either on or off."
    return f"There's no setting called “{name}”."


def _as_typed(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class RouterSettings:
    threshold: float = DEFAULT_THRESHOLD
    consent: Consent = "unasked"  # may the server be asked (see the module docstring)
    deadline_s: float = DEFAULT_DEADLINE_S
    cloud_help: bool = field(init=False)  # consent == "always": the older on/off switch

    def __post_init__(self) -> None:
        if self.consent not in CONSENTS:
            raise ValueError(setting_error("consent", self.consent))
        object.__setattr__(self, "cloud_help", self.consent == "always")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(setting_error("threshold", self.threshold))
        if not 0.1 <= self.deadline_s <= 30.0:
            raise ValueError(f"deadline_s must be between 0.1 and 30 s, got {self.deadline_s}")


@dataclass(frozen=True)
class Route:
    intent: str
    confidence: float
    source: Source
    queued: bool
    reason: str
    local: IntentPrediction
    cloud: CloudAnswer | None = None
    needs_consent: bool = False  # not carried out: the user is asked first

    @property
    def asked(self) -> bool:
        """The server was asked (answering or not): the request's words left the device."""
        return self.cloud is not None or self.source == "tentative"


def stored_consent(stored: JsonObject) -> Consent:
    """The consent in stored settings. Settings stored before consent was asked for hold
    only ``cloud_help``, on by default: on was never the user's answer, so it asks
    again; off was, and stays "never"."""
    for consent in CONSENTS:
        if stored.get("consent") == consent:
            return consent
    return "never" if stored.get("cloud_help") is False else "unasked"


def settings_after(
    settings: RouterSettings, choice: ConsentChoice
) -> tuple[RouterSettings, RouterSettings]:
    """The user answered the question: the settings kept from now on, and those the
    request they answered about is routed with."""
    kept = settings if choice == "not_now" else replace(settings, consent=choice)
    return kept, replace(settings, consent="always" if choice == "always" else "never")


class Router:
    def __init__(
        self,
        transport: Transport,
        credentials: Credentials,
        *,
        server_url: str = "",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._transport = transport
        self._credentials = credentials
        self._url = server_url.rstrip("/") + INFER_PATH
        self._clock = clock
        self.tz = "UTC"  # the page's IANA time zone and locale, sent along with the text
        self.locale = "en"

    async def route(
        self, text: str, now: datetime, local: IntentPrediction, settings: RouterSettings
    ) -> Route:
        def locally(source: Source, reason: str, queued: bool = False) -> Route:
            return Route(local.intent, local.confidence, source, queued, reason, local)

        if local.confidence >= settings.threshold:
            return locally("local", "confident")
        if settings.consent == "never":
            return locally("local", "server help is off")
        if settings.consent == "unasked":
            return Route(
                local.intent,
                local.confidence,
                "local",
                False,
                "needs consent",
                local,
                needs_consent=True,
            )
        try:
            cloud = await self.ask(text, now, settings.deadline_s)
        except CloudUnavailable as exc:
            return locally("tentative", exc.reason, queued=exc.retry)
        return Route(
            cloud.intent, cloud.confidence, "cloud", False, "asked the server", local, cloud
        )

    async def ask(self, text: str, now: datetime, deadline_s: float) -> CloudAnswer:
        """The server model's reading of ``text``, or ``CloudUnavailable``."""
        token = await self._credentials.token()
        body = {"text": text, "now": now.isoformat(), "tz": self.tz, "locale": self.locale}
        started = self._clock()
        try:
            response = await self._transport.request(
                "POST",
                self._url,
                body,
                headers={"Authorization": f"Bearer {token}"},
                timeout_s=deadline_s,
            )
        except TransportError as exc:
            raise CloudUnavailable("timeout" if exc.timed_out else "offline", retry=True) from None
        latency_ms = (self._clock() - started) * 1000
        if response.status != 200:
            raise await self._refusal(response)
        return _parse(response.body, latency_ms)

    async def _refusal(self, response: HttpResponse) -> CloudUnavailable:
        status = response.status
        detail, _ = error_detail(response.body)
        if status == 401:
            await self._credentials.forget()
            return CloudUnavailable("the server did not know this device", retry=True)
        if status == 429 or status >= 500:
            return CloudUnavailable(f"server error {status}", retry=True)
        return CloudUnavailable(f"the server refused the request ({status}: {detail})", retry=False)


def _parse(body: Any, latency_ms: float) -> CloudAnswer:
    def bad(what: str) -> CloudUnavailable:
        return CloudUnavailable(f"the server's answer is malformed: {what}", retry=False)

    if not isinstance(body, dict):
        raise bad("not a JSON object")
    intent, confidence = body.get("intent"), body.get("confidence")
    slots, answer, model = body.get("slots") or {}, body.get("answer"), body.get("model")
    if intent not in INTENTS:
        raise bad(f"unknown intent {intent!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise bad("'confidence' must be a number")
    if not 0.0 <= confidence <= 1.0:
        raise bad(f"'confidence' must be between 0 and 1, got {confidence}")
    if not isinstance(slots, dict):
        raise bad("'slots' must be an object")
    if answer is not None and not isinstance(answer, str):
        raise bad("'answer' must be text or null")
    if not isinstance(model, str) or not model:
        raise bad("'model' must name the model")
    return CloudAnswer(str(intent), float(confidence), slots, answer, model, latency_ms)
