"""``py-agent eval``: how well the agent understands a labelled file, on CPython.

Lines are JSON objects of three kinds:

- ``{"text", "intent", ...}``: intent classification, and the slots the line states, each
  read from the text for the line's own (gold) intent: ``due_date`` (``YYYY-MM-DD`` or
  null) with ``due_time`` (``HH:MM``) and ``repeat`` (an RRULE, compared by its next
  occurrences, so ``FREQ=WEEKLY;BYDAY=MO`` and ``BYDAY=MO;FREQ=WEEKLY`` agree); ``title``
  and ``list`` for task.add (``list`` also for task.list); ``note_text`` for note.add. A
  dated line counts for ``due_accuracy`` only when its date, time and repeat rule are all
  right.
- ``{"notes": [...], "queries": [[text, index of the note that answers it], ...]}``: note
  search by meaning (``retrieval_top1``).
- ``{"tasks": [...], "queries": [[request, index of the task meant, or -1], ...]}``: the
  task a complete/delete/edit request acts on, decided as the skills decide it (act only on
  a clear match, ask when unsure): ``target_accuracy`` counts a request right when it acts
  on the task meant, or, for -1, when it acts on none; ``target_wrong_action`` is the share
  that acted on a task not meant (the harm an unclear match must not do).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

from py_agent.encoder import Encoder
from py_agent.intents import IntentHead
from py_agent.recurrence import RecurrenceError, canonical_rule, next_occurrence
from py_agent.skills.matching import AMBIGUITY_MARGIN, TASK_FLOORS
from py_agent.slots import edit_slots, list_query, note_text, target_slots, task_slots

# Enough occurrences to tell two rules apart (a yearly rule differs from a monthly one in
# its second).
RULE_OCCURRENCES = 6


class EvalFileError(ValueError):
    pass


@dataclass(frozen=True)
class Expected:
    """The slots one line states (None: not stated)."""

    text: str
    intent: str
    dated: bool = False
    due_date: str | None = None
    due_time: str | None = None
    repeat: str | None = None
    title: str | None = None
    list: str | None = None
    has_list: bool = False
    note_text: str | None = None


@dataclass
class EvalSet:
    intents: list[tuple[str, str]] = field(default_factory=list)
    # (text, due_date or None, due_time or None)
    dues: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    retrieval: list[tuple[list[str], list[tuple[str, int]]]] = field(default_factory=list)
    slots: list[Expected] = field(default_factory=list)
    targets: list[tuple[list[str], list[tuple[str, int]]]] = field(default_factory=list)


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
        if "tasks" in item:
            data.targets.append(_targets(item, where))
            continue
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
        data.slots.append(_expected(item, text, intent, where))
    return data


def _optional_text(item: dict[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise EvalFileError(f"{where}: {key!r} must be a string or null")
    return value


def _expected(item: dict[str, Any], text: str, intent: str, where: str) -> Expected:
    repeat = _optional_text(item, "repeat", where)
    if repeat is not None:
        try:
            repeat = canonical_rule(repeat)
        except RecurrenceError as exc:
            raise EvalFileError(f"{where}: 'repeat': {exc}") from None
    return Expected(
        text=text,
        intent=intent,
        dated="due_date" in item,
        due_date=_optional_text(item, "due_date", where),
        due_time=_optional_text(item, "due_time", where),
        repeat=repeat,
        title=_optional_text(item, "title", where),
        list=_optional_text(item, "list", where),
        has_list="list" in item,
        note_text=_optional_text(item, "note_text", where),
    )


def _targets(item: dict[str, Any], where: str) -> tuple[list[str], list[tuple[str, int]]]:
    tasks, queries = item.get("tasks"), item.get("queries")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise EvalFileError(f"{where}: 'tasks' must be a list of strings")
    if not isinstance(queries, list) or not all(
        isinstance(q, list)
        and len(q) == 2
        and isinstance(q[0], str)
        and isinstance(q[1], int)
        and -1 <= q[1] < len(tasks)
        for q in queries
    ):
        raise EvalFileError(f"{where}: 'queries' must be [[request, index of the task or -1], ...]")
    return tasks, [(q[0], q[1]) for q in queries]


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

    report.update(slot_report(data.slots, now))
    report.update(await target_report(data.targets, encoder))

    hits = total = 0
    for notes, queries in data.retrieval:
        matrix = np.stack([await encoder.embed(note) for note in notes])
        for query, expected in queries:
            hits += int(np.argmax(matrix @ await encoder.embed(query))) == expected
            total += 1
    report["retrieval_top1"] = hits / total if total else None
    return report


def _same_rule(expected: str | None, got: str | None, due: str | None) -> bool:
    """The same rule, judged by its next occurrences from the due date."""
    if expected is None or got is None:
        return expected == got
    if due is None:
        return canonical_rule(expected) == got
    day = date.fromisoformat(due)

    def occurrences(rule: str) -> list[date]:
        seen, current = [], day
        for _ in range(RULE_OCCURRENCES):
            current = next_occurrence(rule, current, current)
            seen.append(current)
        return seen

    return occurrences(expected) == occurrences(got)


def _same_words(expected: str, got: str) -> bool:
    """Equal but for spacing and the punctuation around the words."""
    edges = " .,;:!?\"'\u201c\u201d\u2018\u2019"
    return " ".join(expected.split()).strip(edges) == " ".join(got.split()).strip(edges)


def slot_report(lines: Sequence[Expected], now: datetime) -> dict[str, float | int | None]:
    """How often the slot readers give the slots each line states (for its gold intent)."""
    counts: dict[str, list[int]] = {
        name: [0, 0] for name in ("due", "repeat", "title", "list", "note_text")
    }

    def score(name: str, right: bool) -> None:
        counts[name][0] += int(right)
        counts[name][1] += 1

    for line in lines:
        if line.intent == "task.add":
            slots = task_slots(line.text, now)
            if line.dated:
                due = slots.due
                got_date = due.date.isoformat() if due else None
                got_time = due.time.strftime("%H:%M") if due and due.time else None
                right = got_date == line.due_date and got_time == line.due_time
                rule_right = _same_rule(line.repeat, slots.repeat, line.due_date)
                score("due", right and rule_right)
                if line.repeat is not None or slots.repeat is not None:
                    score("repeat", rule_right)
            if line.title is not None:
                score("title", _same_words(line.title, slots.title))
            if line.has_list:
                score("list", slots.list == line.list)
        elif line.intent == "task.list" and line.has_list:
            score("list", list_query(line.text) == line.list)
        elif line.intent == "note.add" and line.note_text is not None:
            score("note_text", _same_words(line.note_text, note_text(line.text)))
    result: dict[str, float | int | None] = {}
    for name, (hits, n) in counts.items():
        key = "due_accuracy" if name == "due" else f"{name}_accuracy"
        result[key] = hits / n if n else None
        result[f"{name}_n"] = n
    return result


async def target_report(
    blocks: Sequence[tuple[list[str], list[tuple[str, int]]]], encoder: Encoder
) -> dict[str, float | int | None]:
    """Which task each request would act on, by the skills' floors (see skills.matching)."""
    right = wrong = asked = total = 0
    for tasks, queries in blocks:
        matrix = np.stack([await encoder.embed(task) for task in tasks])
        for request, expected in queries:
            edit = edit_slots(request, datetime(2026, 1, 7, 10, 0))
            changes = edit.title or edit.due or edit.clear_due or edit.list or edit.repeat
            words = (edit.target if changes and edit.target else "") or target_slots(request).target
            scores = matrix @ await encoder.embed(words or request)
            order = np.argsort(-scores)
            best, second = float(scores[order[0]]), float(scores[order[1]])
            if best < TASK_FLOORS.match:
                acted = -1
            elif (second >= TASK_FLOORS.match and best - second < AMBIGUITY_MARGIN) or (
                best < TASK_FLOORS.clear
            ):
                acted, asked = -1, asked + 1
            else:
                acted = int(order[0])
            right += acted == expected
            wrong += acted not in (-1, expected)
            total += 1
    return {
        "target_accuracy": right / total if total else None,
        "target_wrong_action": wrong / total if total else None,
        "target_asked": asked / total if total else None,
        "target_n": total,
    }


def format_report(report: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    lines = [
        f"examples: {report['n']}",
        f"accuracy: {pct(report['accuracy'])}",
        f"macro-F1: {pct(report['macro_f1'])}",
        f"due-date accuracy: {pct(report['due_accuracy'])} of {report['due_n']}"
        f" (repeat rules {pct(report['repeat_accuracy'])} of {report['repeat_n']})",
        f"titles: {pct(report['title_accuracy'])} of {report['title_n']}, lists: "
        f"{pct(report['list_accuracy'])} of {report['list_n']}, note texts: "
        f"{pct(report['note_text_accuracy'])} of {report['note_text_n']}",
        f"retrieval top-1: {pct(report['retrieval_top1'])}",
        f"task targets: {pct(report['target_accuracy'])} right, "
        f"{pct(report['target_wrong_action'])} acted on the wrong task "
        f"(of {report['target_n']})",
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
