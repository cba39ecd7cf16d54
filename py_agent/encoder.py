"""Sentence embeddings on the device: WordPiece ids → the ONNX encoder → mean pooling → L2 norm.

The same code runs with onnxruntime-web in the browser and onnxruntime in
CPython; only the platform layer's runtime and resource loader differ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .platform import InferenceRuntime, InferenceSession, ResourceError, load_resource
from .tokenizer import WordPieceTokenizer

Embedding = NDArray[np.float32]


class EncoderError(ValueError):
    """Bad text for the encoder, or a model manifest that does not describe an encoder."""


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str
    precision: str | None


@dataclass(frozen=True)
class ModelManifest:
    """A built model's manifest.json (written by `python build.py models`)."""

    name: str
    version: str
    embedding_size: int
    tokenizer: Mapping[str, Any]
    inputs: tuple[str, ...]
    output: str
    files: Mapping[str, ModelFile]

    @classmethod
    def parse(cls, data: Any, location: str) -> ModelManifest:
        def field(key: str, kind: type) -> Any:
            if not isinstance(data, dict) or key not in data:
                raise EncoderError(f"{location}: missing {key!r}")
            value = data[key]
            if not isinstance(value, kind):
                raise EncoderError(f"{location}: {key!r} must be {kind.__name__}")
            return value

        files = {}
        for name, entry in field("files", dict).items():
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
                raise EncoderError(f"{location}: 'files.{name}.sha256' must be a string")
            files[name] = ModelFile(name, entry["sha256"], entry.get("precision"))
        tokenizer = field("tokenizer", dict)
        if tokenizer.get("vocab") not in files:
            raise EncoderError(f"{location}: 'tokenizer.vocab' must name one of its files")
        if field("pooling", str) != "mean" or field("normalize", bool) is not True:
            raise EncoderError(f"{location}: only mean pooling with normalisation is supported")
        return cls(
            name=field("name", str),
            version=field("version", str),
            embedding_size=field("embedding_size", int),
            tokenizer=tokenizer,
            inputs=tuple(field("inputs", list)),
            output=field("output", str),
            files=files,
        )

    def model_file(self, precision: str) -> ModelFile:
        for file in self.files.values():
            if file.precision == precision:
                return file
        available = sorted(f.precision for f in self.files.values() if f.precision)
        raise EncoderError(f"{self.name}: no {precision} model (has {', '.join(available)})")


def mean_pool(hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
    """Average of the token vectors the attention mask keeps (sentence-transformers' pooling)."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    pooled: NDArray[np.float32] = (summed / counts).astype(np.float32)
    return pooled


def l2_normalize(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit: NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise EncoderError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise EncoderError("text is empty: there is nothing to embed")
    return text


class Encoder:
    def __init__(
        self, manifest: ModelManifest, tokenizer: WordPieceTokenizer, session: InferenceSession
    ) -> None:
        self.manifest = manifest
        self.tokenizer = tokenizer
        self._session = session

    @property
    def dimension(self) -> int:
        return self.manifest.embedding_size

    async def embed(self, text: str) -> Embedding:
        """One sentence on its own: int8 dynamic quantisation scales activations per
        batch, so a sentence embedded beside others would come out slightly different."""
        vectors = await self._run([self.tokenizer.encode(_check_text(text))])
        vector: Embedding = vectors[0]
        return vector

    async def embed_batch(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Many sentences in one padded run: faster for bulk work such as re-indexing."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return await self._run([self.tokenizer.encode(_check_text(text)) for text in texts])

    async def _run(self, ids: list[list[int]]) -> NDArray[np.float32]:
        width = max(len(row) for row in ids)
        # The padding id matters to MPNet, which numbers positions by it.
        pad_id = int(self.manifest.tokenizer.get("pad_id", 0))
        input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feeds = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(mask),
        }
        outputs = await self._session.run({name: feeds[name] for name in self.manifest.inputs})
        hidden = outputs[self.manifest.output]
        return l2_normalize(mean_pool(hidden, mask))


async def load_manifest(models_root: str, role: str = "encoder") -> tuple[str, ModelManifest]:
    """The encoder's folder and manifest, as named by ``<models_root>/manifest.json``'s
    ``role`` ("encoder": the device's; "server_encoder": the server's larger one).

    ``models_root`` is a directory natively and a URL path in the browser.
    """
    try:
        index = json.loads(await load_resource(f"{models_root}/manifest.json"))
    except ResourceError as exc:
        raise ResourceError(f"{exc} (build the models with `python build.py models`)") from exc
    if not isinstance(index, dict) or not isinstance(index.get(role), str):
        raise EncoderError(f"{models_root}/manifest.json: {role!r} must name a model folder")
    folder = f"{models_root}/{index[role]}"
    location = f"{folder}/manifest.json"
    return folder, ModelManifest.parse(json.loads(await load_resource(location)), location)


async def load_tokenizer(folder: str, manifest: ModelManifest) -> WordPieceTokenizer:
    settings = manifest.tokenizer
    vocab_file = manifest.files[settings["vocab"]]
    vocab = await load_resource(f"{folder}/{vocab_file.name}", vocab_file.sha256)
    special = settings.get("special_tokens")
    return WordPieceTokenizer.from_vocab_text(
        vocab.decode("utf-8"),
        lowercase=bool(settings.get("lowercase", True)),
        max_tokens=int(settings.get("max_tokens", 256)),
        max_chars_per_word=int(settings.get("max_chars_per_word", 100)),
        unk_token=str(settings.get("unk_token", "[UNK]")),
        cls_token=str(settings.get("cls_token", "[CLS]")),
        sep_token=str(settings.get("sep_token", "[SEP]")),
        **({"special_tokens": [str(t) for t in special]} if isinstance(special, list) else {}),
    )


async def load_encoder(
    models_root: str, runtime: InferenceRuntime, *, precision: str = "int8", role: str = "encoder"
) -> Encoder:
    """Load the encoder ``role`` names, every file checked against its manifest's sha256."""
    folder, manifest = await load_manifest(models_root, role)
    tokenizer = await load_tokenizer(folder, manifest)
    model = manifest.model_file(precision)
    session = await runtime.load_session(f"{folder}/{model.name}", model.sha256)
    return Encoder(manifest, tokenizer, session)
