"""Live sync: from a write on one device to the change on the other device's screen.

    python -m bench.live_sync [--changes 50] [--polling 5] [--runs 1]

Two devices, each its own browser context (so its own IndexedDB and worker), paired through
the real server on 127.0.0.1 and both listening to its event stream. Device A renames a task
``--changes`` times, one after the other, with a direct edit (``pyAgent.editRecord``: the
same synced op as the agent's, without the model's turn before it); each is timed in the
browser from just before the write on A to the moment B's task list shows it (a
MutationObserver on B; both pages read the browser's one clock). Then B's stream is refused
(as a proxy that drops it would) and ``--polling`` more changes are timed: they reach B only
by the periodic pull the stream replaced, which is how every change travelled before.
Each run starts a server on a fresh data dir. Writes bench/results/live_sync.json.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tools.harness import (
    BOOT_TIMEOUT_MS,
    WATCH_FOR_TASK,
    ServerProcess,
    launch_chromium,
    wait_for_boot,
)

from . import report
from .sync import wait_until_idle

# The target: p95 of write on A → visible on B.
TARGET_P95_MS = 1_000
LIVE = "document.body.dataset.live === 'true'"
EVENTS = "**/api/v1/spaces/*/events"
LIVE_TIMEOUT_MS = 10_000
# Waits for a change that only the periodic pull (every 15 s) brings.
POLL_TIMEOUT_MS = 40_000

ADD_TASK = "window.pyAgent.ask('remind me to water the plants', new Date().toISOString())"
TASK_ID = "(async () => (await window.pyAgent.snapshot()).tasks[0].id)()"
WRITE = """async ([id, title]) => {
  const at = performance.timeOrigin + performance.now();
  await window.pyAgent.editRecord('tasks', id, { title });
  return [at, performance.timeOrigin + performance.now() - at];
}"""


# Every mark the page makes for the benchmark (web/src/live_sync.js), as
# [name, time on the browser's clock, detail], kept by a PerformanceObserver.
OBSERVE_MARKS = """() => {
  window.liveMarks = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (!entry.name.startsWith('py_agent:')) continue;
      window.liveMarks.push([entry.name, performance.timeOrigin + entry.startTime, entry.detail]);
    }
  }).observe({ type: 'mark' });
}"""
HEARD = "py_agent:live-changed"
STATUS = "py_agent:sync-status"


@dataclass(frozen=True)
class Timed:
    """One change, in ms from just before the write on A."""

    visible: float  # B's task list shows it
    written: float  # the write on A returned (its commit)
    pushed: float  # A's status says nothing is pending any more
    heard: float  # B's stream said the space changed
    pulled: float  # B's status carries the pulled change (a new revision)


def device(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    page.goto(url + "/")
    if wait_for_boot(page) != "ready":
        raise SystemExit(page.inner_text("body"))
    page.evaluate(OBSERVE_MARKS)
    return page


def pair(a: Page, *others: Page) -> str:
    """Pair ``others`` into a space ``a`` creates; returns the pairing code."""
    code = str(a.evaluate("window.pyAgent.createSpace('bench A')")["pairing_code"])
    for page in others:
        page.evaluate("(code) => window.pyAgent.joinSpace(code, 'bench')", code)
    return code


def change(a: Page, b: Page, task_id: str, title: str, timeout_ms: float) -> Timed:
    """Renames the task on A and times it until B shows the new title, with the steps
    between (see ``Timed``)."""
    b.evaluate(WATCH_FOR_TASK, title)
    at, write_ms = a.evaluate(WRITE, [task_id, title])
    written_at = float(at)
    b.wait_for_function("window.liveSeenAt !== undefined", timeout=timeout_ms)
    visible = float(b.evaluate("window.liveSeenAt")) - written_at
    a_marks = [m for m in a.evaluate("window.liveMarks") if m[1] >= written_at]
    b_marks = list(b.evaluate("window.liveMarks"))
    revision = max(m[2]["revision"] for m in b_marks if m[0] == STATUS and m[1] < written_at)

    def first(marks: list[Any], wanted: Callable[[Any], bool]) -> float:
        return float(min((m[1] for m in marks if wanted(m)), default=math.nan)) - written_at

    return Timed(
        visible=visible,
        written=float(write_ms),
        pushed=first(a_marks, lambda m: m[0] == STATUS and m[2]["pending"] == 0),
        heard=first(b_marks, lambda m: m[0] == HEARD and m[1] >= written_at),
        pulled=first(b_marks, lambda m: m[0] == STATUS and m[2]["revision"] > revision),
    )


def measure(
    browser: Browser, url: str, changes: int, polling: int
) -> tuple[list[Timed], list[Timed]]:
    a, b = (
        device(browser.new_context(bypass_csp=True), url),
        device(browser.new_context(bypass_csp=True), url),
    )
    code = pair(a, b)
    for page in (a, b):
        page.wait_for_function(LIVE)
    a.evaluate(ADD_TASK)
    task_id = str(a.evaluate(TASK_ID))
    b.wait_for_selector("[data-role='task']")
    live = [change(a, b, task_id, f"water plant {i}", LIVE_TIMEOUT_MS) for i in range(changes)]
    if not polling:
        return live, []
    # A third device whose stream is refused, as by a proxy that drops it.
    context_c = browser.new_context(bypass_csp=True)
    context_c.route(EVENTS, lambda route: route.abort())
    c = device(context_c, url)
    c.evaluate("(code) => window.pyAgent.joinSpace(code, 'bench C')", code)
    c.wait_for_function("document.body.dataset.live === 'false'")
    c.wait_for_selector("[data-role='task']")
    polled = [change(a, c, task_id, f"water fern {i}", POLL_TIMEOUT_MS) for i in range(polling)]
    return live, polled


def one_run(changes: int, polling: int) -> tuple[list[Timed], list[Timed]]:
    with tempfile.TemporaryDirectory() as data:
        server = ServerProcess(Path(data))
        server.start()
        try:
            assert server.pid is not None
            wait_until_idle(server.pid)
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                try:
                    return measure(browser, server.url, changes, polling)
                finally:
                    browser.close()
        finally:
            server.stop()


STEPS = ("pushed", "heard", "pulled")


def steps(values: list[float]) -> dict[str, float]:
    """A step's summary over the changes where its mark was seen."""
    seen = [value for value in values if not math.isnan(value)]
    return {**report.summary(seen), "missed": len(values) - len(seen)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--polling", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    runs = [one_run(args.changes, args.polling) for _ in range(args.runs)]
    live = [timed for run, _ in runs for timed in run]
    polled = [timed.visible for _, run in runs for timed in run]
    result: dict[str, Any] = {
        "runs": args.runs,
        "changes_per_run": args.changes,
        "live_ms": report.summary([timed.visible for timed in live]),
        "live_max_ms": round(max(timed.visible for timed in live), 1),
        "write_ms": report.summary([timed.written for timed in live]),
        # The steps between, each from just before the write on A (see Timed).
        **{f"{step}_ms": steps([getattr(timed, step) for timed in live]) for step in STEPS},
        "polling_ms": report.summary(polled) if polled else None,
        "target_p95_ms": TARGET_P95_MS,
    }
    path = report.write("live_sync", result)
    lat = result["live_ms"]
    write = result["write_ms"]
    print(f"the write on A alone: p50 {write['p50']:.0f} ms, p95 {write['p95']:.0f} ms")
    for step in STEPS:
        timing = result[f"{step}_ms"]
        print(f"  {step} by: p50 {timing['p50']:.0f} ms, p95 {timing['p95']:.0f} ms")
    print(
        f"write on A → visible on B, {len(live)} changes: p50 {lat['p50']:.0f} ms, "
        f"p95 {lat['p95']:.0f} ms, max {result['live_max_ms']:.0f} ms"
    )
    if polled:
        poll = result["polling_ms"]
        print(f"stream refused (polling): p50 {poll['p50']:.0f} ms, p95 {poll['p95']:.0f} ms")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
