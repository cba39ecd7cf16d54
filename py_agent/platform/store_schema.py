"""Checks shared by both store adapters, so both refuse the same bad names the same way."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .interfaces import StoreError

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def check_collections(collections: Sequence[str]) -> tuple[str, ...]:
    names = tuple(collections)
    if not names:
        raise StoreError("a store needs at least one collection")
    for name in names:
        if not _NAME.fullmatch(name):
            raise StoreError(
                f"collection name {name!r} must be lowercase letters, digits and '_', "
                "starting with a letter"
            )
    return names


def check_collection(collections: tuple[str, ...], name: str) -> None:
    if name not in collections:
        raise StoreError(f"unknown collection {name!r}; this store has {', '.join(collections)}")
