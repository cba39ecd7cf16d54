"""Export an encoder with torch, quantise it with onnxruntime, and measure the result against
sentence-transformers on data/eval/sentences.txt (the build fails if the fp32 export does not
reproduce it). torch and the rest are imported inside the functions: an up-to-date build
never calls them, and must not pay for the imports.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tools.build.encoders import (
    DEVICE_ENCODER,
    FP32,
    INT8,
    MIN_FP32_COSINE,
    OUTPUT,
    EncoderSpec,
    ExportJob,
    Floats,
    Log,
    Quality,
)
from tools.build.files import display
from tools.build.registry import ModelBuildError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer


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
