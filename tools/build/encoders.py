"""What the build exports as an encoder: the device's all-MiniLM-L6-v2 and the server's
all-mpnet-base-v2, their export settings, versions and manifests.

    models/all-minilm-l6-v2/<version>/    model.fp32.onnx  model.int8.onnx  vocab.txt
                                          manifest.json (hashes, tokenizer, quality)
    models/all-mpnet-base-v2/<version>/   model.fp32.onnx  vocab.txt  manifest.json

<version> hashes the source weights, config and vocab and the export settings, so an
unchanged rebuild only re-hashes files and skips the export (without importing torch, which
alone takes seconds).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tools.build.files import display, sha256_file
from tools.build.registry import ModelBuildError
from tools.build.sources import Source

MODEL_NAME = "all-minilm-l6-v2"
# What the version hashes, by role; tokenizer.json is read only to measure quality.
SOURCE_FILES = {"weights": "model.safetensors", "config": "config.json", "vocab": "vocab.txt"}
POINTER_ROLE = "encoder"

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

Floats = npt.NDArray[np.float32]
Log = Callable[[str], None]


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


def installed_settings() -> ExportSettings:
    # Versions from package metadata: importing torch only to ask would cost seconds.
    try:
        torch, ort = (importlib.metadata.version(name) for name in ("torch", "onnxruntime"))
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelBuildError(
            f"{exc.name} is not installed: pip install --editable '.[models]'"
        ) from None
    return ExportSettings(OPSET, QUANTIZATION, torch, ort)


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


def model_manifest(
    settings: ExportSettings,
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
        "export": settings.manifest(),
    }


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
