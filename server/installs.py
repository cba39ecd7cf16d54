"""Per-install tokens: how a device that never paired authenticates to POST /api/v1/infer.

    POST /api/v1/installs → 201 {install_id, token}

A token carries 256 random bits and is stored only as its sha256 (nothing to brute-force
offline, as with sync tokens), in ``<data-dir>/installs.db``. The file is SQLite with its
schema versioned by ``PRAGMA user_version`` and migrated when the server starts. Every call
runs on one dedicated thread that owns the only connection, so the event loop never waits
on the disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE installs (install_id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,"
        " created_at REAL NOT NULL)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class InstallStoreError(Exception):
    """The installs database cannot be opened or is from a newer server."""


class InstallStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="installs")
        self._db: sqlite3.Connection | None = None
        try:
            self._executor.submit(self._open).result()
        except BaseException:
            self._executor.shutdown()
            raise

    def _open(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise InstallStoreError(f"cannot open {self.path}: {exc}") from exc
        try:
            db.execute("PRAGMA journal_mode=WAL")
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise InstallStoreError(
                    f"{self.path} has schema version {version}, newer than this server's "
                    f"{SCHEMA_VERSION}: run a newer server"
                )
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                db.execute("BEGIN IMMEDIATE")
                for statement in statements:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.close()
            raise InstallStoreError(f"cannot prepare {self.path}: {exc}") from exc
        except BaseException:
            db.close()
            raise
        self._db = db

    async def _run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            assert self._db is not None, "the installs store is closed"
            return call(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def add(self, install_id: str, token_hash: str, now: float) -> None:
        def add(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO installs (install_id, token_hash, created_at) VALUES (?, ?, ?)",
                (install_id, token_hash, now),
            )

        await self._run(add)

    async def install_by_token_hash(self, token_hash: str) -> str | None:
        """The install_id whose token has this sha256, or None."""

        def find(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT install_id FROM installs WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(find)

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown()
