"""`python build.py models`: fine-tune and export the encoders, then train the intent heads
over them, each step skipped when its inputs are unchanged.

    models/manifest.json     {"encoder": "all-minilm-l6-v2/<version>",
                              "intent_head": "intent-head/<version>",
                              "server_encoder": "all-mpnet-base-v2/<version>",
                              "server_head": "server-head/<version>"}

The encoders come from PyPI packages (tools/build/sources.py; nothing is fetched from a
model hub), are fine-tuned on the intent data (tools/build/finetune.py, cached outside the
repository), exported to ONNX and measured (tools/build/encoders.py, export.py). Each head
is then fitted on the embeddings its encoders compute (tools/build/heads.py,
head_training.py); the heads are cached outside the repository too.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.build.augment import Augmentation, augment
from tools.build.embedding import embed_for_server, embed_on_device
from tools.build.encoders import (
    DEVICE_ENCODER,
    MIN_FP32_COSINE,
    POINTER_ROLE,
    SERVER_ENCODER,
    SERVER_ENCODER_ROLE,
    SOURCE_FILES,
    VOCAB,
    EncoderSpec,
    Exporter,
    ExportJob,
    ExportSettings,
    Log,
    installed_settings,
    model_manifest,
    model_version,
    quality_report,
    read_sentences,
    source_hashes,
)
from tools.build.export import export_and_evaluate
from tools.build.files import cache_root, copy_dir, display, replace_dir
from tools.build.finetune import FinetuneError, FinetuneSettings, finetuned, training_set
from tools.build.heads import (
    HEAD_FILE,
    HEAD_FILES,
    HEAD_NAME,
    HEAD_ROLE,
    SERVER_HEAD_FILES,
    SERVER_HEAD_NAME,
    SERVER_HEAD_ROLE,
    HeadKind,
    HeadSettings,
    IntentConfig,
    Reference,
    head_report,
    head_version,
    input_refs,
    server_settings,
)
from tools.build.intent_data import SPLITS, data_sha256, parse_split, read_splits
from tools.build.registry import (
    MANIFEST,
    ModelBuildError,
    current_head,
    current_model,
    read_manifest,
    stale_reason,
    write_pointer,
)
from tools.build.sources import Source, SourceError, minilm_source, mpnet_source

# Chosen on valid (README, "Understanding"): the device's whole small encoder is tuned; of
# the server's, the top half (below it, MPNet's general features stay as they are, and a
# step costs half as much).
DEVICE_TUNING = FinetuneSettings(epochs=3, learning_rate=5e-5, distill=1.0, variants=1)
SERVER_TUNING = FinetuneSettings(epochs=2, learning_rate=4e-5, distill=0.3, frozen_layers=6)


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
        server_encoder = current_model(cfg.models, SERVER_ENCODER.role, SERVER_ENCODER.files) or ""
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
        manifest = model_manifest(cfg.settings, source, spec, version, hashes, staging, quality)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        replace_dir(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


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
        # Imported only to train: scikit-learn and scipy cost an up-to-date build a second.
        from tools.build.head_training import train_head

        manifest = train_head(cfg.models, cfg.log, encoder, kind, data, version, folder, compared)
        copy_dir(folder, cached)
        cfg.log(f"models: wrote {display(folder)} in {time.perf_counter() - started:.1f} s")
    for line in head_report(manifest):
        cfg.log(line)
    return manifest
