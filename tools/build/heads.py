"""The intent heads: what each is (settings, files, where it goes), its version, and the report
of its manifest.

    models/intent-head/<version>/    intent_head.npz  manifest.json (labels, temperature,
                                     metrics, training)
    models/server-head/<version>/    the same, for the server (not shipped to the browser),
                                     with a comparison to the device's head

The device's head (py_agent/intents.py runs it) is a multinomial logistic regression over the
embeddings the device computes; the server's (server/inference.py runs it for
POST /api/v1/infer) is trained the same way on the server's embeddings of the train split
plus variants of it (tools/build/augment.py). Its <version> hashes the encoders it reads, the
data files and the training settings, so unchanged inputs skip the training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.build.augment import Augmentation
from tools.build.embedding import DEVICE_EMBEDDING, SERVER_EMBEDDING, Embedder, server_inputs
from tools.build.registry import MANIFEST

HEAD_NAME = "intent-head"
HEAD_ROLE = "intent_head"
HEAD_FILE = "intent_head.npz"
HEAD_FILES: dict[str, dict[str, Any]] = {HEAD_FILE: {"browser": True}}
# Bump when a change to the training code changes what it writes: it is part of the version.
HEAD_REVISION = 3
# C as in scikit-learn: the objective is sum of cross-entropies + ||W||^2 / (2 C).
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
ECE_BINS = 15

SERVER_HEAD_NAME = "server-head"
SERVER_HEAD_ROLE = "server_head"
SERVER_HEAD_FILES: dict[str, dict[str, Any]] = {HEAD_FILE: {"browser": False}}
# Above 100 the augmented set is close to separable: L-BFGS no longer converges within its
# iteration limit, and valid accuracy already falls after C 10.
SERVER_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


@dataclass(frozen=True)
class HeadSettings:
    """Everything besides the data and the encoder that decides what the training writes."""

    labels: tuple[str, ...]
    c_grid: tuple[float, ...] = C_GRID
    ece_bins: int = ECE_BINS
    revision: int = HEAD_REVISION
    embedding: str = DEVICE_EMBEDDING
    augmentation: Augmentation | None = None
    """Variants of the train split added to it (the server's head)."""

    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = {
            "model": "multinomial logistic regression, L2 penalty (bias unpenalised)",
            "solver": "scikit-learn LogisticRegression (L-BFGS), warm-started along the C grid",
            "c_grid": list(self.c_grid),
            "c_selection": "highest valid accuracy, ties to the lowest valid NLL",
            "calibration": "temperature minimising valid NLL (scipy bounded Brent on log T)",
            "ece_bins": self.ece_bins,
            "embedding": self.embedding,
        }
        if self.augmentation is not None:
            manifest["augmentation"] = self.augmentation.manifest()
        return manifest


@dataclass(frozen=True)
class HeadKind:
    """One intent head the build trains: where it goes, how its data is embedded."""

    name: str
    """Its folder under models/, e.g. intent-head."""
    role: str
    """Its key in models/manifest.json."""
    files: Mapping[str, Mapping[str, Any]]
    settings: HeadSettings
    embed: Embedder


@dataclass(frozen=True)
class IntentConfig:
    data: Path
    """Holds train.jsonl, valid.jsonl and test.jsonl: one {"text", "intent"} per line."""
    settings: HeadSettings
    embed: Embedder
    server: tuple[HeadSettings, Embedder] | None = None
    """The server's head, trained after the device's one and compared with it."""

    def device_head(self) -> HeadKind:
        return HeadKind(HEAD_NAME, HEAD_ROLE, HEAD_FILES, self.settings, self.embed)

    def server_head(self) -> HeadKind | None:
        if self.server is None:
            return None
        settings, embed = self.server
        return HeadKind(SERVER_HEAD_NAME, SERVER_HEAD_ROLE, SERVER_HEAD_FILES, settings, embed)


@dataclass(frozen=True)
class Reference:
    """The device's head, which the server's head is compared with."""

    kind: HeadKind
    ref: str
    """Its "intent-head/<version>"."""
    encoder: str
    """The "<name>/<version>" of the encoder it reads."""


def server_settings(labels: tuple[str, ...]) -> HeadSettings:
    return HeadSettings(
        labels, c_grid=SERVER_C_GRID, embedding=SERVER_EMBEDDING, augmentation=Augmentation()
    )


def head_version(
    encoder: str, data_hash: str, settings: HeadSettings, compared_with: str | None = None
) -> str:
    identity: dict[str, Any] = {
        "encoder": encoder,
        "data": data_hash,
        "settings": {
            **settings.manifest(),
            "labels": list(settings.labels),
            "revision": settings.revision,
        },
    }
    if compared_with is not None:  # the comparison in the manifest is part of what it writes
        identity["compared_with"] = compared_with
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def input_refs(models: Path, encoder: str, role: str) -> str:
    """What a head's version names as its encoder: ``encoder``, or for the server's head
    every encoder it reads ("a/1+b/2"), so a new device encoder makes a new server head."""
    if role != SERVER_HEAD_ROLE:
        return encoder
    pointer = json.loads((models / MANIFEST).read_text(encoding="utf-8"))
    return "+".join(str(pointer[name]) for name in server_inputs(models, encoder))


def head_report(manifest: Mapping[str, Any]) -> list[str]:
    valid = manifest["metrics"]["valid"]
    head = str(manifest["name"]).replace("-", " ")
    lines = [
        f"{head} (C {manifest['training']['C']:g}, T {manifest['temperature']:.4f}): "
        f"valid ({valid['n']}) accuracy {valid['accuracy']:.1%}, macro-F1 "
        f"{valid['macro_f1']:.3f}, ECE {valid['ece_before']:.3f} before T -> "
        f"{valid['ece_after']:.3f} after, NLL {valid['nll_before']:.3f} -> "
        f"{valid['nll_after']:.3f}",
    ]
    for split in ("test", "heldout"):
        scores = manifest["metrics"][split]
        pairs = ", ".join(
            f"{true} -> {predicted} x{count}"
            for true, predicted, count in scores["confusion_pairs"]
        )
        lines.append(
            f"{head}: {split} ({scores['n']}) accuracy {scores['accuracy']:.1%}, macro-F1 "
            f"{scores['macro_f1']:.3f}, ECE {scores['ece']:.3f} (before T "
            f"{scores['ece_before']:.3f}), NLL {scores['nll']:.3f}; top confusions "
            f"(true -> predicted): {pairs or 'none'}"
        )
    comparison: Mapping[str, Any] = manifest.get("comparison") or {}
    for name in ("test", "heldout", "heldout_with_typos") if comparison else ():
        scores = comparison[name]
        device, server = scores["device"], scores["server"]
        fallback = "; ".join(
            f"device below {f['below']:g}: {f['handed_over']} handed over, "
            f"{f['device_right']} -> {f['server_right']} right, accuracy {f['accuracy']:.1%}"
            for f in scores["fallback"]
        )
        lines.append(
            f"{head} vs {comparison['device_head']} on {name.replace('_', ' ')}: accuracy "
            f"{device['accuracy']:.1%} -> {server['accuracy']:.1%}, macro-F1 "
            f"{device['macro_f1']:.3f} -> {server['macro_f1']:.3f}, ECE {device['ece']:.3f} -> "
            f"{server['ece']:.3f}; as the fallback: {fallback}"
        )
    return lines
