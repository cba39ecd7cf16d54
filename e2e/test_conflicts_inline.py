"""Conflicts where they happen (issue 14, point 4): a task completed on one device and
deleted on the other, both offline, is a conflict on both devices -- marked on the task,
resolved there -- and either choice converges; the chat's "Marked … as done" is followed
up rather than left standing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from .harness import SYNCED, Device, Devices, ServerProcess, pair, say, titles, wait_for_titles

MILK = "#tasks li[data-role='task']"
CONFLICTED = f"{MILK}[data-conflict='true']"
FOLLOW_UP = "“buy milk” was deleted on another device before this change reached it."


@pytest.fixture
def devices(browser: Browser, server: ServerProcess) -> Iterator[tuple[Device, Device]]:
    """Two devices paired into one space, each in its own context (its own IndexedDB)."""
    opened = Devices(browser, server.url)
    a, b = opened.open(2)
    pair(a[1], b[1])
    yield a, b
    opened.close()


def sync_both(a: Page, b: Page) -> None:
    """Whichever pushes first has not seen the other's change yet: each pulls once more."""
    for page in (a, b):
        page.wait_for_function(SYNCED)
    for page in (a, b):
        page.click("#sync-now")


def follow_up(page: Page) -> str:
    """The chat's follow-up on the reply that completed the task, once it is shown."""
    item = page.locator("#messages li[data-role='reply']", has_text=FOLLOW_UP)
    item.wait_for()
    return item.inner_text()


@pytest.mark.parametrize("choice", ["keep deleted", "restore with the edit"])
def test_complete_vs_delete_is_a_conflict_on_both_devices_and_each_choice_converges(
    devices: tuple[Device, Device], choice: str
) -> None:
    (context_a, a), (context_b, b) = devices
    assert "Added “buy milk”" in say(a, "remind me to buy milk")
    b.click("#sync-now")
    wait_for_titles(b, ["buy milk"])

    for context in (context_a, context_b):
        context.set_offline(True)
    assert say(a, "mark buy milk as done").startswith("Marked “buy milk” as done.")
    marked = a.locator("#messages li[data-role='reply']").last.get_attribute("id")
    b.get_by_role("button", name="Delete “buy milk”").click()
    wait_for_titles(b, [])
    for page in (a, b):
        page.wait_for_function("document.body.dataset.sync === 'offline'")
    for context in (context_a, context_b):
        context.set_offline(False)
    sync_both(a, b)

    # Both show the task, done, marked, with the two choices beside it.
    for page, here in ((a, "changed on this device"), (b, "deleted on this device")):
        task = page.locator(CONFLICTED)
        task.wait_for()
        assert titles(page) == ["buy milk"]
        assert task.get_by_role("checkbox", name="Done: buy milk").is_checked()
        group = task.get_by_role("group")
        deleted_where = "this" if page is b else "another"
        changed_where = "this" if page is a else "another"
        assert group.inner_text().startswith(
            f"Deleted on {deleted_where} device while it was changed on {changed_where} device."
        ), here
        assert group.get_by_role("button").all_inner_texts() == [
            "Keep deleted",
            "Restore with the edit",
        ]
        assert page.locator("#conflicts li").count() == 1  # the Sync section lists it too
    # The reply that completed it is followed up, linked to it.
    text = follow_up(a)
    assert text.startswith("↳ about an earlier reply")
    link = a.locator("#messages li[data-role='reply']", has_text=FOLLOW_UP).locator("a.refines")
    assert link.get_attribute("href") == f"#{marked}"

    # The choice is made on one device, an op like any other, and reaches the other.
    chooser, other = (b, a) if choice == "keep deleted" else (a, b)
    name = (
        "Keep “buy milk” deleted"
        if choice == "keep deleted"
        else "Restore “buy milk” with the edit"
    )
    chooser.get_by_role("button", name=name).click()
    chooser.locator(CONFLICTED).wait_for(state="detached")
    chooser.wait_for_function(SYNCED)
    other.click("#sync-now")
    expected = [] if choice == "keep deleted" else ["buy milk"]
    for page in (a, b):
        page.locator(CONFLICTED).wait_for(state="detached")
        wait_for_titles(page, expected)
        page.wait_for_function("document.querySelectorAll('#conflicts li').length === 0")
        if expected:
            assert page.get_by_role("checkbox", name="Done: buy milk").is_checked()
    settled = (
        "Settled: it stays deleted." if choice == "keep deleted" else "Settled: it was restored."
    )
    a.locator("#messages li[data-role='reply']", has_text=settled).wait_for()
    assert settled in follow_up(a)
