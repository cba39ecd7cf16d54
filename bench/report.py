"""Benchmark results: each benchmark writes one JSON file with the machine it ran on
(``write``), and the docs' tables are made from those files.

    python -m bench.report           # rewrite every generated table in README.md and docs/
    python -m bench.report --check   # only say which tables differ from the results (exit 1)

A generated table sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
``bench/tables.py`` has one function a NAME.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.tables import RESULTS, TABLES, Results

ROOT = Path(__file__).resolve().parent.parent
# A block's name is checked against TABLES; its end names it again, so a lost end marker
# cannot swallow the rest of the page.
BLOCK = re.compile(
    r"(<!-- bench:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S
)
START = re.compile(r"<!-- bench:([a-z0-9-]+) -->")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "p95": round(percentile(values, 95), 3),
        "min": round(min(values), 3),
    }


def machine() -> dict[str, Any]:
    # Benchmarks that never start a browser (bench.understanding) run without one too.
    try:
        chromium = subprocess.run(
            ["/usr/bin/chromium", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except FileNotFoundError:
        chromium = "not installed"
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "chromium": chromium,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    return path


def documents(root: Path = ROOT) -> list[Path]:
    """The pages that may hold generated tables."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def regenerate(text: str, results: Results) -> str:
    """``text`` with every generated table made again from ``results``."""
    names = START.findall(text)
    blocks = [match["name"] for match in BLOCK.finditer(text)]
    if names != blocks:
        unclosed = [name for name in names if name not in blocks]
        raise ValueError(f"table markers without their end marker: {unclosed}")
    unknown = sorted(set(names) - set(TABLES))
    if unknown:
        raise ValueError(f"no table named {unknown} in bench/tables.py (known: {sorted(TABLES)})")

    def fill(match: re.Match[str]) -> str:
        return match[1] + TABLES[match["name"]](results).rstrip("\n") + "\n" + match[4]

    return BLOCK.sub(fill, text)


def stale(paths: Sequence[Path], results: Results) -> dict[Path, tuple[str, str]]:
    """The pages whose tables differ from the results: path -> (committed, regenerated)."""
    changed = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        fresh = regenerate(text, results)
        if fresh != text:
            changed[path] = (text, fresh)
    return changed


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    changed = stale(documents(root), Results(RESULTS))
    for path, (text, fresh) in changed.items():
        name = str(path.relative_to(root))
        if args.check:
            diff = difflib.unified_diff(
                text.splitlines(keepends=True), fresh.splitlines(keepends=True), name, name
            )
            sys.stdout.writelines(diff)
        else:
            path.write_text(fresh, encoding="utf-8")
            print(f"rewrote the tables of {name}")
    if not changed:
        print("every table matches bench/results/")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
