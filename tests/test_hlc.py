from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import FakeWall

from py_agent.sync.hlc import (
    DEFAULT_MAX_DRIFT_MS,
    MAX_COUNTER,
    MAX_WALL_MS,
    HLCError,
    HybridClock,
    Timestamp,
    system_wall_ms,
)

T0 = 1_700_000_000_000


device_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
    min_size=1,
    max_size=64,
)
timestamps = st.builds(
    Timestamp,
    wall_ms=st.integers(0, MAX_WALL_MS),
    counter=st.integers(0, MAX_COUNTER),
    device_id=device_ids,
)
# Timestamps that often share a wall time, counter or device-id prefix.
close_timestamps = st.builds(
    Timestamp,
    wall_ms=st.integers(T0, T0 + 2),
    counter=st.integers(0, 2),
    device_id=st.sampled_from(["a", "ab", "b", "a-", "A", "~", "!"]),
)


def test_now_counts_within_a_millisecond_and_resets_when_the_wall_advances() -> None:
    wall = FakeWall()
    clock = HybridClock("dev-a", wall)
    assert clock.last is None
    assert clock.now() == Timestamp(T0, 0, "dev-a")
    assert clock.now() == Timestamp(T0, 1, "dev-a")
    assert clock.now() == Timestamp(T0, 2, "dev-a")
    wall.ms += 1
    assert clock.now() == Timestamp(T0 + 1, 0, "dev-a")
    assert clock.last == Timestamp(T0 + 1, 0, "dev-a")


def test_now_never_goes_backwards_when_the_wall_clock_does() -> None:
    wall = FakeWall()
    clock = HybridClock("dev-a", wall)
    first = clock.now()
    wall.ms -= 60_000
    second = clock.now()
    wall.ms -= 3_600_000
    third = clock.now()
    assert first < second < third
    assert second == Timestamp(T0, 1, "dev-a")  # holds the wall time, counts on
    wall.ms = T0 + 5
    assert clock.now() == Timestamp(T0 + 5, 0, "dev-a")  # catches up with the wall again


@given(st.lists(st.integers(-10_000, 10_000), min_size=1, max_size=60))
def test_now_strictly_increases_under_any_wall_clock_jumps(jumps: list[int]) -> None:
    wall = FakeWall()
    clock = HybridClock("dev-a", wall)
    previous = clock.now()
    for jump in jumps:
        wall.ms = max(0, wall.ms + jump)
        current = clock.now()
        assert current > previous
        assert current.encode() > previous.encode()
        assert current.wall_ms >= wall.ms
        previous = current


def test_counter_overflow_moves_to_the_next_millisecond() -> None:
    wall = FakeWall()
    clock = HybridClock("dev-a", wall, last=Timestamp(T0, MAX_COUNTER - 1, "dev-a"))
    assert clock.now() == Timestamp(T0, MAX_COUNTER, "dev-a")
    overflowed = clock.now()
    assert overflowed == Timestamp(T0 + 1, 0, "dev-a")
    assert overflowed.encode() > Timestamp(T0, MAX_COUNTER, "dev-a").encode()
    # The wall reaching that millisecond later continues from there, still increasing.
    wall.ms = T0 + 1
    assert clock.now() == Timestamp(T0 + 1, 1, "dev-a")


def test_counter_overflow_in_observe_moves_to_the_next_millisecond() -> None:
    clock = HybridClock("dev-a", FakeWall())
    remote = Timestamp(T0, MAX_COUNTER, "dev-b")
    merged = clock.observe(remote)
    assert merged == Timestamp(T0 + 1, 0, "dev-a")
    assert merged > remote


def test_the_clock_refuses_to_pass_its_maximum() -> None:
    clock = HybridClock("dev-a", FakeWall(0), last=Timestamp(MAX_WALL_MS, MAX_COUNTER, "dev-a"))
    with pytest.raises(HLCError, match="maximum wall time"):
        clock.now()


@pytest.mark.parametrize(
    ("local", "remote", "expected"),
    [
        # remote ahead of the local clock and the wall: take its time, count past it
        (
            Timestamp(T0, 3, "dev-a"),
            Timestamp(T0 + 500, 7, "dev-b"),
            Timestamp(T0 + 500, 8, "dev-a"),
        ),
        # remote behind: keep the local time, count on
        (Timestamp(T0, 3, "dev-a"), Timestamp(T0 - 500, 9, "dev-b"), Timestamp(T0, 4, "dev-a")),
        # same wall time: count past the larger counter
        (Timestamp(T0, 3, "dev-a"), Timestamp(T0, 9, "dev-b"), Timestamp(T0, 10, "dev-a")),
        (Timestamp(T0, 9, "dev-a"), Timestamp(T0, 3, "dev-b"), Timestamp(T0, 10, "dev-a")),
        # equal wall and counter, the remote device sorting after this one
        (Timestamp(T0, 3, "dev-a"), Timestamp(T0, 3, "dev-z"), Timestamp(T0, 4, "dev-a")),
    ],
)
def test_observe_result_is_later_than_the_local_and_the_remote_clock(
    local: Timestamp, remote: Timestamp, expected: Timestamp
) -> None:
    clock = HybridClock("dev-a", FakeWall(T0 - 1000), last=local)
    merged = clock.observe(remote)
    assert merged == expected
    assert merged > local and merged > remote
    assert clock.last == merged


def test_observe_follows_the_wall_when_it_is_ahead_of_both() -> None:
    wall = FakeWall()
    clock = HybridClock("dev-a", wall)
    clock.now()
    wall.ms = T0 + 10_000
    assert clock.observe(Timestamp(T0 + 5, 4, "dev-b")) == Timestamp(T0 + 10_000, 0, "dev-a")


def test_observe_on_a_fresh_clock() -> None:
    clock = HybridClock("dev-a", FakeWall(T0))
    assert clock.observe(Timestamp(T0, 4, "dev-b")) == Timestamp(T0, 5, "dev-a")


@given(
    local=st.one_of(st.none(), close_timestamps),
    remote=close_timestamps,
    wall=st.integers(T0 - 2, T0 + 3),
)
def test_observe_is_always_later_than_both(
    local: Timestamp | None, remote: Timestamp, wall: int
) -> None:
    if local is not None:
        local = Timestamp(local.wall_ms, local.counter, "dev-m")
    clock = HybridClock("dev-m", FakeWall(wall), last=local)
    merged = clock.observe(remote)
    assert merged > remote
    assert local is None or merged > local
    assert merged.wall_ms >= wall
    assert clock.now() > merged


def test_a_remote_clock_far_ahead_is_refused_and_leaves_the_clock_alone() -> None:
    wall = FakeWall()
    clock = HybridClock("dev-a", wall)
    before = clock.now()
    within = Timestamp(T0 + DEFAULT_MAX_DRIFT_MS, 0, "dev-b")
    too_far = Timestamp(T0 + DEFAULT_MAX_DRIFT_MS + 1, 0, "dev-b")
    with pytest.raises(HLCError, match=r"86400001 ms ahead of this device's clock"):
        clock.observe(too_far)
    assert clock.last == before
    assert clock.observe(within) > within
    # The limit is configurable and can be switched off.
    strict = HybridClock("dev-a", wall, max_drift_ms=1000)
    with pytest.raises(HLCError, match="limit 1000 ms"):
        strict.observe(Timestamp(T0 + 1001, 0, "dev-b"))
    lax = HybridClock("dev-a", wall, max_drift_ms=None)
    assert lax.observe(too_far) > too_far


def test_restart_from_last_keeps_monotonicity() -> None:
    wall = FakeWall()
    clock = HybridClock("dev-a", wall)
    for _ in range(5):
        clock.now()
    persisted = clock.last
    assert persisted is not None
    # The app restarts after the wall clock was set back an hour.
    wall.ms -= 3_600_000
    restarted = HybridClock("dev-a", wall, last=Timestamp.decode(persisted.encode()))
    assert restarted.now() > persisted
    assert restarted.now() > persisted


def test_last_from_another_device_is_refused() -> None:
    with pytest.raises(HLCError, match="made by device 'dev-b'"):
        HybridClock("dev-a", FakeWall(), last=Timestamp(T0, 0, "dev-b"))


@pytest.mark.parametrize(
    ("device_id", "message"),
    [
        ("", "must not be empty"),
        ("dev:a", "must not contain ':'"),
        ("dev a", "printable ASCII without spaces"),
        ("gerät", "printable ASCII without spaces"),
        ("x" * 65, "at most 64 characters"),
    ],
)
def test_bad_device_ids_are_refused(device_id: str, message: str) -> None:
    with pytest.raises(HLCError, match=message):
        HybridClock(device_id, FakeWall())
    with pytest.raises(HLCError, match=message):
        Timestamp(T0, 0, device_id)


def test_a_broken_wall_clock_is_reported() -> None:
    with pytest.raises(HLCError, match="wall clock returned -1"):
        HybridClock("dev-a", lambda: -1).now()
    with pytest.raises(HLCError, match="wall clock returned 'soon'"):
        HybridClock("dev-a", lambda: "soon").now()  # type: ignore[arg-type, return-value]
    # A float reading (time.time() * 1000) is floored to whole milliseconds.
    assert HybridClock("dev-a", lambda: T0 + 0.9).now() == Timestamp(T0, 0, "dev-a")  # type: ignore[arg-type, return-value]


def test_system_wall_ms_is_milliseconds_since_1970() -> None:
    assert 1_700_000_000_000 < system_wall_ms() < MAX_WALL_MS
    assert HybridClock("dev-a", system_wall_ms).now().wall_ms > T0


def test_encode_is_fixed_width() -> None:
    assert Timestamp(T0, 42, "dev-a").encode() == "001700000000000:00042:dev-a"
    assert Timestamp(0, 0, "d").encode() == "000000000000000:00000:d"


@given(timestamps)
def test_encode_decode_round_trip(stamp: Timestamp) -> None:
    text = stamp.encode()
    assert Timestamp.decode(text) == stamp
    assert Timestamp.decode(text).encode() == text


@given(st.one_of(timestamps, close_timestamps), st.one_of(timestamps, close_timestamps))
def test_string_order_is_timestamp_order(a: Timestamp, b: Timestamp) -> None:
    assert (a < b) == (a.encode() < b.encode())
    assert (a == b) == (a.encode() == b.encode())
    # And in UTF-16 code units, as JavaScript and IndexedDB compare strings.
    assert (a < b) == (a.encode().encode("utf-16-be") < b.encode().encode("utf-16-be"))


@given(st.lists(close_timestamps, min_size=2, max_size=20))
@settings(max_examples=200)
def test_sorting_strings_sorts_timestamps(stamps: list[Timestamp]) -> None:
    assert [s.encode() for s in sorted(stamps)] == sorted(s.encode() for s in stamps)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must have three ':'-separated parts"),
        ("001700000000000:00000", "must have three ':'-separated parts"),
        ("1700000000000:00000:dev-a", "wall-clock part '1700000000000' must be 15 digits"),
        ("00170000000000x:00000:dev-a", "wall-clock part '00170000000000x' must be 15 digits"),
        ("-01700000000000:00000:dev-a", "wall-clock part '-01700000000000' must be 15 digits"),
        ("\uff10\uff10\uff11700000000000:00000:dev-a", "must be 15 digits"),  # fullwidth digits
        ("001700000000000:0:dev-a", "counter part '0' must be 5 digits"),
        ("001700000000000:000001:dev-a", "counter part '000001' must be 5 digits"),
        ("001700000000000:00000:", "device id must not be empty"),
        ("001700000000000:00000:dev:a", "device id must not contain ':'"),
        ("001700000000000:00000:dev a", "printable ASCII without spaces"),
    ],
)
def test_malformed_strings_are_refused_with_clear_messages(text: str, message: str) -> None:
    with pytest.raises(HLCError, match=message):
        Timestamp.decode(text)


def test_decode_refuses_non_strings() -> None:
    with pytest.raises(HLCError, match="must be a string like 000001700000000:00000:device-a"):
        Timestamp.decode(1700000000000)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wall_ms", "counter", "message"),
    [
        (-1, 0, "wall_ms must be between 0 and"),
        (MAX_WALL_MS + 1, 0, "wall_ms must be between 0 and"),
        (0, MAX_COUNTER + 1, "counter must be between 0 and 99999"),
        (True, 0, "wall_ms must be an integer"),
        (1.5, 0, "wall_ms must be an integer"),
    ],
)
def test_out_of_range_timestamps_are_refused(wall_ms: int, counter: int, message: str) -> None:
    with pytest.raises(HLCError, match=message):
        Timestamp(wall_ms, counter, "dev-a")
