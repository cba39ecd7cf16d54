"""Sync between two devices (two browser contexts) through the real server, offline edits too."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page

from .harness import (
    SYNCED,
    Device,
    Devices,
    ServerProcess,
    pair,
    say,
    titles,
    wait_for_titles,
    wait_pushed,
)

EMPTY_CODE = "Type the pairing code shown on your other device."


@pytest.fixture
def open_device(browser: Browser, server: ServerProcess) -> Iterator[Callable[[], Device]]:
    """A fresh, booted device each call: its own browser context, so its own IndexedDB."""
    devices = Devices(browser, server.url)
    yield lambda: devices.open()[0]
    devices.close()


def rename(page: Page, old: str, new: str) -> None:
    """Edit a task's title in place, as a user does: click, type, Enter."""
    # data-saved is the title last rendered from the worker's snapshot: it picks the
    # element while it is being typed into, and changes once the edit is committed.
    title = page.locator(f"#tasks .title[data-saved='{old}']")
    title.fill(new)
    title.press("Enter")
    page.wait_for_selector(f"#tasks .title[data-saved='{new}']")


def conflict_choices(page: Page) -> list[str]:
    return page.locator("#conflicts button").all_inner_texts()


def test_two_devices_pair_sync_and_resolve_an_offline_conflict(
    open_device: Callable[[], Device],
) -> None:
    context_a, a = open_device()
    context_b, b = open_device()
    for page in (a, b):
        page.wait_for_function("document.body.dataset.sync === 'local'")
        assert page.inner_text("#sync-indicator") == "Local only"

    first_code = pair(a, b)
    for page in (a, b):
        assert page.inner_text("#sync-indicator") == "Synced"
    # The space id is under Diagnostics (folded), hence its text rather than what shows.
    assert a.text_content("#sync-space") == b.text_content("#sync-space") != ""
    # Any paired device can make the code for the next one (which revokes the old).
    b.click("#new-code")
    b.wait_for_function(
        "(old) => /^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/.test(document.querySelector('#pairing-code')"
        ".textContent) && document.querySelector('#pairing-code').textContent !== old",
        arg=first_code,
    )

    assert "Added “water the plants”" in say(a, "remind me to water the plants")
    wait_pushed(a)  # by itself, a second after the change
    b.click("#sync-now")
    wait_for_titles(b, ["water the plants"])

    for context in (context_a, context_b):
        context.set_offline(True)
    rename(a, "water the plants", "water the fern")
    rename(b, "water the plants", "water the cactus")
    assert "Added “buy stamps”" in say(a, "remind me to buy stamps")
    assert "Added “call the plumber”" in say(b, "remind me to call the plumber")
    for page in (a, b):
        # The worker tried to push the change and could not reach the server.
        page.wait_for_function("document.body.dataset.sync === 'offline'")
        assert page.inner_text("#sync-indicator") == "Offline"
        assert int(page.evaluate("document.body.dataset.syncPending")) >= 2

    for context in (context_a, context_b):
        context.set_offline(False)
    # Back online, each pushes its changes ...
    for page in (a, b):
        page.wait_for_function(SYNCED)
    # ... but whichever got there first has not seen the other's changes yet: its next
    # periodic pull would fetch them; the user can ask now.
    for page in (a, b):
        page.click("#sync-now")
    for page, mine, theirs in ((a, "fern", "cactus"), (b, "cactus", "fern")):
        page.wait_for_selector("#conflicts li")
        page.wait_for_function(
            "(count) => document.querySelectorAll('#tasks .title').length === count", arg=3
        )
        page.wait_for_function(SYNCED)
        assert page.inner_text("#sync-indicator") == "Synced"
        assert "buy stamps" in titles(page) and "call the plumber" in titles(page)
        conflict = page.inner_text("#conflicts li p")
        assert re.fullmatch(r"“water the (fern|cactus)” was edited on two devices:", conflict)
        choices = conflict_choices(page)
        assert len(choices) == 2
        assert any(c.startswith(f"Keep “water the {mine}”\nthis device") for c in choices)
        assert any(c.startswith(f"Keep “water the {theirs}”\nother device") for c in choices)
    # Both show the same winner while the conflict is open.
    assert titles(a) == titles(b)

    b.locator("#conflicts button", has_text="Keep “water the fern”").click()
    expected = ["buy stamps", "call the plumber", "water the fern"]
    wait_for_titles(b, expected)
    b.wait_for_selector("#conflicts li", state="detached")
    wait_pushed(b)  # the resolution is an op like any other
    # The chat's "sync now" pulls it to the other device.
    assert "Synced" in say(a, "sync now")
    wait_for_titles(a, expected)
    a.wait_for_selector("#conflicts li", state="detached")
    for page in (a, b):
        page.wait_for_function(SYNCED)
        assert page.is_hidden("#conflicts-section")

    # The page tells the worker it is online again (the worker gets no such event),
    # which syncs at once rather than at the next periodic pull, a minute away.
    with b.expect_request(lambda request: request.url.endswith("/api/v1/sync"), timeout=10_000):
        b.evaluate("dispatchEvent(new Event('online'))")

    # Leaving keeps the data; the device is local-only again.
    b.click("#leave-space")
    b.wait_for_function("document.body.dataset.sync === 'local'")
    assert b.inner_text("#sync-indicator") == "Local only"
    assert b.is_visible("#sync-unpaired") and titles(b) == expected


def test_a_wrong_pairing_code_is_refused_readably_and_kept(
    open_device: Callable[[], Device],
) -> None:
    _, page = open_device()
    page.click("#join button")
    page.wait_for_selector("#sync-error:visible")
    assert page.inner_text("#sync-error") == EMPTY_CODE

    page.fill("#join-code", "ABCD-EFGH-JKMN-PQRS")
    page.click("#join button")
    page.wait_for_function(
        "(empty) => !['', empty].includes(document.querySelector('#sync-error').textContent)",
        arg=EMPTY_CODE,
    )
    error = page.inner_text("#sync-error")
    assert "Traceback" not in error and "Error:" not in error, error
    assert page.input_value("#join-code") == "ABCD-EFGH-JKMN-PQRS"
    assert page.evaluate("document.body.dataset.sync") == "local"
    assert page.is_visible("#sync-unpaired") and page.is_hidden("#sync-paired")


def test_a_device_that_never_pairs_is_local_only_and_works(
    open_device: Callable[[], Device],
) -> None:
    _, page = open_device()
    page.wait_for_function("document.body.dataset.sync === 'local'")
    assert page.inner_text("#sync-indicator") == "Local only"
    assert page.is_disabled("#sync-now")
    assert page.input_value("#device-name") != ""

    assert "Added “water the plants”" in say(page, "remind me to water the plants")
    assert "Added “buy stamps”" in say(page, "remind me to buy stamps")
    wait_for_titles(page, ["buy stamps", "water the plants"])

    page.locator("#tasks li", has_text="buy stamps").get_by_role("checkbox").check()
    page.wait_for_selector("#tasks li.done .title[data-saved='buy stamps']")
    rename(page, "water the plants", "water the roses")
    # Escape cancels an edit.
    title = page.locator("#tasks .title[data-saved='water the roses']")
    title.fill("something else")
    title.press("Escape")
    assert title.inner_text() == "water the roses"
    # An empty title is refused, and the edit stays open to be fixed.
    title.fill("")
    title.press("Enter")
    page.wait_for_selector("#edit-error:visible")
    assert page.evaluate("document.activeElement.dataset.saved") == "water the roses"
    title.fill("water the tulips")
    title.press("Enter")
    page.wait_for_selector("#tasks .title[data-saved='water the tulips']")
    assert page.is_hidden("#edit-error")

    page.get_by_role("button", name="Delete “buy stamps”").click()
    wait_for_titles(page, ["water the tulips"])
    assert page.evaluate("document.body.dataset.sync") == "local"
    assert page.inner_text("#sync-indicator") == "Local only"
