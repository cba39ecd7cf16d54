"""What the before/after benchmarks share (bench.state_reads, bench.space_memory,
bench.connection_flood): the server of a checkout, their command line, and their results
file, which keeps the ``before`` run while an ``after`` run is written, and the other way
round. "Before" is measured on a ``git worktree`` of an older commit (``--tree``), so a run
never measures uncommitted files."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from tools.harness import ServerProcess

from . import report
from .tables import RESULTS

ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose server runs")
    parser.add_argument("--phase", choices=("before", "after"), default="after")


def commit_of(tree: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def server(
    tree: Path, data: Path, settings: dict[str, str], open_files: int | None = None
) -> ServerProcess:
    """`py-agent serve` from ``tree`` on a free port, with a one-page web build and no model
    to preload (/infer reads its body, then answers 503); not started yet."""
    dist = data / "dist"
    dist.mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>bench</title>")
    (data / "db").mkdir()
    models = {"PY_AGENT_MODELS_DIR": str(data / "no-models")}
    return ServerProcess(
        data / "db", dist=dist, settings=models | settings, open_files=open_files, tree=tree
    )


def write(name: str, phase: str, result: dict[str, Any], **shared: Any) -> None:
    """Writes ``result`` as the ``phase`` run of bench/results/<name>.json, keeping the other
    phase's run; ``shared`` is what describes both."""
    path = RESULTS / f"{name}.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    runs = {other: kept[other] for other in ("before", "after") if other in kept}
    runs[phase] = result
    report.write(name, {**shared, **runs})
