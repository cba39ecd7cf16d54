"""Screenshots of every view (tools/views.py) on a desktop (1280x800) and a phone (390x844),
light and dark, into docs/screenshots/, with the README there that links them.

    .venv/bin/python -m tools.screenshots

It builds nothing: it serves web/dist (``python build.py`` first) with the real server, as
the browser tests do, and tours each viewport's views on one page.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tools.harness import DIST, ROOT, ServerProcess, launch_chromium
from tools.views import (
    SCHEMES,
    SEED_TODAY,
    SEED_YESTERDAY,
    TASKS,
    TODAY,
    UNCLEAR,
    VIEWPORTS,
    VIEWS,
    ZONE,
    Scheme,
    View,
    Viewport,
    looks,
    new_context,
    new_page,
)

OUT = ROOT / "docs" / "screenshots"
INDEX = OUT / "README.md"


def filename(view: View, viewport: Viewport, scheme: Scheme) -> str:
    return f"{view.name}-{viewport.name}-{scheme}.png"


def expected() -> list[str]:
    """Every screenshot's file name, in the index's order."""
    return [
        filename(view, viewport, scheme)
        for view in VIEWS
        if view.screenshot
        for viewport in VIEWPORTS
        for scheme in SCHEMES
    ]


def index() -> str:
    columns = [(viewport, scheme) for viewport in VIEWPORTS for scheme in SCHEMES]
    lines = [
        "# Screenshots",
        "",
        "Each view of the page, made by `.venv/bin/python -m tools.screenshots` (generated:",
        "edit `tools/views.py` or `tools/screenshots.py`, not this file). The same views are",
        "checked with axe-core by `e2e/test_a11y.py`. Desktop is 1280x800, phone 390x844.",
        "",
        f"The page's clock says {TODAY:%A %d %B %Y, %H:%M} ({ZONE}); the tasks and the note",
        "were typed into the chat: "
        + ", ".join(f"“{text}”" for text, _ in (*SEED_YESTERDAY, *SEED_TODAY))
        + " (the first the evening before), and the conversation ends with "
        + f"“{UNCLEAR}”, which the device is unsure of.",
        "",
        "| view | what it shows | " + " | ".join(f"{v.name}, {s}" for v, s in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for view in VIEWS:
        if view.screenshot:
            links = " | ".join(
                f"[{scheme}]({filename(view, viewport, scheme)})" for viewport, scheme in columns
            )
            lines.append(f"| {view.name} | {view.shows} | {links} |")
    lines += ["", f"![{TASKS.shows}]({filename(TASKS, VIEWPORTS[0], 'light')})"]
    return "\n".join(lines) + "\n"


def main() -> None:
    if not (DIST / "index.html").is_file():
        raise SystemExit(f"{DIST} is not built: run `python build.py` first")
    OUT.mkdir(parents=True, exist_ok=True)
    keep = set(expected())
    for stale in OUT.glob("*.png"):
        if stale.name not in keep:
            stale.unlink()
    with tempfile.TemporaryDirectory() as data:
        server = ServerProcess(Path(data))
        server.start()
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                for viewport in VIEWPORTS:
                    context = new_context(browser, viewport)
                    page = new_page(context)
                    for view, scheme in looks(page, server.url):
                        if view.screenshot:
                            page.mouse.move(0, 0)  # no control drawn as hovered by the last click
                            path = OUT / filename(view, viewport, scheme)
                            # One image pixel per CSS pixel: the phone's stay small.
                            page.screenshot(path=path, scale="css", caret="hide")
                            print(path.relative_to(ROOT))
                    context.close()
                browser.close()
        finally:
            server.stop()
    INDEX.write_text(index())


if __name__ == "__main__":
    main()
