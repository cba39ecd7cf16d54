// The JS half of py_agent's browser platform layer, registered in Pyodide as
// the module `py_agent_js` (see py_agent/platform/browser.py). Everything here
// is promise-based so Python can `await` it.
import { openDB } from './vendor/idb.js';
import * as Comlink from './vendor/comlink.mjs';

// Python's to_js(dict, dict_converter=...) needs a plain function.
export const fromEntries = (/** @type {Iterable<[string, unknown]>} */ entries) => Object.fromEntries(entries);

// The bridge tells every tab of this origin about its database connections on this
// channel (web/src/tabs.js shows it): {type: 'blocked' | 'unblocked' | 'blocking' |
// 'terminated', name, message}.
export const DB_EVENTS = 'py_agent-db';
/** @type {BroadcastChannel | null} */
let dbEvents = null;

/**
 * @typedef {import('./vendor/idb.js').IDBPDatabase} Database
 * @typedef {'blocked' | 'unblocked' | 'blocking' | 'terminated'} DbEventType
 */

/** @param {DbEventType} type @param {string} name @param {string} [message] */
function tell(type, name, message = '') {
  try {
    dbEvents ??= new BroadcastChannel(DB_EVENTS);
    dbEvents.postMessage({ type, name, message });
  } catch (error) {
    console.warn(`py_agent: could not report "${type}" for database ${name}:`, error);
  }
}

// Connections closed under us, with the error every later call on them gets (named
// StoreClosed: py_agent/platform/browser.py passes its message on as it is).
/** @type {WeakMap<Database, string>} */
const closedConnections = new WeakMap();

/** @param {Database} db @returns {Database} */
function usable(db) {
  const reason = closedConnections.get(db);
  if (reason) {
    const error = new Error(reason);
    error.name = 'StoreClosed';
    throw error;
  }
  return db;
}

/**
 * openDB with the multi-tab cases handled. `blocked`: an older connection elsewhere (a tab
 * still running an older build, or a closing tab's worker) keeps this upgrade waiting:
 * every tab is told, and the open waits until that connection closes. `blocking`: a newer
 * version wants to open: this connection closes at once so it can (this worker's data is
 * then gone, and its page must reload). `terminated`: the browser closed the connection
 * (site data cleared, disk error).
 * @param {string} name
 * @param {number} [version]
 * @param {(db: Database) => void} [upgrade]
 * @returns {Promise<Database>}
 */
async function openWatched(name, version, upgrade) {
  /** @type {Database | null} */
  let db = null;
  let blocked = false;
  /** @param {DbEventType} type @param {string} reason */
  const lost = (type, reason) => {
    if (db) closedConnections.set(db, reason);
    tell(type, name, reason);
  };
  db = await openDB(name, version, {
    upgrade,
    blocked() {
      blocked = true;
      tell('blocked', name, 'another py_agent tab still has your data open in its older form: close or reload it to continue');
    },
    blocking(currentVersion, blockedVersion, event) {
      // event.target is the very connection `db` wraps; closing it lets the other open go on.
      /** @type {IDBDatabase} */ (event.target).close();
      lost(
        'blocking',
        blockedVersion === null
          ? "py_agent's data was deleted in another tab: reload this tab"
          : 'py_agent was updated in another tab, which needed this tab to let go of your data: reload this tab',
      );
    },
    terminated() {
      lost('terminated', "the browser closed py_agent's data (was the site's data cleared?): reload this tab");
    },
  });
  if (blocked) tell('unblocked', name);
  return db;
}

/** IndexedDB, one transaction per call. */
export const idb = {
  /**
   * Open `name`, creating any object store in `storeNames` that is missing.
   * @param {string} name @param {Iterable<string>} storeNames
   */
  async open(name, storeNames) {
    const wanted = Array.from(storeNames);
    let db = await openWatched(name);
    const missing = wanted.filter((store) => !db.objectStoreNames.contains(store));
    if (missing.length === 0) return db;
    // Object stores can only be created in a version upgrade.
    const version = db.version + 1;
    db.close();
    db = await openWatched(name, version, (upgrading) => {
      for (const store of missing) upgrading.createObjectStore(store);
    });
    return db;
  },
  /**
   * One record (or none) of `store`, packed as getAllPacked packs them.
   * @param {Database} db @param {string} store @param {string} key
   */
  async getPacked(db, store, key) {
    const record = await usable(db).get(store, key);
    return pack(record === undefined ? [] : [record]);
  },
  /**
   * Every record of `store`, packed: one FFI crossing instead of one per record.
   * @param {Database} db @param {string} store
   */
  async getAllPacked(db, store) {
    return pack(await usable(db).getAll(store));
  },
  /**
   * Apply all writes (JSON text of [{op, store, key, value?, bytes?}]) in one readwrite
   * transaction. JSON rather than converted objects: Python's None must arrive as
   * null (to_js makes it undefined, which the JSON read path would then drop). A put's
   * `bytes` ({field: [offset, length]}) places slices of `data` into its value's fields.
   * Resolves only after the transaction completed (durably committed), rejects if
   * it aborted.
   * @param {Database} db @param {string} writesJson @param {Uint8Array} data
   */
  async commit(db, writesJson, data) {
    /** @type {{ op: 'put' | 'delete', store: string, key: string, value?: Record<string, unknown>, bytes?: Record<string, [number, number]> }[]} */
    const list = JSON.parse(writesJson);
    if (list.length === 0) return;
    const tx = usable(db).transaction([...new Set(list.map((w) => w.store))], 'readwrite');
    const requests = list.map((w) => {
      if (w.op === 'delete') return tx.objectStore(w.store).delete(w.key);
      const value = w.value ?? {};
      for (const [field, [offset, length]] of Object.entries(w.bytes ?? {})) {
        value[field] = data.slice(offset, offset + length);
      }
      return tx.objectStore(w.store).put(value, w.key);
    });
    await Promise.all([...requests, tx.done]);
  },
};

/** @typedef {{ json: string, fields: string, bytes: Uint8Array }} Packed */

/**
 * Records for Python: `json`, the records as JSON text with their bytes fields (Uint8Array,
 * e.g. embeddings) set to null; those fields' bytes one after the other in `bytes`, and
 * `fields`, JSON of [[record index, field, offset, length], ...] saying where each lies.
 * @param {unknown[]} records @returns {Packed}
 */
function pack(records) {
  /** @type {[number, string, number, number][]} */
  const fields = [];
  /** @type {Uint8Array[]} */
  const parts = [];
  let size = 0;
  records.forEach((record, index) => {
    if (record === null || typeof record !== 'object') return;
    const fieldsOf = /** @type {Record<string, unknown>} */ (record);
    for (const [field, value] of Object.entries(fieldsOf)) {
      if (value instanceof Uint8Array) {
        fields.push([index, field, size, value.byteLength]);
        parts.push(value);
        size += value.byteLength;
        fieldsOf[field] = null;
      }
    }
  });
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.byteLength;
  }
  return { json: JSON.stringify(records), fields: JSON.stringify(fields), bytes };
}

/**
 * @typedef {import('./ort_worker.js').OrtWorker} OrtWorker
 * @typedef {import('./ort_worker.js').SessionInfo} Session
 * @typedef {import('./ort_worker.js').LoadTimes} LoadTimes
 * @typedef {{ type: string, dims: Iterable<number>, bytes: Uint8Array<ArrayBuffer> }} Feed
 */

/** ORT's own worker (ort_worker.js), started with the first configure. @type {Comlink.Remote<OrtWorker> | null} */
let ortWorker = null;

function ortRemote() {
  if (!ortWorker) throw new Error('onnxruntime-web is not configured yet');
  return ortWorker;
}

/** @type {Map<string, Promise<Session>>} */
const sessions = new Map();

/** What a session's load or creation says ORT settled on (see numThreads). @param {Session} session */
function settled(session) {
  ort.settledThreads = session.numThreads;
  return session;
}

/** onnxruntime-web (CPU wasm build), in a worker of its own. */
export const ort = {
  version: '',
  settledThreads: 0,
  /**
   * Start ORT's worker. Must come before the first session: ORT reads numThreads once,
   * when its wasm starts.
   * @param {{ numThreads: number, wasmPaths: string }} options
   */
  async configure(options) {
    ortWorker ??= Comlink.wrap(new Worker(new URL('./ort_worker.js', import.meta.url), { type: 'module' }));
    ort.version = await ortWorker.configure(options);
  },
  /** What ORT settled on: it drops to 1 when the page is not crossOriginIsolated. */
  numThreads() {
    return ort.settledThreads;
  },
  /** @param {Uint8Array<ArrayBuffer>} bytes a copy, moved to ORT's worker */
  async createSession(bytes) {
    return settled(await ortRemote().create(Comlink.transfer(bytes, [bytes.buffer])));
  },
  /**
   * The session for the model at `location`, refused unless its bytes hash to `sha256`.
   * One session per URL: the worker starts this at boot and Python's call joins it.
   * `onProgress(received)` hears the bytes downloaded so far, when this call downloads.
   * @param {string} location @param {string} sha256
   * @param {(received: number) => void} [onProgress] @returns {Promise<Session>}
   */
  loadSession(location, sha256, onProgress) {
    const url = absolute(location);
    let session = sessions.get(url);
    if (!session) {
      const progress = onProgress && Comlink.proxy(onProgress);
      session = ortRemote()
        .load(url, location, sha256, progress)
        .then(({ timings, ...info }) => {
          ort.timings[location] = timings;
          return settled(info);
        });
      session.catch(() => sessions.delete(url)); // a failed load may be retried
      sessions.set(url, session);
    }
    return session;
  },
  /** Milliseconds spent per model URL. @type {Record<string, LoadTimes>} */
  timings: {},
  /**
   * feeds: {name: {type, dims, bytes: Uint8Array}} → [{name, type, dims, bytes}] in outputNames order.
   * Each feed's bytes are a copy made for this call (Python's to_js): they are moved, not copied again.
   * @param {Session} session @param {Record<string, Feed>} feeds
   */
  run(session, feeds) {
    /** @type {Record<string, import('./ort_worker.js').Tensor>} */
    const tensors = {};
    for (const [name, { type, dims, bytes }] of Object.entries(feeds)) tensors[name] = { type, dims: Array.from(dims), bytes };
    const buffers = [...new Set(Object.values(tensors).map(({ bytes }) => bytes.buffer))];
    return ortRemote().run(session.id, Comlink.transfer(tensors, buffers));
  },
};

/** Relative locations resolve against the worker's URL, as Python's requests do. */
const absolute = (/** @type {string} */ location) => new URL(location, self.location.href).href;

/** The bytes at `url`. @param {string} url */
async function download(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// Downloads the worker starts at boot, before Python runs; Python's first
// fetchBytes of the same URL takes the download instead of starting another.
/** @type {Map<string, Promise<Uint8Array>>} */
const prefetched = new Map();

export const http = {
  /** Start downloading `location` now; resolves to its bytes. @param {string} location */
  prefetch(location) {
    const url = absolute(location);
    let bytes = prefetched.get(url);
    if (!bytes) {
      bytes = download(url);
      bytes.catch(() => {}); // reported to whoever takes it, not as an unhandled rejection
      prefetched.set(url, bytes);
    }
    return bytes;
  },
  /** @param {string} location */
  fetchBytes(location) {
    const url = absolute(location);
    const bytes = prefetched.get(url) ?? download(url);
    prefetched.delete(url);
    return bytes;
  },
  /**
   * fetch with a deadline; rejects on network failure or timeout, resolves on any HTTP status.
   * @param {string} method @param {string} url @param {string | null | undefined} body JSON text
   * @param {Record<string, string>} headers @param {number} timeoutMs
   */
  async request(method, url, body, headers, timeoutMs) {
    /** @type {Record<string, string>} */
    const sent = { ...headers };
    if (body != null) sent['content-type'] = 'application/json';
    const init = { method, headers: sent, body: body ?? null, signal: AbortSignal.timeout(timeoutMs) };
    const response = await fetch(url, init);
    // Headers iterate with lower-case names.
    return {
      status: response.status,
      text: await response.text(),
      headers: Object.fromEntries(response.headers),
    };
  },
};
