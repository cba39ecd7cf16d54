"""The cloud path in the browser, once the user agreed to it: unsure requests answered by
the server's model and marked, offline guesses queued and followed by a second opinion
that reaches the open page, a stopped or stalled server, and "Never" -- real server, real
Chromium. Asking for that consent is e2e/test_consent.py."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from .harness import BOOT_TIMEOUT_MS, ServerProcess, say, wait_for_boot

LAST = "#messages li.agent:last-child"
INFER_LOG = re.compile(r'"POST /api/v1/infer HTTP/1\.1"')
# Longer than a queued request's first backoff (at most 10 s) with room for a loaded machine.
OPINION_TIMEOUT_MS = 60_000


def boot_unsure(page: Page, url: str, consent: str = "always") -> None:
    """Boot, and set the threshold to 1: the device is never sure enough, so every
    request goes the cloud path (the real head's confidence varies by request); then
    give ``consent`` in the Server help panel, as the user would."""
    page.goto(url + "/")
    assert wait_for_boot(page) == "ready"
    page.fill("#threshold", "1")
    page.dispatch_event("#threshold", "change")
    page.wait_for_function("document.body.dataset.threshold === '1'")
    page.select_option("#consent", consent)
    page.wait_for_function("(consent) => document.body.dataset.consent === consent", arg=consent)


def infer_calls(server: ServerProcess) -> int:
    return len(INFER_LOG.findall(server.log_path.read_text(errors="replace")))


def test_an_unsure_request_is_read_by_the_server_and_marked(
    page: Page, server: ServerProcess
) -> None:
    boot_unsure(page, server.url)
    reply = say(page, "remind me to call the bank tomorrow")
    assert "Added “call the bank”" in reply  # the server's intent, carried out on the device
    assert page.get_attribute(LAST, "data-source") == "cloud"
    assert page.inner_text(f"{LAST} .badge") == "server"
    assert "call the bank" in page.inner_text("#tasks")
    page.click("#agent-stats summary")
    stats = page.inner_text("#stats")
    assert "sent to the server\n100%" in stats and "server answers\n1" in stats


def test_offline_the_answer_is_a_queued_guess_and_a_second_opinion_follows(
    page: Page, context: BrowserContext, server: ServerProcess
) -> None:
    boot_unsure(page, server.url)
    context.set_offline(True)
    reply = say(page, "remind me to water the plants")
    assert "A guess" in reply and page.get_attribute(LAST, "data-source") == "tentative"
    original = page.get_attribute(LAST, "id")
    page.wait_for_function("document.body.dataset.queue === '1'")

    # The server reads it differently: a note, not a task.
    def note(route: Route) -> None:
        body = {"intent": "note.add", "confidence": 0.93, "slots": {}, "answer": None}
        route.fulfill(status=200, json={**body, "model": "server-head/test"})

    page.route("**/api/v1/infer", note)
    context.set_offline(False)
    page.wait_for_function("document.body.dataset.secondOpinions === '1'")
    page.wait_for_function("document.body.dataset.queue === '0'")
    offer = page.locator(f"#{page.get_attribute(LAST, 'id')}")  # LAST moves on after Apply
    assert "Second opinion on “remind me to water the plants”" in offer.inner_text()
    assert offer.locator("a.refines").get_attribute("href") == f"#{original}"
    assert page.inner_text("#notes") == ""  # offered, never applied unasked
    offer.locator("button.apply").click()
    page.wait_for_function("document.querySelector('#notes').innerText.includes('water')")
    assert offer.locator("button.apply").inner_text() == "Applied"


def test_a_queued_guess_the_server_agrees_with_is_marked_on_the_open_page(
    page: Page, context: BrowserContext, server: ServerProcess
) -> None:
    boot_unsure(page, server.url)
    page.evaluate("window.sameLoad = true")  # gone if the page reloads
    context.set_offline(True)
    reply = say(page, "remind me to water the plants")
    assert "A guess" in reply and page.get_attribute(LAST, "data-source") == "tentative"
    original = page.locator(f"#{page.get_attribute(LAST, 'id')}")
    page.wait_for_function("document.body.dataset.queue === '1'")

    context.set_offline(False)  # the real server's model reads it as the device did
    agrees = original.locator(".badge", has_text="✓ server agrees")
    expect(agrees).to_be_visible(timeout=OPINION_TIMEOUT_MS)
    expect(original).to_have_attribute("data-source", "tentative")
    page.wait_for_function("document.body.dataset.queue === '0'")  # the stats, live too
    page.click("#agent-stats summary")
    assert "device and server agree\n100%" in page.inner_text("#stats")
    assert page.evaluate("window.sameLoad") is True


def test_a_stopped_or_stalled_server_still_gets_the_local_answer(
    browser: Browser, tmp_path: Path
) -> None:
    own = ServerProcess(tmp_path)
    own.start()
    context = browser.new_context(bypass_csp=True)
    try:
        page = context.new_page()
        page.set_default_timeout(BOOT_TIMEOUT_MS)
        boot_unsure(page, own.url)
        own.stop()
        reply = say(page, "remind me to buy stamps")
        assert "Added “buy stamps”" in reply and "A guess" in reply
        assert page.get_attribute(LAST, "data-source") == "tentative"

        own.start()  # back, but the model stalls: the deadline answers for it
        page.route("**/api/v1/infer", lambda route: None)
        reply = say(page, "remind me to post the letter")
        assert "Added “post the letter”" in reply and "A guess" in reply
    finally:
        context.close()
        own.stop()


def test_with_never_nothing_leaves_the_device(page: Page, server: ServerProcess) -> None:
    boot_unsure(page, server.url)
    before = infer_calls(server)
    say(page, "remind me to call the dentist")
    assert infer_calls(server) == before + 1  # the server's log does show each request

    page.select_option("#consent", "never")
    page.wait_for_function("document.body.dataset.cloudHelp === 'false'")
    say(page, "remind me to book the car service")
    # Nothing asked the server, and the unsure action is still marked as a guess.
    assert page.get_attribute(LAST, "data-source") == "tentative"
    assert infer_calls(server) == before + 1
