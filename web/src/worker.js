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
    // py_agent's dependencies that Pyodide ships (python-dateutil, …), from the same
    // sha256-checked dist folder as numpy; numpy again is a no-op.
    await pyodide.loadPackage(index.pyodide_packages ?? [], { checkIntegrity: true });
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
    await rpc.set_client(Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC', navigator.language ?? 'en');
    sync.now().catch(() => {}); // reported through watchSync
    secondOpinions.now().catch(() => {});
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
    const reply = JSON.parse(await booted().ask(text, nowIso));
    if (reply.changed.length) sync.soon();
    if (reply.queued) secondOpinions.later();
    // Pending ops, or a sync the agent ran for "sync now".
    sync.publish(await status());
    return reply;
  },

  async syncStatus() {
    return status();
  },

  /** Sync at once (after any sync already running); resolves to the Status it ended with. */
  async syncNow() {
    return sync.now();
  },

  /** The device went online: don't wait for the backoff timers. */
  async online() {
    if (sync.last?.paired) sync.now().catch(() => {});
    secondOpinions.now().catch(() => {});
  },

  /** Call `callback()` (a Comlink.proxy) whenever second opinions added chat messages. */
  async watchChat(callback) {
    secondOpinions.watcher = callback;
  },

  /** {cloud_help, threshold}: whether and when the server's model is asked. */
  async settings() {
    return JSON.parse(await booted().settings());
  },

  async setSettings(changes) {
    return JSON.parse(await booted().set_settings(JSON.stringify(changes)));
  },

  /** Fallback rate, server latency p50/p95, device/server agreement, queue length. */
  async stats() {
    return JSON.parse(await booted().stats());
  },

  /** Carry out the action a second opinion proposed; resolves to the reply. */
  async applyProposal(messageId, nowIso) {
    const reply = JSON.parse(await booted().apply_proposal(messageId, nowIso));
    if (reply.changed.length) sync.soon();
    return reply;
  },

  /** Call `callback(status)` (a Comlink.proxy) now and with every later Status. */
  async watchSync(callback) {
    sync.watcher = callback;
    sync.publish(await status());
  },

  async createSpace(deviceName) {
    return sync.paired(await booted().sync_create_space(deviceName));
  },

  async joinSpace(pairingCode, deviceName) {
    return sync.paired(await booted().sync_join(pairingCode, deviceName));
  },

  /** A fresh pairing code for the next device (codes expire; this revokes the old one). */
  async newPairingCode() {
    return sync.publish(JSON.parse(await booted().sync_new_pairing_code()));
  },

  async leaveSpace() {
    sync.arm(null);
    return sync.publish(JSON.parse(await booted().sync_leave()));
  },

  async conflicts() {
    return JSON.parse(await booted().conflicts());
  },

  async resolveConflict(conflictId, opId) {
    return sync.changed(JSON.parse(await booted().resolve_conflict(conflictId, opId)));
  },

  /** collection "tasks" or "notes"; changes e.g. {title: "…"} or {done: true}; → the record. */
  async editRecord(collection, recordId, changes) {
    const record = JSON.parse(
      await booted().edit_record(collection, recordId, JSON.stringify(changes)),
    );
    sync.changed(await status());
    return record;
  },

  async removeRecord(collection, recordId) {
    const removed = JSON.parse(await booted().remove_record(collection, recordId));
    sync.changed(await status());
    return removed;
  },

  /** Every task and note as an export file's text (the format is in py_agent/export.py). */
  async exportData() {
    return booted().export_data();
  },

  /**
   * Merge an export file's text into the user's data, in one commit; resolves to
   * {summary, tasks, tasks_updated, notes, notes_updated}. A bad file changes nothing.
   */
  async importData(text) {
    const result = JSON.parse(await booted().import_data(text));
    sync.changed(await status()); // imported records are ops in the outbox, like any edit
    return result;
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

/**
 * A Python exception reaches JS as a PythonError whose message is the whole
 * traceback; the page shows errors to the user, so it gets the exception's own
 * message (the traceback stays in `stack`, for the console).
 */
function readable(error) {
  if (error?.constructor?.name !== 'PythonError') return error;
  const traceback = error.message.trimEnd();
  // The last line that starts "TypeName: " or "package.module.TypeName: ".
  const heading = new RegExp(`\\n(?:[\\w.]+\\.)?${error.type}: `, 'g');
  const last = [...traceback.matchAll(heading)].at(-1);
  const clean = new Error(last ? traceback.slice(last.index + last[0].length) : traceback);
  clean.name = error.type;
  clean.stack = traceback;
  return clean;
}

function withReadableErrors(methods) {
  return Object.fromEntries(
    Object.entries(methods).map(([name, method]) => [
      name,
      async (...args) => {
        try {
          return await method(...args);
        } catch (error) {
          throw readable(error);
        }
      },
    ]),
  );
}

function booted() {
  if (!rpc) throw new Error('py_agent is not booted yet');
  return rpc;
}

async function status() {
  return JSON.parse(await booted().sync_status());
}

// Local changes reach the server this long after the last one, so a burst of
// edits goes out in one exchange.
const DEBOUNCE_S = 1;

/**
 * The sync schedule: one timer, and never two sync_run calls at once. After each
 * run the timer follows the Status's next_in_s (a retry or the periodic pull),
 * unless local changes arrived meanwhile.
 */
const sync = {
  timer: 0,
  running: null, // the sync_run in progress
  queued: null, // the run asked for while one was in progress
  dirty: false, // local changes since the last run started
  last: null, // the last Status published
  watcher: null,

  arm(seconds) {
    clearTimeout(this.timer);
    this.timer = seconds == null ? 0 : setTimeout(() => this.now().catch(() => {}), seconds * 1000);
  },

  now() {
    if (this.running) {
      this.queued ??= this.running.catch(() => {}).then(() => {
        this.queued = null;
        return this.now();
      });
      return this.queued;
    }
    this.arm(null);
    this.dirty = false;
    this.running = booted().sync_run().finally(() => {
      this.running = null;
    });
    return this.running.then(
      (text) => {
        const result = JSON.parse(text);
        this.arm(this.dirty ? DEBOUNCE_S : result.next_in_s);
        return this.publish(result);
      },
      (error) => {
        // sync_run reports network and server failures in its Status, so this is a bug:
        // show it rather than retry in a loop.
        const message = `sync failed: ${readable(error).message}`;
        this.publish({ ...this.last, state: 'error', error: message, retry_in_s: null, next_in_s: null });
        throw error;
      },
    );
  },

  /** A local change: sync it shortly. */
  soon() {
    if (!this.last?.paired) return;
    this.dirty = true;
    if (!this.running) this.arm(DEBOUNCE_S);
  },

  changed(status) {
    this.publish(status);
    this.soon();
    return status;
  },

  /** Just paired (pairing ran the first exchange): follow the schedule it left. */
  paired(text) {
    const status = JSON.parse(text);
    if (!this.running) this.arm(status.next_in_s);
    return this.publish(status);
  },

  publish(status) {
    this.last = status;
    if (this.watcher) {
      this.watcher(status).catch((error) => console.error('the sync watcher failed:', error));
    }
    return status;
  },
};

// While requests wait for a second opinion, the queue is looked at this often (each
// request has its own backoff in Python; this only decides when to look).
const DRAIN_S = 15;

/** Asking the server again about tentative answers: one run at a time, one timer. */
const secondOpinions = {
  timer: 0,
  running: null,
  watcher: null,

  later() {
    if (!this.timer && !this.running) this.timer = setTimeout(() => this.now().catch(() => {}), DRAIN_S * 1000);
  },

  now() {
    if (this.running) return this.running;
    clearTimeout(this.timer);
    this.timer = 0;
    this.running = booted()
      .drain_queue()
      .then((text) => {
        const result = JSON.parse(text);
        if (result.added && this.watcher) {
          this.watcher().catch((error) => console.error('the chat watcher failed:', error));
        }
        return result;
      })
      .finally(() => {
        this.running = null;
      });
    return this.running.then((result) => {
      if (result.queue) this.later();
      return result;
    });
  },
};

Comlink.expose(withReadableErrors(api));
