// The agent worker: boots Pyodide, numpy and the py_agent wheel, starts onnxruntime-web
// in a worker of its own (ort_worker.js, through bridge.js), and answers the page's
// calls. Every call but the worker's own three (boot, watchSync, watchChat) goes to
// py_agent.worker_api by name: the page's window.pyAgent
// (api.js) is a proxy over one Comlink method, `call`. Python also owns time: after each
// call it says when automatic work is next due, and this worker keeps the one timer.
//
// A revisit restores Python from a memory snapshot (snapshot.js) instead of starting it;
// see docs/architecture.md, "Boot".
import * as Comlink from './vendor/comlink.mjs';
import { loadPyodide, version as pyodideVersion } from './pyodide/pyodide.mjs';
import * as bridge from './bridge.js';
import * as snapshots from './snapshot.js';

/**
 * @typedef {import('./types.js').After} After
 * @typedef {import('./types.js').Outcome} Outcome
 * @typedef {import('./types.js').SyncStatus} SyncStatus
 * @typedef {import('./types.js').Environment} Environment
 * @typedef {import('./types.js').ModelInfo} ModelInfo
 * @typedef {import('./types.js').PythonApi} PythonApi
 * @typedef {import('./types.js').Success | import('./types.js').Failure} WorkerReply
 * @typedef {import('./pyodide/pyodide.mjs').PyodideInterface} Pyodide
 * @typedef {{ stage: string, label: string, detail?: string, fraction: number, ms?: number }} Stage
 * @typedef {{ url: string, sha256: string, files: [string, number, number][] }} Archive
 *   A wheel's files and their bytecode, end to end: each [path in site-packages, start, end].
 * @typedef {{ archives: Archive[] }} WheelIndex tools/build/wheels.py writes it
 * @typedef {{
 *   timings: Record<string, number>, total_ms: number, environment: Environment,
 *   model: ModelInfo & { load_ms: Record<string, { download: number, verify: number, create: number }> },
 *   snapshot: { restored: boolean, rejected: string | null },
 * }} BootResult
 * @typedef {object} WorkerApi The worker's own methods (everything else is Python's).
 * @property {(options: { numThreads: number }, onStage: (stage: Stage) => void) => Promise<BootResult>} boot
 *   Boot everything, reporting each stage (python, numpy, packages, model, ready) and the
 *   whole boot's progress as `fraction`.
 * @property {(callback: (status: SyncStatus) => Promise<void> | void) => Promise<void>} watchSync
 *   Call `callback(status)` now and whenever the sync status changes.
 * @property {(callback: () => Promise<void> | void) => Promise<void>} watchChat
 *   Call `callback()` whenever second opinions settle queued requests (a new message, a mark
 *   on a shown one, the stats).
 * @typedef {{ call: (name: string, ...args: unknown[]) => Promise<Outcome> }} Exposed
 */

const PYODIDE_URL = new URL('./pyodide/', import.meta.url).href;
const ORT_URL = new URL('./ort/', import.meta.url).href;
const ROOT_URL = new URL('./', import.meta.url).href;
// The stages of a boot, each with its share of the progress bar (about its share of a
// first visit's time; a revisit moves through the same stages faster).
const STAGES = /** @type {const} */ ([
  ['python', 'Starting Python', 0.3],
  ['numpy', 'Loading numpy', 0.25],
  ['packages', 'Loading py_agent', 0.15],
  ['model', 'Loading the model and your data', 0.3],
]);

/**
 * Start downloading, verifying and compiling the model while Pyodide starts. It
 * mirrors py_agent.encoder.load_encoder's choice of files, so that Python's
 * later requests for the same URLs join these downloads instead of repeating them.
 */
async function prefetchModel(/** @type {(part: number) => void} */ onDownload) {
  /** @param {Promise<Uint8Array>} bytes */
  const json = async (bytes) => JSON.parse(new TextDecoder().decode(await bytes));
  const index = await json(bridge.http.prefetch('models/manifest.json'));
  const folder = `models/${index.encoder}`;
  const manifest = await json(bridge.http.prefetch(`${folder}/manifest.json`));
  bridge.http.prefetch(`${folder}/${manifest.tokenizer.vocab}`);
  /** @type {[string, { precision: string, sha256: string, bytes: number }][]} */
  const files = Object.entries(manifest.files);
  const [name, file] = files.find(([, f]) => f.precision === 'int8') ?? [];
  if (!name || !file) throw new Error(`${folder}/manifest.json lists no int8 model`);
  await bridge.ort.loadSession(`${folder}/${name}`, file.sha256, (received) => onDownload(received / file.bytes));
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

/** An archive's bytes, refused unless they are the build's. @param {Archive} archive */
async function fetchArchive({ url, sha256 }) {
  const response = await fetch(ROOT_URL + url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  const actual = await snapshots.sha256(bytes);
  if (actual !== sha256) throw new Error(`${url}: sha256 is ${actual}, but wheels/index.json expects ${sha256}`);
  return bytes;
}

/** @param {number} numThreads */
function checkThreads(numThreads) {
  if (!Number.isInteger(numThreads) || numThreads < 1 || numThreads > 16) {
    throw new Error(`numThreads must be an integer from 1 to 16, got ${numThreads}`);
  }
  return numThreads;
}

/**
 * The wheels' files (numpy's too: only importing it would load its shared libraries, which
 * a snapshot cannot hold) and their bytecode, each written as a view of its archive's bytes.
 * pyodide.unpackArchive spent 0.3-0.9 s in Python's per-file work on numpy's wheel alone;
 * this takes tens of ms.
 * @param {Pyodide} pyodide @param {Archive[]} archives @param {ArrayBuffer[]} contents
 * @returns {number} the milliseconds it took
 */
function unpack(pyodide, archives, contents) {
  const started = performance.now();
  // The file system is not part of a snapshot: a restored Python writes them again.
  const sitePackages = pyodide.runPython("__import__('sysconfig').get_paths()['purelib']");
  const folders = new Set();
  archives.forEach(({ files }, i) => {
    const bytes = new Uint8Array(contents[i]);
    for (const [name, start, end] of files) {
      const path = `${sitePackages}/${name}`;
      const folder = path.slice(0, path.lastIndexOf('/'));
      if (!folders.has(folder)) pyodide.FS.mkdirTree(folder);
      folders.add(folder);
      pyodide.FS.writeFile(path, bytes.subarray(start, end), { canOwn: true });
    }
  });
  // A restored Python may remember site-packages from before these files were written.
  pyodide.runPython("__import__('importlib').invalidate_caches()");
  return Math.round(performance.now() - started);
}

/**
 * Python with the wheels unpacked and py_agent.preload imported: restored
 * from the stored snapshot when there is a usable one, else started and snapshotted
 * (before numpy: a snapshot cannot hold shared libraries). `made` is the new snapshot,
 * to store once the whole boot has worked.
 * @param {WheelIndex} index
 * @returns {Promise<{ pyodide: Pyodide, made: Uint8Array<ArrayBuffer> | null, rejected: string | null, unpackMs: number }>}
 */
async function startPython(index) {
  const contents = Promise.all(index.archives.map(fetchArchive));
  const stored = await snapshots.find(snapshots.keyFor(pyodideVersion, index.archives));
  let { rejected } = stored;
  if (stored.bytes) {
    try {
      // Pyodide loads its runtime while the snapshot is read and checked.
      const pyodide = await loadPyodide({ indexURL: PYODIDE_URL, _loadSnapshot: stored.bytes });
      // Pyodide keeps its options for good: detach the snapshot's bytes, now copied into
      // its heap, or they stay in memory (21 MB) for the worker's life.
      const { buffer } = await stored.bytes;
      structuredClone(buffer, { transfer: [buffer] });
      const unpackMs = unpack(pyodide, index.archives, await contents);
      return { pyodide, made: null, rejected: null, unpackMs };
    } catch (error) {
      rejected = `it did not restore: ${/** @type {Error} */ (error).message}`;
    }
  }
  if (rejected) {
    console.warn(`py_agent: starting Python afresh, the stored snapshot was refused (${rejected})`);
    await snapshots.remove();
  }
  const pyodide = await loadPyodide({ indexURL: PYODIDE_URL, _makeSnapshot: true });
  const unpackMs = unpack(pyodide, index.archives, await contents);
  pyodide.pyimport('py_agent.preload');
  // A fresh copy of the heap: its buffer is a plain ArrayBuffer.
  const made = /** @type {Uint8Array<ArrayBuffer>} */ (pyodide.makeMemorySnapshot());
  return { pyodide, made, rejected, unpackMs };
}

/**
 * The boot's progress as the page sees it: the stage, the whole boot's fraction, and the
 * model's download while it lasts (on a slow first visit most of the wait is there).
 */
class Progress {
  /** @param {(stage: Stage) => void} onStage */
  constructor(onStage) {
    this.onStage = onStage;
    this.started = performance.now();
    this.stageStarted = this.started;
    /** @type {Record<string, number>} */
    this.timings = {};
    this.done = 0; // the finished stages' share
    this.share = 0;
    this.current = '';
    this.label = '';
    this.downloaded = 1; // of the model; 1 until its download reports
    this.downloadStarted = false;
    this.fraction = 0;
    this.reported = 0;
  }

  /** @param {string} name */
  stage(name) {
    const now = performance.now();
    if (this.current) this.timings[this.current] = Math.round(now - this.stageStarted);
    this.done += this.share;
    [, this.label, this.share] = STAGES.find(([id]) => id === name) ?? [name, 'Ready', 0];
    this.current = name;
    this.stageStarted = now;
    this.report();
  }

  /** @param {number} part of the model downloaded, 0 to 1 */
  download(part) {
    // Reports from the body's copy may come after the whole download is in: never go back.
    if (this.downloadStarted && part <= this.downloaded) return;
    this.downloadStarted = true;
    this.downloaded = Math.min(part, 1);
    // A download from the service worker's cache reports hundreds of chunks in a blink.
    if (this.downloaded === 1 || performance.now() - this.reported > 100) this.report();
  }

  report() {
    const downloading = this.downloaded < 1;
    this.reported = performance.now();
    // The download moves the bar within a stage; a stage may end before it does: never back.
    const within = downloading ? this.share * this.downloaded : 0;
    this.fraction = Math.min(Math.max(this.fraction, this.done + within), 1);
    this.onStage({
      stage: this.current,
      label: this.label,
      detail: downloading ? `downloading the model: ${Math.floor(this.downloaded * 100)}%` : undefined,
      fraction: this.fraction,
      ms: Math.round(this.reported - this.started),
    });
  }
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
    const progress = new Progress(onStage);

    progress.stage('python');
    // ORT starts in its own worker and loads the model there, beside Python's start.
    const modelReady = Promise.all([
      bridge.ort.configure({ numThreads: threads, wasmPaths: ORT_URL }),
      prefetchModel((part) => progress.download(part)),
    ]);
    modelReady.catch(() => {}); // awaited at the model stage, where its error is reported
    /** @type {WheelIndex} */
    const index = await fetchJson(ROOT_URL + 'wheels/index.json');
    const { pyodide, made, rejected, unpackMs } = await startPython(index);

    progress.stage('numpy');
    // Its shared libraries load as it imports them (not those of numpy.random, fft, tests).
    pyodide.pyimport('numpy');

    progress.stage('packages');
    pyodide.registerJsModule('py_agent_js', bridge);
    dispatch = pyodide.pyimport('py_agent.worker_api').api.dispatch;

    progress.stage('model');
    await modelReady;
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
    const model = await must('loadModel', [tz, navigator.language ?? 'en']);
    const environment = await must('environment', []);

    progress.stage('ready');
    // Kept for the next visit only now that this one worked.
    if (made) snapshots.write(snapshots.keyFor(pyodideVersion, index.archives), made).catch((error) => console.warn('py_agent: the snapshot was not kept:', error));
    return {
      timings: { ...progress.timings, unpack: unpackMs }, // unpack is a part of python
      total_ms: Math.round(performance.now() - progress.started),
      environment,
      model: { ...model, load_ms: bridge.ort.timings },
      snapshot: { restored: !made, rejected },
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
