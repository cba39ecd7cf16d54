"""First visit and later loads of the installable app: bytes downloaded and time to ready.

    python -m bench.pwa [--runs 5]

Each run starts a browser with a fresh profile on disk (a disk HTTP cache, as people have)
behind a byte-counting proxy (tools.harness.ByteCounter: every byte the server sends, to the
page, its workers or the service worker):

- cold: the first visit, from the network; then until the service worker has precached
  everything (the app works offline from then on);
- service worker: a reload, served by the service worker (a task and a note were added
  first: the time until the user's tasks are on screen is measured too);
- offline: a reload with the server stopped and the network cut (Playwright's offline
  mode does not stop the browser's own update check of sw.js).

Every visit also counts the requests that failed (none should), and the revisit measures
the agent worker's memory after boot (performance.measureUserAgentSpecificMemory).

One more first visit in an incognito context shows what a memory-only HTTP cache costs.
Writes bench/results/pwa.json and prints a markdown table (medians).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from tools.harness import (
    BOOT_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ByteCounter,
    ServerProcess,
    app_files,
    launch_chromium,
    wait_for_boot,
)

from . import report

OFFLINE_READY = "document.body.dataset.sw === 'ready'"
SNAPSHOT_KEPT = (
    "caches.open('py_agent-boot').then((c) => c.keys()).then((keys) => keys.length === 1)"
)
# When the first task appears on screen, by the page's own clock (from navigation start).
WATCH_TASKS = """
new MutationObserver((_, observer) => {
  if (document.querySelector('[data-role="task"]')) {
    window.benchTasksShownMs = performance.now();
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
"""
# Resolves at once with this flag instead of at the next garbage collection.
MEMORY_ARGS = ["--enable-blink-features=ForceEagerMeasureMemory"]
WORKER_MEMORY = """
performance.measureUserAgentSpecificMemory().then((result) => result.breakdown
  .filter((entry) => entry.attribution.some((a) => a.scope === 'DedicatedWorkerGlobalScope'))
  .reduce((sum, entry) => sum + entry.bytes, 0))
"""


def ready(page: Page) -> dict[str, Any]:
    """Wait for the boot; the page's own clock from navigation start, and the boot's."""
    if wait_for_boot(page) != "ready":
        raise SystemExit(page.inner_text("#boot-error-text"))
    return {
        "ready_ms": round(page.evaluate("performance.now()")),
        "boot_ms": page.evaluate("window.pyAgentBoot.total_ms"),
    }


def add_data(page: Page) -> None:
    for request in ("remind me to renew the passport", "note that the gate code is 4321"):
        page.evaluate("(text) => window.pyAgent.ask(text, new Date().toISOString())", request)


def first_visit(page: Page, proxy: ByteCounter) -> dict[str, Any]:
    before = proxy.received
    started = time.monotonic()
    page.goto(proxy.url + "/")
    visit = {**ready(page), "bytes_at_ready": proxy.received - before}
    page.wait_for_function(OFFLINE_READY, timeout=BOOT_TIMEOUT_MS)
    visit["offline_ready_ms"] = round((time.monotonic() - started) * 1000)
    visit["bytes"] = proxy.received - before
    return visit


def reload(page: Page, proxy: ByteCounter) -> dict[str, Any]:
    before = proxy.received
    page.reload()
    visit = ready(page)
    if page.evaluate("navigator.serviceWorker.controller") is None:
        raise SystemExit("the reload was not served by the service worker")
    shown = page.evaluate("window.benchTasksShownMs ?? null")
    return {
        **visit,
        "tasks_shown_ms": None if shown is None else round(shown),
        "bytes": proxy.received - before,
    }


def run(
    playwright: Any, server: ServerProcess, proxy: ByteCounter, profile: Path
) -> dict[str, Any]:
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *MEMORY_ARGS], bypass_csp=True
    )
    failed: list[str] = []
    context.on("requestfailed", lambda request: failed.append(request.url))
    try:
        context.set_default_timeout(BOOT_TIMEOUT_MS)
        context.add_init_script(WATCH_TASKS)
        page = context.pages[0]
        cold = first_visit(page, proxy)
        page.wait_for_function(SNAPSHOT_KEPT)
        add_data(page)
        cold["failed_requests"] = len(failed)
        warm = reload(page, proxy)
        warm["worker_memory_bytes"] = page.evaluate(WORKER_MEMORY)
        warm["failed_requests"] = len(failed) - cold["failed_requests"]
        server.stop()
        context.set_offline(True)
        try:
            offline = reload(page, proxy)
        finally:
            server.start()
        offline["failed_requests"] = len(failed) - cold["failed_requests"] - warm["failed_requests"]
        return {"cold": cold, "service_worker": warm, "offline": offline}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    dist_bytes = sum(app_files().values())
    runs = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        server = ServerProcess(Path(tmp))
        server.start()
        proxy = ByteCounter(server.port)
        try:
            for i in range(args.runs):
                runs.append(run(playwright, server, proxy, Path(tmp) / f"profile-{i}"))
            browser = launch_chromium(playwright)
            try:
                incognito = first_visit(browser.new_context(bypass_csp=True).new_page(), proxy)
            finally:
                browser.close()
        finally:
            proxy.close()
            server.stop()

    keys = ("ready_ms", "boot_ms", "bytes", "failed_requests")
    medians = {
        visit: {key: statistics.median(run[visit][key] for run in runs) for key in keys}
        for visit in ("cold", "service_worker", "offline")
    }
    medians["cold"]["offline_ready_ms"] = statistics.median(
        run["cold"]["offline_ready_ms"] for run in runs
    )
    for visit in ("service_worker", "offline"):
        shown = [run[visit]["tasks_shown_ms"] for run in runs]
        medians[visit]["tasks_shown_ms"] = None if None in shown else statistics.median(shown)
    medians["service_worker"]["worker_memory_bytes"] = statistics.median(
        run["service_worker"]["worker_memory_bytes"] for run in runs
    )
    path = report.write(
        "pwa",
        {
            "dist_bytes": dist_bytes,
            "runs": runs,
            "median": medians,
            "incognito_first_visit": incognito,
        },
    )
    print("| load | time to ready (ms) | boot (ms) | bytes downloaded |\n|---|---:|---:|---:|")
    for visit, row in medians.items():
        print(f"| {visit} | {row['ready_ms']:.0f} | {row['boot_ms']:.0f} | {row['bytes']:,.0f} |")
    print(
        f"\ncold: offline-ready after {medians['cold']['offline_ready_ms']:.0f} ms; "
        f"web/dist is {dist_bytes:,} bytes; incognito first visit "
        f"{incognito['bytes']:,} bytes; {args.runs} runs; written to {path}"
    )


if __name__ == "__main__":
    main()
