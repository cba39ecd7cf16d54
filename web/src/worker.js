// The agent worker: boots Pyodide, numpy and onnxruntime-web, installs the py_agent
// wheel, and answers the page's calls. Every call but the worker's own three (boot,
// watchSync, watchChat) goes to py_agent.worker_api by name: the page's window.pyAgent
// (api.js) is a proxy over one Comlink method, `call`. Python also owns time: after each
// call it says when automatic work is next due, and this worker keeps the one timer.
import * as Comlink from './vendor/comlink.mjs';
import { loadPyodide } from './pyodide/pyodide.mjs';
import * as bridge from './bridge.js';

/**
 * @typedef {import('./types.js').After} After
 * @typedef {import('./types.js').Outcome} Outcome
 * @typedef {import('./types.js').SyncStatus} SyncStatus
 * @typedef {import('./types.js').Environment} Environment
 * @typedef {import('./types.js').ModelInfo} ModelInfo
 * @typedef {import('./types.js').PythonApi} PythonApi
 * @typedef {import('./types.js').Success | import('./types.js').Failure} WorkerReply
 * @typedef {{ stage: string, label: string, fraction: number, ms?: number }} Stage
 * @typedef {{
 *   timings: Record<string, number>, total_ms: number, environment: Environment,
 *   model: ModelInfo & { load_ms: Record<string, { download: number, verify: number, create: number }> },
 * }} BootResult
 * @typedef {object} WorkerApi The worker's own methods (everything else is Python's).
 * @property {(options: { numThreads: number }, onStage: (stage: Stage) => void) => Promise<BootResult>} boot
 *   Boot everything, reporting each stage: download, python, numpy, packages, model, ready.
 * @property {(callback: (status: SyncStatus) => Promise<void> | void) => Promise<void>} watchSync
 *   Call `callback(status)` now and whenever the sync status changes.
 * @property {(callback: () => Promise<void> | void) => Promise<void>} watchChat
 *   Call `callback()` whenever second opinions added chat messages.
 * @typedef {{ call: (name: string, ...args: unknown[]) => Promise<Outcome> }} Exposed
 */

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
  /** @param {Promise<Uint8Array>} bytes */
  const json = async (bytes) => JSON.parse(new TextDecoder().decode(await bytes));
  const index = await json(bridge.http.prefetch('models/manifest.json'));
  const folder = `models/${index.encoder}`;
  const manifest = await json(bridge.http.prefetch(`${folder}/manifest.json`));
  bridge.http.prefetch(`${folder}/${manifest.tokenizer.vocab}`);
  /** @type {[string, { precision: string, sha256: string }][]} */
  const files = Object.entries(manifest.files);
  const [name, file] = files.find(([, f]) => f.precision === 'int8') ?? [];
  if (!name || !file) throw new Error(`${folder}/manifest.json lists no int8 model`);
  await bridge.ort.loadSession(`${folder}/${name}`, file.sha256);
}

/** @param {string[]} urls @param {(bytes: number) => void} onBytes */
async function fetchWithProgress(urls, onBytes) {
  await Promise.all(
    urls.map(async (url) => {
      const response = await fetch(url);
      if (!response.ok || !response.body) throw new Error(`GET ${url}: HTTP ${response.status}`);
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        onBytes(value.byteLength);
      }
    }),
  );
}

/** @param {string} url */
async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  try {
    return await response.json();
  } catch (error) {
    throw new Error(`GET ${url}: not valid JSON (${/** @type {Error} */ (error).message})`, { cause: error });
  }
}

/** @param {string} url */
async function contentLength(url) {
  const response = await fetch(url, { method: 'HEAD' });
  return Number(response.headers.get('content-length')) || 0;
}

/** @param {number} numThreads */
function checkThreads(numThreads) {
  if (!Number.isInteger(numThreads) || numThreads < 1 || numThreads > 16) {
    throw new Error(`numThreads must be an integer from 1 to 16, got ${numThreads}`);
  }
  return numThreads;
}

// -- Python ------------------------------------------------------------------------------

/** py_agent.worker_api's dispatcher, once booted. @type {((name: string, argsJson: string) => Promise<string>) | null} */
let dispatch = null;

/** Bytes cross as base64 text in the arguments' JSON (py_agent/registry.py decodes them). */
function base64(/** @type {Uint8Array} */ bytes) {
  let binary = '';
  for (let start = 0; start < bytes.length; start += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(start, start + 0x8000));
  }
  return btoa(binary);
}

/** @param {string} _key @param {unknown} value */
const bytesAsBase64 = (_key, value) => (value instanceof Uint8Array ? base64(value) : value);

/**
 * One call of a Python function by name; then what Python said comes next (After).
 * @param {string} name @param {unknown[]} args @returns {Promise<Outcome>}
 */
async function python(name, args) {
  if (!dispatch) throw new Error('py_agent is not booted yet');
  /** @type {WorkerReply} */
  const reply = JSON.parse(await dispatch(name, JSON.stringify(args, bytesAsBase64)));
  const { after, ...outcome } = reply;
  follow(after);
  return outcome;
}

/**
 * A Python call that must succeed (boot's, the timer's): its value, or its error thrown.
 * @template {keyof PythonApi} K
 * @param {K} name @param {Parameters<PythonApi[K]>} args
 * @returns {Promise<Awaited<ReturnType<PythonApi[K]>>>}
 */
async function must(name, args) {
  const outcome = await python(name, args);
  if (outcome.ok) return /** @type {Awaited<ReturnType<PythonApi[K]>>} */ (outcome.value);
  const error = new Error(outcome.error.message);
  error.name = outcome.error.type;
  throw error;
}

// -- what comes next: one timer, and the page's watchers ---------------------------------

let timer = 0;
/** @type {((status: SyncStatus) => Promise<void> | void) | null} */
let syncWatcher = null;
/** @type {(() => Promise<void> | void) | null} */
let chatWatcher = null;

/** @param {string} what @param {() => Promise<void> | void} notify */
function tell(what, notify) {
  Promise.resolve()
    .then(notify)
    .catch((error) => console.error(`the ${what} watcher failed:`, error));
}

/** @param {After} after */
function follow(after) {
  clearTimeout(timer);
  timer = 0;
  if (after.next_at !== null) {
    // tick's own reply arms the timer again; its failure is a bug, shown in the console.
    const tick = () => must('tick', []).catch(console.error);
    timer = setTimeout(tick, Math.max(0, after.next_at * 1000 - Date.now()));
  }
  const { sync, chat } = after;
  if (sync && syncWatcher) tell('sync', () => syncWatcher?.(sync));
  if (chat && chatWatcher) tell('chat', () => chatWatcher?.());
}

// -- the worker's own methods ------------------------------------------------------------

/** @type {WorkerApi} */
const own = {
  async boot({ numThreads }, onStage) {
    if (dispatch) throw new Error('already booted');
    const threads = checkThreads(numThreads);
    const started = performance.now();
    /** @type {Record<string, number>} */
    const timings = {};
    let stageStart = started;
    /** @type {string | null} */
    let current = null;
    /** @param {string} name @param {string} label */
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
    const pyodide = await loadPyodide({ indexURL: PYODIDE_URL });

    stage('numpy', 'Loading numpy');
    await pyodide.loadPackage(['numpy', 'micropip'], { checkIntegrity: true });

    stage('packages', 'Installing py_agent');
    const index = await fetchJson(WHEELS_URL + 'index.json');
    // py_agent's dependencies that Pyodide ships (python-dateutil, …), from the same
    // sha256-checked dist folder as numpy; numpy again is a no-op.
    await pyodide.loadPackage(index.pyodide_packages ?? [], { checkIntegrity: true });
    pyodide.registerJsModule('py_agent_js', bridge);
    const micropip = pyodide.pyimport('micropip');
    // deps=False: every dependency is either a Pyodide package loaded above or a
    // wheel listed in index.json; micropip must never look for one on PyPI.
    await micropip.install.callKwargs(
      index.install.map((/** @type {string} */ file) => WHEELS_URL + file),
      { deps: false },
    );
    dispatch = pyodide.pyimport('py_agent.worker_api').api.dispatch;

    stage('model', 'Loading the model');
    await modelReady;
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
    const model = await must('loadModel', [tz, navigator.language ?? 'en']);
    const environment = await must('environment', []);

    stage('ready', 'Ready');
    onStage({ stage: 'ready', label: 'Ready', fraction: 1, ms: Math.round(performance.now() - started) });
    return {
      timings,
      total_ms: Math.round(performance.now() - started),
      environment,
      model: { ...model, load_ms: bridge.ort.timings },
    };
  },

  async watchSync(callback) {
    syncWatcher = callback;
    const status = await python('syncStatus', []);
    if (status.ok) tell('sync', () => callback(/** @type {SyncStatus} */ (status.value)));
  },

  async watchChat(callback) {
    chatWatcher = callback;
  },
};

/**
 * Every method of the page's window.pyAgent: the worker's own, or Python's by name.
 * Answers `{ok: true, value}` or `{ok: false, error: {type, message, field?}}`.
 * @type {Exposed['call']}
 */
async function call(name, ...args) {
  if (Object.hasOwn(own, name)) {
    const method = /** @type {(...args: unknown[]) => Promise<unknown>} */ (own[/** @type {keyof WorkerApi} */ (name)]);
    try {
      return { ok: true, value: await method(...args) };
    } catch (error) {
      console.error(error); // the page shows the message; the stack is here
      const { name: type, message } = /** @type {Error} */ (error);
      return { ok: false, error: { type, message } };
    }
  }
  if (!dispatch) return { ok: false, error: { type: 'NotBooted', message: 'py_agent is not booted yet' } };
  return python(name, args);
}

Comlink.expose(/** @type {Exposed} */ ({ call }));
