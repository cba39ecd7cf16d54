"""Checks that the host gives py_agent what it needs: numpy, the inference runtime,
the store and the server. The page shows them; the e2e tests assert on them."""

from __future__ import annotations

import platform as python_platform
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

import py_agent

from .agent import Agent
from .encoder import Encoder, EncoderError
from .platform import (
    PLATFORM_NAME,
    Delete,
    InferenceRuntime,
    Put,
    StoreError,
    Transport,
    TransportError,
    open_store,
)
from .skills import notes

SELF_CHECK_DB = "py_agent_selfcheck"


class FeedError(ValueError):
    """A model input given as JSON is malformed."""


def environment(runtime: InferenceRuntime) -> dict[str, Any]:
    return {
        "py_agent": py_agent.__version__,
        "python": python_platform.python_version(),
        "numpy": np.__version__,
        "platform": PLATFORM_NAME,
        "sys_platform": sys.platform,
        "runtime": runtime.name,
        "threads": runtime.threads,
    }


def array_from_json(name: str, feed: Any) -> NDArray[Any]:
    if not isinstance(feed, Mapping):
        raise FeedError(f"feed {name!r} must be an object with dtype, shape and data")
    missing = {"dtype", "shape", "data"} - set(feed)
    if missing:
        raise FeedError(f"feed {name!r} is missing {', '.join(sorted(missing))}")
    try:
        dtype = np.dtype(feed["dtype"])
        return np.asarray(feed["data"], dtype=dtype).reshape(tuple(feed["shape"]))
    except (TypeError, ValueError) as exc:
        raise FeedError(f"feed {name!r}: {exc}") from exc


def array_to_json(array: NDArray[Any]) -> dict[str, Any]:
    return {"dtype": str(array.dtype), "shape": list(array.shape), "data": array.ravel().tolist()}


async def run_model(
    runtime: InferenceRuntime, model: bytes, feeds: Mapping[str, Any]
) -> dict[str, Any]:
    arrays = {name: array_from_json(name, feed) for name, feed in feeds.items()}
    started = time.perf_counter()
    session = await runtime.create_session(model)
    created = time.perf_counter()
    outputs = await session.run(arrays)
    ran = time.perf_counter()
    return {
        "outputs": {name: array_to_json(value) for name, value in outputs.items()},
        "runtime": runtime.name,
        # Read after the session exists: that is when the runtime settles its threads.
        "threads": runtime.threads,
        "ms": {"create": (created - started) * 1000, "run": (ran - created) * 1000},
    }


async def embedding_latency(
    encoder: Encoder, texts: Sequence[str], warmup_s: float, seconds: float
) -> list[float]:
    """Milliseconds per text → embedding call, cycling through ``texts``.

    The first ``warmup_s`` seconds are not measured: wasm engines compile hot
    code again, faster, over the first second or so of calls.
    """
    if not texts:
        raise EncoderError("embedding_latency needs at least one text")
    times: list[float] = []
    for budget, keep in ((warmup_s, False), (seconds, True)):
        end = time.perf_counter() + budget
        i = 0
        while time.perf_counter() < end:
            started = time.perf_counter()
            await encoder.embed(texts[i % len(texts)])
            if keep:
                times.append((time.perf_counter() - started) * 1000)
            i += 1
    return times


async def note_search_latency(agent: Agent, queries: Sequence[str], seconds: float) -> list[float]:
    """Milliseconds per note search (cosine over every stored note, then ranking),
    given the question's embedding: the search step of a note.search turn."""
    embeddings = [await agent.encoder.embed(query) for query in queries]
    times: list[float] = []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        started = time.perf_counter()
        notes.search(agent.state, embeddings[i % len(embeddings)])
        times.append((time.perf_counter() - started) * 1000)
        i += 1
    return times


async def check_store(location: str) -> dict[str, Any]:
    """Write, read back and delete one record in its own transaction each."""
    key = uuid.uuid4().hex
    record = {"id": key, "written_at": time.time(), "vector": [0.5, -1.0, 2.0]}
    try:
        store = await open_store(location, ["checks"])
        try:
            await store.commit([Put("checks", key, record)])
            read_back = await store.get("checks", key)
            await store.commit([Delete("checks", key)])
            gone = await store.get("checks", key) is None
        finally:
            await store.close()
    except StoreError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": read_back == record and gone, "read_back": read_back == record, "deleted": gone}


async def check_server(transport: Transport) -> dict[str, Any]:
    try:
        response = await transport.request("GET", "/healthz", timeout_s=5.0)
    except TransportError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": response.status == 200, "status": response.status, "body": response.body}


async def self_check(
    runtime: InferenceRuntime, transport: Transport, store_location: str
) -> dict[str, Any]:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    numpy_ok = bool(np.allclose((a @ a.T).trace(), float((a * a).sum())))
    checks = {
        "numpy": {"ok": numpy_ok},
        "store": await check_store(store_location),
        "server": await check_server(transport),
    }
    return {
        "ok": all(check["ok"] for check in checks.values()),
        "checks": checks,
        "environment": environment(runtime),
    }
