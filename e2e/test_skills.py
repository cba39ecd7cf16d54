"""The skills of issue 11 in the page: rename, reschedule, a recurring task completed, a
list, history, a refusal and undo, typed into the chat on a fixed clock and kept across a
reload (checked in the DOM and in the sync ops in IndexedDB).

The page's clock is Playwright's (``page.clock.set_fixed_time``) in a context whose time
zone is Europe/Paris, so every date below is known: "yesterday" is Tuesday 17 November 2026
at 18:30, "today" Wednesday 18 November at 10:00 (+01:00). The page sends that time with
each request; the agent reads dates and stamps completions from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from .harness import BOOT_TIMEOUT_MS, ServerProcess, say, wait_for_boot
from .test_agent import READ_STORE

ZONE = "Europe/Paris"
YESTERDAY = datetime(2026, 11, 17, 18, 30, tzinfo=ZoneInfo(ZONE))  # a Tuesday
TODAY = datetime(2026, 11, 18, 10, 0, tzinfo=ZoneInfo(ZONE))  # a Wednesday
WEEKLY_MONDAY = "FREQ=WEEKLY;BYDAY=MO"

# One task as the list shows it: title, done, when it is due (its <time>'s datetime), the
# texts of its repeat and list parts (None when the list shows none).
Shown = tuple[str, bool, str | None, str | None, str | None]

SHOWN = """() => [...document.querySelectorAll('#tasks li')].map((item) => {
    const part = (role) => item.querySelector(`[data-role="${role}"]`)?.textContent ?? null;
    return [
        item.querySelector('.title').dataset.saved,
        item.querySelector('input[type="checkbox"]').checked,
        item.querySelector('[data-role="due"]')?.getAttribute('datetime') ?? null,
        part('repeat'),
        part('list'),
    ];
})"""

LAST_REPLY = """() => {
    const item = document.querySelector('#messages li.agent:last-child');
    return {
        summary: item.querySelector('details summary').textContent,
        body: item.querySelector('details div').textContent,
        source: item.dataset.source,
    };
}"""


@dataclass(frozen=True)
class Turn:
    request: str
    text: str  # the reply as the page shows it (with its badges and details summary)
    summary: str  # "details"
    body: str  # "intent task.edit, confidence 0.994 · 31.2 ms[ · the device read …]"
    source: str  # local, cloud (the server read it) or tentative

    def __str__(self) -> str:
        return f"{self.request!r} -> {self.text!r} [{self.body}; source {self.source}]"


def turn(page: Page, request: str) -> Turn:
    text = say(page, request)
    details = page.evaluate(LAST_REPLY)
    result = Turn(request, text, details["summary"], details["body"], details["source"])
    print(result)  # every reading, for the report when a turn goes wrong
    return result


def expect(page: Page, request: str, *replies: str) -> Turn:
    """Say ``request``; its reply must contain each of ``replies``."""
    result = turn(page, request)
    for reply in replies:
        assert reply in result.text, str(result)
    return result


def _key(task: Shown) -> str:
    """A task as JSON, the same text JSON.stringify gives in the page (for sorting)."""
    return json.dumps(list(task), ensure_ascii=False, separators=(",", ":"))


def shown(page: Page) -> list[str]:
    return sorted(_key(tuple(task)) for task in page.evaluate(SHOWN))


def wait_shown(page: Page, expected: list[Shown], after: Turn | None = None) -> None:
    """The task pane shows exactly ``expected`` (any order)."""
    want = sorted(_key(task) for task in expected)
    try:
        page.wait_for_function(
            f"(want) => JSON.stringify(({SHOWN})().map((t) => JSON.stringify(t)).sort())"
            " === JSON.stringify(want)",
            arg=want,
            timeout=10_000,
        )
    except PlaywrightTimeoutError:
        assert shown(page) == want, f"after {after}" if after else "the task pane"


def stored_tasks(page: Page) -> dict[str, dict[str, Any]]:
    """The tasks in IndexedDB: each field's latest op (one device, so the latest HLC wins),
    deleted records left out."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for op in page.evaluate(READ_STORE, "ops"):
        if op["collection"] != "tasks":
            continue
        key = (op["record_id"], op["field"])
        if key not in latest or op["hlc"] > latest[key]["hlc"]:
            latest[key] = op
    records: dict[str, dict[str, Any]] = {}
    for (record_id, field), op in latest.items():
        records.setdefault(record_id, {"id": record_id})[field] = op["value"]
    return {key: record for key, record in records.items() if not record.get("_deleted")}


def by_title(records: dict[str, dict[str, Any]], title: str) -> list[dict[str, Any]]:
    return [record for record in records.values() if record["title"] == title]


@pytest.fixture
def paris(browser: Browser) -> Iterator[Page]:
    """A fresh device in Paris whose page clock says ``YESTERDAY``."""
    context = browser.new_context(bypass_csp=True, timezone_id=ZONE)
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    page.clock.set_fixed_time(YESTERDAY)
    yield page
    context.close()


def test_edit_recur_list_history_refuse_and_undo(paris: Page, server: ServerProcess) -> None:
    page = paris
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    assert page.evaluate("new Date().toISOString()") == "2026-11-17T17:30:00.000Z"
    # The server may read what the device is unsure of (asking first is e2e/test_consent.py).
    page.select_option("#consent", "always")
    page.wait_for_function("document.body.dataset.consent === 'always'")

    # Yesterday: a task done, for "what did I do yesterday?".
    expect(page, "remind me to call the bank", "Added “call the bank”.")
    done = expect(page, "I called the bank", "Marked “call the bank” as done.")
    bank: Shown = ("call the bank", True, None, None, None)
    wait_shown(page, [bank], done)

    page.clock.set_fixed_time(TODAY)

    # Rename.
    added = expect(page, "add buy milk", "Added “buy milk”.")
    wait_shown(page, [bank, ("buy milk", False, None, None, None)], added)
    renamed = expect(
        page, "rename buy milk to buy oat milk", "Renamed “buy milk” to “buy oat milk”."
    )
    milk: Shown = ("buy oat milk", False, None, None, None)
    wait_shown(page, [bank, milk], renamed)

    # Reschedule: "friday" said on a Wednesday is this week's; the time of day is kept.
    added = expect(
        page,
        "remind me to go to the dentist tomorrow at 3pm",
        "Added “go to the dentist”, due tomorrow 15:00.",
    )
    wait_shown(page, [bank, milk, ("go to the dentist", False, "2026-11-19T15:00", None, None)])
    moved = expect(
        page, "move the dentist to friday", "Moved “go to the dentist” to Fri 20 Nov 15:00."
    )
    dentist: Shown = ("go to the dentist", False, "2026-11-20T15:00", None, None)
    wait_shown(page, [bank, milk, dentist], moved)

    # A recurring task: the rule in words and its first occurrence, next Monday.
    added = expect(
        page,
        "remind me every monday to take out the trash",
        "Added “take out the trash”, every Monday, first due Mon 23 Nov.",
    )
    trash: Shown = ("take out the trash", False, "2026-11-23", "every Monday", None)
    wait_shown(page, [bank, milk, dentist, trash], added)
    [stored] = by_title(stored_tasks(page), "take out the trash")
    assert (stored["repeat"], stored["due_date"], stored["done"]) == (
        WEEKLY_MONDAY,
        "2026-11-23",
        False,
    )

    # Completing it keeps a done copy of this occurrence and moves the task a week on.
    completed = expect(
        page, "I took out the trash", "Done: “take out the trash”. Next: Mon 30 Nov."
    )
    trash_done: Shown = ("take out the trash", True, "2026-11-23", None, None)
    trash_next: Shown = ("take out the trash", False, "2026-11-30", "every Monday", None)
    wait_shown(page, [bank, milk, dentist, trash_next, trash_done], completed)
    records = stored_tasks(page)
    [recurring] = [r for r in by_title(records, "take out the trash") if r["repeat"]]
    [copy] = [r for r in by_title(records, "take out the trash") if not r["repeat"]]
    assert (recurring["due_date"], recurring["done"]) == ("2026-11-30", False)
    assert copy["done"] is True and copy["due_date"] == "2026-11-23"
    assert copy["occurrence_of"] == recurring["id"]
    assert copy["done_at"] == TODAY.isoformat()

    # History answers from completion times, not with the open tasks.
    before = stored_tasks(page)
    history = expect(
        page,
        "what did I do yesterday?",
        "Yesterday you completed 1 task:\n• call the bank — yesterday at 18:30",
    )
    for other in ("open tasks", "buy oat milk", "dentist", "trash"):
        assert other not in history.text, str(history)

    # A list: the list is shown beside the task, the title keeps no list words.
    added = expect(
        page, "add avocados to my groceries list", "Added “avocados” to your grocery list."
    )
    avocados: Shown = ("avocados", False, None, None, "grocery")
    wait_shown(page, [bank, milk, dentist, trash_next, trash_done, avocados], added)
    [stored] = by_title(stored_tasks(page), "avocados")
    assert stored["list"] == "grocery" and stored["repeat"] is None
    listed = expect(page, "what's on my grocery list", "Your grocery list:\n• avocados")
    for other in ("oat milk", "dentist", "trash", "bank"):
        assert other not in listed.text, str(listed)

    # A timer is an ability py_agent does not have: it says so and changes nothing.
    ops = len(page.evaluate(READ_STORE, "ops"))
    refused = expect(page, "set a timer for 5 minutes", "I can't set timers.")
    assert len(page.evaluate(READ_STORE, "ops")) == ops, str(refused)
    wait_shown(page, [bank, milk, dentist, trash_next, trash_done, avocados], refused)
    assert len(stored_tasks(page)) == len(before) + 1  # the avocados, nothing since

    # Undo takes back the last change (the list add: not the refusal, which changed
    # nothing), then the one before (the completion: the copy goes, the due date is back).
    undone = expect(page, "undo", "Undid adding “avocados”.")
    wait_shown(page, [bank, milk, dentist, trash_next, trash_done], undone)
    undone = expect(page, "undo", "Undid completing “take out the trash”.")
    final = [bank, milk, dentist, trash]
    wait_shown(page, final, undone)
    assert len(page.evaluate(READ_STORE, "ops")) > ops  # undone with new ops, none removed

    turns = int(page.evaluate("document.body.dataset.turns"))
    page.reload()
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    wait_shown(page, final)
    assert page.eval_on_selector_all("#messages li", "items => items.length") == 2 * turns
    records = stored_tasks(page)
    fields = ("title", "done", "due_date", "due_time", "repeat", "list")
    assert sorted(tuple(record.get(f) for f in fields) for record in records.values()) == sorted(
        [
            ("call the bank", True, None, None, None, None),
            ("buy oat milk", False, None, None, None, None),
            ("go to the dentist", False, "2026-11-20", "15:00", None, None),
            ("take out the trash", False, "2026-11-23", None, WEEKLY_MONDAY, None),
        ]
    )
    [bank_record] = by_title(records, "call the bank")
    assert bank_record["done_at"] == YESTERDAY.isoformat()
