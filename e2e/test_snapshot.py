"""The worker's memory snapshot (web/src/snapshot.js): a first visit keeps one, a revisit
restores Python from it, and a snapshot that is corrupted, will not restore or was made for
another build is refused: that boot starts Python afresh, answers all the same, and keeps a
new snapshot in its place. No request fails on any of these boots."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, Page

from .harness import ServerProcess, say, wait_for_boot

ENTRY = "boot-snapshot"
# The stored snapshot's key and sha256 headers, or null when there is none.
STORED = f"""async () => {{
    const response = await (await caches.open('py_agent-boot')).match('{ENTRY}');
    if (!response) return null;
    return {{
        key: response.headers.get('x-snapshot-key'),
        sha256: response.headers.get('x-snapshot-sha256'),
        bytes: (await response.arrayBuffer()).byteLength,
    }};
}}"""
KEPT = f"({STORED})().then(Boolean)"
# Replaces the stored snapshot: `bytes` (a number of zero bytes) under the given headers,
# each defaulting to the stored one's.
REPLACE = f"""async ({{ bytes, key, sha256 }}) => {{
    const cache = await caches.open('py_agent-boot');
    const stored = await cache.match('{ENTRY}');
    const body = bytes === null ? await stored.arrayBuffer() : new Uint8Array(bytes);
    const headers = {{
        'x-snapshot-key': key ?? stored.headers.get('x-snapshot-key'),
        'x-snapshot-sha256': sha256 ?? stored.headers.get('x-snapshot-sha256'),
    }};
    await cache.put('{ENTRY}', new Response(body, {{ headers }}));
}}"""
# Replaces the stored snapshot's bytes with `damage(bytes)`, under their own sha256.
REWRITE = f"""async (damage) => {{
    const cache = await caches.open('py_agent-boot');
    const stored = await cache.match('{ENTRY}');
    const bytes = eval(damage)(new Uint8Array(await stored.arrayBuffer()));
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0'));
    const headers = {{
        'x-snapshot-key': stored.headers.get('x-snapshot-key'),
        'x-snapshot-sha256': hex.join(''),
    }};
    await cache.put('{ENTRY}', new Response(bytes, {{ headers }}));
}}"""
# A usable snapshot for `key` is stored: its bytes are those its header says.
USABLE = f"""async (key) => {{
    const response = await (await caches.open('py_agent-boot')).match('{ENTRY}');
    if (!response || response.headers.get('x-snapshot-key') !== key) return false;
    const digest = await crypto.subtle.digest('SHA-256', await response.arrayBuffer());
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0'));
    return hex.join('') === response.headers.get('x-snapshot-sha256');
}}"""


@pytest.fixture
def failed_requests(context: BrowserContext) -> list[str]:
    failed: list[str] = []
    context.on("requestfailed", lambda request: failed.append(request.url))
    return failed


@pytest.fixture
def first_visit(
    page: Page, server: ServerProcess, failed_requests: list[str]
) -> Iterator[Callable[[], dict[str, object]]]:
    """Boots the page once and waits until its snapshot is kept; returns the snapshot
    reader."""
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    assert page.evaluate("window.pyAgentBoot.snapshot") == {"restored": False, "rejected": None}
    page.wait_for_function(KEPT)
    yield lambda: page.evaluate(STORED)
    assert failed_requests == []


def reboot(page: Page) -> dict[str, object]:
    page.reload()
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    snapshot: dict[str, object] = page.evaluate("window.pyAgentBoot.snapshot")
    return snapshot


def test_a_revisit_restores_python_from_the_snapshot_and_answers(
    page: Page, first_visit: Callable[[], dict[str, object]]
) -> None:
    kept = first_visit()
    assert reboot(page) == {"restored": True, "rejected": None}
    assert "Added “water the plants”" in say(page, "remind me to water the plants")
    assert first_visit() == kept  # a restored boot keeps the snapshot it used


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"bytes": 4096, "key": None, "sha256": None}, "corrupted"),
        ({"bytes": None, "key": "1/0.27.7/another-build", "sha256": None}, "another build"),
    ],
    ids=["corrupted", "another-build"],
)
def test_a_refused_snapshot_falls_back_to_a_full_boot_and_is_replaced(
    page: Page,
    first_visit: Callable[[], dict[str, object]],
    change: dict[str, object],
    reason: str,
) -> None:
    kept = first_visit()
    page.evaluate(REPLACE, change)
    snapshot = reboot(page)
    assert snapshot["restored"] is False
    assert reason in str(snapshot["rejected"])
    assert "Added “water the plants”" in say(page, "remind me to water the plants")
    page.wait_for_function(USABLE, arg=kept["key"])
    assert reboot(page) == {"restored": True, "rejected": None}


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        # Whole bytes with their own sha256 that are no Pyodide snapshot at all.
        ("() => new Uint8Array(4096)", "not a Pyodide snapshot"),
        # A real snapshot whose Pyodide build id (bytes 16-47 of its header) is another's.
        ("(bytes) => { bytes[20] ^= 0xff; return bytes; }", "build id mismatch"),
    ],
    ids=["not-a-snapshot", "another-pyodide"],
)
def test_a_snapshot_that_does_not_restore_falls_back_to_a_full_boot(
    page: Page, first_visit: Callable[[], dict[str, object]], damage: str, reason: str
) -> None:
    key = first_visit()["key"]
    page.evaluate(REWRITE, damage)
    snapshot = reboot(page)
    assert snapshot["restored"] is False
    assert "did not restore" in str(snapshot["rejected"])
    assert reason in str(snapshot["rejected"])
    assert "Added “water the plants”" in say(page, "remind me to water the plants")
    page.wait_for_function(USABLE, arg=key)
    assert reboot(page) == {"restored": True, "rejected": None}
