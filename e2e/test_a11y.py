"""Accessibility (issue 14, point 9): axe-core finds no serious or critical violation on any
view (tools/views.py), light and dark, on a desktop and a phone; every action can be done
with the keyboard alone, and whatever Tab reaches shows where the focus is.

One boot per viewport for the whole module: the tour goes from view to view on one page, each
view checked in both colour schemes (``page.emulate_media``, what a context's
``color_scheme`` sets too), and the keyboard tests go on from where it ended.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tools.views import (
    REPLY_TIMEOUT_MS,
    VIEWPORTS,
    Viewport,
    looks,
    message_box,
    new_context,
    new_page,
    replies,
    task,
)

from .a11y import Violation, blocking, report, violations
from .harness import ServerProcess

DESKTOP, PHONE = VIEWPORTS
# More Tab presses than the page has stops: reaching none of them fails, never loops.
TAB_LIMIT = 200
# The focused element, once: whether the focus was there before (or left the page: a full
# round), and whether it shows where it is (an outline or a box shadow under :focus-visible).
TAB_STOP = """() => {
    const element = document.activeElement;
    const again = element === document.body || window.tabStops.has(element);
    window.tabStops.add(element);
    const style = getComputedStyle(element);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
    const name = element.getAttribute('aria-label') ?? element.textContent.trim().slice(0, 30);
    return {
        again,
        shown: element.matches(':focus-visible') && (outline || style.boxShadow !== 'none'),
        name: `${element.tagName.toLowerCase()}${element.id ? '#' + element.id : ''} "${name}"`,
    };
}"""


@dataclass
class Toured:
    """A page that went through every view, and what axe found on each."""

    page: Page
    found: dict[str, list[Violation]]


def toured(browser: Browser, url: str, viewport: Viewport) -> Iterator[Toured]:
    context = new_context(browser, viewport)
    try:
        page = new_page(context)
        found = {
            f"{view.name} {viewport.name} {scheme}": violations(page)
            for view, scheme in looks(page, url)
        }
        yield Toured(page, found)
    finally:
        context.close()


@pytest.fixture(scope="module")
def desktop(browser: Browser, server: ServerProcess) -> Iterator[Toured]:
    yield from toured(browser, server.url, DESKTOP)


@pytest.fixture(scope="module")
def phone(browser: Browser, server: ServerProcess) -> Iterator[Toured]:
    yield from toured(browser, server.url, PHONE)


@pytest.mark.parametrize("viewport", [viewport.name for viewport in VIEWPORTS])
def test_no_serious_or_critical_violation_on_any_view(
    request: pytest.FixtureRequest, viewport: str
) -> None:
    found: dict[str, list[Violation]] = request.getfixturevalue(viewport).found
    print(report(found))  # every violation, the minor ones too, for the log
    assert not report({where: blocking(listed) for where, listed in found.items()})


def focused(locator: Locator) -> bool:
    return bool(locator.evaluate("(element) => element === document.activeElement"))


def tab_to(page: Page, target: Locator) -> None:
    """Press Tab until ``target`` has the focus."""
    for _ in range(TAB_LIMIT):
        if focused(target):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{TAB_LIMIT} presses of Tab never reached {target}")


def unfocused_stops(page: Page) -> list[str]:
    """Go once round the Tab order; the stops that show no focus indicator."""
    page.evaluate("window.tabStops = new WeakSet(); document.activeElement.blur()")
    hidden: list[str] = []
    for _ in range(TAB_LIMIT):
        page.keyboard.press("Tab")
        stop = page.evaluate(TAB_STOP)
        if stop["again"]:
            return hidden
        if not stop["shown"]:
            hidden.append(stop["name"])
    raise AssertionError(f"the Tab order did not come round in {TAB_LIMIT} presses")


def test_keyboard_alone_adds_completes_edits_deletes_and_undoes(desktop: Toured) -> None:
    page = desktop.page
    keys = page.keyboard

    tab_to(page, message_box(page))
    answered = replies(page).count()
    keys.type("remind me to call the plumber tomorrow")
    keys.press("Enter")
    expect(replies(page)).to_have_count(answered + 1, timeout=REPLY_TIMEOUT_MS)
    plumber = task(page, "call the plumber")
    expect(plumber).to_be_visible()

    checkbox = plumber.get_by_role("checkbox")
    tab_to(page, checkbox)
    keys.press("Space")
    expect(checkbox).to_be_checked()

    tab_to(page, plumber.get_by_role("button", name=re.compile("^Edit")))
    keys.press("Enter")
    form = page.locator('form[data-role="task-edit"]')
    expect(form).to_be_visible()
    tab_to(page, form.get_by_role("textbox", name="Title"))
    keys.press("ControlOrMeta+A")
    keys.type("call the electrician")
    keys.press("Enter")
    expect(form).to_be_hidden()
    electrician = task(page, "call the electrician")
    expect(electrician).to_be_visible()
    expect(task(page, "call the plumber")).to_have_count(0)
    edit = electrician.get_by_role("button", name=re.compile("^Edit"))
    tab_to(page, edit)
    keys.press("Enter")
    expect(form).to_be_visible()
    keys.press("Escape")
    expect(form).to_be_hidden()
    expect(edit).to_be_focused()

    tab_to(page, electrician.get_by_role("button", name=re.compile("^Delete")))
    keys.press("Enter")
    expect(electrician).to_have_count(0)
    tab_to(page, page.locator("#toast").get_by_role("button", name="Undo"))
    keys.press("Enter")
    expect(task(page, "call the electrician")).to_be_visible()

    assert unfocused_stops(page) == []


def test_keyboard_alone_opens_and_closes_the_settings_on_a_phone(phone: Toured) -> None:
    page = phone.page  # the tour ended with the settings open
    side = page.locator("#side")
    toggle = page.locator("#settings-toggle")
    tab_to(page, toggle)
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(side).to_be_hidden()

    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(side).to_be_visible()
    tab_to(page, page.locator("#consent"))
    page.keyboard.press("Escape")
    expect(side).to_be_hidden()
    expect(toggle).to_be_focused()

    assert unfocused_stops(page) == []
