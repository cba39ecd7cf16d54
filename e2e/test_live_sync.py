"""Live sync: two devices (two browser contexts) paired through the real server see each
other's changes within the deadline, because the server's event stream tells them (polling
alone takes up to 15 s); without the stream they fall back to polling, and reconnect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tools.harness import WATCH_FOR_TASK

from .harness import SYNCED, Device, Devices, ServerProcess, pair, say, wait_for_titles

# The live-sync deadline, write on one device to visible on the other (issue 14: p95 ≤ 1 s;
# bench/live_sync.py measures the distribution).
DEADLINE_MS = 1_000
# A change that arrives only by the fallback's periodic pull (PERIODIC_S = 15 s).
POLL_TIMEOUT_MS = 25_000
LIVE = "document.body.dataset.live === 'true'"
EVENTS = "**/api/v1/spaces/*/events"

# On the writer: the time of the write, then the write itself, a direct edit as the task
# list makes one (the same synced op as the agent's, without the model's turn before it).
# Both pages read one clock: the browser's.
WRITE = """async ([id, title]) => {
  const at = performance.timeOrigin + performance.now();
  await window.pyAgent.editRecord('tasks', id, { title });
  return at;
}"""
TASK_ID = "async () => (await window.pyAgent.snapshot()).tasks[0].id"


@pytest.fixture
def two(browser: Browser, server: ServerProcess) -> Iterator[tuple[Device, Device]]:
    """Two paired devices, both listening, both showing one task."""
    devices = Devices(browser, server.url)
    a, b = devices.open(2)
    pair(a[1], b[1])
    for _, page in (a, b):
        page.wait_for_function(LIVE)
    assert "Added “water the plants”" in say(a[1], "remind me to water the plants")
    wait_for_titles(b[1], ["water the plants"])
    yield a, b
    devices.close()


def write(writer: Page, reader: Page, title: str, timeout_ms: float) -> float:
    """Milliseconds from renaming the task on ``writer`` until ``reader`` shows it."""
    reader.evaluate(WATCH_FOR_TASK, title)
    written_at = float(writer.evaluate(WRITE, [writer.evaluate(TASK_ID), title]))
    reader.wait_for_function("window.liveSeenAt !== undefined", timeout=timeout_ms)
    return float(reader.evaluate("window.liveSeenAt")) - written_at


def test_each_device_sees_the_others_change_within_the_deadline(
    two: tuple[Device, Device],
) -> None:
    (_, a), (_, b) = two
    for writer, reader, title in ((a, b, "water the fern"), (b, a, "water the cactus")):
        latency = write(writer, reader, title, timeout_ms=5 * DEADLINE_MS)
        assert latency <= DEADLINE_MS, f"{title!r} took {latency:.0f} ms to reach the other device"
    for page in (a, b):  # pushed everything, pulled up to the server's cursor
        page.wait_for_function(SYNCED)
        assert page.inner_text("#sync-indicator") == "Synced"


def test_without_the_stream_a_device_polls_and_listens_again_once_it_can(
    browser: Browser, server: ServerProcess
) -> None:
    devices = Devices(browser, server.url)
    try:
        (_, a), (context_b, b) = devices.open(2)
        # A proxy that refuses the stream: B syncs by the periodic pull alone.
        context_b.route(EVENTS, lambda route: route.abort())
        pair(a, b)
        a.wait_for_function(LIVE)
        b.wait_for_function("document.body.dataset.live === 'false'")
        assert "Added “water the plants”" in say(a, "remind me to water the plants")
        b.wait_for_selector("[data-role='task']", timeout=POLL_TIMEOUT_MS)

        context_b.unroute(EVENTS)
        b.evaluate("dispatchEvent(new Event('online'))")  # ends the backoff's wait at once
        b.wait_for_function(LIVE)
        assert write(a, b, "water the roses", timeout_ms=5 * DEADLINE_MS) <= DEADLINE_MS
    finally:
        devices.close()
