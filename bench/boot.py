"""Boot-stage timings: a first visit, then revisits with and without the memory snapshot.

    python -m bench.boot [--runs 5] [--threads 2]

Each run starts Chromium with a new profile on disk and makes, side by side:
- first: the first visit, from the network (Python started, then snapshotted);
- revisit: a reload, served by the service worker, Python restored from the snapshot;
- revisit_no_snapshot: the snapshot deleted from Cache Storage, then a reload (Python
  started as on a first visit, from the service worker's files).

Writes bench/results/boot.json and prints a markdown table (median per stage).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from tools.harness import (
    BOOT_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ServerProcess,
    app_files,
    wait_for_boot,
)

from . import report

STAGES = ["python", "numpy", "packages", "model"]
VISITS = ["first", "revisit", "revisit_no_snapshot"]
SNAPSHOT_KEPT = (
    "caches.open('py_agent-boot').then((c) => c.keys()).then((keys) => keys.length === 1)"
)
OFFLINE_READY = "document.body.dataset.sw === 'ready'"
FORGET_SNAPSHOT = "caches.delete('py_agent-boot')"


def timings(page: Page) -> dict[str, Any]:
    if wait_for_boot(page) != "ready":
        raise SystemExit(page.inner_text("#boot-error-text"))
    boot = page.evaluate("window.pyAgentBoot")
    [model] = boot["model"]["load_ms"].values()  # overlaps the stages above
    return {
        **{stage: boot["timings"][stage] for stage in [*STAGES, "unpack"]},
        "total": boot["total_ms"],
        "ready": round(page.evaluate("performance.now()")),
        **{f"model_{step}": round(ms) for step, ms in model.items()},
        "restored": boot["snapshot"]["restored"],
    }


def run(playwright: Any, url: str, profile: Path) -> dict[str, dict[str, Any]]:
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, bypass_csp=True
    )
    try:
        context.set_default_timeout(BOOT_TIMEOUT_MS)
        page = context.pages[0]
        page.goto(url)
        first = timings(page)
        page.wait_for_function(OFFLINE_READY)
        page.wait_for_function(SNAPSHOT_KEPT)
        page.reload()
        revisit = timings(page)
        page.evaluate(FORGET_SNAPSHOT)
        page.reload()
        no_snapshot = timings(page)
        if not revisit["restored"] or no_snapshot["restored"] or first["restored"]:
            raise SystemExit(f"unexpected snapshot use: {first}, {revisit}, {no_snapshot}")
        return {"first": first, "revisit": revisit, "revisit_no_snapshot": no_snapshot}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        server = ServerProcess(Path(tmp))
        server.start()
        try:
            for i in range(args.runs):
                url = f"{server.url}/?threads={args.threads}"
                runs.append(run(playwright, url, Path(tmp) / f"profile-{i}"))
        finally:
            server.stop()

    keys = [*STAGES, "unpack", "total", "ready", "model_download", "model_verify", "model_create"]
    medians = {
        visit: {key: statistics.median(run[visit][key] for run in runs) for key in keys}
        for visit in VISITS
    }
    dist_bytes = sum(app_files().values())
    path = report.write(
        "boot",
        {"threads": args.threads, "runs": runs, "median_ms": medians, "dist_bytes": dist_bytes},
    )
    print("| stage | " + " | ".join(VISITS) + " |\n|---|" + "---:|" * len(VISITS))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{medians[v][key]:.0f}" for v in VISITS) + " |")
    print(f"\nweb/dist: {dist_bytes:,} bytes; {args.runs} runs; written to {path}")


if __name__ == "__main__":
    main()
