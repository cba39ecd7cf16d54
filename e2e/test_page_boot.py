"""An honest page while the agent starts: the message box takes messages from the first
paint and the agent answers them once ready, Enter never reloads the page, the stored tasks,
notes and settings show before the agent is up with what needs it disabled, and the
progress bar moves through every stage.

Each test holds the boot where it wants (``HeldRequests`` on the Pyodide runtime, or on the
page's own script) in a context without service workers, so what it sees before "ready" is
deterministic, however fast the boot gets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from .harness import BOOT_TIMEOUT_MS, READY, HeldRequests, ServerProcess, say, wait_for_boot

RUNTIME = "**/pyodide.asm.wasm"
# Each value the progress bar takes, with the stage it was in (the attribute reflects
# HTMLProgressElement.value).
RECORD_PROGRESS = """
window.progressSeen = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    if (change.target.id === 'boot-progress') {
      window.progressSeen.push([document.body.dataset.stage, Number(change.target.value)]);
    }
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['value'] });
"""
EVERY_HIDDEN_IS_HIDDEN = """[...document.querySelectorAll('[hidden]')].every(
  (element) => getComputedStyle(element).display === 'none')"""


@pytest.fixture
def held_context(browser: Browser) -> Iterator[BrowserContext]:
    """A context whose requests all pass through its routes: no service worker answers."""
    context = browser.new_context(bypass_csp=True, service_workers="block")
    context.set_default_timeout(BOOT_TIMEOUT_MS)
    yield context
    context.close()


def message_box(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message", exact=True)


def user_message(page: Page, text: str) -> Locator:
    return page.locator("#messages li.user", has_text=text)


def test_a_request_sent_during_boot_is_answered_once_ready(
    held_context: BrowserContext, server: ServerProcess
) -> None:
    runtime = HeldRequests(held_context, RUNTIME)
    page = held_context.new_page()
    started = time.monotonic()
    # The worker starts once the page's scripts have run, so the box is theirs by then.
    with page.expect_worker():
        page.goto(server.url + "/", wait_until="commit")
    box = message_box(page)
    # Places the typing 0.3 s after navigation, as a quick user would; not a wait for anything.
    page.wait_for_timeout(max(0.0, 300 - (time.monotonic() - started) * 1000))
    box.fill("remind me to call the plumber")
    box.press("Enter")

    sent = user_message(page, "remind me to call the plumber")
    expect(sent).to_have_attribute("data-state", "waiting")
    expect(box).to_have_value("")
    assert page.evaluate(READY) is False
    assert page.locator('[data-role="reply"]').count() == 0

    runtime.release()
    page.wait_for_function(READY)
    reply = page.locator('[data-role="reply"]')
    expect(reply).to_have_count(1, timeout=BOOT_TIMEOUT_MS)
    expect(reply).to_contain_text("Added “call the plumber”")
    expect(sent).not_to_have_attribute("data-state", "waiting")
    expect(page.locator('[data-role="task"] .title')).to_have_text(["call the plumber"])
    # Sent exactly once, and in the history as the agent stored it.
    history = page.evaluate("window.pyAgent.history()")
    assert [m["text"] for m in history if m["role"] == "user"] == ["remind me to call the plumber"]
    assert page.evaluate(EVERY_HIDDEN_IS_HIDDEN) is True
    assert page.evaluate("document.body.dataset.state") == "ready"


def test_enter_never_navigates_not_even_before_the_scripts_ran(
    held_context: BrowserContext, server: ServerProcess
) -> None:
    script = HeldRequests(held_context, "**/app.js")
    runtime = HeldRequests(held_context, RUNTIME)
    page = held_context.new_page()
    navigations: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )
    page.goto(server.url + "/", wait_until="commit")
    page.evaluate("window.sameDocument = true")
    box = message_box(page)
    text = "note that the spare key is under the mat"
    box.fill(text)
    box.press("Enter")
    # The page's scripts have not run: nothing took the message, and nothing lost it.
    expect(box).to_have_value(text)

    with page.expect_worker():
        script.release()
    box.press("Enter")
    expect(user_message(page, text)).to_have_attribute("data-state", "waiting")

    runtime.release()
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    expect(page.locator('[data-role="reply"]')).to_contain_text(["Noted"], timeout=BOOT_TIMEOUT_MS)
    # Long after either Enter could have started a navigation, this is the same document.
    assert page.evaluate("window.sameDocument") is True
    assert page.url == server.url + "/"
    assert navigations == [server.url + "/"]
    assert page.evaluate("performance.getEntriesByType('navigation')[0].type") == "navigate"


def test_messages_waiting_when_the_page_reloads_are_sent_after_it(
    held_context: BrowserContext, server: ServerProcess
) -> None:
    runtime = HeldRequests(held_context, RUNTIME)
    page = held_context.new_page()
    with page.expect_worker():
        page.goto(server.url + "/", wait_until="commit")
    for text in ("remind me to buy stamps", "remind me to post the letter"):
        message_box(page).fill(text)
        message_box(page).press("Enter")
        expect(user_message(page, text)).to_have_attribute("data-state", "waiting")

    with page.expect_worker():
        page.reload(wait_until="commit")
    # Shown again as waiting before the agent is up, in the order they were sent.
    expect(page.locator("#messages li.user[data-state='waiting']")).to_have_count(2)
    runtime.release()
    page.wait_for_function(READY)
    expect(page.locator('[data-role="reply"]')).to_have_count(2, timeout=BOOT_TIMEOUT_MS)
    expect(page.locator('[data-role="reply"]')).to_contain_text(
        ["Added “buy stamps”", "Added “post the letter”"]
    )
    history = page.evaluate("window.pyAgent.history()")
    assert [m["text"] for m in history if m["role"] == "user"] == [
        "remind me to buy stamps",
        "remind me to post the letter",
    ]


def test_stored_tasks_notes_and_settings_show_before_ready_and_read_only(
    held_context: BrowserContext, server: ServerProcess
) -> None:
    page = held_context.new_page()
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    say(page, "remind me to buy milk")
    say(page, "remind me to call the bank")
    say(page, "note that the wifi password is hunter2")
    page.fill("#threshold", "0.55")
    page.press("#threshold", "Tab")
    page.wait_for_function("document.body.dataset.threshold === '0.55'")
    page.select_option("#consent", "never")
    page.wait_for_function("document.body.dataset.consent === 'never'")

    runtime = HeldRequests(held_context, RUNTIME)
    with page.expect_worker():
        page.reload(wait_until="commit")
    # The stored settings, at once; and the controls wait for the agent.
    expect(page.locator("#threshold")).to_have_value("0.55")
    expect(page.locator("#consent")).to_have_value("never")
    for control in ("#consent", "#threshold", "#create-space", "#self-check", "#sync-now"):
        expect(page.locator(control)).to_be_disabled()
    expect(page.locator('[data-role="export"]')).to_be_disabled()
    expect(page.locator("#side")).to_have_attribute("aria-busy", "true")
    expect(message_box(page)).to_be_editable()

    # The tasks and notes stored before the reload, before the agent is ready.
    tasks = page.locator('[data-role="task"]')
    expect(tasks.locator(".title")).to_have_text(["buy milk", "call the bank"])
    expect(page.locator('[data-role="note"]')).to_have_text(["the wifi password is hunter2"])
    assert page.evaluate(READY) is False
    expect(tasks.first.locator("input[type=checkbox]")).to_be_disabled()
    expect(tasks.first.locator(".delete")).to_be_disabled()
    assert tasks.first.locator(".title").evaluate("(title) => title.isContentEditable") is False

    runtime.release()
    page.wait_for_function(READY)
    expect(tasks.locator(".title")).to_have_text(["buy milk", "call the bank"])
    expect(tasks.first.locator("input[type=checkbox]")).to_be_enabled()
    expect(page.locator("#consent")).to_be_enabled()
    expect(page.locator("#side")).not_to_have_attribute("aria-busy", "true")


def test_the_progress_bar_moves_through_every_stage(
    held_context: BrowserContext, server: ServerProcess
) -> None:
    page = held_context.new_page()
    page.add_init_script(RECORD_PROGRESS)
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    seen: list[tuple[str, float]] = [
        (stage, value) for stage, value in page.evaluate("window.progressSeen")
    ]
    values = [value for _, value in seen]
    assert values == sorted(values) and values[-1] == 1, seen
    stages = page.eval_on_selector_all(
        "#boot-stages li", "items => items.map(i => i.dataset.stage)"
    )
    # Where the bar was when each stage began: further along each time, never back at 0.
    starts: dict[str, float] = {}
    for stage, value in seen:
        starts.setdefault(stage, value)
    assert list(starts) == stages, (starts, stages)
    assert all(a < b for a, b in pairwise(starts.values())), starts
