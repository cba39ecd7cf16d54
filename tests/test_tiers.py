"""The test tiers of docs/testing.md: the markers tests/conftest.py sets name tests that
exist, and the fast tier's tests see no models even where they are built."""

from __future__ import annotations

import ast
import os
import tomllib
from pathlib import Path

from conftest import ALL, NO_MODELS_ENV, TIERS

TESTS = Path(__file__).resolve().parent


def _test_functions(module: Path) -> set[str]:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_tier_entry_names_a_module_and_tests_that_exist() -> None:
    for marker, modules in TIERS.items():
        for name, tests in modules.items():
            module = TESTS / name
            assert module.is_file(), f"TIERS[{marker!r}] names {name}, which does not exist"
            missing = set(tests) - _test_functions(module)
            assert tests == ALL or not missing, f"TIERS[{marker!r}][{name!r}]: no {missing}"


def test_every_tier_marker_is_registered() -> None:
    pyproject = tomllib.loads((TESTS.parent / "pyproject.toml").read_text(encoding="utf-8"))
    registered = {
        line.partition(":")[0] for line in pyproject["tool"]["pytest"]["ini_options"]["markers"]
    }
    assert set(TIERS) <= registered


def test_an_unmarked_test_sees_no_models() -> None:
    models = Path(os.environ[NO_MODELS_ENV])
    assert not models.exists()
