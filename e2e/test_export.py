"""Export and Import in the page: the download holds the tasks and notes, importing it into a
fresh profile shows them (and finds them by meaning), importing it after the site's data
was cleared restores every task and note as they were, and a bad file (not JSON, the wrong
shape, too large) says why and changes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from .harness import Devices, ServerProcess, say, titles, wait_for_boot, wait_for_titles

STATUS = '[data-role="import-status"]'
NOT_EXPORTED = ("created_at", "occurrence_of")
COUNT_OPS = """async () => {
    const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open('py_agent');
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
    const count = await new Promise((resolve, reject) => {
        const request = db.transaction('ops').objectStore('ops').count();
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
    db.close();
    return count;
}"""


def export_file(page: Page, folder: Path) -> Path:
    """Click Export and save the download in ``folder``."""
    with page.expect_download() as download_info:
        page.click('[data-role="export"]')
    download = download_info.value
    saved = folder / download.suggested_filename
    download.save_as(saved)
    return saved


def import_file(page: Page, files: Any) -> str:
    """Choose ``files`` in the Import picker; the status once the import ended."""
    page.set_input_files('[data-role="import"]', files)
    page.wait_for_function(
        f"['done', 'error'].includes(document.querySelector('{STATUS}').dataset.state)"
    )
    return page.inner_text(STATUS)


def test_export_downloads_the_data_and_a_fresh_profile_imports_it(
    devices: Devices, tmp_path: Path
) -> None:
    ((_, first),) = devices.open()
    assert "Added “call Mom”" in say(first, "remind me to call Mom tomorrow at 5pm")
    assert "Added “buy milk”" in say(first, "add buy milk")
    assert "hunter2" in say(first, "note that the wifi password is hunter2")
    first.check("#tasks li:has(.title[data-saved='buy milk']) input[type=checkbox]")
    first.wait_for_selector("#tasks li.done .title[data-saved='buy milk']")

    saved = export_file(first, tmp_path)
    today = first.evaluate("new Date().toLocaleDateString('sv')")  # YYYY-MM-DD, local
    assert saved.name == f"py_agent-export-{today}.json"
    text = saved.read_text(encoding="utf-8")
    assert text == first.evaluate("window.pyAgent.exportData()")
    data = json.loads(text)
    call, milk = data["tasks"]
    assert (call["title"], call["done"], call["completed_at"]) == ("call Mom", False, None)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T17:00", call["due"])
    assert (milk["title"], milk["done"], milk["due"]) == ("buy milk", True, None)
    assert milk["completed_at"] is not None
    assert [note["text"] for note in data["notes"]] == ["the wifi password is hunter2"]
    assert set(call) == {"id", "title", "due", "done", "list", "repeat", "completed_at"}

    ((_, fresh),) = devices.open()
    assert titles(fresh) == []
    assert import_file(fresh, str(saved)) == "imported 2 tasks and 1 note"
    assert fresh.get_attribute(STATUS, "data-state") == "done"
    wait_for_titles(fresh, ["call Mom", "buy milk"])
    assert fresh.locator("#tasks li.done .title").all_inner_texts() == ["buy milk"]
    assert fresh.inner_text("#notes") == "the wifi password is hunter2"
    assert fresh.evaluate("window.pyAgent.exportData()") == text
    # Imported with their embeddings: the new profile finds the note by meaning.
    assert "hunter2" in say(fresh, "what's the wifi password?")
    # And as sync changes, waiting to reach this profile's other devices.
    assert fresh.evaluate("window.pyAgent.syncStatus()")["pending"] > 0


def user_data(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's tasks and notes as an export keeps them (docs/agent.md): every field but
    ``created_at`` (an imported record is created when it is imported, in the file's order,
    which is the order the snapshot lists) and ``occurrence_of`` (a done copy a repeating
    task left behind comes back as a plain done task)."""
    return {
        collection: [
            {key: value for key, value in record.items() if key not in NOT_EXPORTED}
            for record in snapshot[collection]
        ]
        for collection in ("tasks", "notes")
    }


def test_export_then_clearing_the_site_data_then_import_restores_everything(
    devices: Devices, server: ServerProcess, tmp_path: Path
) -> None:
    ((context, page),) = devices.open()
    say(page, "remind me to take out the trash every monday")
    say(page, "remind me to call Mom tomorrow at 5pm")
    say(page, "add buy milk")
    say(page, "note that the wifi password is hunter2")
    say(page, "note that the gate code is 4321")
    tasks = page.evaluate("window.pyAgent.snapshot()")["tasks"]
    trash, milk = (
        next(t["id"] for t in tasks if t["title"] == n) for n in ("take out the trash", "buy milk")
    )
    edit = "([id, changes]) => window.pyAgent.editRecord('tasks', id, changes)"
    page.evaluate(edit, [milk, {"list": "grocery", "done": True}])
    page.evaluate(edit, [trash, {"done": True}])  # leaves a done copy of this occurrence
    before = page.evaluate("window.pyAgent.snapshot()")
    assert sorted(t["title"] for t in before["tasks"]) == [
        "buy milk",
        "call Mom",
        "take out the trash",
        "take out the trash",
    ]
    assert len(before["notes"]) == 2
    assert {t.get("occurrence_of") for t in before["tasks"]} == {None, trash}
    assert {t["list"] for t in before["tasks"]} == {None, "grocery"}
    saved = export_file(page, tmp_path)

    # What "Clear site data" does: the database, caches and service worker are gone.
    cdp = context.new_cdp_session(page)
    cdp.send("Storage.clearDataForOrigin", {"origin": server.url, "storageTypes": "all"})
    page.reload()
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    wiped = page.evaluate("window.pyAgent.snapshot()")
    assert (wiped["tasks"], wiped["notes"]) == ([], [])

    assert import_file(page, str(saved)) == "imported 4 tasks and 2 notes"
    after = page.evaluate("window.pyAgent.snapshot()")
    assert user_data(after) == user_data(before)
    assert titles(page) == sorted(t["title"] for t in before["tasks"])


def test_a_bad_file_shows_why_and_changes_nothing(devices: Devices, tmp_path: Path) -> None:
    ((_, page),) = devices.open()
    say(page, "add buy milk")
    before = (titles(page), page.evaluate(COUNT_OPS), page.evaluate("window.pyAgent.exportData()"))

    bad = {
        "tasks": [
            {"id": "x", "title": "a valid task in a bad file"},
            {"id": "y", "title": "renew passport", "due": "2026-13-01"},
        ],
        "notes": [{"id": "n", "text": "fine", "colour": "red"}],
    }
    shown = import_file(
        page,
        {"name": "bad.json", "mimeType": "application/json", "buffer": json.dumps(bad).encode()},
    )
    assert page.get_attribute(STATUS, "data-state") == "error"
    assert shown.splitlines() == [
        "Nothing was imported from bad.json:",
        "Task 2's “due” is \"2026-13-01\", which isn't a date: write it like 2026-11-19,"
        " or 2026-11-19T17:00 with a time (or null for none).",
        "Note 1 has “colour”, which a note doesn't have (it has id, text).",
    ]
    assert "not JSON" in import_file(
        page, {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"buy milk\n"}
    )
    assert import_file(
        page, {"name": "list.json", "mimeType": "application/json", "buffer": b'["buy milk"]'}
    ).splitlines() == [
        "Nothing was imported from list.json:",
        'The file holds a list, not an export: an export is a JSON object with "tasks" and'
        ' "notes".',
    ]
    big = tmp_path / "big.json"
    with big.open("wb") as file:
        file.truncate(20_000_001)  # py_agent/export.py's MAX_BYTES, and a byte
    assert import_file(page, str(big)).splitlines() == [
        "Nothing was imported from big.json:",
        "the file is 20.1 MB; the limit is 20 MB",
    ]
    page.click("#data-title")  # let any pending render happen before comparing
    after = (titles(page), page.evaluate(COUNT_OPS), page.evaluate("window.pyAgent.exportData()"))
    assert after == before
