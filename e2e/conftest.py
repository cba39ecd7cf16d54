"""Fixtures for the browser tests: a real py-agent server on 127.0.0.1 and Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tools.harness import BOOT_TIMEOUT_MS, DIST, ServerProcess, launch_chromium

from .harness import Devices


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not (DIST / "index.html").is_file():
        pytest.fail(f"{DIST} is not built: run `python build.py` (make test does)")
    process = ServerProcess(tmp_path_factory.mktemp("server"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    try:
        browser = launch_chromium(playwright)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield browser
    browser.close()


class RequestLog:
    def __init__(self) -> None:
        self.urls: list[str] = []

    def external(self) -> list[str]:
        return [
            url
            for url in self.urls
            if urlsplit(url).scheme in ("http", "https", "ws", "wss")
            and urlsplit(url).hostname != "127.0.0.1"
        ]


@pytest.fixture
def requests_seen() -> RequestLog:
    return RequestLog()


@pytest.fixture
def context(browser: Browser, requests_seen: RequestLog) -> Iterator[BrowserContext]:
    context = browser.new_context(bypass_csp=True)
    context.on("request", lambda request: requests_seen.urls.append(request.url))
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    return page


@pytest.fixture
def devices(browser: Browser, server: ServerProcess) -> Iterator[Devices]:
    """Fresh devices, each in a context of its own, closed after the test."""
    opened = Devices(browser, server.url)
    yield opened
    opened.close()
