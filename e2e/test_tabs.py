"""Two tabs of one browser: one runs the agent and writes the data, the other uses it
through the first, both stay live, and a closing tab hands over (web/src/tabs.js)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page

from .harness import (
    BOOT_TIMEOUT_MS,
    SYNCED,
    Devices,
    pair,
    say,
    wait_for_boot,
    wait_pushed,
)

LEADER = "document.body.dataset.tabs === 'leader'"
STATUS = '[data-role="import-status"]'
FOLLOWER = "document.body.dataset.tabs === 'follower'"
# Each tab's chat messages as shown: [role, the agent message's element id or the user's text].
SHOWN = """() => [...document.querySelectorAll('#messages li')].map((li) =>
  [li.className, li.className === 'agent' ? li.id : li.firstChild?.textContent ?? ''])"""
# Each task as shown: [title, done], sorted.
TASKS = """() => [...document.querySelectorAll('#tasks li')]
  .map((li) => [li.querySelector('.title').dataset.saved, li.classList.contains('done')]).sort()"""
# What a user does in one tab, as fast as the page answers: asks for each task, checks the
# previous one off as soon as it shows, and at the end renames the first. The page's own
# signals (the turn counter, the panes) say when each step is done.
TYPING = """({ titles, rename }) => {
  const until = (check) => new Promise((resolve) => {
    if (check()) return resolve();
    const observer = new MutationObserver(() => {
      if (check()) { observer.disconnect(); resolve(); }
    });
    observer.observe(document.body,
      { subtree: true, childList: true, attributes: true, characterData: true });
  });
  const row = (title) => [...document.querySelectorAll('#tasks li')]
    .find((li) => li.querySelector('.title')?.dataset.saved === title);
  const turns = () => Number(document.body.dataset.turns ?? '0');
  window.typing = (async () => {
    for (const [index, title] of titles.entries()) {
      const before = turns();
      document.getElementById('input').value = `remind me to ${title}`;
      document.getElementById('ask').requestSubmit();
      await until(() => turns() === before + 1);
      if (index > 0) {
        const previous = titles[index - 1];
        await until(() => row(previous));
        row(previous).querySelector('input[type=checkbox]').click();
        await until(() => row(previous)?.classList.contains('done'));
      }
    }
    await until(() => row(titles[0]));
    const title = row(titles[0]).querySelector('.title');
    title.focus();
    title.textContent = rename;
    title.blur();
    await until(() => row(rename));
    const error = document.getElementById('chat-error');
    return error.hidden ? 'ok' : error.textContent;
  })();
}"""
A_TITLES = ["water the plants", "buy stamps", "call the plumber", "post the letter"]
B_TITLES = [
    "call the dentist",
    "book the car service",
    "renew the car insurance",
    "renew the passport",
]
RENAMED = {"water the plants": "water the ferns", "call the dentist": "call the orthodontist"}


def new_tab(context: BrowserContext) -> Page:
    page = context.new_page()
    page.set_default_timeout(BOOT_TIMEOUT_MS)
    return page


def open_tabs(devices: Devices) -> tuple[BrowserContext, Page, Page]:
    """One browser (one device) with two tabs of the app, opened at once; returns them
    as (context, leader, follower)."""
    context, first = devices.new()
    second = new_tab(context)
    for page in (first, second):
        page.goto(devices.url + "/")
    for page in (first, second):
        assert wait_for_boot(page) == "ready", page.inner_text("body")
    leader, follower = (first, second) if first.evaluate(LEADER) else (second, first)
    assert leader.evaluate(LEADER) and follower.evaluate(FOLLOWER)
    return context, leader, follower


def expected_tasks(*lists: list[str]) -> list[list[Any]]:
    """Every title of each list, all but the last checked off, the first renamed."""
    tasks = [
        [RENAMED.get(title, title), index < len(titles) - 1]
        for titles in lists
        for index, title in enumerate(titles)
    ]
    return sorted(tasks)


def wait_for_tasks(page: Page, expected: list[list[Any]]) -> None:
    page.wait_for_function(
        f"(expected) => JSON.stringify(({TASKS})()) === JSON.stringify(expected)", arg=expected
    )


def check_messages(pages: list[Page], asked: list[str]) -> None:
    """Every turn is in the data once, in order of its id, and every tab shows exactly that."""
    history = pages[0].evaluate("window.pyAgent.history()")
    ids = [message["id"] for message in history]
    assert len(set(ids)) == len(ids) == 2 * len(asked)
    assert sorted(m["text"] for m in history if m["role"] == "user") == sorted(
        f"remind me to {title}" for title in asked
    )
    for title in asked:
        assert sum(f"Added “{title}”" in m["text"] for m in history if m["role"] == "agent") == 1
    shown = [[m["role"], f"m-{m['id']}" if m["role"] == "agent" else m["text"]] for m in history]
    for page in pages:
        assert page.evaluate("window.pyAgent.history()") == history
        # The page re-renders when another tab changed something: wait for it to settle.
        page.wait_for_function(
            f"(shown) => JSON.stringify(({SHOWN})()) === JSON.stringify(shown)", arg=shown
        )


def test_a_second_tab_boots_through_the_first_and_shows_its_progress(devices: Devices) -> None:
    _, leader, follower = open_tabs(devices)
    stages = "[...document.querySelectorAll('#boot-stages li')].map((li) => li.dataset.stage)"
    leader_stages, follower_stages = leader.evaluate(stages), follower.evaluate(stages)
    # The follower heard the leader's boot from wherever it had got to when it asked.
    assert follower_stages[-1] == "ready" and len(follower_stages) >= 2
    assert leader_stages[-len(follower_stages) :] == follower_stages
    assert follower.evaluate("window.pyAgentBoot.environment") == leader.evaluate(
        "window.pyAgentBoot.environment"
    )
    # Both show the same sync state, from the one worker.
    for page in (leader, follower):
        page.wait_for_function("document.body.dataset.sync === 'local'")
        assert page.is_hidden("#tabs")


def test_two_tabs_typing_and_editing_at_once_then_reloaded_and_paired(
    devices: Devices, tmp_path: Path
) -> None:
    _, a, b = open_tabs(devices)
    # Both tabs type and edit at once: neither waits for the other.
    a.evaluate(TYPING, {"titles": A_TITLES, "rename": RENAMED[A_TITLES[0]]})
    b.evaluate(TYPING, {"titles": B_TITLES, "rename": RENAMED[B_TITLES[0]]})
    assert a.evaluate("window.typing") == "ok"
    assert b.evaluate("window.typing") == "ok"

    expected = expected_tasks(A_TITLES, B_TITLES)
    asked = A_TITLES + B_TITLES
    for page in (a, b):
        wait_for_tasks(page, expected)
    check_messages([a, b], asked)

    # Reload each in turn: the leader's reload hands the worker to the other tab, and the
    # reloaded tab comes back through it.
    for page, other in ((a, b), (b, a)):
        was_leader = page.evaluate(LEADER)
        page.reload()
        assert wait_for_boot(page) == "ready", page.inner_text("body")
        if was_leader:
            other.wait_for_function(LEADER)
            page.wait_for_function(FOLLOWER)
        for tab in (a, b):
            wait_for_tasks(tab, expected)
        check_messages([a, b], asked)

    leader, follower = (a, b) if a.evaluate(LEADER) else (b, a)
    # The follower's Export downloads the leader's data; its Import adds to it, and the
    # leader shows the imported task at once.
    with follower.expect_download() as download_info:
        follower.click('[data-role="export"]')
    exported = Path(download_info.value.path()).read_text(encoding="utf-8")
    assert exported == leader.evaluate("window.pyAgent.exportData()")
    data = json.loads(exported)
    assert sorted([t["title"], t["done"]] for t in data["tasks"]) == expected
    party = {
        **data["tasks"][0],
        "id": "party0000000000000000000000000001",
        "title": "plan the party",
    }
    party["done"], party["completed_at"] = False, None
    upload = tmp_path / "party.json"
    upload.write_text(json.dumps({"tasks": [party], "notes": []}), encoding="utf-8")
    follower.set_input_files('[data-role="import"]', str(upload))
    follower.wait_for_function(f"document.querySelector('{STATUS}').dataset.state === 'done'")
    assert follower.inner_text(STATUS) == "imported 1 task and 0 notes"
    expected = sorted([*expected, ["plan the party", False]])
    for page in (a, b):
        wait_for_tasks(page, expected)

    # Paired from the follower, a second device gets every change, once.
    [(_, phone)] = devices.open()
    code = pair(follower, phone)
    leader.wait_for_function(SYNCED)  # the leader's sync pane follows the same worker
    assert leader.inner_text("#pairing-code") == code
    wait_for_tasks(phone, expected)
    assert (
        phone.evaluate("window.pyAgent.snapshot()")["tasks"]
        == a.evaluate("window.pyAgent.snapshot()")["tasks"]
    )
    # The follower's edits reach the other device like the leader's.
    follower.locator("#tasks li", has_text="renew the passport").get_by_role("checkbox").check()
    follower.wait_for_selector("#tasks li.done .title[data-saved='renew the passport']")
    wait_pushed(follower)
    phone.click("#sync-now")
    phone.wait_for_selector("#tasks li.done .title[data-saved='renew the passport']")


def test_closing_the_leader_hands_over_to_the_other_tab(devices: Devices) -> None:
    context, leader, follower = open_tabs(devices)
    assert "Added “water the plants”" in say(follower, "remind me to water the plants")
    assert "Added “buy stamps”" in say(leader, "remind me to buy stamps")
    follower.wait_for_function(
        "document.querySelectorAll('#messages li').length === 4"
    )  # the leader's turn shows in the follower too

    leader.close()
    # A call made right after the leader closed waits for the next leader, not failing.
    follower.evaluate("() => { window.pending = window.pyAgent.snapshot(); }")
    follower.wait_for_function(LEADER)
    assert len(follower.evaluate("window.pending")["tasks"]) == 2
    assert "Added “call the plumber”" in say(follower, "remind me to call the plumber")
    follower.wait_for_function("document.body.dataset.tabsState === 'ready'")
    assert follower.is_hidden("#tabs")

    # A new tab uses the new leader, and sees everything once.
    third = new_tab(context)
    third.goto(devices.url + "/")
    assert wait_for_boot(third) == "ready"
    assert third.evaluate(FOLLOWER)
    check_messages([follower, third], ["water the plants", "buy stamps", "call the plumber"])


def test_a_tab_that_does_not_answer_is_named_and_use_here_takes_over(
    devices: Devices,
) -> None:
    context, holder = devices.new()
    holder.goto(devices.url + "/healthz")
    # A tab that holds the agent's lock and never answers (frozen, or an old build).
    holder.evaluate(
        """() => {
          window.stolen = navigator.locks.request('py_agent-agent', () => new Promise(() => {}))
            .then(() => 'released', (error) => error.name);
        }"""
    )
    page = new_tab(context)
    page.goto(devices.url + "/")
    assert wait_for_boot(page) == "error"
    assert "not answering" in page.inner_text("#boot-error-text")
    assert page.evaluate("document.body.dataset.tabsState") == "unanswered"
    page.click("#tabs-action")  # "Use here"
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    assert page.evaluate(LEADER)
    assert holder.evaluate("window.stolen") == "AbortError"


def test_an_upgrade_waits_for_an_old_connection_and_a_newer_one_closes_ours(
    devices: Devices,
) -> None:
    context, old = devices.new()
    old.goto(devices.url + "/healthz")
    # An older build's connection: the database at version 1, with none of today's stores.
    old.evaluate(
        """() => new Promise((resolve, reject) => {
          const request = indexedDB.open('py_agent', 1);
          request.onsuccess = () => { window.db = request.result; resolve(); };
          request.onerror = () => reject(request.error);
        })"""
    )
    page = new_tab(context)
    page.goto(devices.url + "/")
    page.wait_for_function("document.body.dataset.tabsDb === 'blocked'")
    assert "another py_agent tab still has your data open" in page.inner_text("#tabs")
    old.evaluate("window.db.close()")
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    page.wait_for_function("document.body.dataset.tabsDb === 'open'")
    assert page.is_hidden("#tabs")
    assert "Added “buy stamps”" in say(page, "remind me to buy stamps")

    # A newer version opens the data: this tab lets go at once and says to reload.
    version = old.evaluate(
        """() => new Promise((resolve, reject) => {
          const probe = indexedDB.open('py_agent');
          probe.onsuccess = () => {
            const next = probe.result.version + 1;
            probe.result.close();
            const request = indexedDB.open('py_agent', next);
            request.onsuccess = () => { request.result.close(); resolve(next); };
            request.onerror = () => reject(request.error);
          };
        })"""
    )
    assert version >= 3
    page.wait_for_function("document.body.dataset.tabsDb === 'blocking'")
    assert "reload this tab" in page.inner_text("#tabs")
    error = page.evaluate(
        "window.pyAgent.ask('remind me to post the letter', new Date().toISOString())"
        ".then(() => 'no error', (e) => e.message)"
    )
    assert "reload this tab" in error and "Traceback" not in error
    page.click("#tabs-action")  # "Reload"
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    page.wait_for_function("document.querySelector('#tasks').innerText.includes('buy stamps')")
