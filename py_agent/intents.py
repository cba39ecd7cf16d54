"""What the user wants, from a sentence embedding: a calibrated linear head over the encoder.

`python build.py models` trains the head (multinomial logistic regression on the int8
encoder's embeddings, temperature-scaled on a validation split) and writes it beside the
encoder; this module only runs it, in numpy, the same in Pyodide and CPython:

    probabilities = softmax((embedding @ weights + bias) / temperature)
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .platform import ResourceError, load_resource

INTENTS: tuple[str, ...] = (
    "task.add",
    "task.list",
    "task.complete",
    "task.delete",
    "note.add",
    "note.search",
    "note.list",
    "sync.now",
    "help",
    "greeting",
    "out_of_scope",
    "task.edit",
    "note.delete",
    "undo",
    "history",
)
POINTER_ROLE = "intent_head"
HEAD_FILE = "intent_head.npz"
NPZ_ARRAYS = ("weights", "bias", "temperature", "labels")


class IntentHeadError(ValueError):
    """Arrays that do not make an intent head, or an embedding it cannot take."""


@dataclass(frozen=True)
class IntentPrediction:
    intent: str
    confidence: float
    """The calibrated probability of ``intent``."""
    probabilities: dict[str, float]
    """Every label's calibrated probability, in the head's label order."""


class IntentHead:
    """A linear layer over sentence embeddings, softmax at a calibrated temperature."""

    def __init__(
        self,
        weights: NDArray[Any],
        bias: NDArray[Any],
        temperature: float,
        labels: Sequence[str],
    ) -> None:
        labels = tuple(labels)
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise IntentHeadError(f"labels must be non-empty strings, got {list(labels)!r}")
        if len(set(labels)) != len(labels):
            raise IntentHeadError(f"labels must be unique, got {list(labels)!r}")
        weights = np.asarray(weights)
        bias = np.asarray(bias)
        if weights.ndim != 2 or weights.shape[1] != len(labels) or weights.shape[0] < 1:
            raise IntentHeadError(
                f"weights must have shape (embedding size, {len(labels)} labels), "
                f"got {weights.shape}"
            )
        if bias.shape != (len(labels),):
            raise IntentHeadError(f"bias must have shape ({len(labels)},), got {bias.shape}")
        for name, array in (("weights", weights), ("bias", bias)):
            if not np.issubdtype(array.dtype, np.floating):
                raise IntentHeadError(f"{name} must be floats, got {array.dtype}")
            if not np.isfinite(array).all():
                raise IntentHeadError(f"{name} must be finite, but holds NaN or infinity")
        if isinstance(temperature, bool) or not isinstance(temperature, float | int | np.floating):
            raise IntentHeadError(f"temperature must be a number, got {temperature!r}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise IntentHeadError(f"temperature must be finite and > 0, got {temperature!r}")
        self.labels = labels
        self.temperature = float(temperature)
        # float64 for the maths: a 384-term dot product in float32 is good to ~1e-6, but
        # the head is small enough that exactness costs nothing.
        self._weights = weights.astype(np.float64)
        self._bias = bias.astype(np.float64)

    @property
    def embedding_size(self) -> int:
        return int(self._weights.shape[0])

    @classmethod
    def from_npz(cls, data: bytes) -> IntentHead:
        """The head in the .npz the model build writes (arrays weights, bias, temperature,
        labels); pickled arrays are refused."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                missing = [name for name in NPZ_ARRAYS if name not in npz.files]
                if missing:
                    raise IntentHeadError(
                        f"intent head .npz: missing {', '.join(missing)} "
                        f"(has {', '.join(sorted(npz.files)) or 'nothing'})"
                    )
                arrays = {name: npz[name] for name in NPZ_ARRAYS}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            if isinstance(exc, IntentHeadError):
                raise
            raise IntentHeadError(f"intent head .npz: cannot read it ({exc})") from exc
        temperature, labels = arrays["temperature"], arrays["labels"]
        if temperature.shape not in ((), (1,)) or not np.issubdtype(temperature.dtype, np.floating):
            raise IntentHeadError(
                f"intent head .npz: temperature must be one float, got {temperature.dtype} "
                f"of shape {temperature.shape}"
            )
        if labels.ndim != 1 or labels.dtype.kind != "U":
            raise IntentHeadError(
                f"intent head .npz: labels must be a 1-D unicode array, got {labels.dtype} "
                f"of shape {labels.shape}"
            )
        return cls(
            arrays["weights"],
            arrays["bias"],
            float(temperature.reshape(())),
            [str(label) for label in labels],
        )

    def logits(self, embedding: NDArray[Any]) -> NDArray[np.float64]:
        """Temperature-scaled logits, (x @ W + b) / T, for one embedding."""
        x = np.asarray(embedding)
        if x.shape != (self.embedding_size,):
            raise IntentHeadError(
                f"embedding must have shape ({self.embedding_size},), got {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
            raise IntentHeadError("embedding must be finite floats")
        scaled: NDArray[np.float64] = (x.astype(np.float64) @ self._weights + self._bias) / (
            self.temperature
        )
        return scaled

    def predict(self, embedding: NDArray[np.float32]) -> IntentPrediction:
        probabilities = softmax(self.logits(embedding))
        best = int(np.argmax(probabilities))
        return IntentPrediction(
            intent=self.labels[best],
            confidence=float(probabilities[best]),
            probabilities={
                label: float(p) for label, p in zip(self.labels, probabilities, strict=True)
            },
        )


def softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities: NDArray[np.float64] = shifted / shifted.sum(axis=-1, keepdims=True)
    return probabilities


def _head_file(manifest: Any, location: str) -> str:
    files = manifest.get("files") if isinstance(manifest, dict) else None
    entry = files.get(HEAD_FILE) if isinstance(files, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise IntentHeadError(f"{location}: 'files.{HEAD_FILE}.sha256' must be a string")
    sha256: str = entry["sha256"]
    return sha256


async def load_intent_head(models_root: str) -> IntentHead:
    """The head ``<models_root>/manifest.json`` names, its .npz checked against the sha256
    in the head's manifest.json; refused unless it was trained on the current encoder's
    embeddings for exactly this module's INTENTS.

    ``models_root`` is a directory natively and a URL path in the browser.
    """
    try:
        index = json.loads(await load_resource(f"{models_root}/manifest.json"))
    except ResourceError as exc:
        raise ResourceError(f"{exc} (build the models with `python build.py models`)") from exc
    ref = index.get(POINTER_ROLE) if isinstance(index, dict) else None
    if not isinstance(ref, str):
        raise IntentHeadError(
            f"{models_root}/manifest.json: {POINTER_ROLE!r} must name a model folder "
            "(build the models with `python build.py models`)"
        )
    folder = f"{models_root}/{ref}"
    location = f"{folder}/manifest.json"
    manifest = json.loads(await load_resource(location))
    if not isinstance(manifest, Mapping) or manifest.get("encoder") != index.get("encoder"):
        trained_on = manifest.get("encoder") if isinstance(manifest, Mapping) else None
        raise IntentHeadError(
            f"{location}: the head was trained on {trained_on!r} embeddings, but "
            f"{models_root}/manifest.json's encoder is {index.get('encoder')!r} "
            "(rebuild with `python build.py models`)"
        )
    data = await load_resource(f"{folder}/{HEAD_FILE}", _head_file(manifest, location))
    head = IntentHead.from_npz(data)
    if head.labels != INTENTS:
        raise IntentHeadError(
            f"{folder}/{HEAD_FILE}: trained for labels {list(head.labels)}, but py_agent "
            f"knows {list(INTENTS)} (rebuild with `python build.py models`)"
        )
    return head
