"""Train an intent head and write its folder: embed every split, fit on train, choose C and
the temperature on valid, measure test and heldout (never used to choose anything), and for
the server's head compare it with the device's.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tools.build.augment import augment, with_typo
from tools.build.embedding import embed_texts, server_inputs
from tools.build.encoders import Log
from tools.build.files import replace_dir, sha256_file
from tools.build.head_fit import (
    HeadFit,
    accuracy,
    confusion_pairs,
    expected_calibration_error,
    fit_head,
    head_probabilities,
    head_scores,
    macro_f1,
    mean_nll,
    softmax_rows,
)
from tools.build.heads import HEAD_FILE, SERVER_HEAD_ROLE, HeadKind, HeadSettings, Reference
from tools.build.intent_data import (
    SPLITS,
    Split,
    SplitFiles,
    data_sha256,
    overlap_with_train,
    parse_split,
)
from tools.build.registry import MANIFEST

# Device confidences below which the comparison hands an utterance to the server's head.
# Fixed here, not chosen: choosing them on test would be training on it.
FALLBACK_THRESHOLDS = (0.5, 0.7, 0.9)


def with_variants(split: Split, settings: HeadSettings, exclude: Sequence[str]) -> Split:
    """split plus the variants settings.augmentation makes of it."""
    if settings.augmentation is None:
        return split
    pairs = [
        (text, settings.labels[label])
        for text, label in zip(split.texts, split.labels.tolist(), strict=True)
    ]
    extra = augment(pairs, settings.augmentation, exclude)
    index = {label: i for i, label in enumerate(settings.labels)}
    labels = np.array([index[intent] for _, intent in extra], dtype=np.intp)
    return Split(
        split.texts + tuple(text for text, _ in extra), np.concatenate([split.labels, labels])
    )


def train_head(
    models: Path,
    log: Log,
    encoder: str,
    kind: HeadKind,
    data: SplitFiles,
    version: str,
    folder: Path,
    compared: Reference | None,
) -> dict[str, Any]:
    settings = kind.settings
    splits = {split: parse_split(data[split], split, settings.labels) for split in SPLITS}
    overlap = overlap_with_train(splits)
    written = len(splits["train"].texts)
    held_out = [text for split in SPLITS[1:] for text in splits[split].texts]
    splits["train"] = with_variants(splits["train"], settings, held_out)
    variants = len(splits["train"].texts) - written
    log(
        "data: "
        + ", ".join(f"{split} {len(splits[split].texts)}" for split in SPLITS)
        + f" utterances, {len(settings.labels)} intents; also in train: "
        + ", ".join(f"{count} of {split}" for split, count in overlap.items())
        + (f"; train holds {variants} variants of its {written}" if variants else "")
    )
    started = time.perf_counter()
    texts = [text for split in SPLITS for text in splits[split].texts]
    vectors = embed_texts(kind.embed, models, encoder, texts)
    seconds = time.perf_counter() - started
    log(
        f"embed: {len(texts)} utterances with {encoder} ({settings.embedding}) in "
        f"{seconds:.1f} s ({seconds / len(texts) * 1000:.2f} ms each)"
    )
    embeddings: dict[str, npt.NDArray[np.float64]] = {}
    offset = 0
    for split in SPLITS:
        embeddings[split] = vectors[offset : offset + len(splits[split].texts)].astype(np.float64)
        offset += len(splits[split].texts)

    started = time.perf_counter()
    fit = fit_head(
        embeddings["train"],
        splits["train"].labels,
        embeddings["valid"],
        splits["valid"].labels,
        settings.c_grid,
    )
    log(
        f"train: C {fit.c:g} chosen on valid from "
        + ", ".join(f"{c:g} ({accuracy:.1%}, NLL {nll:.3f})" for c, accuracy, nll in fit.grid)
        + f"; T {fit.temperature:.4f}; {time.perf_counter() - started:.1f} s"
    )
    metrics = head_metrics(fit, embeddings, splits, settings)
    comparison = None
    if compared is not None:
        started = time.perf_counter()
        comparison = compare_heads(models, encoder, kind, fit, splits, embeddings, compared)
        log(f"compare: with {compared.ref} ({time.perf_counter() - started:.1f} s)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{version}.building-"))
    staging.chmod(0o755)
    try:
        (staging / HEAD_FILE).write_bytes(
            npz_bytes(
                {
                    "weights": fit.weights,
                    "bias": fit.bias,
                    "temperature": np.float32(fit.temperature),
                    "labels": np.array(settings.labels, dtype=np.str_),
                }
            )
        )
        examples = {split: len(splits[split].texts) for split in SPLITS}
        manifest: dict[str, Any] = {
            "name": kind.name,
            "version": version,
            "encoder": encoder,
            **({"inputs": server_inputs(models, encoder)} if kind.role == SERVER_HEAD_ROLE else {}),
            "labels": list(settings.labels),
            "temperature": fit.temperature,
            "embedding_size": int(fit.weights.shape[0]),
            "files": {
                HEAD_FILE: {
                    "sha256": sha256_file(staging / HEAD_FILE),
                    "bytes": (staging / HEAD_FILE).stat().st_size,
                    **kind.files[HEAD_FILE],
                }
            },
            "metrics": metrics,
            "training": {
                "C": fit.c,
                "data_sha256": data_sha256(data),
                "examples": examples,
                **({"variants_in_train": variants} if settings.augmentation else {}),
                "also_in_train": overlap,
                **settings.manifest(),
            },
        }
        if comparison is not None:
            manifest["comparison"] = comparison
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        replace_dir(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def compare_heads(
    models: Path,
    encoder: str,
    kind: HeadKind,
    fit: HeadFit,
    splits: Mapping[str, Split],
    embeddings: Mapping[str, npt.NDArray[np.float64]],
    compared: Reference,
) -> dict[str, Any]:
    """The server's head beside the device's one on each test split, as each runs (the
    device's head on its int8 encoder's embeddings of single sentences), and on heldout with
    one typo in every utterance. "fallback" answers with the server's head where the
    device's head is less confident than a threshold, as the hybrid path does."""
    with np.load(models / compared.ref / HEAD_FILE, allow_pickle=False) as npz:
        device = (npz["weights"], npz["bias"], float(npz["temperature"]))
    server = (fit.weights, fit.bias, fit.temperature)
    test, heldout = splits["test"], splits["heldout"]
    typos = [with_typo(text) for text in heldout.texts]
    device_x = embed_texts(
        compared.kind.embed, models, compared.encoder, [*test.texts, *heldout.texts, *typos]
    )
    server_typos = embed_texts(kind.embed, models, encoder, typos)
    n, m, bins = len(test.texts), len(heldout.texts), kind.settings.ece_bins
    sets: dict[str, tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.intp]]] = {
        "test": (device_x[:n], embeddings["test"], test.labels),
        "heldout": (device_x[n : n + m], embeddings["heldout"], heldout.labels),
        "heldout_with_typos": (device_x[n + m :], server_typos, heldout.labels),
    }
    result: dict[str, Any] = {"device_head": compared.ref, "n": {"test": n, "heldout": m}}
    for name, (device_rows, server_rows, labels) in sets.items():
        on_device = head_probabilities(device, device_rows)
        on_server = head_probabilities(server, server_rows)
        device_right = on_device.argmax(axis=1) == labels
        server_right = on_server.argmax(axis=1) == labels
        fallback = []
        for threshold in FALLBACK_THRESHOLDS:
            unsure = on_device.max(axis=1) < threshold
            fallback.append(
                {
                    "below": threshold,
                    "handed_over": int(unsure.sum()),
                    "device_right": int(device_right[unsure].sum()),
                    "server_right": int(server_right[unsure].sum()),
                    "accuracy": round(
                        float(np.where(unsure, server_right, device_right).mean()), 6
                    ),
                }
            )
        result[name] = {
            "device": head_scores(on_device, labels, bins),
            "server": head_scores(on_server, labels, bins),
            "fallback": fallback,
        }
    return result


def head_metrics(
    fit: HeadFit,
    embeddings: Mapping[str, npt.NDArray[np.float64]],
    splits: Mapping[str, Split],
    settings: HeadSettings,
) -> dict[str, Any]:
    """Measured with the float32 arrays the npz ships, as the device will run them."""
    bins = settings.ece_bins

    def logits(split: str) -> npt.NDArray[np.float64]:
        z: npt.NDArray[np.float64] = embeddings[split] @ fit.weights.astype(np.float64)
        return z + fit.bias.astype(np.float64)

    valid = splits["valid"].labels
    raw_valid = logits("valid")
    t = fit.temperature
    valid_before, valid_after = softmax_rows(raw_valid), softmax_rows(raw_valid / t)

    def measured(split: str) -> dict[str, Any]:
        labels, raw = splits[split].labels, logits(split)
        before, after = softmax_rows(raw), softmax_rows(raw / t)
        predicted = after.argmax(axis=1)
        return {
            "accuracy": round(accuracy(after, labels), 6),
            "macro_f1": round(macro_f1(labels, predicted), 6),
            "ece": round(expected_calibration_error(after, labels, bins), 6),
            "ece_before": round(expected_calibration_error(before, labels, bins), 6),
            "nll": round(mean_nll(raw / t, labels), 6),
            "n": len(labels),
            "confusion_pairs": confusion_pairs(labels, predicted, settings.labels),
        }

    return {
        "valid": {
            "accuracy": round(accuracy(valid_after, valid), 6),
            "macro_f1": round(macro_f1(valid, valid_after.argmax(axis=1)), 6),
            "ece_before": round(expected_calibration_error(valid_before, valid, bins), 6),
            "ece_after": round(expected_calibration_error(valid_after, valid, bins), 6),
            "nll_before": round(mean_nll(raw_valid, valid), 6),
            "nll_after": round(mean_nll(raw_valid / t, valid), 6),
            "n": len(valid),
        },
        "test": measured("test"),
        "heldout": measured("heldout"),
    }


def npz_bytes(arrays: Mapping[str, npt.NDArray[Any] | np.generic]) -> bytes:
    """An .npz as np.savez writes it, but byte-for-byte reproducible (fixed timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w") as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()
