"""The dist's precompressed copies: `<file>.br` and `<file>.gz` beside the files the build
found worth compressing (tools/build/compress.py), listed in precompressed.json as
``{"<file>": {"<coding>": <bytes>, ...}, ...}``, smallest first. The build writes it, the
server reads it (server/static.py): one format, defined here."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PRECOMPRESSED = "precompressed.json"
# The codings the build makes, and the suffix of each one's copy.
SUFFIXES = {"br": ".br", "gzip": ".gz"}

log = logging.getLogger("py_agent.server")


def sibling(rel: str, coding: str) -> str:
    return rel + SUFFIXES[coding]


def validated(listing: Any) -> dict[str, dict[str, int]]:
    """precompressed.json's content, or ValueError saying what is wrong with it."""
    if not isinstance(listing, dict):
        raise ValueError("expected an object of files")
    for rel, codings in listing.items():
        if not (
            isinstance(codings, dict)
            and codings
            and all(
                coding in SUFFIXES and isinstance(size, int) and not isinstance(size, bool)
                for coding, size in codings.items()
            )
        ):
            raise ValueError(f"{rel!r}: expected {{coding: bytes}} with codings {list(SUFFIXES)}")
    return listing


class Precompressed:
    """A dist's precompressed.json, read again whenever a rebuild replaces it (one stat
    per request), so a running server never pairs a file with another build's copies."""

    def __init__(self, dist: str | os.PathLike[str]) -> None:
        self._path = Path(dist) / PRECOMPRESSED
        self._read_from: tuple[int, int, int] | None = None
        self._codings: Mapping[str, tuple[str, ...]] = {}
        self._siblings: frozenset[str] = frozenset()

    def codings(self, rel: str) -> tuple[str, ...]:
        """The codings ``rel`` has a copy in, smallest copy first."""
        self._refresh()
        return self._codings.get(rel, ())

    def is_copy(self, rel: str) -> bool:
        """Whether ``rel`` is a compressed copy rather than a file of the app."""
        self._refresh()
        return rel in self._siblings

    def _refresh(self) -> None:
        try:
            stat = self._path.stat()
            key: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = None
        if key == self._read_from:
            return
        listing: dict[str, dict[str, int]] = {}
        if key is not None:
            try:
                listing = validated(json.loads(self._path.read_bytes()))
            except (OSError, ValueError) as exc:
                # Every file is still served, uncompressed: nothing is lost but bytes.
                log.warning("%s unusable, serving every file uncompressed: %s", self._path, exc)
        self._read_from = key
        self._codings = {
            rel: tuple(sorted(codings, key=codings.__getitem__)) for rel, codings in listing.items()
        }
        self._siblings = frozenset(
            sibling(rel, coding) for rel, codings in listing.items() for coding in codings
        )
