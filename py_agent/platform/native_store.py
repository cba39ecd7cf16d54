"""The native store: one SQLite table per collection."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from .interfaces import Delete, JsonObject, Put, StoreError, Write
from .store_schema import check_collection, check_collections


class SQLiteStore:
    """One table per collection; ``commit`` is one SQLite transaction."""

    def __init__(self, connection: sqlite3.Connection, collections: tuple[str, ...]) -> None:
        self._db = connection
        self.collections = collections

    async def get(self, collection: str, key: str) -> JsonObject | None:
        check_collection(self.collections, collection)
        row = self._db.execute(f'SELECT value FROM "{collection}" WHERE key = ?', (key,)).fetchone()
        return None if row is None else _loads(row[0])

    async def get_all(self, collection: str) -> list[JsonObject]:
        check_collection(self.collections, collection)
        rows = self._db.execute(f'SELECT value FROM "{collection}" ORDER BY key').fetchall()
        return [_loads(row[0]) for row in rows]

    async def commit(self, writes: Sequence[Write]) -> None:
        for write in writes:
            check_collection(self.collections, write.collection)
        try:
            with self._db:
                for write in writes:
                    if isinstance(write, Put):
                        text = json.dumps(write.value, separators=(",", ":"))
                        self._db.execute(
                            f'INSERT OR REPLACE INTO "{write.collection}" VALUES (?, ?)',
                            (write.key, text),
                        )
                    elif isinstance(write, Delete):
                        self._db.execute(
                            f'DELETE FROM "{write.collection}" WHERE key = ?', (write.key,)
                        )
        except (sqlite3.Error, TypeError, ValueError) as exc:
            raise StoreError(f"commit of {len(writes)} writes failed: {exc}") from exc

    async def close(self) -> None:
        self._db.close()


def _loads(text: str) -> JsonObject:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise StoreError(f"stored record is not a JSON object: {text[:80]!r}")
    return value


async def open_store(location: str, collections: Sequence[str]) -> SQLiteStore:
    """Open (creating if needed) the SQLite file at ``location`` (``:memory:`` for tests)."""
    names = check_collections(collections)
    try:
        db = sqlite3.connect(location)
        db.execute("PRAGMA journal_mode=WAL")
        for name in names:
            db.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}" (key TEXT PRIMARY KEY, value TEXT NOT NULL)'
            )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {location!r}: {exc}") from exc
    return SQLiteStore(db, names)
