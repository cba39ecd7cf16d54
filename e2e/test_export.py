"""Export and Import in the page: the download holds the tasks and notes, importing it into a
fresh profile shows them (and finds them by meaning), and a bad file changes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from .harness import Devices, ServerProcess, say, titles, wait_for_titles

STATUS = '[data-role="import-status"]'
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


@pytest.fixture
def devices(browser: Browser, server: ServerProcess) -> Iterator[Devices]:
    opened = Devices(browser, server.url)
    yield opened
    opened.close()


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

    with first.expect_download() as download_info:
        first.click('[data-role="export"]')
    download = download_info.value
    today = first.evaluate("new Date().toLocaleDateString('sv')")  # YYYY-MM-DD, local
    assert download.suggested_filename == f"py_agent-export-{today}.json"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
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


def test_a_bad_file_shows_why_and_changes_nothing(devices: Devices) -> None:
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
        "tasks[1].due: must be YYYY-MM-DD, YYYY-MM-DDTHH:MM or null, got '2026-13-01'",
        "notes[0].colour: unknown key; a note has id, text",
    ]
    assert "not JSON" in import_file(
        page, {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"buy milk\n"}
    )
    page.click("#tasks-title")  # let any pending render happen before comparing
    after = (titles(page), page.evaluate(COUNT_OPS), page.evaluate("window.pyAgent.exportData()"))
    assert after == before
