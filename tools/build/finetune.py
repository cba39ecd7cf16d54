"""Fine-tune a sentence encoder on the intent data before it is exported: part of
`python build.py models` (tools/build/models.py calls `finetuned`).

Both encoders are tuned the same way, the device's all-MiniLM-L6-v2 and the server's
all-mpnet-base-v2: **cross-entropy through a linear layer over the L2-normalised mean-pooled
embedding** (logits = 20 · cosine to a per-intent direction, so the embedding itself learns
to separate intents), **plus a distillation term**, 1 - cos(embedding, the untuned model's
embedding of the same utterance), which keeps the embedding space the skills match titles
and notes in close to the original model's. The linear layer is thrown away; the build fits
the shipped head (logistic regression, temperature-calibrated) on the exported encoder's
own embeddings afterwards.

Why not SetFit's contrastive pairs (cosine-similarity loss on same/different-intent pairs):
measured on the 11-intent data, it reached 89.0% valid accuracy against 92.4% for
cross-entropy, and it collapsed each intent to a point, so note search by meaning fell from
14 of 14 to 2 of 14 queries on data/eval/retrieval.jsonl. Cross-entropy alone kept 13 of 14;
the distillation term keeps all 14 (see the README, "Understanding").

Tuning is cached outside the repository (``$PY_AGENT_CACHE``, default
``~/.cache/py_agent``), keyed by a hash of the base weights, the training texts and labels,
these settings and this file's revision, so a fresh clone on the same machine reuses it; a
tuned model is a sentence-transformers folder (safetensors, config, tokenizer), written to
a temporary folder and renamed into place, so an interrupted run leaves nothing that looks
finished.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tools.build.files import cache_root, sha256_file

# Bump when a change here changes what the tuning writes.
FINETUNE_REVISION = 1
REPORT = "finetune.json"
VOCAB = "vocab.txt"

Log = Callable[[str], None]


class FinetuneError(Exception):
    """The tuning could not run (bad data, missing torch): build.py prints the message."""


@dataclass(frozen=True)
class FinetuneSettings:
    epochs: int = 3
    learning_rate: float = 5e-5
    head_learning_rate: float = 2e-3
    batch_size: int = 32
    warmup: float = 0.06
    """Share of the steps over which the learning rate rises linearly; then it decays to 0."""
    weight_decay: float = 0.01
    logit_scale: float = 20.0
    distill: float = 0.3
    frozen_layers: int = 0
    """Transformer layers kept as they are, counted from the bottom (the word embeddings
    are always kept: a few thousand utterances would only move the words they contain)."""
    max_tokens: int = 64
    variants: int = 0
    """Variants (tools/build/augment.py: paraphrase, wrapper, typo, casing) added per training
    utterance, at most."""
    seed: int = 0

    def manifest(self) -> dict[str, Any]:
        return {**asdict(self), "revision": FINETUNE_REVISION}


@dataclass(frozen=True)
class TrainingSet:
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    """Index of each text's intent in ``names``."""
    names: tuple[str, ...]

    def sha256(self) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps(self.names).encode())
        for text, label in zip(self.texts, self.labels, strict=True):
            digest.update(f"{label}\0{text}\0".encode())
        return digest.hexdigest()


def finetune_key(base: Path, weights: str, data: TrainingSet, settings: FinetuneSettings) -> str:
    identity = {
        "base": sha256_file(base / weights),
        "data": data.sha256(),
        "settings": settings.manifest(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def finetuned(
    name: str,
    base: Path,
    weights: str,
    data: TrainingSet,
    settings: FinetuneSettings,
    log: Log,
) -> Path:
    """The folder of ``base`` tuned on ``data``: from the cache when it holds it, else
    tuned now (minutes on two cores) and stored there."""
    key = finetune_key(base, weights, data, settings)
    folder = cache_root() / "finetune" / f"{name}-{key}"
    if (folder / REPORT).is_file():
        report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
        log(
            f"finetune: {name}-{key} cached in {folder} (tuned in {report['seconds']:.0f} s "
            f"on {report['examples']} utterances)"
        )
        return folder
    log(f"finetune: tuning {name} on {len(data.texts)} utterances ({settings.epochs} epochs)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}-{key}.tuning-"))
    try:
        report = tune(base, staging, data, settings, log)
        (staging / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        staging.chmod(0o755)
        if folder.exists():  # a half-written folder from an interrupted run
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"finetune: wrote {folder} in {report['seconds']:.0f} s")
    return folder


def tune(
    base: Path, out: Path, data: TrainingSet, settings: FinetuneSettings, log: Log
) -> dict[str, Any]:
    if not data.texts or len(set(data.labels)) < 2:
        raise FinetuneError("fine-tuning needs utterances of at least two intents")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    random_order = random.Random(settings.seed)
    teacher = SentenceTransformer(str(base), device="cpu", local_files_only=True)
    student = SentenceTransformer(str(base), device="cpu", local_files_only=True)
    # Utterances are short: a shorter limit only bounds the odd long one's cost. The saved
    # model keeps its own limit, which inference uses.
    saved_limit = student.max_seq_length
    student.max_seq_length = teacher.max_seq_length = settings.max_tokens
    targets = torch.tensor(
        teacher.encode(
            list(data.texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True
        )
    )
    del teacher
    frozen = [f"layer.{i}." for i in range(settings.frozen_layers)]
    for parameter_name, parameter in student.named_parameters():
        if "word_embeddings" in parameter_name or any(f in parameter_name for f in frozen):
            parameter.requires_grad = False
    head = torch.nn.Linear(student.get_embedding_dimension() or 0, len(data.names))
    optimizer = torch.optim.AdamW(
        [
            {
                "params": [p for p in student.parameters() if p.requires_grad],
                "lr": settings.learning_rate,
            },
            {"params": list(head.parameters()), "lr": settings.head_learning_rate},
        ],
        weight_decay=settings.weight_decay,
    )
    order = list(range(len(data.texts)))
    steps = settings.epochs * math.ceil(len(order) / settings.batch_size)
    warmup = max(1, round(settings.warmup * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / steps))
    )
    labels = torch.tensor(data.labels)
    losses: list[float] = []
    student.train()
    for epoch in range(settings.epochs):
        random_order.shuffle(order)
        epoch_started, total = time.perf_counter(), 0.0
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            features = student.preprocess([data.texts[i] for i in batch])
            embedding = torch.nn.functional.normalize(
                student(features)["sentence_embedding"], dim=-1
            )
            loss = torch.nn.functional.cross_entropy(
                head(embedding) * settings.logit_scale, labels[batch]
            )
            if settings.distill:
                drift = 1 - (embedding * targets[batch]).sum(dim=-1)
                loss = loss + settings.distill * drift.mean()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            optimizer.zero_grad()
            schedule.step()
            total += loss.item() * len(batch)
        losses.append(total / len(order))
        log(
            f"finetune: epoch {epoch + 1}/{settings.epochs} mean loss {losses[-1]:.4f} "
            f"({time.perf_counter() - epoch_started:.0f} s)"
        )
    student.eval()
    student.max_seq_length = saved_limit
    student.save(str(out))
    # The vocabulary is the base's (the word embeddings are never tuned), and the export
    # and the browser read it as vocab.txt, which transformers' fast tokenizers no longer
    # write beside tokenizer.json.
    if (base / VOCAB).is_file() and not (out / VOCAB).is_file():
        shutil.copyfile(base / VOCAB, out / VOCAB)
    return {
        "base": str(base),
        "examples": len(data.texts),
        "intents": list(data.names),
        "data_sha256": data.sha256(),
        "settings": settings.manifest(),
        "steps": steps,
        "epoch_loss": [round(v, 6) for v in losses],
        "seconds": round(time.perf_counter() - started, 1),
    }


def training_set(pairs: Sequence[tuple[str, str]], names: Sequence[str]) -> TrainingSet:
    index = {name: i for i, name in enumerate(names)}
    return TrainingSet(
        tuple(text for text, _ in pairs), tuple(index[intent] for _, intent in pairs), tuple(names)
    )
