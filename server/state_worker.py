"""The merged state of the spaces, kept and paged in one worker process for
``GET /spaces/{id}/state``.

Why a process and not a thread: merging a space's ops and encoding a page is pure Python,
so on a thread it still held the server's GIL -- with two clients reading a 54,000-op
space, ``/healthz`` waited 0.7 s (median) -- and rebuilding that space after a restart
held it for seconds. The worker holds a ``Replica`` per space; the server keeps only the
op log (its store) and a guess of how far the worker has read each space.

What crosses (``Ops`` and ``PageRequest`` in, the seq held and ``PageReply`` out): the
server sends the stored ops after the seq it believes the worker holds (none when it
believes it up to date), a long catch-up in parts, the last part with the page asked
for; the worker applies those it lacks and answers the seq it now holds, and the encoded
page. If the ops do not follow on from what it holds (it evicted the space, or it is a
new worker), it applies nothing and answers the seq it holds (0) without a page; the
server sends again from there. So the worker never misses or doubles an op, and the server needs
no notice of evictions or restarts. The op log is the only durable truth: there is no
snapshot to keep consistent with it.

The worker keeps the replicas it holds under ``max_bytes`` of stored op bodies (a replica
takes about 4 times that in memory), evicting the least recently read first. It is
started on the first state read and stopped with the app; one that dies is replaced,
and the read it failed is tried once more.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import multiprocessing
import os
import re
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from py_agent.sync.merge import RecordKey, Replica
from py_agent.sync.ops import Op

from .store import StoredOp, SyncStore

log = logging.getLogger("py_agent.server.state")

# A page cursor is a record key as base64url JSON; the longest collection and record id
# an op may have fit well within this.
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,2000}")


def encode_cursor(key: RecordKey) -> str:
    text = json.dumps(list(key), ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> RecordKey | None:
    """The record key of a cursor ``encode_cursor`` made; None for anything else."""
    if not _CURSOR.fullmatch(cursor):
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # bad padding, not UTF-8 or JSON
        return None
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        return None
    return key[0], key[1]


# Ops read from the log and sent to the worker at once: pickling a space's 54,000 ops in
# one message held the server's GIL for 0.15 s (2,000 take about 6 ms), and holding them
# all in the server made a full garbage collection pass of tens of milliseconds.
SEND_AT_ONCE = 2000

# -- what crosses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ops:
    space_id: str
    base_seq: int  # ``ops`` follow on from this seq (none when the server thinks it current)
    ops: list[StoredOp]


@dataclass(frozen=True)
class PageRequest:
    sent: Ops  # the ops to take first
    after: RecordKey | None  # the page starts after this record
    limit: int


@dataclass(frozen=True)
class PageReply:
    held: int  # the worker holds the space's ops 1..held
    # The page's JSON, built at ``held``; None when the ops did not follow on from what the
    # worker holds: send it those after ``held``.
    page: bytes | None


@dataclass(frozen=True)
class Holdings:
    """What the worker holds, for tests and diagnostics."""

    pid: int
    spaces: dict[str, int]  # space → the seq held, least recently read first


# -- the worker's side -------------------------------------------------------------------------


@dataclass
class _Space:
    replica: Replica = field(default_factory=Replica)
    seq: int = 0
    bytes: int = 0  # of the stored op bodies applied: what the bound counts


class Spaces:
    """The replicas the worker holds, bounded by the size of their ops."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._spaces: OrderedDict[str, _Space] = OrderedDict()

    def take(self, sent: Ops) -> int:
        """Applies the ops it lacks, if they follow on from what it holds; the seq held."""
        return self._take(sent).seq

    def page(self, request: PageRequest) -> PageReply:
        space = self._take(request.sent)
        if space.seq < request.sent.base_seq:
            return PageReply(space.seq, None)
        state = space.replica.page(request.after, request.limit)
        body = {
            "space_id": request.sent.space_id,
            "seq": space.seq,
            "records": state.records,
            "conflicts": [conflict.to_json() for conflict in state.conflicts],
            "next": None if state.last is None else encode_cursor(state.last),
        }
        encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return PageReply(space.seq, encoded)

    def _take(self, sent: Ops) -> _Space:
        """The space, with ``sent`` applied unless it is behind them (then unchanged)."""
        space = self._spaces.get(sent.space_id) or _Space()
        if sent.base_seq > space.seq:
            return space
        self._spaces[sent.space_id] = space
        self._spaces.move_to_end(sent.space_id)
        new = [stored for stored in sent.ops if stored.seq > space.seq]
        if new:
            ops = [Op.from_json(json.loads(s.body), where=f"stored op {s.seq}") for s in new]
            try:
                space.replica.apply(ops)
            except BaseException:  # half-applied: forget it, the next read rebuilds it
                del self._spaces[sent.space_id]
                raise
            space.seq = new[-1].seq
            space.bytes += sum(len(s.body.encode()) for s in new)
        self._evict()
        return space

    def holdings(self) -> Holdings:
        return Holdings(os.getpid(), {space_id: s.seq for space_id, s in self._spaces.items()})

    def _evict(self) -> None:
        """Forgets the least recently read spaces while those held are over ``max_bytes``
        (never the one just read)."""
        held = sum(space.bytes for space in self._spaces.values())
        for space_id in list(self._spaces)[:-1]:
            if held <= self.max_bytes:
                return
            held -= self._spaces.pop(space_id).bytes


_spaces: Spaces | None = None  # the worker process's own, made when it starts


def _start(max_bytes: int) -> None:
    global _spaces
    _spaces = Spaces(max_bytes)


def take_ops(sent: Ops) -> int:
    assert _spaces is not None, "runs in the worker, which _start set up"
    return _spaces.take(sent)


def build_page(request: PageRequest) -> PageReply:
    assert _spaces is not None, "runs in the worker, which _start set up"
    return _spaces.page(request)


def holdings() -> Holdings:
    assert _spaces is not None, "runs in the worker, which _start set up"
    return _spaces.holdings()


# -- the server's side -------------------------------------------------------------------------


class WorkerUnavailable(Exception):
    """The worker died twice in one read."""


class StateWorker:
    """Pages of the spaces' merged state, from the worker process (module docstring)."""

    def __init__(self, store: SyncStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._held: dict[str, int] = {}  # space → the seq the worker last said it holds
        # One read at a time: the worker does one at a time anyway, and two reads of a
        # space after a restart would both read and send its whole log.
        self._lock = asyncio.Lock()

    async def page(self, space_id: str, after: RecordKey | None, limit: int) -> bytes:
        """The JSON of up to ``limit`` records after ``after``, at the newest stored op."""
        async with self._lock:
            for _ in range(2):
                try:
                    return await self._page(space_id, after, limit)
                except BrokenProcessPool:
                    log.warning("the state worker died; starting another")
                    self._stop()
        raise WorkerUnavailable("the server's state worker keeps failing; try again shortly")

    async def _page(self, space_id: str, after: RecordKey | None, limit: int) -> bytes:
        pool = self._started()
        for _ in range(2):  # the second time, the ops follow on from what it holds
            base_seq = self._held.get(space_id, 0)
            ops = await self.store.all_ops(space_id, base_seq, SEND_AT_ONCE)
            while len(ops) == SEND_AT_ONCE:  # there may be more: send these, read on
                held = await asyncio.wrap_future(
                    pool.submit(take_ops, Ops(space_id, base_seq, ops))
                )
                self._held[space_id] = held
                if held < ops[-1].seq:  # it is behind: send from what it holds
                    break
                base_seq = held
                ops = await self.store.all_ops(space_id, base_seq, SEND_AT_ONCE)
            else:
                request = PageRequest(Ops(space_id, base_seq, ops), after, limit)
                reply = await asyncio.wrap_future(pool.submit(build_page, request))
                self._held[space_id] = reply.held
                if reply.page is not None:
                    return reply.page
        raise RuntimeError(f"the state worker lost space {space_id} during one read")

    async def holdings(self) -> Holdings:
        return await asyncio.wrap_future(self._started().submit(holdings))

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fork would copy the server's threads and locks mid-use.
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(self.max_bytes,),
            )
            self._held.clear()
        return self._pool

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def close(self) -> None:
        """Stops the worker (after the read it is doing, if any)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
