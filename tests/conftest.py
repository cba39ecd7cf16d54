"""Shared by every test module."""

from __future__ import annotations

import os

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
