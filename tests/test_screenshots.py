"""The screenshots of each view (tools/screenshots.py) are committed and linked: every
expected file is in docs/screenshots/, its README links each one, and the top README links
that README."""

from __future__ import annotations

from tools.harness import ROOT
from tools.screenshots import INDEX, OUT, expected, index


def test_every_screenshot_is_committed_and_linked() -> None:
    listed = INDEX.read_text()
    missing = [name for name in expected() if not (OUT / name).is_file()]
    assert missing == [], "run `.venv/bin/python -m tools.screenshots`"
    unlinked = [name for name in expected() if f"]({name})" not in listed]
    assert unlinked == []


def test_the_index_is_the_generated_one() -> None:
    assert INDEX.read_text() == index()


def test_the_readme_links_the_screenshots() -> None:
    assert "](docs/screenshots/README.md)" in (ROOT / "README.md").read_text()
