"""web/src/types.js is generated from the worker API (tools/js_types.py) and kept current:
the page's type check (tsc in make lint) then holds the JavaScript to the Python records."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from py_agent.registry import Registry
from tools.js_types import OUTPUT, render


class Inner(TypedDict):
    """A record inside another."""

    level: Literal["low", "high"]  # how much


class Outer(TypedDict):
    items: list[Inner | None]
    extra: NotRequired[dict[str, float]]


def test_types_js_is_up_to_date() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == render(), (
        "web/src/types.js is stale: run `python -m tools.js_types`"
    )


def test_signatures_and_records_become_jsdoc() -> None:
    registry = Registry()

    async def make_outer(model: bytes, count: int | None = None) -> Outer:
        """Makes one.

        Not this paragraph."""
        raise NotImplementedError

    registry.exposed(make_outer)
    text = render(registry)
    assert (
        " * @property {(model: Uint8Array, count?: number | null) => Promise<Outer>} makeOuter"
        " - Makes one.\n" in text
    )
    assert (
        " * @property {(Inner | null)[]} items\n * @property {Record<string, number>} [extra]"
        in (text)
    )
    assert (
        " * A record inside another.\n * @typedef {object} Inner\n"
        " * @property {'low' | 'high'} level - how much\n" in text
    )
