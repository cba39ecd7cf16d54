"""Precompressed copies of the dist's files, which the server sends in their place to a
browser that accepts them (server/static.py): `<file>.gz` (gzip -9) beside each file gzip
makes at most MAX_RATIO of its size, `<file>.br` (brotli) beside each of those brotli does
too, and precompressed.json listing them (its format: server/precompressed.py).

The last step: the service worker's precache list is already made, so the copies are never
precached (the browser keeps a response's decoded bytes, whatever coding brought them).
build.json lists them like every file of the dist, so --check verifies them too.

Each copy is cached by its file's sha256 and the coding's level, in the machine's build
cache (files.cache_root(): the same for every clone and every test build), so a rebuild
compresses only what changed; the misses run in a process per core (brotli holds the GIL).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import brotli

from server.precompressed import PRECOMPRESSED, SUFFIXES, sibling
from tools.build.dist import Build
from tools.build.files import cache_root

# gzip -9 leaves the code, text and wasm of this dist at 0.19-0.62 of their size, the int8
# model, the icons and the intent head's .npz at 0.73-0.90, and the wheels and the stdlib
# zip (deflated already) at 0.96-1.0: the line is in that last gap.
MAX_RATIO = 0.95
GZIP_LEVEL = 9
# Brotli's quality 11 makes the wasm runtimes 13% smaller than quality 9 does (Pyodide's
# 2.62 -> 2.27 MB, ORT's 2.69 -> 2.36 MB) for ten times the time (~30 s each); on dense
# data, which gzip leaves above DENSE_RATIO of its size, it gains 1% (the model: 17.63 ->
# 17.42 MB) for a minute more, so that gets quality 9. The default window (22) measured as
# well as 24 on all three.
BROTLI_QUALITY = 11
DENSE_BROTLI_QUALITY = 9
DENSE_RATIO = 0.7
# Copies no build has used for this long leave the cache.
UNUSED_FOR_S = 30 * 24 * 3600


def encode(coding: str, level: int, path: Path) -> bytes:
    data = path.read_bytes()
    if coding == "gzip":
        # mtime=0: the same bytes every build.
        return gzip.compress(data, compresslevel=level, mtime=0)
    compressed: bytes = brotli.compress(data, quality=level)
    return compressed


class Job(NamedTuple):
    rel: str
    coding: str
    level: int
    sha256: str

    @property
    def name(self) -> str:
        """The copy's name in the cache."""
        return f"{self.sha256}.{self.coding}{self.level}"


class Copies:
    """The compressed copies of one build's files, from the cache or made in ``pool``."""

    def __init__(self, b: Build, pool: Executor) -> None:
        self.b = b
        self.pool = pool
        self.cache = cache_root() / "precompressed"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.made = 0
        self.listing: dict[str, dict[str, int]] = {}

    def size(self, rel: str) -> int:
        return (self.b.staging / rel).stat().st_size

    def add(self, rels: Iterable[str], coding: str, level: Callable[[str], int]) -> list[str]:
        """Add each of ``rels``'s copy in ``coding`` that is worth it; return their files."""
        jobs = [Job(rel, coding, level(rel), self.b.sha256(rel)) for rel in rels]
        misses = {job: self._submit(job) for job in jobs if not (self.cache / job.name).is_file()}
        kept = []
        for job in jobs:
            data = self._copy(job, misses.get(job))
            if len(data) <= MAX_RATIO * self.size(job.rel):
                self.b.add_bytes(data, sibling(job.rel, coding), f"{coding} of dist/{job.rel}")
                self.listing.setdefault(job.rel, {})[coding] = len(data)
                kept.append(job.rel)
        return kept

    def _submit(self, job: Job) -> Future[bytes]:
        return self.pool.submit(encode, job.coding, job.level, self.b.staging / job.rel)

    def _copy(self, job: Job, making: Future[bytes] | None) -> bytes:
        if making is None:
            try:
                data = (self.cache / job.name).read_bytes()
                os.utime(self.cache / job.name)  # its last use, for prune()
                return data
            except FileNotFoundError:  # pruned since, by a build running beside this one
                making = self._submit(job)
        data = making.result()
        self._store(job.name, data)
        self.made += 1
        return data

    def _store(self, name: str, data: bytes) -> None:
        # Written whole then renamed: a build running beside this one never reads half a copy.
        fd, tmp = tempfile.mkstemp(dir=self.cache, prefix=".")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.cache / name)

    def prune(self) -> None:
        """Drop the copies no build has used for UNUSED_FOR_S (and what a build that
        crashed left half-written): every clone shares the cache, so a copy this build
        did not use may be another's."""
        too_old = time.time() - UNUSED_FOR_S
        for entry in self.cache.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < too_old:
                    entry.unlink()


def precompress(b: Build) -> str:
    started = time.perf_counter()
    # Largest first, so the longest compressions start first.
    rels = sorted(b.origins, key=lambda rel: -(b.staging / rel).stat().st_size)
    with ProcessPoolExecutor() as pool:
        copies = Copies(b, pool)
        worth = copies.add(rels, "gzip", lambda rel: GZIP_LEVEL)

        def brotli_quality(rel: str) -> int:
            dense = copies.listing[rel]["gzip"] > DENSE_RATIO * copies.size(rel)
            return DENSE_BROTLI_QUALITY if dense else BROTLI_QUALITY

        copies.add(worth, "br", brotli_quality)
    copies.prune()
    listing = copies.listing
    b.add_bytes(
        (json.dumps(listing, indent=1, sort_keys=True) + "\n").encode(),
        PRECOMPRESSED,
        "tools/build/compress.py",
    )
    summary = []
    for coding, suffix in SUFFIXES.items():
        if files := [rel for rel in listing if coding in listing[rel]]:
            before = sum(copies.size(rel) for rel in files)
            after = sum(listing[rel][coding] for rel in files)
            summary.append(f"{len(files)} files as *{suffix} ({before:,} -> {after:,} bytes)")
    return (
        f"precompressed: {', '.join(summary) or 'nothing worth it'}; "
        f"{copies.made} compressed in {time.perf_counter() - started:.1f} s, the rest cached"
    )
