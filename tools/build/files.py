"""File helpers shared by the site build and the model build (stdlib only)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

CACHE_ENV = "PY_AGENT_CACHE"


def cache_root() -> Path:
    """Where builds keep what is slow to make and the same for every clone on this machine
    (tuned encoders, the joined server encoder): ``$PY_AGENT_CACHE``, else
    ``~/.cache/py_agent``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "py_agent"


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def replace_dir(new: Path, target: Path) -> None:
    """Put the complete directory ``new`` in place of ``target``.

    A directory cannot be os.replace()d over a non-empty one, so the old one steps
    aside first; only a complete directory is ever renamed to the target name.
    """
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        target.rename(old / target.name)
        new.rename(target)
        shutil.rmtree(old)
    else:
        new.rename(target)


def copy_dir(source: Path, target: Path) -> None:
    """Put a complete copy of ``source`` in place of ``target`` (see replace_dir)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.copy-"))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        staging.chmod(0o755)
        replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
