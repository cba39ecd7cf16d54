"""Every view of the page, reached one after the other on one fresh page: what the
accessibility checks (``e2e/test_a11y.py``) look at and what the screenshots
(``python -m tools.screenshots``) show.

A tour is one boot: each view is reached from the one before, by the page's own controls
(the hooks the page keeps for outside checks: docs/testing.md), so the views are in the
order a user could meet them. The page's clock is fixed (``TODAY``, Europe/Paris) so the
dates every view shows are the same from run to run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, BrowserContext, Locator, Page, Route, expect

from tools.harness import BOOT_TIMEOUT_MS, wait_for_boot

Scheme = Literal["light", "dark"]
SCHEMES: tuple[Scheme, ...] = ("light", "dark")
ZONE = "Europe/Paris"
# The overdue task is added the evening before, due that day; the rest on a Wednesday.
YESTERDAY = datetime(2026, 11, 17, 18, 30, tzinfo=ZoneInfo(ZONE))
TODAY = datetime(2026, 11, 18, 10, 0, tzinfo=ZoneInfo(ZONE))
# Every boot fetches it (Pyodide's wasm): holding it keeps the page in its boot state.
BOOT_HOLD = "**/pyodide.asm.wasm"
# A view is looked at once nothing on it still moves (a toast sliding in, a scheme's colours
# fading): a contrast read mid-transition would be of colours nobody sees for long.
SETTLED = "document.getAnimations().every((animation) => animation.playState !== 'running')"
# A request the device's model is unsure of (56%): with consent "Ask me first", the reply
# is the question "Ask the server?".
# A turn takes well under a second on a quiet machine; a loaded one stretches it.
REPLY_TIMEOUT_MS = 30_000
UNCLEAR = "add avocados to my grocery list"


@dataclass(frozen=True)
class Viewport:
    name: str
    width: int
    height: int
    phone: bool


VIEWPORTS = (Viewport("desktop", 1280, 800, False), Viewport("phone", 390, 844, True))


@dataclass(frozen=True)
class View:
    name: str
    shows: str  # one line, for the screenshots' table
    screenshot: bool = True


BOOT = View("boot", "the page while the agent starts (Python still downloading)")
WELCOME = View("welcome", "a fresh profile: no tasks or notes yet, example requests")
TASKS = View("tasks", "every task in sections (overdue, today, upcoming, anytime, done), notes")
LIST = View("list", "one list's tasks (the shopping list)")
EDIT = View("edit", "a task's edit form open")
UNDO = View("undo", "a task deleted: the toast offering Undo")
CONVERSATION = View("conversation", "the conversation open, ending with “Ask the server?”")
SETTINGS = View("settings", "the settings panel: Sync, Server help, Your data, Diagnostics")
# The other views of the list: checked like the rest, not worth a picture each.
FILTERS = tuple(
    View(name, f"the {name} view alone", screenshot=False)
    for name in ("today", "upcoming", "overdue", "done", "notes")
)
VIEWS = (BOOT, WELCOME, TASKS, LIST, *FILTERS, EDIT, UNDO, CONVERSATION, SETTINGS)

# Requests that fill the task list: (request, what the reply must say); "yesterday" ones
# first, on the clock of the evening before.
SEED_YESTERDAY = (("remind me to pay the rent today", "Added “pay the rent”"),)
SEED_TODAY = (
    ("remind me to call mum today at 6pm", "Added “call mum”"),
    ("remind me to go to the dentist tomorrow at 3pm", "Added “go to the dentist”"),
    ("remind me every monday to take out the trash", "Added “take out the trash”"),
    ("add eggs to my shopping list", "Added “eggs”"),
    ("add buy stamps", "Added “buy stamps”"),
    ("remind me to call the bank", "Added “call the bank”"),
    ("I called the bank", "Marked “call the bank” as done"),
    ("note that the wifi password is hunter2", "hunter2"),
)
LIST_VIEW = "list:shopping"
EDITED = "buy stamps"  # the task whose edit form is opened
DELETED = "call mum"


def new_context(browser: Browser, viewport: Viewport) -> BrowserContext:
    """A fresh profile on ``viewport``, light until ``looks`` switches. Service workers are
    blocked: they would answer the request the boot view holds, where no route sees it."""
    return browser.new_context(
        viewport={"width": viewport.width, "height": viewport.height},
        is_mobile=viewport.phone,
        has_touch=viewport.phone,
        device_scale_factor=2 if viewport.phone else 1,
        color_scheme="light",
        timezone_id=ZONE,
        service_workers="block",
        bypass_csp=True,
    )


def new_page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    page.clock.set_fixed_time(TODAY)
    return page


def settle(page: Page) -> None:
    page.wait_for_function(SETTLED)


def message_box(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message")


def replies(page: Page) -> Locator:
    return page.locator('[data-role="reply"]')


def send(page: Page, text: str) -> str:
    """Send ``text`` from the Message box; the reply's text, once the page shows it."""
    shown = replies(page).count()
    message_box(page).fill(text)
    message_box(page).press("Enter")
    expect(replies(page)).to_have_count(shown + 1, timeout=REPLY_TIMEOUT_MS)
    return replies(page).last.inner_text()


def task(page: Page, title: str) -> Locator:
    return page.locator('[data-role="task"]').filter(has_text=title).first


def seed(page: Page) -> None:
    """Fill a fresh profile: overdue, today, upcoming, repeating, a list, done, a note."""
    page.clock.set_fixed_time(YESTERDAY)
    for text, said in SEED_YESTERDAY:
        _expect_reply(page, text, said)
    page.clock.set_fixed_time(TODAY)
    for text, said in SEED_TODAY:
        _expect_reply(page, text, said)


def _expect_reply(page: Page, text: str, said: str) -> None:
    reply = send(page, text)
    if said not in reply:
        raise AssertionError(f"{text!r}: expected {said!r} in the reply, got {reply!r}")


def show_view(page: Page, name: str) -> None:
    """Press the view button ``name`` (``all``, ``today``, ``list:grocery``, …)."""
    button = page.locator(f'nav#views [data-view="{name}"]')
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")


def tour(page: Page, url: str) -> Iterator[View]:
    """Boot ``page`` (fresh, from ``new_page``) and go through ``VIEWS`` in order, yielding
    each once it is on screen and still."""
    held: list[Route] = []
    page.context.route(BOOT_HOLD, lambda route: held.append(route))
    page.goto(url + "/")
    expect(page.locator("body")).to_have_attribute("data-state", "booting")
    yield _settled(page, BOOT)
    for route in held:
        route.continue_()
    page.context.unroute(BOOT_HOLD)
    assert wait_for_boot(page) == "ready", page.inner_text("body")

    expect(page.locator("#welcome")).to_be_visible()
    yield _settled(page, WELCOME)

    seed(page)
    expect(page.locator("#welcome")).to_be_hidden()
    show_view(page, "all")
    yield _settled(page, TASKS)

    show_view(page, LIST_VIEW)
    expect(page.locator('[data-role="task"]')).to_have_count(1)
    yield _settled(page, LIST)
    for view in FILTERS:
        show_view(page, view.name)
        yield _settled(page, view)

    show_view(page, "all")
    task(page, EDITED).get_by_role("button", name=re.compile("^Edit")).click()
    expect(page.locator('form[data-role="task-edit"]')).to_be_visible()
    yield _settled(page, EDIT)

    page.locator('form[data-role="task-edit"]').get_by_role("button", name="Cancel").click()
    task(page, DELETED).get_by_role("button", name=re.compile("^Delete")).click()
    expect(page.locator("#toast")).to_be_visible()
    yield _settled(page, UNDO)

    page.locator("#toast").get_by_role("button", name="Undo").click()
    expect(task(page, DELETED)).to_be_visible()
    toggle = page.locator("#conversation-toggle")
    if toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    asked = send(page, UNCLEAR)
    assert "Ask the server?" in asked, asked
    yield _settled(page, CONVERSATION)

    settings = page.locator("#settings-toggle")
    if settings.is_visible():
        settings.click()
        expect(settings).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#side")).to_be_visible()
    page.locator("#side").scroll_into_view_if_needed()
    yield _settled(page, SETTINGS)


def looks(page: Page, url: str) -> Iterator[tuple[View, Scheme]]:
    """The tour, each view in each colour scheme (switched in place: one boot for both)."""
    for view in tour(page, url):
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            settle(page)
            yield view, scheme


def _settled(page: Page, view: View) -> View:
    settle(page)
    return view
