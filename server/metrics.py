"""Prometheus metrics of the server, exposed at GET /metrics (text exposition format).

Each app has its own registry rather than prometheus_client's global one: tests build many
apps in one process, and a metric registered twice in one registry is an error.
"""

from __future__ import annotations

import secrets
from typing import cast

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response

from .api import BEARER_CHALLENGE, ApiError, bearer_token
from .settings import Settings
from .structured import FAILURE_REASONS

# Seconds: from a cached single request (~5 ms) to a long queue under load.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


class InferMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "py_agent_infer_requests",
            "POST /api/v1/infer requests by model and outcome (ok, invalid, unauthorized, "
            "rate_limited, unavailable, error)",
            ["model", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "py_agent_infer_latency_seconds",
            "Time to answer a successful POST /api/v1/infer, by model",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "py_agent_infer_batch_size",
            "Requests embedded together in one run of the server model",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "py_agent_infer_queue_depth",
            "Requests waiting for the next batch when the latest one joined",
            registry=registry,
        )
        self.installs = Counter(
            "py_agent_installs_created", "Install tokens handed out", registry=registry
        )
        # Structured readings (server/structured.py): attempted = used + failed.
        self.readings_attempted = Counter(
            "py_agent_structured_readings_attempted",
            "Requests the server model was unsure of, with a backend to ask",
            registry=registry,
        )
        self.readings_used = Counter(
            "py_agent_structured_readings_used",
            "Structured readings that answered the request",
            registry=registry,
        )
        self.readings_failed = Counter(
            "py_agent_structured_readings_failed",
            "Structured readings not used, by reason (the server model's reading stood)",
            ["reason"],
            registry=registry,
        )
        for reason in FAILURE_REASONS:  # every reason exported from the start, at 0
            self.readings_failed.labels(reason)


async def metrics(request: Request) -> Response:
    wanted = cast(Settings, request.app.state.settings).metrics_token
    if wanted is not None:
        given = bearer_token(request, "the server's PY_AGENT_METRICS_TOKEN")
        if not secrets.compare_digest(given.encode(), wanted.get_secret_value().encode()):
            raise ApiError(
                401,
                "that is not the metrics token",
                headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_token"'},
            )
    registry = cast(CollectorRegistry, request.app.state.metrics_registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
