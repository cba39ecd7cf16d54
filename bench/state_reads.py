"""Heavy state reads against the real server on 127.0.0.1 (issue 15, row 2).

    python -m bench.state_reads [--ops 54000] [--probes 200] [--tree DIR] [--phase after]
    git worktree add /tmp/state-before 22b2549   # the code before pagination, then:
    python -m bench.state_reads --tree /tmp/state-before --phase before

One device pushes ``--ops`` ops of about 1 KB, one record each (batches of 1,000 through
/api/v1/sync). Then: the whole state is read page by page (``next`` until null; an answer
without ``next`` is the whole state: the code before pagination) as the first read after
a server restart, with ``/healthz`` probed meanwhile, and again warm; then two clients
loop reading the whole state while a third probes ``/healthz`` ``--probes`` times after a
warm-up. Readers and prober are separate processes, so parsing 50 MB of JSON in one does
not delay another's clock. The server is `py-agent serve` from the tree measured
(``--tree``: this repo's by default, or a ``git worktree`` of another commit; the figures
committed for ``22b2549`` and ``fe2405d`` ran its app under a bare uvicorn), with the sync
and state rate limits raised so they throttle nothing.
The machine's load average is recorded, and a run waits (up to 10 minutes) for it to fall
under 1.5 first. Writes the run as ``before`` or ``after`` in bench/results/state_reads.json,
keeping the other.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx

from py_agent.sync.hlc import HybridClock, system_wall_ms
from py_agent.sync.ops import new_op
from server.settings import Settings

from . import phases, report
from .sync import wait_until_idle

BATCH = 1000
MAX_LOAD = 1.5
WARMUP_PROBES = 20
# Raised so that neither a push of 1,000 1 KB ops nor a reader looping is refused.
SETTINGS = {
    "PY_AGENT_MAX_BODY_BYTES": str(4 * 1024 * 1024),
    "PY_AGENT_SYNC_RATE_PER_S": "1000",
    "PY_AGENT_SYNC_BURST": "1000",
    "PY_AGENT_STATE_READS_PER_MIN": "1000000",
}


def push(http: httpx.Client, device: dict[str, str], ops: int) -> int:
    """Pushes ``ops`` ops of about 1 KB, one record each; the bytes sent."""
    clock = HybridClock(device["device_id"], system_wall_ms)
    headers = {"Authorization": f"Bearer {device['token']}", "Content-Type": "application/json"}
    sent = 0
    for start in range(0, ops, BATCH):
        batch = [
            new_op(
                clock,
                collection="notes",
                record_id=f"n{i:07d}",
                field="body",
                value=f"note {i} " + "x" * 960,
            ).to_json()
            for i in range(start, min(ops, start + BATCH))
        ]
        body = json.dumps({"cursor": None, "ops": batch}).encode()
        http.post("/api/v1/sync", content=body, headers=headers).raise_for_status()
        sent += len(body)
    return sent


def populate(url: str, ops: int) -> dict[str, str]:
    """A space of ``ops`` ops of about 1 KB; its reading devices' tokens."""
    with httpx.Client(base_url=url, timeout=120) as http:
        code = http.post("/api/v1/spaces").json()["pairing_code"]
        devices = []
        for name in ("writer", "reader-1", "reader-2", "reader-3"):
            answer = http.post("/api/v1/devices", json={"pairing_code": code, "name": name})
            answer.raise_for_status()
            devices.append(answer.json())
        push(http, devices[0], ops)
        return {
            "space_id": devices[0]["space_id"],
            **{f"token{i}": d["token"] for i, d in enumerate(devices[1:], 1)},
        }


def read_whole(http: httpx.Client, space_id: str, token: str) -> tuple[int, int, int]:
    """Reads every page: (records, pages, bytes)."""
    path = f"/api/v1/spaces/{space_id}/state"
    headers = {"Authorization": f"Bearer {token}"}
    records = pages = size = 0
    after: str | None = None
    while True:
        answer = http.get(path, params={} if after is None else {"after": after}, headers=headers)
        answer.raise_for_status()
        body = answer.json()
        pages += 1
        size += len(answer.content)
        records += sum(len(shown) for shown in body["records"].values())
        after = body.get("next")  # no "next": the old /state, the whole state at once
        if after is None:
            return records, pages, size


def reader(url: str, space_id: str, token: str, stop: Event, out: Connection) -> None:
    """A client reading the whole state over and over until ``stop``; sends each read's
    (seconds, records, pages, bytes)."""
    with httpx.Client(base_url=url, timeout=300) as http:
        while True:
            started = time.perf_counter()
            records, pages, size = read_whole(http, space_id, token)
            out.send((time.perf_counter() - started, records, pages, size))
            if stop.is_set():
                return


@contextmanager
def readers(url: str, space: dict[str, str], tokens: list[str]) -> Iterator[list[Connection]]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    pipes, processes = [], []
    for token in tokens:
        mine, theirs = context.Pipe(duplex=False)
        process = context.Process(target=reader, args=(url, space["space_id"], token, stop, theirs))
        process.start()
        pipes.append(mine)
        processes.append(process)
    try:
        yield pipes
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=600)


def probe(http: httpx.Client) -> float:
    started = time.perf_counter()
    http.get("/healthz").raise_for_status()
    return (time.perf_counter() - started) * 1000


def latency(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": round(statistics.median(values), 1),
        "p95": round(report.percentile(values, 95), 1),
        "max": round(max(values), 1),
    }


def wait_for_quiet() -> float:
    """The 1-minute load average once it is under MAX_LOAD (waits up to 10 minutes)."""
    deadline = time.monotonic() + 600
    while True:
        load = os.getloadavg()[0]
        if load < MAX_LOAD or time.monotonic() > deadline:
            return load
        print(f"load {load:.2f}: waiting for the machine to quiet down", flush=True)
        time.sleep(15)  # a load average moves over a minute: poll it


def measure(tree: Path, ops: int, probes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = phases.server(tree, Path(tmp), SETTINGS)
        server.start()
        assert server.pid is not None
        wait_until_idle(server.pid)
        try:
            space = populate(server.url, ops)
        finally:
            server.stop()
        load = wait_for_quiet()
        server.start()  # a restart: nothing of the space is in memory
        wait_until_idle(server.pid)
        try:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                for _ in range(WARMUP_PROBES):
                    probe(http)
                # The first read after the restart, by one client, /healthz probed meanwhile.
                during_cold: list[float] = []
                with readers(server.url, space, [space["token1"]]) as (pipe,):
                    while not pipe.poll():
                        during_cold.append(probe(http))
                    cold_s, records, pages, size = pipe.recv()
                warm = []
                with readers(server.url, space, [space["token1"]]) as (pipe,):
                    for _ in range(3):
                        warm.append(pipe.recv())
                # Two clients loop on the whole state; a third probes /healthz.
                with readers(server.url, space, [space["token2"], space["token3"]]) as pipes:
                    for pipe in pipes:
                        pipe.recv()  # both have read it once: warmed up
                    for _ in range(WARMUP_PROBES):
                        probe(http)
                    loaded = [probe(http) for _ in range(probes)]
        finally:
            server.stop()
    return {
        "load_average": round(load, 2),
        "records": records,
        "pages": pages,
        "bytes": size,
        "whole_read_cold_s": round(cold_s, 3),
        "healthz_during_cold_read_ms": latency(during_cold),
        "whole_read_warm_s": round(statistics.median(w[0] for w in warm), 3),
        "healthz_under_two_readers_ms": latency(loaded),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=54_000)
    parser.add_argument("--probes", type=int, default=200)
    phases.add_arguments(parser)
    args = parser.parse_args()
    result = {"commit": phases.commit_of(args.tree), **measure(args.tree, args.ops, args.probes)}
    page_size = Settings.model_fields["state_page_size"].default
    phases.write("state_reads", args.phase, result, ops=args.ops, page_size=page_size)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
