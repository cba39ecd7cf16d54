"""The dist under construction: what a build is asked for (`Config`), the staging folder the
steps fill (`Build`), and what every step shares (errors, commands, JSON files)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.build.files import display, sha256_file

if TYPE_CHECKING:
    from tools.build.pyodide import PyodideLock
    from tools.build.wheels import BrowserDeps, Project

MANIFEST = "build.json"
# Far above the largest file (the 23 MB model); Workbox's default of 2 MB would silently
# leave out the runtimes, the stdlib, numpy and the model. A file over it fails the build.
PRECACHE_MAX_FILE_BYTES = 128 * 2**20


class BuildError(Exception):
    """An expected failure: main() prints the message, without a traceback."""


Runner = Callable[[Sequence[str], Path], None]
Log = Callable[[str], None]


def run_command(cmd: Sequence[str], cwd: Path) -> None:
    try:
        done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} not found on PATH (needed to run: {' '.join(cmd)})") from None
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip()).splitlines()[-15:]
        raise BuildError(
            f"command failed with exit code {done.returncode}: {' '.join(cmd)}\n"
            + "\n".join(f"  | {line}" for line in output)
        )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"{display(path)} not found") from None
    except json.JSONDecodeError as exc:
        raise BuildError(f"{display(path)}: invalid JSON ({exc})") from None


@dataclass(frozen=True)
class Config:
    root: Path
    dist: Path
    cache: Path
    pyodide_packages: Path | None = None
    run: Runner = run_command
    log: Log = print
    precache_max_file_bytes: int = PRECACHE_MAX_FILE_BYTES

    @property
    def web(self) -> Path:
        return self.root / "web"

    @property
    def node_modules(self) -> Path:
        return self.web / "node_modules"

    @property
    def models(self) -> Path:
        return self.root / "models"


def npm_version(cfg: Config, package: str) -> str:
    version: str = read_json(cfg.node_modules / package / "package.json")["version"]
    return version


@dataclass
class Build:
    """State shared by the steps while they fill the staging directory."""

    cfg: Config
    staging: Path
    lock: PyodideLock
    deps: BrowserDeps
    project: Project
    origins: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    def sha256(self, rel: str) -> str:
        """sha256 of a file already added (each hashed once: the dist is ~60 MB)."""
        if rel not in self.digests:
            self.digests[rel] = sha256_file(self.staging / rel)
        return self.digests[rel]

    def add_file(self, src: Path, rel: str) -> None:
        if not src.is_file():
            raise BuildError(f"{display(src)} not found (needed for dist/{rel})")
        self._claim(rel, display(src))
        shutil.copyfile(src, self.staging / rel)

    def add_bytes(self, data: bytes, rel: str, origin: str) -> None:
        self._claim(rel, origin)
        (self.staging / rel).write_bytes(data)

    def _claim(self, rel: str, origin: str) -> None:
        # web/src is copied first, so a stray vendor/ or pyodide/ file there must not be
        # silently replaced (or silently shadow what the build provides).
        if rel in self.origins or rel == MANIFEST:
            first = self.origins.get(rel, "tools/build/web.py (the manifest)")
            raise BuildError(f"dist/{rel} would come from both {first} and {origin}")
        self.origins[rel] = origin
        (self.staging / rel).parent.mkdir(parents=True, exist_ok=True)
