"""Where the sync server keeps spaces, devices, pairing codes and the op log.

``SyncStore`` is what the routes use; ``SQLiteSyncStore`` implements it on one
SQLite file. The protocol is async so that a PostgreSQL store (asyncpg, or a
driver in a thread pool) can be dropped in without touching the routes.

The op log is append-only. Each space numbers its ops 1, 2, 3, … (``seq``) in the
order they were committed; a device's cursor is a ``seq``. Numbers are handed
out inside the push's write transaction from ``spaces.last_seq``, so a reader
can never see seq n+1 before seq n is visible, and a cursor never skips an op.
(A PostgreSQL store must keep that property: take the space row ``FOR UPDATE``
in the push, as here, rather than using a sequence, whose numbers commit out of
order.)

Ops are stored as their canonical JSON text and handed back as that text, so a
pull copies stored bytes into its answer instead of parsing and re-encoding them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from py_agent.sync.ops import Op

T = TypeVar("T")


class StoreError(Exception):
    """The store cannot be opened or used; nothing of a failed push was written."""


class OpConflictError(StoreError):
    """``ops[index]`` reuses an op_id this space already holds for a different op."""

    def __init__(self, index: int, op_id: str) -> None:
        super().__init__(f"op_id {op_id!r} is already stored for a different op")
        self.index = index
        self.op_id = op_id


class StorageUnavailable(StoreError):
    """The database cannot be written just now (disk full, read-only, I/O error): nothing of
    the write was stored; reads still work, and the write can be tried again later."""


class QuotaExceeded(StoreError):
    """The push would take the space past its quota (ops or bytes); nothing was stored."""


@dataclass(frozen=True)
class SpaceQuota:
    max_ops: int  # ops a space holds at most
    max_bytes: int  # bytes of op bodies a space holds at most


NO_QUOTA = SpaceQuota(max_ops=2**62, max_bytes=2**62)


class CursorAheadError(StoreError):
    """A cursor beyond the last op of the space: the server's history was reset."""

    def __init__(self, cursor: int, head: int) -> None:
        super().__init__(
            f"cursor {cursor} is beyond this space's last op ({head}); "
            "the server's data was reset: sync again with cursor null"
        )


@dataclass(frozen=True)
class PairingCode:
    space_id: str
    expires_at: float
    revoked: bool


@dataclass(frozen=True)
class Device:
    device_id: str
    space_id: str
    name: str


@dataclass(frozen=True)
class DeviceInfo:
    """A device of a space, as its list shows it (GET /api/v1/devices)."""

    device_id: str
    name: str
    created_at: float
    last_seen: float | None  # None until it first synced after being paired


class StoredOp(NamedTuple):
    seq: int
    body: str  # the op's canonical JSON (``canonical_json(op.to_json())``)


class Pushed(NamedTuple):
    acked: list[str]  # every op_id of the push, once each, replays included
    first_seq: int  # the seq of new[0] (if any); the others follow it without gaps
    new: list[Op]  # the ops this push stored, in seq order (not the replays)


class Page(NamedTuple):
    ops: list[StoredOp]
    last_seq: int  # what the device has now read up to: its next cursor
    has_more: bool


class SyncStore(Protocol):
    async def create_space(
        self, space_id: str, code_hash: str, now: float, expires_at: float
    ) -> None:
        """A new space with its first pairing code."""

    async def replace_pairing_code(
        self, space_id: str, code_hash: str, now: float, expires_at: float
    ) -> None:
        """Revokes the space's current codes and stores a new one."""

    async def pairing_code(self, code_hash: str) -> PairingCode | None: ...

    async def add_device(
        self,
        space_id: str,
        device_id: str,
        name: str,
        token_hash: str,
        now: float,
        *,
        code_hash: str,
        max_uses: int,
    ) -> bool:
        """Pairs the device with the code ``code_hash``, unless the code has paired
        ``max_uses`` devices already (then False, and nothing is stored): the count and the
        device are one transaction, so concurrent pairings never pass the limit."""

    async def device_by_token_hash(self, token_hash: str) -> Device | None: ...

    async def devices(self, space_id: str) -> list[DeviceInfo]:
        """The space's devices, oldest first."""

    async def device(self, device_id: str) -> Device | None: ...

    async def remove_device(self, device_id: str) -> None:
        """Forgets the device and its token (its ops stay in the log)."""

    async def replace_token(self, device_id: str, token_hash: str) -> None: ...

    async def seen(self, device_id: str, now: float) -> None:
        """Records when the device was last heard from."""

    async def push(self, space_id: str, device_id: str, ops: Sequence[Op], now: float) -> Pushed:
        """Stores the ops not yet stored, atomically, and returns every op_id of the
        push (already stored ones too: a replay is acknowledged again) with the ops
        it stored and their seqs. Returns only once they are durable. Raises
        ``OpConflictError`` (and writes nothing) when an op_id is taken by a
        different op."""

    async def pull(self, space_id: str, device_id: str, after_seq: int, limit: int) -> Page:
        """Up to ``limit`` ops after ``after_seq`` from devices other than
        ``device_id``, oldest first. Raises ``CursorAheadError`` for a cursor
        beyond the space's last op."""

    async def all_ops(
        self, space_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredOp]:
        """The space's ops after ``after_seq``, oldest first: all of them, or the first
        ``limit``."""

    async def last_seq(self, space_id: str) -> int:
        """The seq of the space's newest op (0 before the first): its newest cursor."""

    async def close(self) -> None: ...


# MIGRATIONS[n-1] takes the schema from version n-1 to n. The pending ones run in
# one transaction with the update of schema_version, so a crash never leaves half
# a migration. Add a tuple to migrate; never edit one that has shipped.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE spaces (
            space_id   TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            last_seq   INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE pairing_codes (
            code_hash  TEXT PRIMARY KEY,
            space_id   TEXT NOT NULL REFERENCES spaces(space_id),
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            revoked_at REAL
        )""",
        "CREATE INDEX pairing_codes_by_space ON pairing_codes(space_id)",
        """CREATE TABLE devices (
            device_id  TEXT PRIMARY KEY,
            space_id   TEXT NOT NULL REFERENCES spaces(space_id),
            name       TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE ops (
            space_id    TEXT NOT NULL REFERENCES spaces(space_id),
            seq         INTEGER NOT NULL,
            op_id       TEXT NOT NULL,
            device_id   TEXT NOT NULL,
            body        TEXT NOT NULL,
            received_at REAL NOT NULL,
            PRIMARY KEY (space_id, seq),
            UNIQUE (space_id, op_id)
        ) WITHOUT ROWID""",
    ),
    # 2: how many devices each pairing code has paired (a code pairs a limited number).
    ("ALTER TABLE pairing_codes ADD COLUMN uses INTEGER NOT NULL DEFAULT 0",),
    # 3: when each device was last heard from (the devices list).
    ("ALTER TABLE devices ADD COLUMN last_seen REAL",),
    # 4: each space's stored bytes, for its quota.
    (
        "ALTER TABLE spaces ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0",
        "UPDATE spaces SET bytes = (SELECT COALESCE(SUM(LENGTH(CAST(body AS BLOB))), 0) "
        "FROM ops WHERE ops.space_id = spaces.space_id)",
    ),
    # 5: ops in a rowid table. In a WITHOUT ROWID table a row of more than about 1 KB
    # spills to an overflow page of its own, so a 1 KB op took 4 KB on disk; here it takes
    # about its size, plus its two keys.
    (
        """CREATE TABLE ops_rowid (
            space_id    TEXT NOT NULL REFERENCES spaces(space_id),
            seq         INTEGER NOT NULL,
            op_id       TEXT NOT NULL,
            device_id   TEXT NOT NULL,
            body        TEXT NOT NULL,
            received_at REAL NOT NULL,
            UNIQUE (space_id, seq),
            UNIQUE (space_id, op_id)
        )""",
        "INSERT INTO ops_rowid SELECT space_id, seq, op_id, device_id, body, received_at "
        "FROM ops ORDER BY space_id, seq",
        "DROP TABLE ops",
        "ALTER TABLE ops_rowid RENAME TO ops",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

# The stored bodies of the op ids in a JSON array, for one space. CROSS JOIN keeps
# json_each as the outer loop: without table statistics SQLite would rather scan
# every op of the space than look each id up in the (space_id, op_id) index.
STORED_BODIES_SQL = (
    "SELECT ops.op_id, ops.body FROM json_each(?) AS pushed CROSS JOIN ops "
    "ON ops.space_id = ? AND ops.op_id = pushed.value"
)


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # extended codes keep the primary's low byte


def _storage_failure(exc: sqlite3.Error) -> bool:
    """Whether the storage under the database failed, rather than the request."""
    return _primary_code(exc) in (
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
    )


def _what_is_wrong(exc: sqlite3.Error) -> str:
    """Why SQLite could not use the database, said the way its owner can act on it."""
    primary = _primary_code(exc)
    if primary == sqlite3.SQLITE_READONLY:
        return (
            "is read-only (the file, its folder or the file system): the server writes its sync "
            f"database there; make it writable or choose another --data-dir ({exc})"
        )
    if primary == sqlite3.SQLITE_FULL:
        return f"cannot be written: the disk is full; free some space ({exc})"
    return f"is not a usable sync database: {exc}"


class SQLiteSyncStore:
    """``SyncStore`` on one SQLite file in WAL mode.

    Durability: ``synchronous=FULL``. With WAL, NORMAL fsyncs only at checkpoints,
    so a push acknowledged just before a power cut or OS crash could be lost; FULL
    fsyncs the WAL at every commit, and a push is acknowledged only once the commit
    that holds it has returned, so an ack is on disk.

    Threading: every call runs on one dedicated thread that owns the only
    connection, so the event loop never blocks on the disk and calls never
    interleave. SQLite allows one writer at a time anyway; each call is short.

    Group commit: the fsync of a commit costs more than storing a push's ops, so
    pushes that arrive while the thread is busy wait in a queue and are then
    written together in one transaction, each in its own savepoint, and made
    durable by one fsync. Each push is still all or nothing: one that fails (an
    op_id conflict, or any error that leaves the transaction open) is rolled back
    to its savepoint and fails alone; if the transaction itself fails, every push
    in it fails and none is stored. No push is answered before the commit that
    holds it has returned.
    """

    def __init__(self, path: Path, quota: SpaceQuota = NO_QUOTA) -> None:
        self.path = path
        self.quota = quota
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-store")
        self._db: sqlite3.Connection | None = None
        # Pushes waiting for the next group commit. A flush is queued on the
        # executor exactly when a push joins an empty queue, and takes the whole
        # queue when it starts.
        self._queue_lock = threading.Lock()
        self._queue: list[_QueuedPush] = []
        try:
            self._executor.submit(self._open).result()
        except BaseException:
            self._executor.shutdown(wait=True)
            raise

    # -- running on the store's thread ----------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        try:
            # isolation_level=None: no implicit transactions; each method says BEGIN.
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            self._migrate(db)
            self._db = db
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"{self.path} {_what_is_wrong(exc)}") from exc
        except StoreError:
            db.close()
            raise

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = 0 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this server's "
                    f"{SCHEMA_VERSION}: upgrade py_agent"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (disk full, …)
                db.execute("ROLLBACK")
            raise

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the sync store is closed")
        return self._db

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one write transaction: all of it is committed, or none. A failure of
        the storage itself raises `StorageUnavailable`."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            result = fn(db)
            db.execute("COMMIT")  # with synchronous=FULL, on disk once this returns
        except BaseException as exc:
            if db.in_transaction:  # SQLite may have rolled back already (disk full, …)
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and _storage_failure(exc):
                raise StorageUnavailable(f"{self.path} {_what_is_wrong(exc)}") from exc
            raise
        return result

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on one consistent snapshot."""
        db = self.db
        db.execute("BEGIN")
        try:
            return fn(db)
        finally:
            db.execute("COMMIT")

    # -- SyncStore ----------------------------------------------------------------

    async def create_space(
        self, space_id: str, code_hash: str, now: float, expires_at: float
    ) -> None:
        def create(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO spaces (space_id, created_at) VALUES (?, ?)", (space_id, now))
            db.execute(
                "INSERT INTO pairing_codes (code_hash, space_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (code_hash, space_id, now, expires_at),
            )

        await self._run(self._write, create)

    async def replace_pairing_code(
        self, space_id: str, code_hash: str, now: float, expires_at: float
    ) -> None:
        def replace(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE pairing_codes SET revoked_at = ? WHERE space_id = ? AND revoked_at IS NULL",
                (now, space_id),
            )
            db.execute(
                "INSERT INTO pairing_codes (code_hash, space_id, created_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (code_hash, space_id, now, expires_at),
            )

        await self._run(self._write, replace)

    async def pairing_code(self, code_hash: str) -> PairingCode | None:
        def find() -> PairingCode | None:
            row = self.db.execute(
                "SELECT space_id, expires_at, revoked_at FROM pairing_codes WHERE code_hash = ?",
                (code_hash,),
            ).fetchone()
            if row is None:
                return None
            return PairingCode(space_id=row[0], expires_at=row[1], revoked=row[2] is not None)

        return await self._run(find)

    async def add_device(
        self,
        space_id: str,
        device_id: str,
        name: str,
        token_hash: str,
        now: float,
        *,
        code_hash: str,
        max_uses: int,
    ) -> bool:
        def add(db: sqlite3.Connection) -> bool:
            used = db.execute(
                "UPDATE pairing_codes SET uses = uses + 1 WHERE code_hash = ? AND uses < ?",
                (code_hash, max_uses),
            )
            if used.rowcount == 0:
                return False
            db.execute(
                "INSERT INTO devices (device_id, space_id, name, token_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (device_id, space_id, name, token_hash, now),
            )
            return True

        return await self._run(self._write, add)

    async def device_by_token_hash(self, token_hash: str) -> Device | None:
        def find() -> Device | None:
            row = self.db.execute(
                "SELECT device_id, space_id, name FROM devices WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
            return None if row is None else Device(device_id=row[0], space_id=row[1], name=row[2])

        return await self._run(find)

    async def devices(self, space_id: str) -> list[DeviceInfo]:
        def find() -> list[DeviceInfo]:
            rows = self.db.execute(
                "SELECT device_id, name, created_at, last_seen FROM devices WHERE space_id = ? "
                "ORDER BY created_at, device_id",
                (space_id,),
            ).fetchall()
            return [DeviceInfo(*row) for row in rows]

        return await self._run(find)

    async def device(self, device_id: str) -> Device | None:
        def find() -> Device | None:
            row = self.db.execute(
                "SELECT device_id, space_id, name FROM devices WHERE device_id = ?", (device_id,)
            ).fetchone()
            return None if row is None else Device(*row)

        return await self._run(find)

    async def remove_device(self, device_id: str) -> None:
        def remove(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM devices WHERE device_id = ?", (device_id,))

        await self._run(self._write, remove)

    async def replace_token(self, device_id: str, token_hash: str) -> None:
        def replace(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE devices SET token_hash = ? WHERE device_id = ?", (token_hash, device_id)
            )

        await self._run(self._write, replace)

    async def seen(self, device_id: str, now: float) -> None:
        def touch(db: sqlite3.Connection) -> None:
            db.execute("UPDATE devices SET last_seen = ? WHERE device_id = ?", (now, device_id))

        await self._run(self._write, touch)

    async def push(self, space_id: str, device_id: str, ops: Sequence[Op], now: float) -> Pushed:
        texts = [_canonical(op) for op in ops]
        future = asyncio.get_running_loop().create_future()
        job = _QueuedPush(space_id, device_id, ops, texts, now, future)
        with self._queue_lock:
            if not self._queue:
                # Before appending: after a shutdown this raises and leaves no job behind.
                self._executor.submit(self._flush)
            self._queue.append(job)
        return await job.future

    def _flush(self) -> None:
        with self._queue_lock:
            jobs, self._queue = self._queue, []
        outcomes: list[Pushed | Exception]
        try:
            outcomes = self._write(lambda db: [self._push_in_savepoint(db, job) for job in jobs])
        except BaseException as exc:  # anything: a push left unsettled would hang its request
            outcomes = [_not_stored(exc) for _ in jobs]
        for job, outcome in zip(jobs, outcomes, strict=True):
            job.future.get_loop().call_soon_threadsafe(_settle, job.future, outcome)

    def _push_in_savepoint(self, db: sqlite3.Connection, job: _QueuedPush) -> Pushed | Exception:
        """One push of a group: its result, or why it failed (and then nothing of it
        stays). Raises when the whole transaction is lost, failing the group."""
        db.execute("SAVEPOINT push")
        try:
            result: Pushed | Exception = self._push(db, job)
        except Exception as exc:
            if not db.in_transaction:  # SQLite rolled back everything (disk full, I/O error)
                raise
            db.execute("ROLLBACK TO push")
            result = exc
        db.execute("RELEASE push")
        return result

    def _push(self, db: sqlite3.Connection, job: _QueuedPush) -> Pushed:
        space_id = job.space_id
        # The space row is written below, so BEGIN IMMEDIATE already holds the
        # write lock: seq numbers are handed out in commit order.
        last_seq, size = db.execute(
            "SELECT last_seq, bytes FROM spaces WHERE space_id = ?", (space_id,)
        ).fetchone()
        ids = [op.op_id for op in job.ops]
        known: dict[str, str] = dict(
            db.execute(STORED_BODIES_SQL, (json.dumps(ids), space_id)).fetchall()
        )
        rows: list[tuple[str, int, str, str, str, float]] = []
        new: list[Op] = []
        for index, (op, text) in enumerate(zip(job.ops, job.texts, strict=True)):
            stored = known.get(op.op_id)
            if stored is None:
                known[op.op_id] = text
                rows.append(
                    (space_id, last_seq + len(rows) + 1, op.op_id, job.device_id, text, job.now)
                )
                new.append(op)
            elif stored != text:  # canonical texts: equal iff equal JSON
                raise OpConflictError(index, op.op_id)
        added = sum(len(row[4].encode()) for row in rows)
        quota = self.quota
        if last_seq + len(rows) > quota.max_ops:
            raise QuotaExceeded(
                f"this space holds {last_seq:,} changes and this push brings {len(rows):,} "
                f"more; a space holds at most {quota.max_ops:,} (the server's space_max_ops)"
            )
        if size + added > quota.max_bytes:
            raise QuotaExceeded(
                f"this space holds {size:,} bytes and this push brings {added:,} more; a space "
                f"holds at most {quota.max_bytes:,} (the server's space_max_bytes)"
            )
        db.executemany(
            "INSERT INTO ops (space_id, seq, op_id, device_id, body, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute(
            "UPDATE spaces SET last_seq = ?, bytes = ? WHERE space_id = ?",
            (last_seq + len(rows), size + added, space_id),
        )
        return Pushed(list(dict.fromkeys(ids)), last_seq + 1, new)

    async def pull(self, space_id: str, device_id: str, after_seq: int, limit: int) -> Page:
        def pull(db: sqlite3.Connection) -> Page:
            (head,) = db.execute(
                "SELECT last_seq FROM spaces WHERE space_id = ?", (space_id,)
            ).fetchone()
            if after_seq > head:
                raise CursorAheadError(after_seq, head)
            rows = db.execute(
                "SELECT seq, body FROM ops WHERE space_id = ? AND seq > ? AND device_id != ? "
                "ORDER BY seq LIMIT ?",
                (space_id, after_seq, device_id, limit + 1),
            ).fetchall()
            ops = [StoredOp(seq, body) for seq, body in rows[:limit]]
            if len(rows) > limit:
                return Page(ops, ops[-1].seq, has_more=True)
            # Nothing else from other devices up to the head: the device's own ops
            # in between need not be scanned again.
            return Page(ops, head, has_more=False)

        return await self._run(self._read, pull)

    async def all_ops(
        self, space_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredOp]:
        def scan() -> list[StoredOp]:
            rows = self.db.execute(
                "SELECT seq, body FROM ops WHERE space_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (space_id, after_seq, -1 if limit is None else limit),  # -1: no limit
            ).fetchall()
            return [StoredOp(seq, body) for seq, body in rows]

        return await self._run(scan)

    async def last_seq(self, space_id: str) -> int:
        def head() -> int:
            row = self.db.execute(
                "SELECT last_seq FROM spaces WHERE space_id = ?", (space_id,)
            ).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(head)

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._executor.shutdown(wait=True)


# -- pushes -------------------------------------------------------------------------


# The same encoder as ``canonical_json``, built once: json.dumps builds a new
# encoder on every call with these arguments, which costs more than encoding an op.
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _canonical(op: Op) -> str:
    """``canonical_json(op.to_json())`` without ``to_json``'s defensive copy of the value."""
    return _CANONICAL.encode(
        {
            "op_id": op.op_id,
            "device_id": op.device_id,
            "collection": op.collection,
            "record_id": op.record_id,
            "field": op.field,
            "value": op.value,
            "hlc": op.hlc,
            "parents": op.parents,
        }
    )


@dataclass
class _QueuedPush:
    """A push waiting for its group commit."""

    space_id: str
    device_id: str
    ops: Sequence[Op]
    texts: list[str]  # the ops' canonical JSON, made on the event loop
    now: float
    future: asyncio.Future[Pushed]  # settled on its own event loop


def _not_stored(cause: BaseException) -> StoreError:
    # One exception per push: each is raised in its own request, with its own traceback.
    kind = StorageUnavailable if isinstance(cause, StorageUnavailable) else StoreError
    error = kind(f"the push was not stored: {cause}")
    error.__cause__ = cause
    return error


def _settle(future: asyncio.Future[Pushed], outcome: Pushed | Exception) -> None:
    if future.done():  # the request was cancelled (its client went away) meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
