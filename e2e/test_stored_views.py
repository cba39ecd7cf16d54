"""The user's data as a start reads it, through the real IndexedDB adapter
(py_agent/platform/browser.py, web/src/bridge.js): after changes made in the chat and the
panes, the page's stores "tasks" and "notes" hold exactly the worker's snapshot, the settings
both their fields, embeddings bytes; and a reload, which reads those instead of replaying the
op log, shows the same data and finds notes by meaning."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from .harness import ServerProcess, say, wait_for_boot

# The stores as the page reads them, and each embedding's type and size.
READ_STORES = """async () => {
    const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open('py_agent');
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
    const read = (store, method, ...args) => new Promise((resolve, reject) => {
        const request = db.transaction(store).objectStore(store)[method](...args);
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
    const embeddings = await read('embeddings', 'getAll');
    const stored = {
        tasks: await read('tasks', 'getAll'),
        notes: await read('notes', 'getAll'),
        settings: await read('meta', 'get', 'settings'),
        vectors: embeddings.map((e) => [e.vector.constructor.name, e.vector.byteLength]),
    };
    db.close();
    return stored;
}"""


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["id"]: record for record in records}


def assert_stored_as_shown(page: Page) -> dict[str, Any]:
    stored = page.evaluate(READ_STORES)
    snapshot = page.evaluate("window.pyAgent.snapshot()")
    assert by_id(stored["tasks"]) == by_id(snapshot["tasks"])
    assert by_id(stored["notes"]) == by_id(snapshot["notes"])
    dimension = len(page.evaluate("window.pyAgent.embed(['a text'])")[0])
    assert stored["vectors"] and set(map(tuple, stored["vectors"])) == {
        ("Uint8Array", 4 * dimension)
    }
    return {**stored, "tasks": snapshot["tasks"], "notes": snapshot["notes"]}


def test_the_stores_follow_every_change_and_a_reload_reads_them(
    page: Page, server: ServerProcess
) -> None:
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"
    settings = page.evaluate("window.pyAgent.settings()")
    assert page.evaluate(READ_STORES)["settings"] == {  # the defaults, written once
        "threshold": settings["threshold"],
        "cloud_help": settings["cloud_help"],
        "consent": settings["consent"],
    }
    say(page, "remind me to take out the trash every monday")
    say(page, "add call Mom")
    say(page, "note that the gate code is 4321")
    say(page, "note that the bike is blue")
    tasks = by_id(page.evaluate("window.pyAgent.snapshot()")["tasks"])
    [trash] = [key for key, task in tasks.items() if task["title"] == "take out the trash"]
    [mom] = [key for key, task in tasks.items() if task["title"] == "call Mom"]
    page.evaluate("(id) => window.pyAgent.editRecord('tasks', id, { done: true })", trash)
    page.evaluate("(id) => window.pyAgent.editRecord('tasks', id, { title: 'call Dad' })", mom)
    notes = by_id(page.evaluate("window.pyAgent.snapshot()")["notes"])
    [bike] = [key for key, note in notes.items() if "bike" in note["text"]]
    page.evaluate("(id) => window.pyAgent.removeRecord('notes', id)", bike)
    page.evaluate("window.pyAgent.setSettings({ threshold: 0.4 })")

    before = assert_stored_as_shown(page)
    assert before["settings"] == {"threshold": 0.4, "cloud_help": False, "consent": "unasked"}
    assert bike not in by_id(before["notes"])
    shown = by_id(before["tasks"])
    assert shown[mom]["title"] == "call Dad"
    assert shown[trash]["repeat_text"] == "every Monday"

    page.reload()
    assert wait_for_boot(page) == "ready"
    after = page.evaluate("window.pyAgent.snapshot()")
    assert (after["tasks"], after["notes"]) == (before["tasks"], before["notes"])
    assert "4321" in say(page, "what's the gate code?")
    assert_stored_as_shown(page)
