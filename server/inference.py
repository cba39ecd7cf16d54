"""The server's intent model: the server head `python build.py models` trained, over the
fp32 embeddings of both tuned encoders side by side -- the device's all-MiniLM-L6-v2 and the
server's own all-mpnet-base-v2 (the head manifest's ``inputs``) -- run by native onnxruntime
through py_agent.encoder.

One ONNX session serves every request. Requests are **micro-batched**: a request that
arrives while a batch is running waits for the next one, and that batch embeds everything
that queued up meanwhile (up to ``max_batch``) in one padded run. The fp32 model gives the
same embedding padded in a batch as alone (the model build checks it), so a request's answer
does not depend on its batch-mates. Inference runs on a thread of its own, with its own
event loop for py_agent's async encoder, so the server's event loop keeps serving while the
model computes.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from py_agent.encoder import EncoderError, load_encoder
from py_agent.intents import INTENTS, IntentHead, IntentHeadError, IntentPrediction
from py_agent.platform import InferenceError, ResourceError, inference_runtime, load_resource

T = TypeVar("T")

# The keys `python build.py models` writes in models/manifest.json.
POINTER_ROLE = "server_head"
ENCODER_ROLE = "server_encoder"
HEAD_FILE = "intent_head.npz"
MAX_BATCH = 32
BUILD_HINT = "build it with `python build.py models`"

Embed = Callable[[Sequence[str]], Awaitable[NDArray[np.float32]]]


class ModelUnavailable(Exception):
    """The server model is not built, or its files do not check out: answered with a 503."""


@dataclass(frozen=True)
class ServerModel:
    name: str
    """The head's "server-head/<version>": what answers name as their model."""
    embed: Embed
    """Texts → one normalised embedding row each, in one padded run."""
    head: IntentHead


async def load_server_model(models: Path, threads: int) -> ServerModel:
    """The server head ``<models>/manifest.json`` names and the fp32 encoder it was trained
    on, every file checked against its sha256."""
    root = str(models)
    try:
        index = json.loads(await load_resource(f"{root}/manifest.json"))
        ref = index.get(POINTER_ROLE) if isinstance(index, dict) else None
        if not isinstance(ref, str):
            raise ModelUnavailable(f"{root}/manifest.json names no {POINTER_ROLE}: {BUILD_HINT}")
        location = f"{root}/{ref}/manifest.json"
        manifest = json.loads(await load_resource(location))
        # The server's own encoder when the build made one, else the device's in fp32.
        role = ENCODER_ROLE if isinstance(index.get(ENCODER_ROLE), str) else "encoder"
        if not isinstance(manifest, dict) or manifest.get("encoder") != index.get(role):
            raise ModelUnavailable(
                f"{location}: trained on another encoder than {root}/manifest.json names; "
                + BUILD_HINT
            )
        entry = manifest.get("files", {}).get(HEAD_FILE)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise ModelUnavailable(f"{location}: no sha256 for {HEAD_FILE}; {BUILD_HINT}")
        head = IntentHead.from_npz(
            await load_resource(f"{root}/{ref}/{HEAD_FILE}", entry["sha256"])
        )
        if head.labels != INTENTS:
            raise ModelUnavailable(
                f"{root}/{ref}: trained for labels {list(head.labels)}, not py_agent's; "
                + BUILD_HINT
            )
        inputs = manifest.get("inputs", [role])
        if not isinstance(inputs, list) or not all(isinstance(index.get(r), str) for r in inputs):
            raise ModelUnavailable(f"{location}: 'inputs' must name encoder roles; {BUILD_HINT}")
        runtime = inference_runtime(threads)
        encoders = [
            await load_encoder(root, runtime, precision="fp32", role=str(name)) for name in inputs
        ]
    except (ResourceError, EncoderError, IntentHeadError, InferenceError, ValueError) as exc:
        # ResourceError and IntegrityError name the file; JSON errors are ValueErrors.
        raise ModelUnavailable(f"server model: {exc} ({BUILD_HINT})") from exc
    if head.embedding_size != sum(encoder.dimension for encoder in encoders):
        raise ModelUnavailable(f"{root}/{ref}: head and encoder sizes differ; {BUILD_HINT}")

    async def embed(texts: Sequence[str]) -> NDArray[np.float32]:
        # The head reads its encoders' embeddings side by side, in its manifest's order.
        parts = [await encoder.embed_batch(texts) for encoder in encoders]
        return np.hstack(parts)

    return ServerModel(ref, embed, head)


def find_server_model(models: Path) -> str:
    """The server model ``models`` holds, named without loading it, e.g.
    "server-head/<version> on all-minilm-l6-v2/<version> + all-mpnet-base-v2/<version>", for
    `py-agent serve` to say at start-up. Raises ModelUnavailable with the reason when the
    manifests name none; the files and their sha256 are checked when the model loads."""
    index_path = models / "manifest.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        ref = index.get(POINTER_ROLE) if isinstance(index, dict) else None
        if not isinstance(ref, str):
            raise ModelUnavailable(f"{index_path} names no {POINTER_ROLE}")
        manifest = json.loads((models / ref / "manifest.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelUnavailable(f"{exc.filename}: {exc.strerror}") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        raise ModelUnavailable(f"{index_path}: {exc}") from None
    role = ENCODER_ROLE if isinstance(index.get(ENCODER_ROLE), str) else "encoder"
    inputs = manifest.get("inputs", [role]) if isinstance(manifest, dict) else [role]
    encoders = [str(index.get(name)) for name in inputs] if isinstance(inputs, list) else []
    return f"{ref} on {' + '.join(encoders)}"


class InferenceThread:
    """A thread running an event loop of its own, for coroutines that block while they
    compute (py_agent's encoder awaits onnxruntime, which computes synchronously)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="inference")
        self._thread.start()

    async def run(self, work: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await work

        future = asyncio.run_coroutine_threadsafe(wrapped(), self._loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class Batcher:
    """Predictions for texts, micro-batched on one inference thread.

    Each batch is split into runs of texts of similar length (see `similar_lengths`).
    ``on_batch(size)`` is called (on the event loop) before each run of the session and
    ``on_queue(depth)`` whenever a request joins the queue: the metrics count batches and
    queue depth with them, and tests see batching happen without timing anything.
    """

    def __init__(
        self,
        model: ServerModel,
        thread: InferenceThread,
        *,
        max_batch: int = MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.model = model
        self.max_batch = max_batch
        self._thread = thread
        self.on_batch = on_batch
        self.on_queue = on_queue
        self._queue: list[tuple[str, asyncio.Future[IntentPrediction]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def predict(self, text: str) -> IntentPrediction:
        future: asyncio.Future[IntentPrediction] = asyncio.get_running_loop().create_future()
        self._queue.append((text, future))
        if self.on_queue is not None:
            self.on_queue(len(self._queue))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            # A caller that went away (client disconnect) needs no answer.
            for run in similar_lengths([item for item in batch if not item[1].done()]):
                await self._run(run)

    async def _run(self, run: list[tuple[str, asyncio.Future[IntentPrediction]]]) -> None:
        if self.on_batch is not None:
            self.on_batch(len(run))
        try:
            vectors = await self._thread.run(self.model.embed([text for text, _ in run]))
            predictions = [self.model.head.predict(vector) for vector in vectors]
        except Exception as exc:  # every waiting request gets the error, none hangs
            for _, future in run:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), prediction in zip(run, predictions, strict=True):
            if not future.done():
                future.set_result(prediction)


def similar_lengths(items: list[tuple[str, T]]) -> list[list[tuple[str, T]]]:
    """items split into runs of texts of similar length, shortest first. Every row of a
    padded batch costs as much as its longest: one 1,000-character request would make
    fifteen short ones beside it cost as much as it. A run takes texts up to twice its
    shortest plus 32 characters (a short request is mostly the model's fixed cost)."""
    runs: list[list[tuple[str, T]]] = []
    for item in sorted(items, key=lambda item: len(item[0])):
        if runs and len(item[0]) <= 2 * len(runs[-1][0][0]) + 32:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs
