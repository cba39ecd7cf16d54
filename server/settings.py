"""Server settings, validated once at start-up so a bad value fails before the first request."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class SettingsError(ValueError):
    pass


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
