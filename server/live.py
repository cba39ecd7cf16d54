"""Live sync: who is listening for changes to which space, and telling them.

A paired device keeps one ``GET /api/v1/spaces/{id}/events`` stream open (Server-Sent
Events, served by sse-starlette in ``sync_api``). The stream says only *that* the space
changed: each event is ``event: changed`` with the space's newest cursor as its data,
never an op or anything else of the user's. The device then pulls with ``POST /sync`` as
always, so the stream adds no second way for data to travel, and a lost event costs a
delay, never a change: the first event of every stream is the current cursor, so a device
that reconnects learns at once whether it missed something.

Events are coalesced, not queued: a listener holds the newest cursor it has not been told
yet, so a slow reader costs one integer however many pushes it misses.

Bounds, so streams cannot exhaust the server:

- per device, at most ``per_device`` streams; a new one closes that device's oldest, which
  is most likely dead (a laptop that changed networks leaves a half-open connection the
  server only notices once its pings fail) -- so a device is never locked out by its own
  stale streams;
- per space, at most ``per_space`` streams; past that a new one is refused (429), since
  other devices' streams are not this device's to close.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

# Seconds between the keep-alive comments of a quiet stream. Proxies close idle
# connections (often after 30-60 s), and the device treats a stream silent for much longer
# than this as dead (web/src/live_sync.js, SILENCE_MS): keep the two in step.
PING_S = 15.0
# A stream whose reader stops reading is dropped after this long, freeing its slot.
SEND_TIMEOUT_S = 10.0


class TooManyStreams(Exception):
    """The space has as many open streams as it may."""


@dataclass(eq=False)  # identity: two listeners are never the same one
class Listener:
    """One open stream of one device."""

    space_id: str
    device_id: str
    cursor: int = 0  # the newest cursor published to it
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    replaced: bool = False  # closed: its device opened one too many, or was removed


class SpaceChanges:
    """The open streams of every space, and the fan-out of "this space changed"."""

    def __init__(self, per_device: int, per_space: int) -> None:
        self.per_device = per_device
        self.per_space = per_space
        self._spaces: dict[str, list[Listener]] = {}  # oldest first

    def open(self, space_id: str, device_id: str) -> Listener:
        """A new listener; raises ``TooManyStreams`` when the space is full."""
        listeners = self._spaces.setdefault(space_id, [])
        mine = [listener for listener in listeners if listener.device_id == device_id]
        if len(mine) >= self.per_device:
            oldest = mine[0]
            oldest.replaced = True
            oldest.changed.set()
            listeners.remove(oldest)
        elif len(listeners) >= self.per_space:
            raise TooManyStreams(
                f"this space already has {len(listeners)} live streams open; "
                "this device syncs by polling until one closes"
            )
        listener = Listener(space_id, device_id)
        listeners.append(listener)
        return listener

    def close(self, listener: Listener) -> None:
        """Forget a listener (idempotent: a stream's end may close it twice)."""
        listeners = self._spaces.get(listener.space_id)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._spaces[listener.space_id]

    def drop_device(self, space_id: str, device_id: str) -> None:
        """End the streams of a device removed from its space: its token is gone."""
        for listener in list(self._spaces.get(space_id, ())):
            if listener.device_id == device_id:
                listener.replaced = True
                listener.changed.set()
                self.close(listener)

    def publish(self, space_id: str, cursor: int) -> None:
        """The space's ops now run up to ``cursor``: wake every listener behind it."""
        for listener in self._spaces.get(space_id, ()):
            if cursor > listener.cursor:
                listener.cursor = cursor
                listener.changed.set()

    async def next(self, listener: Listener) -> int | None:
        """The next cursor to tell ``listener`` (the newest, however many pushes came in
        meanwhile); None once it was replaced by a newer stream of its device."""
        await listener.changed.wait()
        listener.changed.clear()
        return None if listener.replaced else listener.cursor

    def count(self, space_id: str, device_id: str | None = None) -> int:
        """Open streams of the space (of one device of it, if given)."""
        listeners = self._spaces.get(space_id, ())
        return sum(1 for x in listeners if device_id is None or x.device_id == device_id)
