"""Sync through the real server on 127.0.0.1.

    python -m bench.sync [--ops 10000] [--devices 50] [--per-device 100] [--runs 5]

(1) One device pushes N ops (batches of 1,000, the most a push takes) and a second
device pulls them all (pages of 500): ops per second end to end for each. (2) D devices
each push 100 ops in one request, all at once: latency p50/p99 per request. The rate
limit (10 syncs/s per device) is per device, so neither part is throttled by it.
Each run starts a server on a fresh data dir and waits until it has finished starting up
(it loads its intent model then, which would otherwise compete with the first pushes);
the machine is noisy, so the table gives the median of each number over the runs.
Writes bench/results/sync.json (every run's numbers too) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from py_agent.sync.hlc import HybridClock, system_wall_ms
from py_agent.sync.ops import new_op
from tools.harness import ServerProcess

from . import report

BATCH = 1000


def make_ops(device_id: str, count: int) -> list[dict[str, Any]]:
    clock = HybridClock(device_id, system_wall_ms)
    return [
        new_op(
            clock, collection="tasks", record_id=f"t{i}", field="title", value=f"task {i}"
        ).to_json()
        for i in range(count)
    ]


async def pair(http: httpx.AsyncClient, code: str, name: str) -> dict[str, Any]:
    response = await http.post("/api/v1/devices", json={"pairing_code": code, "name": name})
    response.raise_for_status()
    device: dict[str, Any] = response.json()
    return device


async def sync(
    http: httpx.AsyncClient, device: dict[str, Any], cursor: str | None, ops: list[Any]
) -> dict[str, Any]:
    response = await http.post(
        "/api/v1/sync",
        json={"cursor": cursor, "ops": ops},
        headers={"Authorization": f"Bearer {device['token']}"},
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def throughput(url: str, count: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        code = (await http.post("/api/v1/spaces")).json()["pairing_code"]
        writer, reader = await pair(http, code, "laptop"), await pair(http, code, "phone")
        ops = make_ops(writer["device_id"], count)
        started = time.perf_counter()
        for i in range(0, count, BATCH):
            body = await sync(http, writer, None, ops[i : i + BATCH])
            assert len(body["acked"]) == len(ops[i : i + BATCH])
        pushed = time.perf_counter() - started
        started = time.perf_counter()
        cursor, received, has_more = None, 0, True
        while has_more:
            body = await sync(http, reader, cursor, [])
            received += len(body["ops"])
            cursor, has_more = body["cursor"], body["has_more"]
        pulled = time.perf_counter() - started
    assert received == count, f"pulled {received} of {count}"
    return {
        "ops": count,
        "push_s": round(pushed, 3),
        "pull_s": round(pulled, 3),
        "push_ops_per_s": round(count / pushed),
        "pull_ops_per_s": round(count / pulled),
        "end_to_end_ops_per_s": round(count / (pushed + pulled)),
    }


async def concurrent(url: str, devices: int, per_device: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=devices)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        code = (await http.post("/api/v1/spaces")).json()["pairing_code"]
        paired = [await pair(http, code, f"device {i}") for i in range(devices)]
        batches = [make_ops(device["device_id"], per_device) for device in paired]

        async def one(device: dict[str, Any], ops: list[Any]) -> float:
            started = time.perf_counter()
            body = await sync(http, device, None, ops)
            assert len(body["acked"]) == len(ops)
            return (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        latencies = await asyncio.gather(*(one(d, b) for d, b in zip(paired, batches, strict=True)))
        wall = time.perf_counter() - started
    return {
        "devices": devices,
        "ops_per_device": per_device,
        "latency_ms": report.summary(list(latencies)),
        "p99_ms": round(report.percentile(list(latencies), 99), 1),
        "wall_s": round(wall, 3),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, timeout_s: float = 60.0) -> None:
    """Returns once the process used no CPU for a quarter of a second."""
    deadline = time.monotonic() + timeout_s
    used = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)  # sampling the CPU counter over a window, not waiting for an event
        now = cpu_seconds(pid)
        if now - used < 0.01:  # no clock tick at all
            return
        used = now
    raise RuntimeError(f"the server was still busy {timeout_s:.0f} s after it started")


def one_run(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    # One space with every device of the run, all paired with its first code.
    os.environ["PY_AGENT_DEVICES_PER_PAIRING_CODE"] = str(args.devices + 1)
    with tempfile.TemporaryDirectory() as data:
        server = ServerProcess(Path(data))
        server.start()
        try:
            assert server.pid is not None
            wait_until_idle(server.pid)
            bulk = asyncio.run(throughput(server.url, args.ops))
            many = asyncio.run(concurrent(server.url, args.devices, args.per_device))
        finally:
            server.stop()
    return bulk, many


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' dicts (all of one shape) as one, each number the median over the runs."""
    first = runs[0]
    merged: dict[str, Any] = {}
    for key, value in first.items():
        if isinstance(value, dict):
            merged[key] = medians([run[key] for run in runs])
        else:
            middle = statistics.median(run[key] for run in runs)
            merged[key] = round(middle) if isinstance(value, int) else round(middle, 3)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--per-device", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run(args) for _ in range(args.runs)]
    bulk = medians([b for b, _ in runs])
    many = medians([m for _, m in runs])
    per_run = [
        {
            "end_to_end_ops_per_s": b["end_to_end_ops_per_s"],
            "p50_ms": m["latency_ms"]["p50"],
            "p99_ms": m["p99_ms"],
        }
        for b, m in runs
    ]
    path = report.write(
        "sync",
        {"runs": args.runs, "throughput": bulk, "concurrent": many, "per_run": per_run},
    )
    print(f"medians of {args.runs} runs\n\n| measure | result |\n|---|---:|")
    print(f"| push {bulk['ops']:,} ops (batches of {BATCH}) | {bulk['push_ops_per_s']:,} ops/s |")
    print(f"| pull {bulk['ops']:,} ops (pages of 500) | {bulk['pull_ops_per_s']:,} ops/s |")
    print(f"| push + pull end to end | {bulk['end_to_end_ops_per_s']:,} ops/s |")
    lat = many["latency_ms"]
    print(
        f"| {many['devices']} devices x {many['ops_per_device']} ops at once, latency | "
        f"p50 {lat['p50']:.0f} ms, p99 {many['p99_ms']:.0f} ms |"
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
