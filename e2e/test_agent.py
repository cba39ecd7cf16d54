"""The agent in the page: a conversation typed into the chat, kept across a reload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, Playwright

from .harness import CHROMIUM, CHROMIUM_ARGS, ServerProcess, say, wait_for_boot

CONVERSATION = [
    ("remind me to call Mom tomorrow at 5pm", "Added “call Mom”, due tomorrow 17:00."),
    ("add buy milk", "Added “buy milk”."),
    ("what's on my list?", "• call Mom — due tomorrow 17:00\n• buy milk"),
    ("I bought the milk", "Marked “buy milk” as done."),
    ("note that the wifi password is hunter2", "Noted: “the wifi password is hunter2”"),
    ("what's the wifi password?", "From your notes: “the wifi password is hunter2”"),
]

READ_STORE = """async (store) => {
    const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open('py_agent');
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
    const records = await new Promise((resolve, reject) => {
        const request = db.transaction(store).objectStore(store).getAll();
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
    db.close();
    return records;
}"""


def test_conversation_survives_a_reload_and_lives_in_indexeddb(
    page: Page, server: ServerProcess
) -> None:
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"
    for text, expected in CONVERSATION:
        assert expected in say(page, text), text
    # Upcoming first, then the task without a date; when it is due, in words.
    assert page.locator("[data-role=task] .title").all_inner_texts() == ["call Mom", "buy milk"]
    assert page.locator("[data-role=task] [data-role=due]").all_inner_texts() == ["Tomorrow, 5 PM"]
    assert page.inner_text("#notes") == "the wifi password is hunter2"

    page.reload()
    assert wait_for_boot(page) == "ready"
    messages = page.eval_on_selector_all("#messages li", "items => items.map(i => i.className)")
    assert messages == ["user", "agent"] * len(CONVERSATION)
    assert "buy milk" in page.inner_text("#tasks")

    # Tasks live in IndexedDB as sync ops (one per field change), all still in the
    # outbox of this never-paired device.
    ops: list[dict[str, Any]] = page.evaluate(READ_STORE, "ops")
    written = {(op["field"], json.dumps(op["value"])) for op in ops if op["collection"] == "tasks"}
    assert {("title", '"buy milk"'), ("title", '"call Mom"'), ("done", "true")} <= written
    assert ("due_time", "null") in written  # None is stored as null, not dropped
    assert len(page.evaluate(READ_STORE, "outbox")) == len(ops)
    stored = page.evaluate(READ_STORE, "messages")
    assert len(stored) == 2 * len(CONVERSATION)
    assert stored[-1]["intent"] == "note.search" and 0 < stored[-1]["confidence"] <= 1
    assert len(page.evaluate(READ_STORE, "embeddings")) == 3  # two task titles, one note


def test_keyboard_details_and_errors(page: Page, server: ServerProcess) -> None:
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"
    say(page, "help")
    # How the reply was understood: folded under "details", for the curious.
    details = page.locator("#messages li.agent:last-child details")
    details.locator("summary").press("Enter")
    assert details.locator("div").inner_text().startswith("intent help, confidence ")
    page.press("#input", "ArrowUp")
    assert page.input_value("#input") == "help"

    page.fill("#input", "   ")
    page.press("#input", "Enter")
    assert page.eval_on_selector_all("#messages li", "items => items.length") == 2

    error = page.evaluate(
        "() => window.pyAgent.ask('x'.repeat(2001), '2026-11-18T10:00:00+01:00')"
        ".then(() => 'no error', (e) => e.message)"
    )
    assert "the limit is 2000" in error
    error = page.evaluate(
        "() => window.pyAgent.ask('hi', 'yesterday').then(() => 'no error', (e) => e.message)"
    )
    assert "now must be the device's local time in ISO 8601" in error


def test_usable_at_360_pixels(page: Page, server: ServerProcess) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"
    say(page, "remind me to renew my passport by december 14")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    box = page.locator("#input").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360


def test_state_survives_a_browser_restart(
    playwright: Playwright, server: ServerProcess, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"

    def launch() -> BrowserContext:
        return playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, bypass_csp=True
        )

    context = launch()
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"
    assert "Added “renew the car insurance”" in say(page, "remind me to renew the car insurance")
    context.close()  # the whole browser exits

    context = launch()
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"
    assert "renew the car insurance" in page.inner_text("#tasks")
    assert page.eval_on_selector_all("#messages li", "items => items.length") == 2
    context.close()
