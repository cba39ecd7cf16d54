"""Shared by every test module."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def no_generative_backend_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Server settings read PY_AGENT_GENERATIVE_* from the environment: a developer's shell
    must not point the tests' servers at a real language model."""
    for name in os.environ:
        if name.startswith("PY_AGENT_GENERATIVE_"):
            monkeypatch.delenv(name)
