"""Sync through the real server on 127.0.0.1.

    python -m bench.sync [--ops 10000] [--devices 50] [--per-device 100]

(1) One device pushes N ops (batches of 1,000, the most a push takes) and a second
device pulls them all (pages of 500): ops per second end to end for each. (2) D devices
each push 100 ops in one request, all at once: latency p50/p99 per request. The rate
limit (10 syncs/s per device) is per device, so neither part is throttled by it.
Writes bench/results/sync.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from e2e.harness import ServerProcess
from py_agent.sync.hlc import HybridClock, system_wall_ms
from py_agent.sync.ops import new_op

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--per-device", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = ServerProcess(Path(data))
        server.start()
        try:
            bulk = asyncio.run(throughput(server.url, args.ops))
            many = asyncio.run(concurrent(server.url, args.devices, args.per_device))
        finally:
            server.stop()
    path = report.write("sync", {"throughput": bulk, "concurrent": many})
    print("| measure | result |\n|---|---:|")
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
