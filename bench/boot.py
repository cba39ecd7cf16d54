"""Boot-stage timings of the app served by the local server, cold HTTP cache each visit.

    python -m bench.boot [--runs 5] [--threads 2]

Writes bench/results/boot.json and prints a markdown table (median per stage).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tools.harness import DIST, ServerProcess, launch_chromium, wait_for_boot

from . import report

STAGES = ["download", "python", "numpy", "packages", "model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory() as data, sync_playwright() as playwright:
        server = ServerProcess(Path(data))
        server.start()
        browser = launch_chromium(playwright)
        try:
            for _ in range(args.runs):
                context = browser.new_context()  # a new context starts with an empty HTTP cache
                page = context.new_page()
                page.goto(f"{server.url}/?threads={args.threads}")
                if wait_for_boot(page) != "ready":
                    raise SystemExit(page.inner_text("#boot-error-text"))
                boot = page.evaluate("window.pyAgentBoot")
                [model] = boot["model"]["load_ms"].values()  # overlaps the stages above
                runs.append(
                    {
                        **boot["timings"],
                        "total": boot["total_ms"],
                        **{f"model_{step}": round(ms) for step, ms in model.items()},
                    }
                )
                context.close()
        finally:
            browser.close()
            server.stop()

    keys = [*STAGES, "total", "model_download", "model_verify", "model_create"]
    medians = {key: statistics.median(run[key] for run in runs) for key in keys}
    build = json.loads((DIST / "build.json").read_text())
    dist_bytes = sum(entry["bytes"] for entry in build["files"].values())
    path = report.write(
        "boot",
        {"threads": args.threads, "runs": runs, "median_ms": medians, "dist_bytes": dist_bytes},
    )
    print("| stage | median ms |\n|---|---:|")
    for key, value in medians.items():
        print(f"| {key} | {value:.0f} |")
    print(f"\nweb/dist: {dist_bytes:,} bytes; {args.runs} runs; written to {path}")


if __name__ == "__main__":
    main()
