"""The cost/quality trade-off of the cloud cascade, from labelled predictions.

For a threshold τ the cascade keeps the device's reading when its calibrated
confidence is ≥ τ and takes the server's otherwise; the *fallback rate* is the
share of requests sent to the server (the cost), the cascade's accuracy the
quality. ``sweep`` traces the whole curve (like RouteLLM's cost/quality curves)
and ``knee`` picks the τ where asking the server more stops paying: the point of
the curve farthest above the straight line from "never ask" to "always ask"
(the Kneedle criterion).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from py_agent.intents import IntentPrediction

from .evaluation import classification_report

SWEEP_STEPS = 101  # τ = 0.00, 0.01, …, 1.00


@dataclass(frozen=True)
class Point:
    threshold: float
    fallback_rate: float
    accuracy: float

    def to_json(self) -> dict[str, float]:
        return {
            "threshold": self.threshold,
            "fallback_rate": self.fallback_rate,
            "accuracy": self.accuracy,
        }


def cascade(
    local: Sequence[IntentPrediction], cloud: Sequence[IntentPrediction], threshold: float
) -> tuple[list[str], float]:
    """The cascade's intents at ``threshold``, and its fallback rate."""
    chosen, asked = [], 0
    for mine, theirs in zip(local, cloud, strict=True):
        if mine.confidence >= threshold:
            chosen.append(mine.intent)
        else:
            chosen.append(theirs.intent)
            asked += 1
    return chosen, asked / len(local) if local else 0.0


def sweep(
    gold: Sequence[str],
    local: Sequence[IntentPrediction],
    cloud: Sequence[IntentPrediction],
) -> list[Point]:
    points = []
    for step in range(SWEEP_STEPS):
        threshold = round(step / (SWEEP_STEPS - 1), 2)
        chosen, rate = cascade(local, cloud, threshold)
        hits = sum(g == c for g, c in zip(gold, chosen, strict=True))
        points.append(Point(threshold, rate, hits / len(gold) if gold else 0.0))
    return points


def knee(points: Sequence[Point]) -> Point:
    """The point farthest above the chord from the fewest to the most fallbacks; ties go
    to the lower fallback rate. With no point above the chord, "never ask"."""
    ordered = sorted(points, key=lambda p: (p.fallback_rate, -p.accuracy))
    first, last = ordered[0], ordered[-1]
    span = last.fallback_rate - first.fallback_rate
    if span <= 0:
        return first

    def lift(point: Point) -> float:
        share = (point.fallback_rate - first.fallback_rate) / span
        return point.accuracy - (first.accuracy + share * (last.accuracy - first.accuracy))

    best = max(ordered, key=lambda p: (round(lift(p), 12), -p.fallback_rate))
    return best if lift(best) > 0 else first


def report(
    mode: str,
    gold: Sequence[str],
    local: Sequence[IntentPrediction],
    cloud: Sequence[IntentPrediction] | None,
    labels: Sequence[str],
    threshold: float,
    with_sweep: bool,
) -> dict[str, Any]:
    """``py-agent eval --mode``'s numbers: the chosen mode's classification report,
    with the fallback rate (and the sweep and its knee when asked for)."""
    if mode == "local":
        predicted, rate = [p.intent for p in local], 0.0
    elif cloud is None:
        raise ValueError(f"mode {mode!r} needs the server model's predictions")
    elif mode == "cloud":
        predicted, rate = [p.intent for p in cloud], 1.0
    else:
        predicted, rate = cascade(local, cloud, threshold)
    result = classification_report(gold, predicted, labels)
    result.update(mode=mode, fallback_rate=rate, threshold=threshold)
    # The errors the cascade cannot catch: the device is sure of itself, and wrong.
    result["confident_wrong"] = (
        sum(p.confidence >= threshold and p.intent != g for g, p in zip(gold, local, strict=True))
        / len(gold)
        if gold
        else None
    )
    if with_sweep and cloud is not None:
        points = sweep(gold, local, cloud)
        result["sweep"] = [point.to_json() for point in points]
        result["knee"] = knee(points).to_json()
    return result


def format_sweep(result: dict[str, Any]) -> str:
    lines = [f"{'τ':>5} {'fallback':>9} {'accuracy':>9}"]
    for point in result["sweep"][::5]:
        lines.append(
            f"{point['threshold']:>5.2f} {point['fallback_rate']:>9.1%} {point['accuracy']:>9.1%}"
        )
    best = result["knee"]
    lines.append(
        f"knee: τ = {best['threshold']:.2f} → {best['fallback_rate']:.1%} sent to the server, "
        f"accuracy {best['accuracy']:.1%}"
    )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path, title: str) -> None:
    """The sweep as a PNG: fallback rate against cascade accuracy, the knee marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt

    points = result["sweep"]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    axes.plot(
        [100 * p["fallback_rate"] for p in points],
        [100 * p["accuracy"] for p in points],
        marker=".",
        label="cascade (τ from 0 to 1)",
    )
    best = result["knee"]
    axes.scatter(
        [100 * best["fallback_rate"]],
        [100 * best["accuracy"]],
        color="crimson",
        zorder=3,
        label=f"knee τ = {best['threshold']:.2f}",
    )
    axes.set_xlabel("requests sent to the server (%)")
    axes.set_ylabel("intent accuracy (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
