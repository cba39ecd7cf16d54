"""The server model through the real server on 127.0.0.1: POST /api/v1/infer.

    python -m bench.infer [--single 200] [--clients 16] [--seconds 10] [--warmup 2]

A server process (uvicorn, the app from server.app with the per-token and per-address rate
limits raised so the load is not throttled) is started twice: micro-batching on (batches of
up to 32) and off (batches of 1), to show what batching buys. For each, after a warm-up:
(1) one client sends requests one after another: latency p50/p95; (2) 16 clients, each with
its own install token, send requests back to back for a fixed time: requests per second,
latency p50/p95, and the mean batch size from /metrics. Utterances are the lines of
data/eval/sentences.txt, in turn. Client and server are separate processes sharing this
machine's 2 cores. Writes bench/results/infer.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tools.harness import free_port, wait_until_healthy

from . import report

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "data" / "eval" / "sentences.txt"
NOW = "2026-11-18T10:00:00+01:00"


def serve(port: int, data_dir: Path, max_batch: int) -> None:
    """The child process: the app with the bench's settings, on uvicorn."""
    import uvicorn

    from server.app import create_app
    from server.settings import Settings

    settings = Settings(
        dist_dir=ROOT / "web" / "dist",
        data_dir=data_dir,
        models_dir=ROOT / "models",
        infer_max_batch=max_batch,
        infer_rate_per_s=1e6,
        infer_burst=1_000_000,
        installs_per_min=1000,
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


class Server:
    def __init__(self, data_dir: Path, max_batch: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.infer", "--serve", str(self.port), str(data_dir),
             str(max_batch)],
            cwd=ROOT,
        )  # fmt: skip
        wait_until_healthy(self.url, self.process, 60, lambda: "see its output above")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


async def token(http: httpx.AsyncClient) -> str:
    response = await http.post("/api/v1/installs")
    response.raise_for_status()
    return str(response.json()["token"])


async def ask(http: httpx.AsyncClient, bearer: str, text: str) -> float:
    started = time.perf_counter()
    response = await http.post(
        "/api/v1/infer",
        json={"text": text, "now": NOW},
        headers={"Authorization": f"Bearer {bearer}"},
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"infer answered {response.status_code}: {response.text}")
    return elapsed * 1000


async def run_clients(
    url: str, sentences: list[str], clients: int, seconds: float
) -> tuple[list[float], float]:
    """Latencies (ms) of every request, and the wall time, of clients sending back to back."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        tokens = [await token(http) for _ in range(clients)]
        latencies: list[float] = []
        started = time.perf_counter()
        deadline = started + seconds

        async def client(index: int) -> None:
            i = index
            while time.perf_counter() < deadline:
                latencies.append(await ask(http, tokens[index], sentences[i % len(sentences)]))
                i += clients

        await asyncio.gather(*(client(i) for i in range(clients)))
        return latencies, time.perf_counter() - started


async def batch_sizes(url: str) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    values = {}
    for name in ("sum", "count"):
        pattern = rf"^py_agent_infer_batch_size_{name}\{{[^}}]*\}} (\S+)$"
        match = re.search(pattern, text, re.MULTILINE)
        values[name] = float(match[1]) if match else 0.0
    return values


async def measure(url: str, args: argparse.Namespace, sentences: list[str]) -> dict[str, Any]:
    await run_clients(url, sentences, args.clients, args.warmup)  # loads the model, warms up
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        bearer = await token(http)
        single = [
            await ask(http, bearer, sentences[i % len(sentences)]) for i in range(args.single)
        ]
    before = await batch_sizes(url)
    latencies, wall = await run_clients(url, sentences, args.clients, args.seconds)
    after = await batch_sizes(url)
    batches = after["count"] - before["count"]
    return {
        "single_ms": report.summary(single),
        "concurrent": {
            "clients": args.clients,
            "seconds": round(wall, 2),
            "requests": len(latencies),
            "requests_per_s": round(len(latencies) / wall, 1),
            "latency_ms": report.summary(latencies),
            "batches": int(batches),
            "mean_batch": round((after["sum"] - before["sum"]) / max(batches, 1), 2),
        },
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    sentences = SENTENCES.read_text(encoding="utf-8").splitlines()
    results: dict[str, Any] = {}
    for mode, max_batch in (("batched", 32), ("unbatched", 1)):
        with tempfile.TemporaryDirectory() as data:
            server = Server(Path(data), max_batch)
            try:
                results[mode] = asyncio.run(measure(server.url, args, sentences))
            finally:
                server.stop()
    models = json.loads((ROOT / "models" / "manifest.json").read_text(encoding="utf-8"))
    path = report.write("infer", {"models": models, **results})
    print("| server | single p50 / p95 ms | 16 clients: req/s | p50 / p95 ms | mean batch |")
    print("|---|---:|---:|---:|---:|")
    for mode, r in results.items():
        c = r["concurrent"]
        print(
            f"| {mode} | {r['single_ms']['p50']:.1f} / {r['single_ms']['p95']:.1f} | "
            f"{c['requests_per_s']:.0f} | {c['latency_ms']['p50']:.0f} / "
            f"{c['latency_ms']['p95']:.0f} | {c['mean_batch']:.1f} |"
        )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
