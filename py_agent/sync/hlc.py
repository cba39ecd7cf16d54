"""Hybrid Logical Clock timestamps (Kulkarni et al., "Logical Physical Clocks", 2014).

A timestamp is ``(wall_ms, counter, device_id)``: the greatest wall-clock time seen so
far, a counter that orders events within that millisecond, and the device that made it.
If event A could have influenced event B (A happened on B's device earlier, or B's device
received A before B), then A's timestamp is less than B's; and timestamps stay close to
the wall clock, so "latest wins" means roughly what a user expects.

Wire format: ``000001700000000:00000:device-a`` -- 15-digit zero-padded wall-clock ms,
5-digit counter, device id. The fixed widths make string order equal timestamp order (in
Python, JavaScript, IndexedDB and SQLite alike, because device ids are printable ASCII),
so stores can sort and compare the encoded strings directly.

Rules this module chose:

- **Counter overflow**: more than 99,999 events within one wall-clock millisecond (or
  while the wall clock stands still or runs backwards) moves ``wall_ms`` on by 1 and
  resets the counter. The clock runs at most 1 ms ahead of real time per 100,000 such
  events; ordering never breaks and a local write never fails.
- **Remote clock skew**: ``observe`` refuses, with ``HLCError``, a remote timestamp more
  than ``max_drift_ms`` (default 24 h) ahead of this device's wall clock. Accepting it
  would drag this clock -- and every clock this device talks to -- into the future for
  good. ``max_drift_ms=None`` turns the check off.
- **Device ids**: 1-64 printable ASCII characters, no ``:`` and no space.

Sans-IO: the wall clock is a function passed in, so tests drive it by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

WALL_DIGITS = 15
COUNTER_DIGITS = 5
MAX_WALL_MS = 10**WALL_DIGITS - 1
MAX_COUNTER = 10**COUNTER_DIGITS - 1
MAX_DEVICE_ID = 64
DEFAULT_MAX_DRIFT_MS = 24 * 60 * 60 * 1000
EXAMPLE = "000001700000000:00000:device-a"
_DIGITS = frozenset("0123456789")
# Printable ASCII minus space and ':' (the separator): sorts the same everywhere.
_DEVICE_ID_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {":"}


class HLCError(ValueError):
    """A malformed timestamp or device id, a broken wall clock, or a remote clock too far ahead."""


def device_id_problem(device_id: object) -> str | None:
    """Why ``device_id`` can't be a device id, or None if it can."""
    if not isinstance(device_id, str):
        return f"must be a string, got {type(device_id).__name__}"
    if not device_id:
        return "must not be empty"
    if len(device_id) > MAX_DEVICE_ID:
        return f"must be at most {MAX_DEVICE_ID} characters, got {len(device_id)}"
    if ":" in device_id:
        return f"must not contain ':' (it separates the timestamp's parts), got {device_id!r}"
    if not _DEVICE_ID_CHARS.issuperset(device_id):
        return f"must be printable ASCII without spaces, got {device_id!r}"
    return None


def check_device_id(device_id: object) -> str:
    problem = device_id_problem(device_id)
    if problem is not None:
        raise HLCError(f"device id {problem}")
    assert isinstance(device_id, str)
    return device_id


def _check_int(name: str, value: object, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HLCError(f"{name} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise HLCError(f"{name} must be between 0 and {maximum}, got {value}")


@dataclass(frozen=True, order=True)
class Timestamp:
    """One HLC reading. Compares like its encoded string (wall_ms, counter, device_id)."""

    wall_ms: int
    counter: int
    device_id: str

    def __post_init__(self) -> None:
        _check_int("wall_ms", self.wall_ms, MAX_WALL_MS)
        _check_int("counter", self.counter, MAX_COUNTER)
        check_device_id(self.device_id)

    def encode(self) -> str:
        return f"{self.wall_ms:0{WALL_DIGITS}d}:{self.counter:0{COUNTER_DIGITS}d}:{self.device_id}"

    @classmethod
    def decode(cls, text: str) -> Timestamp:
        if not isinstance(text, str):
            raise HLCError(
                f"HLC timestamp must be a string like {EXAMPLE}, got {type(text).__name__}"
            )
        parts = text.split(":", 2)
        if len(parts) != 3:
            raise HLCError(
                f"HLC timestamp {text!r} must have three ':'-separated parts, like {EXAMPLE}"
            )
        wall, counter, device_id = parts
        if len(wall) != WALL_DIGITS or not _DIGITS.issuperset(wall):
            raise HLCError(
                f"HLC timestamp {text!r}: wall-clock part {wall!r} must be {WALL_DIGITS} digits"
            )
        if len(counter) != COUNTER_DIGITS or not _DIGITS.issuperset(counter):
            raise HLCError(
                f"HLC timestamp {text!r}: counter part {counter!r} must be {COUNTER_DIGITS} digits"
            )
        problem = device_id_problem(device_id)
        if problem is not None:
            raise HLCError(f"HLC timestamp {text!r}: device id {problem}")
        return cls(int(wall), int(counter), device_id)


def system_wall_ms() -> int:
    """Milliseconds since 1970 from the host clock (works in CPython and Pyodide)."""
    return time.time_ns() // 1_000_000


class HybridClock:
    """The HLC of one device. Not thread-safe: one clock per device, used from one thread.

    Persist ``last`` together with the ops it stamped (same transaction) and pass it back
    after a restart; otherwise a wall clock that went backwards while the app was closed
    could repeat timestamps.
    """

    def __init__(
        self,
        device_id: str,
        wall_ms: Callable[[], int],
        last: Timestamp | None = None,
        *,
        max_drift_ms: int | None = DEFAULT_MAX_DRIFT_MS,
    ) -> None:
        self.device_id = check_device_id(device_id)
        if last is not None:
            if not isinstance(last, Timestamp):
                raise HLCError(f"last must be a Timestamp or None, got {type(last).__name__}")
            if last.device_id != device_id:
                raise HLCError(
                    f"last was made by device {last.device_id!r}, not by this clock's {device_id!r}"
                )
        if max_drift_ms is not None:
            _check_int("max_drift_ms", max_drift_ms, MAX_WALL_MS)
        self._wall_ms = wall_ms
        self._last = last
        self.max_drift_ms = max_drift_ms

    @property
    def last(self) -> Timestamp | None:
        """The latest timestamp this clock issued (None before the first)."""
        return self._last

    def _physical(self) -> int:
        reading: object = self._wall_ms()
        if isinstance(reading, float) and math.isfinite(reading):
            reading = math.floor(reading)
        if isinstance(reading, bool) or not isinstance(reading, int):
            raise HLCError(f"the wall clock returned {reading!r}; expected milliseconds since 1970")
        if not 0 <= reading <= MAX_WALL_MS:
            raise HLCError(f"the wall clock returned {reading}; expected 0..{MAX_WALL_MS} ms")
        return reading

    def _issue(self, wall: int, counter: int) -> Timestamp:
        if counter > MAX_COUNTER:
            # Counter overflow: move on to the next millisecond rather than wrap or fail.
            wall, counter = wall + 1, 0
        if wall > MAX_WALL_MS:
            raise HLCError(f"the clock reached its maximum wall time {MAX_WALL_MS} ms")
        self._last = Timestamp(wall, counter, self.device_id)
        return self._last

    def now(self) -> Timestamp:
        """Timestamp a local event (a write, or a send). Strictly greater than ``last``,
        even if the wall clock went backwards."""
        physical = self._physical()
        last = self._last
        if last is None or physical > last.wall_ms:
            return self._issue(physical, 0)
        return self._issue(last.wall_ms, last.counter + 1)

    def observe(self, remote: Timestamp) -> Timestamp:
        """The receive rule: merge a remote timestamp into this clock and return the new
        local one, strictly greater than both ``last`` and ``remote``."""
        if not isinstance(remote, Timestamp):
            raise HLCError(f"observe takes a Timestamp, got {type(remote).__name__}")
        physical = self._physical()
        if self.max_drift_ms is not None and remote.wall_ms - physical > self.max_drift_ms:
            raise HLCError(
                f"remote timestamp {remote.encode()} from device {remote.device_id!r} is "
                f"{remote.wall_ms - physical} ms ahead of this device's clock "
                f"(limit {self.max_drift_ms} ms); one of the two clocks is wrong"
            )
        last = self._last
        local_wall = -1 if last is None else last.wall_ms
        local_counter = -1 if last is None else last.counter
        wall = max(local_wall, remote.wall_ms, physical)
        if wall == local_wall == remote.wall_ms:
            counter = max(local_counter, remote.counter) + 1
        elif wall == local_wall:
            counter = local_counter + 1
        elif wall == remote.wall_ms:
            counter = remote.counter + 1
        else:
            counter = 0
        return self._issue(wall, counter)
