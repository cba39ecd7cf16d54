// The agent worker: boots Pyodide, numpy and onnxruntime-web, installs the
// py_agent wheel, and exposes py_agent to the page over Comlink.
import * as Comlink from './vendor/comlink.mjs';
import { loadPyodide } from './pyodide/pyodide.mjs';
import * as bridge from './bridge.js';

const PYODIDE_URL = new URL('./pyodide/', import.meta.url).href;
const ORT_URL = new URL('./ort/', import.meta.url).href;
const WHEELS_URL = new URL('./wheels/', import.meta.url).href;
// The runtime files loadPyodide fetches; fetched first with progress so the
// page can show "download runtime" apart from "start Python". loadPyodide
// then finds them in the HTTP cache (a revalidation, not a second download).
const RUNTIME_FILES = ['pyodide.asm.wasm', 'python_stdlib.zip', 'pyodide.asm.js', 'pyodide-lock.json'];

/**
 * Start downloading, verifying and compiling the model while Pyodide starts. It
 * mirrors py_agent.encoder.load_encoder's choice of files, so that Python's
 * later requests for the same URLs join these downloads instead of repeating them.
 */
async function prefetchModel() {
  const json = async (bytes) => JSON.parse(new TextDecoder().decode(await bytes));
  const index = await json(bridge.http.prefetch('models/manifest.json'));
  const folder = `models/${index.encoder}`;
  const manifest = await json(bridge.http.prefetch(`${folder}/manifest.json`));
  bridge.http.prefetch(`${folder}/${manifest.tokenizer.vocab}`);
  const [name, file] = Object.entries(manifest.files).find(([, f]) => f.precision === 'int8') ?? [];
  if (!name) throw new Error(`${folder}/manifest.json lists no int8 model`);
  await bridge.ort.loadSession(`${folder}/${name}`, file.sha256);
}

let pyodide = null;
let rpc = null;

async function fetchWithProgress(urls, onBytes) {
  await Promise.all(
    urls.map(async (url) => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        onBytes(value.byteLength);
      }
    }),
  );
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  try {
    return await response.json();
  } catch (error) {
    throw new Error(`GET ${url}: not valid JSON (${error.message})`);
  }
}

async function contentLength(url) {
  const response = await fetch(url, { method: 'HEAD' });
  return Number(response.headers.get('content-length')) || 0;
}

function checkThreads(numThreads) {
  if (!Number.isInteger(numThreads) || numThreads < 1 || numThreads > 16) {
    throw new Error(`numThreads must be an integer from 1 to 16, got ${numThreads}`);
  }
  return numThreads;
}

const api = {
  /**
   * Boot everything, reporting each stage as onStage({stage, label, fraction, ms}).
   * Stages: download, python, numpy, packages, model, ready.
   */
  async boot({ numThreads }, onStage) {
    if (rpc) throw new Error('already booted');
    const threads = checkThreads(numThreads);
    const started = performance.now();
    const timings = {};
    let stageStart = started;
    let current = null;
    const stage = (name, label) => {
      const now = performance.now();
      if (current) timings[current] = Math.round(now - stageStart);
      current = name;
      stageStart = now;
      onStage({ stage: name, label, fraction: 0, ms: Math.round(now - started) });
    };

    stage('download', 'Downloading the runtime');
    bridge.ort.configure({ numThreads: threads, wasmPaths: ORT_URL });
    const modelReady = prefetchModel();
    modelReady.catch(() => {}); // awaited at the model stage, where its error is reported
    const urls = RUNTIME_FILES.map((name) => PYODIDE_URL + name);
    const total = (await Promise.all(urls.map(contentLength))).reduce((a, b) => a + b, 0);
    let received = 0;
    await fetchWithProgress(urls, (bytes) => {
      received += bytes;
      onStage({ stage: 'download', label: 'Downloading the runtime', fraction: total ? received / total : 0 });
    });

    stage('python', 'Starting Python');
    pyodide = await loadPyodide({ indexURL: PYODIDE_URL });

    stage('numpy', 'Loading numpy');
    await pyodide.loadPackage(['numpy', 'micropip'], { checkIntegrity: true });

    stage('packages', 'Installing py_agent');
    const index = await fetchJson(WHEELS_URL + 'index.json');
    pyodide.registerJsModule('py_agent_js', bridge);
    const micropip = pyodide.pyimport('micropip');
    // deps=False: every dependency is either a Pyodide package loaded above or a
    // wheel listed in index.json; micropip must never look for one on PyPI.
    await micropip.install.callKwargs(
      index.install.map((file) => WHEELS_URL + file),
      { deps: false },
    );
    rpc = pyodide.pyimport('py_agent.rpc');

    stage('model', 'Loading the model');
    await modelReady;
    const model = JSON.parse(await rpc.load_model());
    const environment = JSON.parse(await rpc.environment());

    stage('ready', 'Ready');
    onStage({ stage: 'ready', label: 'Ready', fraction: 1, ms: Math.round(performance.now() - started) });
    return {
      timings,
      total_ms: Math.round(performance.now() - started),
      environment,
      model: { ...model, load_ms: bridge.ort.timings },
    };
  },

  async environment() {
    return JSON.parse(await booted().environment());
  },

  /** Run an ONNX model given as bytes on JSON feeds ({name: {dtype, shape, data}}) in Python. */
  async runModel(modelBytes, feeds) {
    const model = pyodide.toPy(modelBytes);
    try {
      return JSON.parse(await booted().run_model(model, JSON.stringify(feeds)));
    } finally {
      model.destroy();
    }
  },

  /** One chat turn; resolves after the turn's writes are committed to IndexedDB. */
  async ask(text, nowIso) {
    return JSON.parse(await booted().ask(text, nowIso));
  },

  /** Tasks, notes and cache counters for the page's panes. */
  async snapshot() {
    return JSON.parse(await booted().snapshot());
  },

  /** The conversation so far, oldest first. */
  async history() {
    return JSON.parse(await booted().history());
  },

  /** Embeddings of texts (one at a time), as arrays of numbers. */
  async embed(texts) {
    return JSON.parse(await booted().embed(JSON.stringify(texts)));
  },

  async tokenize(texts) {
    return JSON.parse(await booted().tokenize(JSON.stringify(texts)));
  },

  /** Text → embedding latency measured inside the worker (ms per call), after a warm-up. */
  async embeddingLatency(texts, warmupSeconds, seconds) {
    return JSON.parse(
      await booted().embedding_latency(JSON.stringify(texts), warmupSeconds, seconds),
    );
  },

  /** Milliseconds per note search over all stored notes (the search step alone). */
  async noteSearchLatency(queries, seconds) {
    return JSON.parse(await booted().note_search_latency(JSON.stringify(queries), seconds));
  },

  async selfCheck() {
    return JSON.parse(await booted().self_check());
  },
};

function booted() {
  if (!rpc) throw new Error('py_agent is not booted yet');
  return rpc;
}

Comlink.expose(api);
