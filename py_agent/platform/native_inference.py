"""Native inference: onnxruntime on the CPU."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from .interfaces import InferenceError
from .native_files import load_resource


class OrtSession:
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.output_names = tuple(o.name for o in session.get_outputs())

    async def run(self, feeds: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        try:
            outputs = self._session.run(list(self.output_names), dict(feeds))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise InferenceError(str(exc)) from exc
        return {
            name: np.asarray(value) for name, value in zip(self.output_names, outputs, strict=True)
        }


class OrtRuntime:
    name = f"onnxruntime {ort.__version__}"

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads

    async def create_session(self, model: bytes) -> OrtSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InferenceError(f"cannot load model: {exc}") from exc
        return OrtSession(session)

    async def load_session(self, location: str, sha256: str) -> OrtSession:
        return await self.create_session(await load_resource(location, sha256))


def inference_runtime(threads: int = 1) -> OrtRuntime:
    return OrtRuntime(threads)
