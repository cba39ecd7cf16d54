"""How well py_agent understands requests: `py-agent eval` on every labelled set, in all
three modes, in one run, with τ chosen on the validation split only.

    python -m bench.understanding            # writes bench/results/understanding.json
    python -m bench.understanding --markdown # and prints the tables docs/understanding.md shows

τ is the threshold below which the device asks the server. It is chosen on valid (never
on a test split): the τ with the highest valid cascade accuracy among those sending at most
`BUDGET` of valid's requests to the server, ties to the lower τ. Every other set is then
measured at that τ, and each set's whole τ curve is kept as bench/results/cascade_<set>.json
and .png. `py-agent eval` runs as a subprocess per set and mode (the models load
as the CLI loads them), with the files and --now of each set.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import RESULTS, write
from bench.tables import TABLES, Results

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
# The new test split's writers dated everything from this moment (data/intents/GUIDE.md).
NOW = "2026-11-18T10:00:00+00:00"
BUDGET = 0.20
MODES = ("local", "cloud", "cascade")
UNDERSTANDING_TABLES = ("understanding", "understanding-targets", "understanding-slots")


def split_file(split: str, out: Path) -> Path:
    """One JSONL of the files data/intents/splits.json lists for ``split``."""
    index = json.loads((DATA / "intents" / "splits.json").read_text(encoding="utf-8"))
    path = out / f"{split}.jsonl"
    with path.open("w", encoding="utf-8") as joined:
        for name in index[split]:
            joined.write((DATA / "intents" / name).read_text(encoding="utf-8"))
    return path


def run_eval(path: Path, mode: str, threshold: float, *extra: str) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "tools.cli", "eval", str(path), "--mode", mode,
        "--threshold", str(threshold), "--now", NOW, "--threads", "2", "--json", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def choose_threshold(sweep: list[dict[str, float]]) -> dict[str, float]:
    within = [point for point in sweep if point["fallback_rate"] <= BUDGET]
    return max(within, key=lambda p: (p["accuracy"], -p["threshold"]))


def summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "n", "accuracy", "macro_f1", "fallback_rate", "confident_wrong", "due_accuracy",
        "due_n", "repeat_accuracy", "repeat_n", "title_accuracy", "title_n", "list_accuracy",
        "list_n", "note_text_accuracy", "note_text_n", "seconds",
    )  # fmt: skip
    result = {key: report.get(key) for key in keys}
    result["recall"] = {k: round(v["recall"], 4) for k, v in report["per_intent"].items() if v["n"]}
    result["confusion"] = report["confusion"][:8]
    return result


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        valid = run_eval(split_file("valid", out), "cascade", 0.5, "--sweep")
        chosen = choose_threshold(valid["sweep"])
        tau = chosen["threshold"]
        sets: dict[str, Any] = {}
        for name, path in (
            ("heldout", split_file("heldout", out)),
            ("test", split_file("test", out)),
            ("valid", split_file("valid", out)),
        ):
            sets[name] = {mode: summary(run_eval(path, mode, tau)) for mode in MODES[:-1]}
            # The cascade's run also traces the whole τ curve, kept beside the results.
            plot = RESULTS / f"cascade_{name}.png"
            cascade = run_eval(path, "cascade", tau, "--sweep", "--plot", str(plot))
            (RESULTS / f"cascade_{name}.json").write_text(
                json.dumps(cascade, indent=2) + "\n", encoding="utf-8"
            )
            sets[name]["cascade"] = summary(cascade)
        dates = run_eval(DATA / "eval" / "dates.jsonl", "local", tau)
        retrieval = run_eval(DATA / "eval" / "retrieval.jsonl", "local", tau)
        hard = run_eval(DATA / "eval" / "retrieval_hard.jsonl", "local", tau)
    return {
        "threshold": {
            "chosen": tau,
            "rule": f"highest valid cascade accuracy with at most {BUDGET:.0%} sent, ties "
            "to the lower threshold",
            "valid_point": chosen,
        },
        "sets": sets,
        "dates": {"n": dates["n"], "accuracy": dates["accuracy"], "due": dates["due_accuracy"]},
        "retrieval": {"top1": retrieval["retrieval_top1"]},
        "retrieval_hard": {
            "top1": hard["retrieval_top1"],
            "targets": hard["target_accuracy"],
            "wrong_action": hard["target_wrong_action"],
            "asked": hard["target_asked"],
            "target_n": hard["target_n"],
        },
    }


def markdown() -> str:
    """The understanding tables of docs/understanding.md, from the result just written."""
    results = Results()
    return "\n\n".join(TABLES[name](results) for name in UNDERSTANDING_TABLES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the docs' tables")
    args = parser.parse_args()
    result = measure()
    path = write("understanding", result)
    print(f"wrote {path}")
    if args.markdown:
        print(markdown())
    print("then `python -m bench.report` rewrites the docs' tables")


if __name__ == "__main__":
    main()
