"""What only the browser tests need: a chat turn, devices in their own contexts, pairing,
and the task list as the page shows it.

Starting the server and Chromium is shared with bench/ and lives in ``tools/harness.py``;
its names are re-exported here so an e2e test imports everything from ``.harness``.
"""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Browser, BrowserContext, Page, Route

from tools.harness import (
    BOOT_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DIST,
    FAULTS_PATH,
    ROOT,
    TEST_FAULTS_ENV,
    ByteCounter,
    ServerProcess,
    free_port,
    launch_chromium,
    wait_for_boot,
    wait_until_healthy,
)

__all__ = [
    "BOOT_TIMEOUT_MS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "DIST",
    "FAULTS_PATH",
    "PAIRING_CODE",
    "READY",
    "ROOT",
    "SYNCED",
    "TEST_FAULTS_ENV",
    "TITLES",
    "ByteCounter",
    "Device",
    "Devices",
    "HeldRequests",
    "ServerProcess",
    "free_port",
    "launch_chromium",
    "pair",
    "say",
    "titles",
    "wait_for_boot",
    "wait_for_titles",
    "wait_pushed",
    "wait_until_healthy",
]

# The page's stable hook: the agent can answer (web/src/app.js).
READY = "document.documentElement.dataset.ready === 'true'"
SYNCED = "document.body.dataset.sync === 'synced' && document.body.dataset.syncPending === '0'"
TITLES = "[...document.querySelectorAll('#tasks .title')].map((title) => title.dataset.saved)"
# A predicate can only be synchronous: each poll asks the worker for its status, and the
# next poll reads the answer.
PUSHED = """(key) => {
  window.pyAgent.syncStatus().then((status) => {
    if (status.state === 'synced' && status.pending === 0) window[key] = true;
  });
  return window[key] === true;
}"""
PAIRING_CODE = re.compile(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}")

Device = tuple[BrowserContext, Page]


def say(page: Page, text: str) -> str:
    """Send one chat message and return the agent's reply, once the page shows it."""
    turn = int(page.evaluate("document.body.dataset.turns ?? '0'")) + 1
    page.fill("#input", text)
    page.press("#input", "Enter")
    page.wait_for_function(f"document.body.dataset.turns === '{turn}'")
    return page.inner_text("#messages li.agent:last-child")


class HeldRequests:
    """Requests of a context matching ``pattern`` wait, unanswered, until ``release()``: a
    boot held at a known point (e.g. ``**/pyodide.asm.wasm``, which every boot fetches) for
    as long as a test looks at the page. The context should block service workers, which
    would otherwise answer the requests where no route sees them."""

    def __init__(self, context: BrowserContext, pattern: str) -> None:
        self.context = context
        self.pattern = pattern
        self.held: list[Route] = []
        self.released = False
        context.route(pattern, self._hold)

    def _hold(self, route: Route) -> None:
        if self.released:
            route.fallback()
        else:
            self.held.append(route)

    def release(self) -> None:
        """Let the held requests and every later one through."""
        self.released = True
        for route in self.held:
            route.continue_()
        self.held.clear()


class Devices:
    """Fresh devices, each in its own browser context (so its own IndexedDB), closed together."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.browser = browser
        self.url = url
        self.contexts: list[BrowserContext] = []

    def new(self) -> Device:
        """A device on its own page, not yet navigated."""
        context = self.browser.new_context(bypass_csp=True)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(BOOT_TIMEOUT_MS)
        return context, page

    def open(self, count: int = 1) -> list[Device]:
        """``count`` booted devices; they boot side by side."""
        devices = [self.new() for _ in range(count)]
        for _, page in devices:
            page.goto(self.url + "/")
        for _, page in devices:
            assert wait_for_boot(page) == "ready", page.inner_text("body")
        return devices

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


def pair(first: Page, *others: Page) -> str:
    """Create a space on ``first``, join it from ``others`` with the code it shows, and
    wait until all are synced; returns the pairing code."""
    first.click("#create-space")
    code = first.locator("#pairing-code")
    code.wait_for()
    text = code.inner_text()
    assert PAIRING_CODE.fullmatch(text), text
    for page in others:
        page.fill("#join-code", text)
        page.click("#join button")
    for page in (first, *others):
        page.wait_for_function(SYNCED)
    return text


def titles(page: Page) -> list[str]:
    return sorted(page.evaluate(TITLES))


def wait_for_titles(page: Page, expected: list[str]) -> None:
    page.wait_for_function(
        f"(expected) => JSON.stringify({TITLES}.sort()) === JSON.stringify(expected)",
        arg=sorted(expected),
    )


def wait_pushed(page: Page) -> None:
    """After a local change: wait until the worker has pushed it, then until the page says
    so. The worker is asked: a push follows a change within a tenth of a second, too soon
    for the page's indicator to be sure to show it pending first."""
    key = f"pushed-{uuid.uuid4()}"  # a status asked for by an earlier wait never counts
    page.wait_for_function(PUSHED, arg=key, polling=100)
    page.wait_for_function(SYNCED)
