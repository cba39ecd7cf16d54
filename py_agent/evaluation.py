"""``py-agent eval``: how well the agent understands a labelled file, on CPython.

Lines are JSON objects, either ``{"text", "intent", "due_date"?, "due_time"?}``
(intent classification, and due-date extraction when ``due_date`` is present),
or ``{"notes": [...], "queries": [[text, index_of_expected_note], ...]}``
(semantic note retrieval).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from .encoder import Encoder
from .intents import IntentHead
from .slots import task_slots


class EvalFileError(ValueError):
    pass


@dataclass
class EvalSet:
    intents: list[tuple[str, str]] = field(default_factory=list)
    # (text, due_date or None, due_time or None)
    dues: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    retrieval: list[tuple[list[str], list[tuple[str, int]]]] = field(default_factory=list)


def parse_eval_file(lines: Sequence[str], name: str, labels: Sequence[str]) -> EvalSet:
    data = EvalSet()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{name}:{number}"
        try:
            item = json.loads(raw)
        except ValueError as exc:
            raise EvalFileError(f"{where}: not JSON ({exc})") from exc
        if not isinstance(item, dict):
            raise EvalFileError(f"{where}: each line must be a JSON object")
        if "notes" in item:
            notes, queries = item.get("notes"), item.get("queries")
            if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
                raise EvalFileError(f"{where}: 'notes' must be a list of strings")
            if not isinstance(queries, list) or not all(
                isinstance(q, list)
                and len(q) == 2
                and isinstance(q[0], str)
                and isinstance(q[1], int)
                and 0 <= q[1] < len(notes)
                for q in queries
            ):
                raise EvalFileError(
                    f"{where}: 'queries' must be [[text, index of the expected note], ...]"
                )
            data.retrieval.append((notes, [(q[0], q[1]) for q in queries]))
            continue
        text, intent = item.get("text"), item.get("intent")
        if not isinstance(text, str) or not text.strip():
            raise EvalFileError(f"{where}: 'text' must be a non-empty string")
        if not isinstance(intent, str) or intent not in labels:
            raise EvalFileError(f"{where}: 'intent' must be one of {', '.join(labels)}")
        data.intents.append((text, intent))
        if "due_date" in item:
            due_date, due_time = item["due_date"], item.get("due_time")
            if due_date is not None and not isinstance(due_date, str):
                raise EvalFileError(f"{where}: 'due_date' must be YYYY-MM-DD or null")
            data.dues.append((text, due_date, due_time))
    return data


def classification_report(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    per_intent = {}
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        n_pred = sum(p == label for p in predicted)
        n_gold = sum(g == label for g in gold)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_intent[label] = {"precision": precision, "recall": recall, "f1": f1, "n": n_gold}
    present = [label for label in labels if per_intent[label]["n"]]
    confusion = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
    return {
        "n": len(gold),
        "accuracy": sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
        if gold
        else None,
        "macro_f1": sum(per_intent[label]["f1"] for label in present) / len(present)
        if present
        else None,
        "per_intent": per_intent,
        "confusion": [[g, p, count] for (g, p), count in confusion.most_common()],
    }


async def evaluate(
    data: EvalSet, encoder: Encoder, head: IntentHead, now: datetime
) -> dict[str, Any]:
    predicted = [head.predict(await encoder.embed(text)).intent for text, _ in data.intents]
    report = classification_report([i for _, i in data.intents], predicted, head.labels)

    due_hits = 0
    for text, due_date, due_time in data.dues:
        due = task_slots(text, now).due
        got_date = due.date.isoformat() if due else None
        got_time = due.time.strftime("%H:%M") if due and due.time else None
        due_hits += got_date == due_date and (due_time is None or got_time == due_time)
    report["due_accuracy"] = due_hits / len(data.dues) if data.dues else None

    hits = total = 0
    for notes, queries in data.retrieval:
        matrix = np.stack([await encoder.embed(note) for note in notes])
        for query, expected in queries:
            hits += int(np.argmax(matrix @ await encoder.embed(query))) == expected
            total += 1
    report["retrieval_top1"] = hits / total if total else None
    return report


def format_report(report: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    lines = [
        f"examples: {report['n']}",
        f"accuracy: {pct(report['accuracy'])}",
        f"macro-F1: {pct(report['macro_f1'])}",
        f"due-date accuracy: {pct(report['due_accuracy'])}",
        f"retrieval top-1: {pct(report['retrieval_top1'])}",
        "",
        f"{'intent':<14} {'precision':>9} {'recall':>7} {'n':>4}",
    ]
    for label, scores in report["per_intent"].items():
        if scores["n"]:
            lines.append(
                f"{label:<14} {scores['precision']:>9.1%} {scores['recall']:>7.1%} {scores['n']:>4}"
            )
    if report["confusion"]:
        lines += ["", "most confused (gold → predicted):"]
        lines += [f"  {g} → {p}: {count}" for g, p, count in report["confusion"][:10]]
    return "\n".join(lines)
