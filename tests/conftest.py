"""Shared by every test module."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def no_server_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Server settings read PY_AGENT_GENERATIVE_* and PY_AGENT_TEST_FAULTS from the
    environment: a developer's shell must not point the tests' servers at a real language
    model, nor arm the fault switch in them."""
    for name in os.environ:
        if name.startswith("PY_AGENT_GENERATIVE_") or name == "PY_AGENT_TEST_FAULTS":
            monkeypatch.delenv(name)
