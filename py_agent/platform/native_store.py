"""The native store: one SQLite table per collection."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from .interfaces import Delete, JsonObject, Put, StoreError, Write
from .store_schema import check_collection, check_collections

# A record's bytes fields are kept apart from its JSON: ``data`` holds them one after the
# other, ``data_fields`` their names and lengths as JSON ([[name, length], ...]).
_COLUMNS = "value, data_fields, data"


class SQLiteStore:
    """One table per collection; ``commit`` is one SQLite transaction."""

    def __init__(self, connection: sqlite3.Connection, collections: tuple[str, ...]) -> None:
        self._db = connection
        self.collections = collections

    async def get(self, collection: str, key: str) -> JsonObject | None:
        check_collection(self.collections, collection)
        row = self._db.execute(
            f'SELECT {_COLUMNS} FROM "{collection}" WHERE key = ?', (key,)
        ).fetchone()
        return None if row is None else _records(collection, [row])[0]

    async def get_all(self, collection: str) -> list[JsonObject]:
        check_collection(self.collections, collection)
        rows = self._db.execute(f'SELECT {_COLUMNS} FROM "{collection}" ORDER BY key').fetchall()
        return _records(collection, rows)

    async def commit(self, writes: Sequence[Write]) -> None:
        for write in writes:
            check_collection(self.collections, write.collection)
        try:
            with self._db:
                for write in writes:
                    if isinstance(write, Put):
                        self._db.execute(
                            f'INSERT OR REPLACE INTO "{write.collection}" VALUES (?, ?, ?, ?)',
                            (write.key, *_row(write.value)),
                        )
                    elif isinstance(write, Delete):
                        self._db.execute(
                            f'DELETE FROM "{write.collection}" WHERE key = ?', (write.key,)
                        )
        except (sqlite3.Error, TypeError, ValueError) as exc:
            raise StoreError(f"commit of {len(writes)} writes failed: {exc}") from exc

    async def close(self) -> None:
        self._db.close()


def _row(value: JsonObject) -> tuple[str, str | None, bytes | None]:
    binary = {name: item for name, item in value.items() if isinstance(item, bytes)}
    if not binary:
        return json.dumps(value, separators=(",", ":")), None, None
    plain = {name: item for name, item in value.items() if name not in binary}
    fields = json.dumps([[name, len(item)] for name, item in binary.items()])
    return json.dumps(plain, separators=(",", ":")), fields, b"".join(binary.values())


def _records(collection: str, rows: list[tuple[str, str | None, bytes | None]]) -> list[JsonObject]:
    # One parse of all the rows as one array: a parse per row costs 10x more.
    records = json.loads(f"[{','.join(row[0] for row in rows)}]")
    for record, (_, fields, data) in zip(records, rows, strict=True):
        if not isinstance(record, dict):
            raise StoreError(f"a stored {collection} record is not an object: {record!r:.80}")
        if fields is not None and data is not None:
            offset = 0
            for name, length in json.loads(fields):
                record[name] = data[offset : offset + length]
                offset += length
    return records  # type: ignore[no-any-return]


async def open_store(location: str, collections: Sequence[str]) -> SQLiteStore:
    """Open (creating if needed) the SQLite file at ``location`` (``:memory:`` for tests)."""
    names = check_collections(collections)
    try:
        db = sqlite3.connect(location)
        db.execute("PRAGMA journal_mode=WAL")
        for name in names:
            db.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}" '
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, data_fields TEXT, data BLOB)"
            )
            columns = {row[1] for row in db.execute(f'PRAGMA table_info("{name}")')}
            for column, kind in (("data_fields", "TEXT"), ("data", "BLOB")):
                if column not in columns:  # a table made before records held bytes
                    db.execute(f'ALTER TABLE "{name}" ADD COLUMN {column} {kind}')
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {location!r}: {exc}") from exc
    return SQLiteStore(db, names)
