"""What the web worker exposes to the page (web/src/worker.js).

JSON text in and out, so no Python or JS proxy outlives a call.
"""

from __future__ import annotations

import json
from typing import Any

from . import diagnostics
from .platform import http_transport, inference_runtime

_runtime = inference_runtime()
# Relative URLs: the worker's fetch resolves them against the origin it was served from.
_transport = http_transport("")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def environment() -> str:
    return _dumps(diagnostics.environment(_runtime))


async def run_model(model: bytes | memoryview, feeds_json: str) -> str:
    feeds = json.loads(feeds_json)
    if not isinstance(feeds, dict):
        raise diagnostics.FeedError("feeds must be a JSON object of {name: {dtype, shape, data}}")
    return _dumps(await diagnostics.run_model(_runtime, bytes(model), feeds))


async def self_check() -> str:
    return _dumps(await diagnostics.self_check(_runtime, _transport, diagnostics.SELF_CHECK_DB))
