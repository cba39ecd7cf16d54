"""The installable, offline app in Chromium: the service worker precaches the whole build,
the next load boots from it (crossOriginIsolated, two model threads) with or without a
network, a first visit downloads each file once, a new build waits for the user's consent,
and Chromium finds the app installable."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright

from server.precompressed import PRECOMPRESSED, sibling
from tools.build.service_worker import NOT_PRECACHED
from tools.harness import app_files

from .harness import (
    BOOT_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DIST,
    ByteCounter,
    ServerProcess,
    say,
    wait_for_boot,
)

# Set by web/src/pwa.js: "ready" once a first visit's precache is complete, "controlled"
# when the page was served by the service worker, "waiting" when a new build waits.
OFFLINE_READY = "document.body.dataset.sw === 'ready'"
CONTROLLED = "document.body.dataset.sw === 'controlled'"
CACHED_URLS = """async () => {
    const urls = [];
    for (const name of await caches.keys()) {
        if (!name.includes('precache')) continue;  // Workbox's; py_agent-boot is the snapshot
        for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
    }
    return urls;
}"""
FETCH_TEXT = "(path) => fetch(path).then((response) => response.text())"


def boot(page: Page, url: str) -> None:
    page.goto(url)
    assert wait_for_boot(page) == "ready", page.inner_text("body")


def boot_offline_ready(page: Page, url: str) -> None:
    """A first visit: boot, then wait until the service worker has cached everything."""
    boot(page, url + "/")
    assert page.evaluate("navigator.serviceWorker.controller") is None
    page.wait_for_function(OFFLINE_READY)


def reload_booted(page: Page) -> None:
    page.reload()
    assert wait_for_boot(page) == "ready", page.inner_text("body")


@pytest.fixture
def persistent(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    """A browser with a profile on disk, as people have: a disk HTTP cache (an incognito
    context's cache lives in memory and keeps no file over ~6 MB), and installability
    checks (which report "in-incognito" otherwise)."""
    context = playwright.chromium.launch_persistent_context(
        tmp_path / "profile", executable_path=CHROMIUM, args=CHROMIUM_ARGS, bypass_csp=True
    )
    context.set_default_timeout(BOOT_TIMEOUT_MS)
    yield context
    context.close()


def test_precache_holds_every_file_and_the_next_load_boots_from_it(
    page: Page, server: ServerProcess
) -> None:
    boot_offline_ready(page, server.url)
    not_precached = set(NOT_PRECACHED)
    expected = {server.url + "/" + rel for rel in app_files()} - {
        server.url + "/" + rel for rel in not_precached
    }
    cached = {url.split("?__WB_REVISION__=")[0] for url in page.evaluate(CACHED_URLS)}
    assert cached == expected
    assert "pyodide/pyodide.asm.wasm" in app_files() and "sw.js" in not_precached

    served: dict[str, bool] = {}
    page.on(
        "response", lambda response: served.setdefault(response.url, response.from_service_worker)
    )
    reload_booted(page)
    assert page.evaluate("navigator.serviceWorker.controller.scriptURL") == server.url + "/sw.js"
    # Cache Storage kept the server's COOP/COEP/CORP, so the page stays isolated and the
    # model runtime keeps its threads.
    assert page.evaluate("crossOriginIsolated") is True
    assert page.evaluate("window.pyAgentBoot.environment.threads") == 2
    assert "isolated: several threads" in (page.text_content("#environment") or "")
    for rel in ("index.html", "worker.js", "pyodide/pyodide.asm.wasm", "wheels/index.json"):
        url = server.url + "/" + ("" if rel == "index.html" else rel)
        assert served.get(url) is True, (rel, served.get(url))
    model = next(url for url in served if url.endswith(".onnx"))
    assert served[model] is True


def test_offline_reload_boots_and_answers(
    page: Page, context: BrowserContext, server: ServerProcess
) -> None:
    boot_offline_ready(page, server.url)
    assert page.inner_text("#network") == "Online"
    assert page.is_enabled("#create-space")
    context.set_offline(True)
    page.reload()
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    assert page.evaluate("crossOriginIsolated") is True
    assert page.evaluate("window.pyAgentBoot.environment.threads") == 2
    assert "Added “water the plants”" in say(page, "remind me to water the plants")
    assert page.inner_text("#network") == "Offline"
    # Pairing needs the server, and says so instead of failing.
    assert page.is_disabled("#create-space") and page.is_disabled("#join button")
    assert page.is_visible("text=Offline: pairing needs the server")

    context.set_offline(False)
    page.wait_for_function("document.body.dataset.network === 'online'")
    assert page.is_enabled("#create-space")
    assert not page.is_visible(".offline-note")


def test_first_visit_downloads_each_file_once_and_the_app_is_installable(
    persistent: BrowserContext, server: ServerProcess
) -> None:
    proxy = ByteCounter(server.port)
    try:
        page = persistent.pages[0]
        boot_offline_ready(page, proxy.url)
        first_visit = proxy.received
        app_bytes = sum(app_files().values())
        # The precache revalidates what the boot downloaded (304s) instead of fetching it
        # again, and the server sends compressed copies where it has them: at most the app
        # once, plus headers and a few API calls.
        assert first_visit < app_bytes * 1.02, (first_visit, app_bytes)
        assert first_visit < 31_000_000, first_visit  # issue 13: about 30 MB on the wire

        before = proxy.received
        reload_booted(page)
        assert page.evaluate("navigator.serviceWorker.controller") is not None
        assert proxy.received - before < 100_000  # sw.js's update check and the API, no files

        cdp = persistent.new_cdp_session(page)
        assert cdp.send("Page.getInstallabilityErrors") == {"installabilityErrors": []}
    finally:
        proxy.close()


def new_build(dist: Path) -> str:
    """Make the served dist a new build: style.css changes and sw.js lists its new revision
    and integrity (as build.py would write them). Returns the new style.css."""
    css = (dist / "style.css").read_text() + "\n/* the next build */\n"
    (dist / "style.css").write_text(css)
    # A new build has no stale compressed copies of the files it changes either.
    listing = json.loads((dist / PRECOMPRESSED).read_text())
    for rel in ("style.css", "sw.js"):
        for coding in listing.pop(rel, {}):
            (dist / sibling(rel, coding)).unlink()
    (dist / PRECOMPRESSED).write_text(json.dumps(listing))
    entry = {
        "integrity": "sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode(),
        "revision": hashlib.md5(css.encode()).hexdigest(),
        "url": "style.css",
    }
    sw = (dist / "sw.js").read_text()
    old = re.compile(r'\{"integrity":"[^"]*","revision":"[^"]*","url":"style\.css"\}')
    assert len(old.findall(sw)) == 1
    (dist / "sw.js").write_text(old.sub(json.dumps(entry, separators=(",", ":")), sw))
    return css


def test_a_new_build_waits_for_consent_then_takes_over(page: Page, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    shutil.copytree(DIST, dist)
    server = ServerProcess(tmp_path, dist=dist)
    server.start()
    try:
        boot_offline_ready(page, server.url)
        reload_booted(page)
        page.wait_for_function(CONTROLLED)
        old_css = page.evaluate(FETCH_TEXT, "style.css")
        assert not page.is_visible("#update")

        new_css = new_build(dist)
        page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r.update())")
        page.wait_for_function("document.body.dataset.sw === 'waiting'")
        assert page.inner_text("#update") == "Update available — reload"
        # The running tab keeps the build it started with ...
        assert page.evaluate(FETCH_TEXT, "style.css") == old_css
        # ... and so does a plain reload: the new worker waits for the user's consent.
        reload_booted(page)
        assert page.evaluate(FETCH_TEXT, "style.css") == old_css
        page.wait_for_function("document.body.dataset.sw === 'waiting'")

        with page.expect_navigation():
            page.click("#update-reload")
        assert wait_for_boot(page) == "ready", page.inner_text("body")
        page.wait_for_function(CONTROLLED)
        assert page.evaluate(FETCH_TEXT, "style.css") == new_css
        assert not page.is_visible("#update")
        assert page.evaluate("crossOriginIsolated") is True
    finally:
        server.stop()
