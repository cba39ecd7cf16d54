"""The task list as a user meets it (issue 14, points 1 and 2): on a phone the first tasks
are on screen without scrolling and settings sit behind a button; tasks are grouped into
Overdue, Today, Upcoming, Anytime and Done with their dates in words, in the browser's
locale; the views bar narrows the list; a fresh profile is welcomed with examples that
work; and tasks and notes are edited, deleted and brought back with Undo in place."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from .harness import BOOT_TIMEOUT_MS, ServerProcess, say, wait_for_boot

PHONE = {"width": 390, "height": 844}
# Each section and the titles in it, as the list shows them.
SECTIONS = """() => [...document.querySelectorAll('#tasks section')].map((section) =>
  [section.dataset.section, [...section.querySelectorAll('.title')].map((t) => t.dataset.saved)])"""
AT_ITS_MIDDLE = """(item) => { const r = item.getBoundingClientRect();
  return item.contains(document.elementFromPoint(r.x + 5, r.y + r.height / 2)); }"""
SEED = (
    "add pay the rent yesterday",
    "buy milk tomorrow at 6pm",
    "call mum today at 5pm",
    "remind me every Monday to water the plants",
    "add eggs to the groceries list",
    "add renew the passport on 2031-01-17",
    "add book the flights",
)


def booted(browser: Browser, server: ServerProcess, **options: Any) -> Iterator[Page]:
    context = browser.new_context(bypass_csp=True, **options)
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    yield page
    context.close()


@pytest.fixture
def desktop(browser: Browser, server: ServerProcess) -> Iterator[Page]:
    yield from booted(browser, server, locale="en-US", viewport={"width": 1280, "height": 800})


def task(page: Page, title: str) -> Any:
    return page.locator(f"[data-role=task]:has(.title[data-saved='{title}'])")


def seed(page: Page) -> None:
    for text in SEED:
        say(page, text)
    task(page, "book the flights").get_by_role("checkbox").check()
    expect(task(page, "book the flights")).to_have_class("done")


def test_on_a_phone_the_first_tasks_are_on_screen_without_scrolling(
    browser: Browser, server: ServerProcess
) -> None:
    for page in booted(
        browser, server, locale="en-US", viewport=PHONE, is_mobile=True, has_touch=True
    ):
        seed(page)
        page.reload()
        assert wait_for_boot(page) == "ready"
        message_box = page.get_by_role("textbox", name="Message")
        box = message_box.bounding_box()
        assert box is not None and box["y"] + box["height"] <= PHONE["height"]
        # Each of the first three tasks is inside the screen and not under the message box
        # or the conversation: what is at its middle is the task itself.
        for item in page.locator("[data-role=task]").all()[:3]:
            shown = item.bounding_box()
            assert shown is not None and shown["y"] + shown["height"] <= PHONE["height"], shown
            assert item.evaluate(AT_ITS_MIDDLE), item.inner_text()
        # Settings are behind a button, in place of the list, and back again.
        expect(page.locator("#sync")).to_be_hidden()
        page.get_by_role("button", name="Settings").click()
        expect(page.locator("#sync")).to_be_visible()
        expect(page.locator("[data-role=task]").first).to_be_hidden()
        page.get_by_role("button", name="Close settings").click()
        expect(page.locator("[data-role=task]").first).to_be_visible()


def test_tasks_are_grouped_by_when_they_are_due_in_words(desktop: Page) -> None:
    page = desktop
    seed(page)
    # "every Monday" is first due today on a Monday, else on the next one.
    monday = bool(page.evaluate("new Date().getDay() === 1"))
    plants = ["water the plants"]
    assert page.evaluate(SECTIONS) == [
        ["overdue", ["pay the rent"]],
        ["today", ["call mum", *(plants if monday else [])]],
        ["upcoming", ["buy milk", *([] if monday else plants), "renew the passport"]],
        ["anytime", ["eggs"]],
        ["done", ["book the flights"]],
    ]
    due = {
        title: task(page, title).locator("[data-role=due]").inner_text()
        for title in ("pay the rent", "call mum", "buy milk", "renew the passport")
    }
    assert due == {
        "pay the rent": "Yesterday",
        "call mum": "Today, 5 PM",
        "buy milk": "Tomorrow, 6 PM",
        "renew the passport": "Fri, Jan 17, 2031",
    }
    assert task(page, "renew the passport").locator("time").get_attribute("datetime") == (
        "2031-01-17"
    )
    assert task(page, "water the plants").locator("[data-role=repeat]").inner_text() == (
        "every Monday"
    )
    assert task(page, "eggs").locator("[data-role=list]").inner_text() == "grocery"


def test_the_views_bar_narrows_the_list(desktop: Page) -> None:
    page = desktop
    seed(page)
    views = page.get_by_role("navigation", name="Task views")
    views.get_by_role("button", name="Today").click()
    expect(views.get_by_role("button", name="Today")).to_have_attribute("aria-pressed", "true")
    assert [section for section, _ in page.evaluate(SECTIONS)] == ["overdue", "today"]
    views.get_by_role("button", name="# grocery").click()
    assert page.evaluate(SECTIONS) == [["anytime", ["eggs"]]]
    views.get_by_role("button", name="Done").click()
    assert page.evaluate(SECTIONS) == [["done", ["book the flights"]]]
    views.get_by_role("button", name="Notes").click()
    assert page.evaluate(SECTIONS) == []
    expect(page.locator("#view-empty")).to_have_text(
        "No notes yet. Try “note: the door code is 4711”."
    )
    views.get_by_role("button", name="All").click()
    assert len(page.evaluate(SECTIONS)) >= 4


def test_dates_follow_the_browsers_locale(browser: Browser, server: ServerProcess) -> None:
    for page in booted(browser, server, locale="en-GB", timezone_id="Europe/London"):
        say(page, "add renew the passport on 2031-01-17")
        say(page, "buy milk tomorrow at 6pm")
        # Day before month, and a 24-hour clock.
        assert (
            "17 Jan 2031"
            in task(page, "renew the passport").locator("[data-role=due]").inner_text()
        )
        assert task(page, "buy milk").locator("[data-role=due]").inner_text() == "Tomorrow, 18:00"


def test_a_new_user_is_welcomed_with_examples_that_work(desktop: Page) -> None:
    page = desktop
    welcome = page.get_by_role("region", name="Welcome to py_agent")
    expect(welcome).to_be_visible()
    turns = int(page.evaluate("document.body.dataset.turns ?? '0'"))
    welcome.get_by_role("button", name="Buy milk tomorrow at 6pm").click()
    page.wait_for_function(f"document.body.dataset.turns === '{turns + 1}'")
    expect(page.locator("[data-role=task] .title")).to_have_text(["Buy milk"], ignore_case=True)
    expect(page.locator("[data-role=task] [data-role=due]")).to_have_text("Tomorrow, 6 PM")
    expect(welcome).to_be_hidden()
    page.get_by_role("navigation", name="Task views").get_by_role("button", name="Done").click()
    expect(page.locator("#view-empty")).to_have_text("Tasks you check off show up here.")


def test_a_task_is_edited_in_place_and_a_bad_edit_changes_nothing(desktop: Page) -> None:
    page = desktop
    say(page, "add buy milk")
    page.get_by_role("button", name="Edit “buy milk”").click()
    form = page.get_by_role("form", name="Edit “buy milk”")
    form.get_by_label("Date").fill("2031-03-04")
    form.get_by_label("Time").fill("18:30")
    form.get_by_label("List").fill("groceries")
    form.get_by_role("button", name="Save").click()
    expect(form).to_be_hidden()
    milk = task(page, "buy milk")
    expect(milk.locator("[data-role=due]")).to_have_text("Tue, Mar 4, 2031, 6:30 PM")
    # The list's name as the agent files it (one name per list: "grocery").
    expect(milk.locator("[data-role=list]")).to_have_text("grocery")
    stored = page.evaluate("window.pyAgent.snapshot()")["tasks"][0]
    assert (stored["due_date"], stored["due_time"], stored["list"]) == (
        "2031-03-04",
        "18:30",
        "grocery",
    )
    expect(page.get_by_role("button", name="# grocery")).to_be_visible()

    # A time without a date is refused: the form stays open with the reason, nothing changes.
    page.get_by_role("button", name="Edit “buy milk”").click()
    form.get_by_label("Date").fill("")
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("alert")).not_to_be_empty()
    expect(form).to_be_visible()
    assert page.evaluate("window.pyAgent.snapshot()")["tasks"][0]["due_date"] == "2031-03-04"
    form.get_by_label("Title").press("Escape")
    expect(form).to_be_hidden()
    expect(page.get_by_role("button", name="Edit “buy milk”")).to_be_focused()


def test_delete_shows_an_undo_that_brings_the_task_back(desktop: Page) -> None:
    page = desktop
    say(page, "buy milk tomorrow at 6pm")
    say(page, "add call the bank")
    before = page.evaluate("window.pyAgent.snapshot()")["tasks"]
    page.get_by_role("button", name="Delete “buy milk”").click()
    expect(task(page, "buy milk")).to_have_count(0)
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Deleted “buy milk”.")
    undo = toast.get_by_role("button", name="Undo")
    expect(undo).to_be_focused()
    # Another change in between: Undo still brings back just the deleted task.
    task(page, "call the bank").get_by_role("checkbox").check()
    expect(task(page, "call the bank")).to_have_class("done")
    undo.click()
    expect(toast).to_be_hidden()
    expect(task(page, "buy milk").locator("[data-role=due]")).to_have_text("Tomorrow, 6 PM")
    after = {t["id"]: t for t in page.evaluate("window.pyAgent.snapshot()")["tasks"]}
    milk = next(t for t in before if t["title"] == "buy milk")
    assert after[milk["id"]] == milk
    assert after[next(t["id"] for t in before if t["title"] == "call the bank")]["done"] is True


def test_a_note_is_edited_and_deleted_with_undo(desktop: Page) -> None:
    page = desktop
    say(page, "note: the door code is 4711")
    note = page.locator("[data-role=note]")
    expect(note).to_have_text("the door code is 4711")
    page.get_by_role("button", name="Edit note “the door code is 4711”").click()
    form = page.get_by_role("form", name="Edit note")
    form.get_by_label("Note").fill("the door code is 1234")
    form.get_by_role("button", name="Save").click()
    expect(note).to_have_text("the door code is 1234")
    page.get_by_role("button", name="Delete note “the door code is 1234”").click()
    expect(note).to_have_count(0)
    page.locator("#toast").get_by_role("button", name="Undo").click()
    expect(note).to_have_text("the door code is 1234")
    # Found again by meaning: the restored note's embedding came back with it.
    assert "1234" in say(page, "what is the door code?")
