"""Chooses onnxruntime-web's default thread count (web/src/app.js DEFAULT_THREADS).

    python -m bench.ort_threads [--seconds 4]

The model is a stand-in of all-MiniLM-L6-v2's compute until the real model is
built: six blocks of 384→1536→384 feed-forward layers on a 1x32x384 input,
int8 dynamically quantised like the shipped encoder. Each thread count runs
in its own crossOriginIsolated page (ORT fixes its threads at start-up);
the pages are measured in alternating blocks after a 2 s warm-up each, so
machine noise falls on both alike. Native onnxruntime runs the same file.
Writes bench/results/threads.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from playwright.sync_api import Page, Route, sync_playwright

from tools.harness import ServerProcess, launch_chromium

from . import report

HIDDEN, FFN, BLOCKS, SEQ = 384, 1536, 6, 32
THREADS = (1, 2)
BLANK = "/__bench__.html"

PAGE_SETUP = """async ([threads, bytes, seq, hidden]) => {
  const ort = await import('/ort/ort.wasm.min.mjs');
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = new URL('/ort/', location.href).href;
  const session = await ort.InferenceSession.create(new Uint8Array(bytes));
  const x = new ort.Tensor('float32', new Float32Array(seq * hidden).fill(0.1), [1, seq, hidden]);
  window.benchRun = async (ms) => {
    const times = [];
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const t = performance.now();
      await session.run({ x });
      times.push(performance.now() - t);
    }
    return times;
  };
  await window.benchRun(2000);  // V8 tiers wasm up over the first second or so of calls
  return { isolated: crossOriginIsolated, threads: ort.env.wasm.numThreads };
}"""


def ffn_model(path: Path) -> Path:
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(BLOCKS):
        w1 = rng.standard_normal((HIDDEN, FFN)).astype(np.float32) * 0.05
        w2 = rng.standard_normal((FFN, HIDDEN)).astype(np.float32) * 0.05
        inits += [numpy_helper.from_array(w1, f"w1_{i}"), numpy_helper.from_array(w2, f"w2_{i}")]
        nodes += [
            helper.make_node("MatMul", [current, f"w1_{i}"], [f"h_{i}"]),
            helper.make_node("Relu", [f"h_{i}"], [f"r_{i}"]),
            helper.make_node("MatMul", [f"r_{i}", f"w2_{i}"], [f"o_{i}"]),
            helper.make_node("Add", [current, f"o_{i}"], [f"y_{i}"]),
        ]
        current = f"y_{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"]))
    graph = helper.make_graph(
        nodes,
        "ffn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq", HIDDEN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "seq", HIDDEN])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    fp32 = path / "ffn.fp32.onnx"
    onnx.save(model, fp32)
    int8 = path / "ffn.int8.onnx"
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
    return int8


def native_times(model: Path, threads: int, seconds: float) -> list[float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    x = np.full((1, SEQ, HIDDEN), 0.1, dtype=np.float32)
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        session.run(None, {"x": x})
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        session.run(None, {"x": x})
        times.append((time.perf_counter() - started) * 1000)
    return times


def blank_page(route: Route) -> None:
    route.fulfill(
        status=200,
        content_type="text/html",
        body="<!doctype html><title>bench</title>",
        headers={
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Embedder-Policy": "require-corp",
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per thread count")
    parser.add_argument("--blocks", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        model = ffn_model(Path(tmp))
        server = ServerProcess(Path(tmp))
        server.start()
        browser = launch_chromium(playwright)
        try:
            pages: dict[int, Page] = {}
            for threads in THREADS:
                page = browser.new_context(bypass_csp=True).new_page()
                page.route(f"**{BLANK}", blank_page)
                page.goto(server.url + BLANK)
                setup = page.evaluate(PAGE_SETUP, [threads, list(model.read_bytes()), SEQ, HIDDEN])
                if not setup["isolated"] or setup["threads"] != threads:
                    raise SystemExit(f"page for {threads} threads is not set up right: {setup}")
                pages[threads] = page
            web: dict[int, list[float]] = {threads: [] for threads in THREADS}
            block_ms = args.seconds * 1000 / args.blocks
            for _ in range(args.blocks):
                for threads, page in pages.items():
                    web[threads] += page.evaluate("(ms) => window.benchRun(ms)", block_ms)
        finally:
            browser.close()
            server.stop()
        native = {threads: native_times(model, threads, args.seconds) for threads in THREADS}

    results = {
        "model": f"int8 FFN stand-in: {BLOCKS}x({HIDDEN}->{FFN}->{HIDDEN}), input 1x{SEQ}x{HIDDEN}",
        "browser_ms": {str(t): report.summary(v) for t, v in web.items()},
        "native_ms": {str(t): report.summary(v) for t, v in native.items()},
    }
    path = report.write("threads", results)
    print("| runtime | threads | p50 ms | p95 ms | runs |\n|---|---:|---:|---:|---:|")
    for name, key in (("onnxruntime-web", "browser_ms"), ("onnxruntime (native)", "native_ms")):
        for threads in THREADS:
            s = results[key][str(threads)]
            print(f"| {name} | {threads} | {s['p50']:.2f} | {s['p95']:.2f} | {s['n']} |")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
