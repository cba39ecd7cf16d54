"""How the intent heads' training data is embedded: as the browser does for the device's head,
as the server does for the server's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tools.build.encoders import POINTER_ROLE, SERVER_ENCODER_ROLE, Floats
from tools.build.files import display
from tools.build.registry import MANIFEST, ModelBuildError

if TYPE_CHECKING:
    from py_agent.encoder import Encoder

# The browser app's default thread count (the int8 kernels' results may depend on it).
EMBED_THREADS = 2
DEVICE_EMBEDDING = (
    f"int8 encoder via py_agent.encoder, one sentence at a time, {EMBED_THREADS} threads"
)
SERVER_BATCH = 32
SERVER_EMBEDDING = (
    "fp32 device encoder and fp32 server encoder side by side, via py_agent.encoder, "
    f"padded batches of {SERVER_BATCH}"
)

Embedder = Callable[[Path, str, Sequence[str]], Floats]
"""(models folder, "<encoder name>/<version>", texts) -> one embedding row per text."""


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


def embed_texts(embed: Embedder, models: Path, encoder: str, texts: Sequence[str]) -> Floats:
    vectors = np.asarray(embed(models, encoder, texts), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts) or not np.isfinite(vectors).all():
        raise ModelBuildError(
            f"the encoder gave embeddings of shape {vectors.shape} for {len(texts)} texts"
        )
    return vectors
