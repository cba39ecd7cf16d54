"""The cascade's cost/quality sweep and its knee, on predictions made up to know the answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from py_agent.intents import INTENTS, IntentPrediction
from tools.cascade_eval import Point, cascade, format_sweep, knee, plot, report, sweep


def guess(intent: str, confidence: float) -> IntentPrediction:
    return IntentPrediction(intent, confidence, {intent: confidence})


# The device is right when sure (0.9) and wrong when unsure (0.3, 0.5); the server is
# always right except on the last example, where the device was right but unsure (0.7).
GOLD = ["help", "greeting", "task.add", "note.add", "task.list"]
LOCAL = [
    guess("help", 0.9),
    guess("greeting", 0.9),
    guess("note.add", 0.3),
    guess("task.add", 0.5),
    guess("task.list", 0.7),
]
CLOUD = [guess(g, 0.99) for g in GOLD[:4]] + [guess("note.list", 0.99)]


def test_the_cascade_asks_the_server_below_the_threshold() -> None:
    assert cascade(LOCAL, CLOUD, 0.0) == ([p.intent for p in LOCAL], 0.0)
    assert cascade(LOCAL, CLOUD, 0.6) == (
        ["help", "greeting", "task.add", "note.add", "task.list"],
        0.4,
    )
    assert cascade(LOCAL, CLOUD, 1.0) == ([p.intent for p in CLOUD], 1.0)


def test_the_sweep_traces_cost_against_quality_and_the_knee_is_where_it_stops_paying() -> None:
    points = sweep(GOLD, LOCAL, CLOUD)
    assert len(points) == 101 and points[0].threshold == 0.0 and points[-1].threshold == 1.0
    assert (points[0].fallback_rate, points[0].accuracy) == (0.0, 0.6)
    assert (points[60].fallback_rate, points[60].accuracy) == (0.4, 1.0)
    assert (points[-1].fallback_rate, points[-1].accuracy) == (1.0, 0.8)
    best = knee(points)
    assert (best.fallback_rate, best.accuracy) == (0.4, 1.0)
    assert best.threshold == 0.51  # the lowest τ reaching that point


def test_a_curve_with_nothing_above_its_chord_means_never_ask() -> None:
    flat = [Point(0.0, 0.0, 0.9), Point(0.5, 0.5, 0.85), Point(1.0, 1.0, 0.8)]
    assert knee(flat) == flat[0]
    assert knee([Point(0.3, 0.2, 0.5)]) == Point(0.3, 0.2, 0.5)


def test_reports_per_mode_and_the_plot(tmp_path: Path) -> None:
    local = report("local", GOLD, LOCAL, None, INTENTS, 0.6, with_sweep=False)
    assert (local["accuracy"], local["fallback_rate"], local["mode"]) == (0.6, 0.0, "local")
    with pytest.raises(ValueError, match="needs the server model"):
        report("cloud", GOLD, LOCAL, None, INTENTS, 0.6, with_sweep=False)
    mixed = report("cascade", GOLD, LOCAL, CLOUD, INTENTS, 0.6, with_sweep=True)
    assert (mixed["accuracy"], mixed["fallback_rate"], mixed["threshold"]) == (1.0, 0.4, 0.6)
    assert mixed["knee"]["threshold"] == 0.51 and len(mixed["sweep"]) == 101
    assert "knee: τ = 0.51 → 40.0% sent to the server, accuracy 100.0%" in format_sweep(mixed)
    png = tmp_path / "plots" / "cascade.png"
    plot(mixed, png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
