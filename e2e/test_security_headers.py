"""The app under its Content-Security-Policy (server/headers.py): it boots, answers, and
boots again offline from the service worker's cache, and the browser reports no violation
-- neither on the page (securitypolicyviolation events) nor anywhere it logs one (the
console, which also carries the workers' reports).

Waits here are locator assertions: Playwright's wait_for_function evaluates its predicate
with eval, which this very policy forbids on the page."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from .harness import BOOT_TIMEOUT_MS, ServerProcess

RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def boot(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute(
        "data-state", re.compile("ready|error"), timeout=BOOT_TIMEOUT_MS
    )
    expect(page.locator("body")).to_have_attribute("data-state", "ready")


def ask(page: Page, text: str) -> str:
    replies = page.locator("[data-role=reply]")
    count = replies.count()
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("textbox", name="Message").press("Enter")
    expect(replies).to_have_count(count + 1, timeout=BOOT_TIMEOUT_MS)
    return replies.last.inner_text()


def test_the_app_runs_under_its_csp_online_and_offline(
    browser: Browser, server: ServerProcess
) -> None:
    # Not the suite's context fixture: it bypasses the policy (tools/harness.py).
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    logged: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            logged.append(message.text)

    page.on("console", note)
    context.add_init_script(RECORD_VIOLATIONS)
    response = page.goto(server.url + "/")
    assert response is not None
    assert "script-src 'self' 'wasm-unsafe-eval'" in response.headers["content-security-policy"]
    boot(page)
    assert "Added “buy milk”" in ask(page, "add buy milk")
    # Cached by the service worker: the next load works offline.
    expect(page.locator("body")).to_have_attribute("data-sw", "ready", timeout=BOOT_TIMEOUT_MS)

    context.set_offline(True)
    page.reload()
    boot(page)
    assert "buy milk" in ask(page, "what's on my list?")
    context.set_offline(False)

    assert page.evaluate("window.cspViolations") == []
    assert logged == []
    context.close()
