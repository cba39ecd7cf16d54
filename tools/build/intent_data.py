"""The intent data: the files data/intents/splits.json lists for each split, read and checked
line by line ({"text": ..., "intent": ...})."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tools.build.files import display
from tools.build.registry import ModelBuildError

# valid chooses C and the temperature; test (the first, 11-intent test split) and heldout
# (the new test split, written by other writers than train and valid) are only measured.
SPLITS = ("train", "valid", "test", "heldout")
SPLITS_INDEX = "splits.json"
FITTED_SPLITS = ("train", "valid")  # need every intent: they fit and calibrate the head


@dataclass(frozen=True)
class Split:
    texts: tuple[str, ...]
    labels: npt.NDArray[np.intp]
    """Index of each text's intent in HeadSettings.labels."""


SplitFiles = Mapping[str, Sequence[tuple[Path, bytes]]]
"""Each split's files, in the order data/intents/splits.json lists them, with their bytes."""


def read_splits(folder: Path) -> SplitFiles:
    """The files ``folder/splits.json`` lists for each of SPLITS: {"train": ["train.jsonl",
    "written/train_a.jsonl", ...], "valid": [...], "test": [...], "heldout": [...]}."""
    index_path = folder / SPLITS_INDEX
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelBuildError(
            f"{display(index_path)} not found (it lists each split's files: "
            '{"train": ["train.jsonl", ...], "valid": [...], "test": [...], "heldout": [...]})'
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelBuildError(f"{display(index_path)}: invalid JSON ({exc})") from None
    data: dict[str, list[tuple[Path, bytes]]] = {}
    for split in SPLITS:
        names = index.get(split) if isinstance(index, dict) else None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ModelBuildError(f"{display(index_path)}: {split!r} must list one or more files")
        data[split] = []
        for name in names:
            path = folder / name
            try:
                data[split].append((path, path.read_bytes()))
            except FileNotFoundError:
                raise ModelBuildError(
                    f"{display(path)} not found (listed for the {split} split in "
                    f'{display(index_path)}: one {{"text": ..., "intent": ...}} per line)'
                ) from None
    return data


def data_sha256(data: SplitFiles) -> str:
    digest = hashlib.sha256()
    for split in SPLITS:
        for path, content in data[split]:
            digest.update(f"{split}/{path.name}\0".encode() + content + b"\0")
    return digest.hexdigest()


def parse_split(files: Sequence[tuple[Path, bytes]], split: str, labels: Sequence[str]) -> Split:
    index = {label: i for i, label in enumerate(labels)}
    texts: list[str] = []
    ids: list[int] = []
    for path, data in files:
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise ModelBuildError(f"{display(path)}: not UTF-8 ({exc})") from None
        read_lines(path, lines, index, texts, ids)
    counts = np.bincount(np.array(ids, dtype=np.intp), minlength=len(labels))
    absent = [label for label, count in zip(labels, counts, strict=True) if count == 0]
    # The first test split predates four of the intents; it is measured on those it has.
    if absent and split in FITTED_SPLITS:
        raise ModelBuildError(f"the {split} split has no examples of {', '.join(absent)}")
    return Split(tuple(texts), np.array(ids, dtype=np.intp))


def read_lines(
    path: Path, lines: Sequence[str], index: Mapping[str, int], texts: list[str], ids: list[int]
) -> None:
    labels = list(index)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{display(path)}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ModelBuildError(f"{where}: invalid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise ModelBuildError(f'{where}: expected {{"text": ..., "intent": ...}}')
        text, intent = row.get("text"), row.get("intent")
        if not isinstance(text, str) or not text.strip():
            raise ModelBuildError(f"{where}: 'text' must be a non-empty string, got {text!r}")
        if intent not in index:
            raise ModelBuildError(
                f"{where}: 'intent' must be one of {', '.join(labels)}; got {intent!r}"
            )
        texts.append(text)
        ids.append(index[str(intent)])


def normalized_text(text: str) -> str:
    return " ".join(text.casefold().split())


def overlap_with_train(splits: Mapping[str, Split]) -> dict[str, int]:
    """How many valid/test utterances also appear in train (ignoring case and spacing)."""
    seen = {normalized_text(text) for text in splits["train"].texts}
    return {
        split: sum(normalized_text(text) in seen for text in splits[split].texts)
        for split in SPLITS[1:]
    }
