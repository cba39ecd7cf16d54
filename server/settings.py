"""Server settings, validated once at start-up so a bad value fails before the first request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from py_agent.router import DEFAULT_DEADLINE_S


class SettingsError(ValueError):
    pass


GENERATIVE_ENV = "PY_AGENT_GENERATIVE_"
TEST_FAULTS_ENV = "PY_AGENT_TEST_FAULTS"


@dataclass(frozen=True)
class GenerativeSettings:
    """An OpenAI-compatible chat-completions backend for out_of_scope answers
    (server/generative.py) and structured readings (server/structured.py). ``base_url`` is
    the API root, e.g. ``http://127.0.0.1:8001/v1``: requests go to
    ``{base_url}/chat/completions``, as with OpenAI's own clients."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 10.0
    max_tokens: int = 160
    reading_below: float = 0.7
    """Ask for a structured reading when the server model's confidence is below this;
    0 never asks."""
    reading_timeout_s: float = 1.2
    """The structured reading's own deadline, well inside the device's 2 s for /infer."""
    reading_concurrency: int = 8
    """Structured readings in flight at most; past it a request keeps the model's reading."""

    def __post_init__(self) -> None:
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SettingsError(
                f"{GENERATIVE_ENV}URL must be an http(s) URL such as http://127.0.0.1:8001/v1, "
                f"got {self.base_url!r}"
            )
        if url.query or url.fragment:
            raise SettingsError(
                f"{GENERATIVE_ENV}URL must not have a query or fragment, got {self.base_url!r}"
            )
        if not self.model.strip():
            raise SettingsError(f"{GENERATIVE_ENV}MODEL must name the backend's model")
        # A key with whitespace or control characters cannot go in an Authorization header;
        # refusing it here beats failing every request later.
        if self.api_key is not None and (
            not self.api_key or not self.api_key.isprintable() or " " in self.api_key
        ):
            raise SettingsError(
                f"{GENERATIVE_ENV}API_KEY must be non-empty printable text without spaces"
            )
        if not 0 < self.timeout_s <= 300:
            raise SettingsError(
                f"{GENERATIVE_ENV}TIMEOUT_S must be between 0 and 300 seconds, got {self.timeout_s}"
            )
        if not 1 <= self.max_tokens <= 4096:
            raise SettingsError(
                f"{GENERATIVE_ENV}MAX_TOKENS must be between 1 and 4096, got {self.max_tokens}"
            )
        if not 0 <= self.reading_below <= 1:
            raise SettingsError(
                f"{GENERATIVE_ENV}READING_BELOW must be between 0 (never ask) and 1, "
                f"got {self.reading_below}"
            )
        # The device gives the whole /infer exchange DEFAULT_DEADLINE_S; a reading that may
        # take all of it leaves no time for the server model, the network or the fallback.
        if not 0 < self.reading_timeout_s < DEFAULT_DEADLINE_S:
            raise SettingsError(
                f"{GENERATIVE_ENV}READING_TIMEOUT_S must be between 0 and "
                f"{DEFAULT_DEADLINE_S:g} seconds (the device's deadline for /infer), "
                f"got {self.reading_timeout_s}"
            )
        if not 1 <= self.reading_concurrency <= 1024:
            raise SettingsError(
                f"{GENERATIVE_ENV}READING_CONCURRENCY must be between 1 and 1024, "
                f"got {self.reading_concurrency}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GenerativeSettings | None:
        """The backend the ``PY_AGENT_GENERATIVE_*`` variables describe; None when
        ``PY_AGENT_GENERATIVE_URL`` is unset or empty (no backend)."""
        base_url = env.get(GENERATIVE_ENV + "URL", "").strip()
        if not base_url:
            return None
        model = env.get(GENERATIVE_ENV + "MODEL", "")
        if not model.strip():
            raise SettingsError(
                f"{GENERATIVE_ENV}MODEL is required when {GENERATIVE_ENV}URL is set "
                "(the model name the backend expects)"
            )
        return cls(
            base_url=base_url.rstrip("/"),
            model=model.strip(),
            api_key=env.get(GENERATIVE_ENV + "API_KEY") or None,
            timeout_s=_number(env, "TIMEOUT_S", float, cls.timeout_s),
            max_tokens=_number(env, "MAX_TOKENS", int, cls.max_tokens),
            reading_below=_number(env, "READING_BELOW", float, cls.reading_below),
            reading_timeout_s=_number(env, "READING_TIMEOUT_S", float, cls.reading_timeout_s),
            reading_concurrency=_number(env, "READING_CONCURRENCY", int, cls.reading_concurrency),
        )


_N = TypeVar("_N", int, float)


def _number(env: Mapping[str, str], name: str, kind: type[_N], default: _N) -> _N:
    raw = env.get(GENERATIVE_ENV + name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{GENERATIVE_ENV}{name} must be {what}, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    dist_dir: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    # The server model (server/inference.py, POST /api/v1/infer).
    models_dir: Path = Path("models")  # built by `python build.py models`
    infer_threads: int = 2  # onnxruntime threads of the one session
    infer_max_batch: int = 32  # requests embedded together at most
    infer_max_body_bytes: int = 64 * 1024
    infer_rate_per_s: float = 5.0  # per token: token bucket refill …
    infer_burst: int = 20  # … and size
    installs_per_min: int = 10  # per client IP, then 429
    # Sync (server/sync_api.py).
    pairing_code_ttl_s: float = 24 * 3600.0
    sync_page_size: int = 500  # ops answered per /sync at most
    max_body_bytes: int = 1024 * 1024
    sync_rate_per_s: float = 10.0  # per device: token bucket refill …
    sync_burst: int = 20  # … and size
    pairing_failures_per_min: int = 10  # per client IP, then 429
    # Out-of-scope answers and structured readings (server/generative.py, structured.py);
    # None = no backend: a fixed fallback, and the server model's reading alone.
    generative: GenerativeSettings | None = field(
        default_factory=lambda: GenerativeSettings.from_env(os.environ)
    )
    # The fault switch for network tests (server/faults.py): never on unless asked for.
    test_faults: bool = field(default_factory=lambda: os.environ.get(TEST_FAULTS_ENV) == "1")

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"--port must be between 1 and 65535, got {self.port}")
        for name in ("infer_threads", "infer_max_batch", "infer_burst", "installs_per_min"):
            if not getattr(self, name) >= 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.infer_rate_per_s > 0:
            raise SettingsError(f"infer_rate_per_s must be positive, got {self.infer_rate_per_s}")
        if not self.infer_max_body_bytes >= 8 * 1024:  # room for 2,000 characters, escaped
            raise SettingsError(
                f"infer_max_body_bytes must be at least 8192, got {self.infer_max_body_bytes}"
            )
        if not self.pairing_code_ttl_s > 0:
            raise SettingsError(
                f"pairing_code_ttl_s must be positive, got {self.pairing_code_ttl_s}"
            )
        if not 1 <= self.sync_page_size <= 10_000:
            raise SettingsError(
                f"sync_page_size must be between 1 and 10000, got {self.sync_page_size}"
            )
        if not self.max_body_bytes >= 1024:
            raise SettingsError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        if not self.sync_rate_per_s > 0:
            raise SettingsError(f"sync_rate_per_s must be positive, got {self.sync_rate_per_s}")
        if not self.sync_burst >= 1:
            raise SettingsError(f"sync_burst must be at least 1, got {self.sync_burst}")
        if not self.pairing_failures_per_min >= 1:
            raise SettingsError(
                f"pairing_failures_per_min must be at least 1, got {self.pairing_failures_per_min}"
            )
        if not (self.dist_dir / "index.html").is_file():
            raise SettingsError(
                f"{self.dist_dir} has no index.html: build the web app first "
                "(`python build.py`, or `make serve` which builds it)"
            )
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(f"--data-dir {self.data_dir} cannot be created: {exc}") from exc

    @property
    def sync_db(self) -> Path:
        return self.data_dir / "sync.db"

    @property
    def installs_db(self) -> Path:
        return self.data_dir / "installs.db"
