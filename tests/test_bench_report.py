"""The benchmark tables in the docs are the ones bench/results/*.json produce
(`python -m bench.report` writes them), and bench/ drives the browser through the shared
harness, not through the e2e tests' package."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bench import report
from bench.tables import TABLES, Results

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_tables_are_the_ones_the_results_make() -> None:
    stale = report.stale(report.documents(), Results())
    assert not stale, (
        "these pages' benchmark tables differ from bench/results/*.json: "
        f"{[str(path.relative_to(ROOT)) for path in stale]}; run `python -m bench.report`"
    )


def test_every_table_is_shown_somewhere() -> None:
    shown = set()
    for path in report.documents():
        shown |= set(report.START.findall(path.read_text(encoding="utf-8")))
    assert shown == set(TABLES)


def test_a_table_is_rewritten_between_its_markers_only(tmp_path: Path) -> None:
    (tmp_path / "agent.json").write_text(
        json.dumps(
            {
                "local_turn_ms": {"p50": 6.5, "p95": 13.0},
                "local_turn_cached_ms": {"p50": 1.7, "p95": 6.5},
                "note_search_turn_ms": {"p50": 10.1, "p95": 12.5},
                "note_search_step_ms": {"p50": 12.0, "p95": 12.5},
                "notes_stored": 10_000,
                "boot_with_notes_ms": 5334,
                "boot_with_notes_stored": {"notes": 10_000, "runs": 5, "median_ms": 1900},
            }
        )
    )
    page = "intro\n<!-- bench:agent -->\n| old | table |\n<!-- /bench:agent -->\nafter\n"
    fresh = report.regenerate(page, Results(tmp_path))
    assert fresh.startswith("intro\n<!-- bench:agent -->\n| measure | p50 ms |")
    assert "| 5,334 |  |  |\n" in fresh
    assert fresh.endswith("| 1,900 |  | ≤ 2,000 ✓ |\n<!-- /bench:agent -->\nafter\n")
    assert "| local turn, utterance in the inference cache | 1.70 | 6.50 |  |" in fresh
    assert "| 12.00 | 12.50 | p50 ≤ 10 ✗ (not met) |" in fresh  # a missed target says so
    assert report.regenerate(fresh, Results(tmp_path)) == fresh


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("<!-- bench:agent -->\n| a |\n", "without their end marker"),
        ("<!-- bench:agent -->\n<!-- /bench:boot -->\n", "without their end marker"),
        ("<!-- bench:nothing -->\n<!-- /bench:nothing -->\n", "no table named"),
    ],
)
def test_broken_markers_are_refused(tmp_path: Path, page: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        report.regenerate(page, Results(tmp_path))


def test_check_mode_changes_nothing_and_fails_on_a_stale_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "benchmarks.md"
    stale = "<!-- bench:threads -->\n| hand-typed |\n<!-- /bench:threads -->\n"
    page.write_text(stale)
    (tmp_path / "README.md").write_text("no tables\n")

    assert report.main(["--check"], root=tmp_path) == 1
    assert "-| hand-typed |" in capsys.readouterr().out
    assert page.read_text() == stale
    assert report.main([], root=tmp_path) == 0
    assert "| onnxruntime-web | 1 |" in page.read_text()
    assert report.main(["--check"], root=tmp_path) == 0


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.partition(".")[0])
    return names


def test_bench_drives_the_browser_through_the_shared_harness_not_e2e() -> None:
    scripts = sorted((ROOT / "bench").glob("*.py"))
    assert scripts
    for script in scripts:
        assert not _imports(script) & {"e2e", "tests"}, script.name
