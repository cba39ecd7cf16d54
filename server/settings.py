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

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"--port must be between 1 and 65535, got {self.port}")
        if not (self.dist_dir / "index.html").is_file():
            raise SettingsError(
                f"{self.dist_dir} has no index.html: build the web app first "
                "(`python build.py`, or `make serve` which builds it)"
            )
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(f"--data-dir {self.data_dir} cannot be created: {exc}") from exc
