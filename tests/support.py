"""Helpers shared by several test modules."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from py_agent.platform.interfaces import HttpResponse, TransportError

ROOT = Path(__file__).resolve().parents[1]


def load_build_module() -> ModuleType:
    # Loaded by path: "build" is also the name of a PyPI package that may be installed.
    spec = importlib.util.spec_from_file_location("build_py", ROOT / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_py"] = module
    spec.loader.exec_module(module)
    return module


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeWall:
    """A wall clock in milliseconds that the test sets by hand (for HybridClock)."""

    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class FakeClock:
    """A clock in seconds that only moves when the test advances it (for the server)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sync_app(
    tmp_path: Path, name: str, clock: FakeClock, **settings: Any
) -> tuple[httpx.AsyncClient, Any]:
    """The server app in-process on ``tmp_path/name``, its clocks faked, and an httpx
    client to it. Close both: ``await http.aclose(); await app.state.sync.store.close()``."""
    from server.app import create_app
    from server.settings import Settings

    settings.setdefault("sync_burst", 10_000)  # the fake clock never refills the bucket
    dist = tmp_path / "dist"
    dist.mkdir(exist_ok=True)
    (dist / "index.html").write_text("<!doctype html><title>py_agent</title>")
    app = create_app(
        Settings(dist_dir=dist, data_dir=tmp_path / name, **settings),
        clock=clock,
        wall_clock=clock,
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return http, app


class AppTransport:
    """The Transport over the server app in-process, with switches for failures."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.offline = False
        self.time_out = False  # requests get no answer before their deadline
        self.lose = 0  # the next n responses are lost after the server handled the request
        self.faults: list[tuple[int, dict[str, str]]] = []  # answered instead of the server
        self.gate: asyncio.Event | None = None
        self.waiting = 0
        self.arrived = asyncio.Event()  # set when a request waits at the gate
        self.sent: list[Any] = []  # bodies the server received
        self.timeouts: list[float] = []

    async def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> HttpResponse:
        self.timeouts.append(timeout_s)
        if self.gate is not None:
            self.waiting += 1
            self.arrived.set()
            await self.gate.wait()
        if self.offline:
            raise TransportError(f"{method} {url}: connection refused")
        if self.time_out:
            raise TransportError(f"{method} {url}: no answer in {timeout_s} s", timed_out=True)
        if self.faults:
            status, fault_headers = self.faults.pop(0)
            return HttpResponse(status, {"error": "injected fault"}, fault_headers)
        response = await self.http.request(method, url, json=body, headers=dict(headers or {}))
        self.sent.append(body)
        if self.lose:
            self.lose -= 1
            raise TransportError(f"{method} {url}: connection reset")
        # httpx iterates header names in lower case, as the real transports report them.
        return HttpResponse(response.status_code, response.json(), dict(response.headers))
