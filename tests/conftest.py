"""Shared by every test module."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def no_server_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every server setting can come from a PY_AGENT_* variable (server/settings.py): a
    developer's shell must not point the tests' servers at a real language model, other
    models or data, nor arm the fault switch in them."""
    from server.settings import GENERATIVE_ENV, env_names

    settings = set(env_names())
    for name in os.environ:
        if name.upper() in settings or name.upper().startswith(GENERATIVE_ENV):
            monkeypatch.delenv(name)


# -- Test tiers (docs/testing.md) -------------------------------------------------------------
# `make check` runs the tests with none of the markers below: pure unit tests, no torch, no
# browser, no built models or web/dist. `make test` runs every test, e2e/ (the browser tier)
# included. A module may set its own marker (`@pytest.mark.slow`, `pytestmark = ...`); these
# are the ones set here, by module (an empty tuple: every test in it) or by test function.
ALL: tuple[str, ...] = ()
TIERS: dict[str, dict[str, tuple[str, ...]]] = {
    # Runs the build or its training code (torch, sentence-transformers, npm, a real dist).
    "build": {
        "test_build.py": ALL,
        "test_build_finetune.py": ALL,
        "test_build_models.py": ALL,
        "test_build_sources.py": ALL,
    },
    # Reads what the build made: the models in models/ (`python build.py models`), and
    # web/dist for a test that serves it.
    "models": {
        "test_cli.py": (
            "test_chat_json_answers_each_line_skips_blank_ones_and_reports_refusals",
            "test_chat_now_without_an_offset_is_local_time",
            "test_import_then_export_gives_the_file_back",
            "test_import_reads_stdin_for_a_dash",
            "test_a_bad_file_is_refused_with_its_paths_and_nothing_is_written",
            "test_tokenize_reads_one_text_per_stdin_line_like_arguments",
            "test_embed_reads_stdin_too",
        ),
        "test_cli_subprocess.py": (
            "test_a_scripted_conversation_then_export",
            "test_tokenize_reads_40_kb_from_stdin",
            "test_embed_reads_40_kb_from_stdin",
        ),
        "test_evaluation.py": ("test_eval_command_json_on_the_project_sets",),
        "test_intents.py": ("test_real_head_meets_its_floors_on_the_old_test_split",),
        "test_server_infer.py": ALL,
        "test_settings.py": (
            "test_serve_says_where_it_found_the_build_and_the_models",
            "test_py_agent_serve_from_another_directory_finds_the_build_and_the_models",
        ),
        "test_skills_floors.py": ALL,
        "test_understanding.py": ALL,
    },
    # Correct but slow on its own (over ~10 s of CPU, or of waiting, here).
    "slow": {
        "test_merge.py": ("test_replicas_converge_and_nothing_is_lost",),  # 500 examples
        "test_server_connections.py": (  # 1,000 connections, some past a small backlog
            "test_a_flood_from_one_address_leaves_room_for_everyone_else",
            "test_connections_past_the_open_file_limit_are_refused_not_left_to_fail",
        ),
    },
}
TESTS = Path(__file__).resolve().parent
# Where unmarked tests' servers look for models: nowhere, so a built models/ neither slows
# them down (the server preloads its model at start) nor hides a missing `models` marker.
NO_MODELS_ENV = "PY_AGENT_MODELS_DIR"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A module whose every test a `-m "not X and ..."` run leaves out is not even imported
    (the build's modules import scikit-learn and onnx): the fast tier starts sooner."""
    left_out = {term.strip() for term in (config.option.markexpr or "").split(" and ")}
    if collection_path.parent == TESTS:
        for marker, modules in TIERS.items():
            if modules.get(collection_path.name) == ALL and f"not {marker}" in left_out:
                return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent != TESTS:
            continue
        name = getattr(item, "originalname", item.name)
        for marker, modules in TIERS.items():
            names = modules.get(item.path.name)
            if names is not None and (names == ALL or name in names):
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def no_models_unless_marked(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    no_server_settings_from_the_shell: None,  # runs first: it clears PY_AGENT_* settings
) -> None:
    if request.node.get_closest_marker("models") is None:
        monkeypatch.setenv(NO_MODELS_ENV, str(tmp_path_factory.getbasetemp() / "no-models"))


@pytest.fixture(autouse=True, scope="session")
def no_torch_in_the_fast_tier(request: pytest.FixtureRequest) -> Iterator[None]:
    """The fast tier never loads torch: a test that does belongs to the build tier."""
    yield
    if "not build" in (request.config.option.markexpr or "") and "torch" in sys.modules:
        pytest.fail("a test outside the build tier imported torch: mark it (TIERS above)")


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """The smallest web build the server accepts (test_server.py overrides it with more)."""
    site = tmp_path / "dist"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>py_agent</title>")
    return site
