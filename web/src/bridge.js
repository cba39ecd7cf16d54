// The JS half of py_agent's browser platform layer, registered in Pyodide as
// the module `py_agent_js` (see py_agent/platform/browser.py). Everything here
// is promise-based so Python can `await` it.
import { openDB } from './vendor/idb.js';
import * as ortModule from './ort/ort.wasm.min.mjs';

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
 * @typedef {import('./ort/ort.wasm.min.mjs').InferenceSession} Session
 * @typedef {{ type: string, dims: Iterable<number>, bytes: Uint8Array<ArrayBuffer> }} Feed
 * @typedef {{ download: number, verify: number, create: number }} LoadTimes
 */

/** @type {Record<string, Float32ArrayConstructor | BigInt64ArrayConstructor | Int32ArrayConstructor | Uint8ArrayConstructor>} */
const TYPED_ARRAYS = {
  float32: Float32Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/** @type {Map<string, Promise<Session>>} */
const sessions = new Map();

/** @param {ArrayBuffer} buffer */
function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * @param {string} url @param {string} location @param {string} sha256
 * @param {(received: number) => void} [onProgress]
 */
async function createVerifiedSession(url, location, sha256, onProgress) {
  const started = performance.now();
  const bytes = await download(url, onProgress);
  const downloaded = performance.now();
  const actual = hex(await crypto.subtle.digest('SHA-256', bytes));
  if (actual !== sha256) {
    const error = new Error(
      `${location}: sha256 is ${actual}, but its manifest expects ${sha256}; refusing it ` +
        '(rebuild the models, or the download was corrupted)',
    );
    error.name = 'IntegrityError';
    throw error;
  }
  const verified = performance.now();
  const session = await ortModule.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  ort.timings[location] = {
    download: downloaded - started,
    verify: verified - downloaded,
    create: performance.now() - verified,
  };
  return session;
}

/** onnxruntime-web (CPU wasm build). */
export const ort = {
  version: ortModule.env.versions.web,
  /** Must run before the first session: ORT reads numThreads once, when its wasm starts. */
  /** @param {{ numThreads: number, wasmPaths: string }} options */
  configure({ numThreads, wasmPaths }) {
    ortModule.env.wasm.numThreads = numThreads;
    ortModule.env.wasm.wasmPaths = wasmPaths;
  },
  /** What ORT settled on: it drops to 1 when the page is not crossOriginIsolated. */
  numThreads() {
    return ortModule.env.wasm.numThreads;
  },
  /** @param {Uint8Array} bytes */
  createSession(bytes) {
    return ortModule.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
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
      session = createVerifiedSession(url, location, sha256, onProgress);
      session.catch(() => sessions.delete(url)); // a failed load may be retried
      sessions.set(url, session);
    }
    return session;
  },
  /** Milliseconds spent per model URL. @type {Record<string, LoadTimes>} */
  timings: {},
  /**
   * feeds: {name: {type, dims, bytes: Uint8Array}} → [{name, type, dims, bytes}] in outputNames order.
   * @param {Session} session @param {Record<string, Feed>} feeds
   */
  async run(session, feeds) {
    /** @type {Record<string, import('./ort/ort.wasm.min.mjs').Tensor>} */
    const inputs = {};
    for (const [name, feed] of Object.entries(feeds)) {
      const Typed = TYPED_ARRAYS[feed.type];
      if (!Typed) throw new Error(`input ${name}: unsupported tensor type ${feed.type}`);
      const { buffer, byteOffset, byteLength } = feed.bytes;
      inputs[name] = new ortModule.Tensor(
        /** @type {'float32'} the type the array is of */ (feed.type),
        /** @type {Float32Array} */ (new Typed(buffer, byteOffset, byteLength / Typed.BYTES_PER_ELEMENT)),
        Array.from(feed.dims),
      );
    }
    const results = await session.run(inputs);
    return session.outputNames.map((name) => {
      const tensor = results[name];
      const data = /** @type {ArrayBufferView} */ (tensor.data);
      return {
        name,
        type: tensor.type,
        dims: tensor.dims,
        bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      };
    });
  },
};

/** Relative locations resolve against the worker's URL, as Python's requests do. */
const absolute = (/** @type {string} */ location) => new URL(location, self.location.href).href;

/**
 * The bytes at `url`. `onProgress` hears how many have arrived, from a copy of the body read
 * here: the download itself must not wait for this thread, which Python's synchronous work
 * keeps busy for up to seconds (a body read chunk by chunk here stalls meanwhile).
 * @param {string} url @param {(received: number) => void} [onProgress]
 */
async function download(url, onProgress) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  const progress = onProgress && response.clone().body?.getReader();
  const bytes = response.arrayBuffer();
  if (progress && onProgress) {
    const report = async () => {
      let received = 0;
      for (;;) {
        const { done, value } = await progress.read();
        if (done) return;
        received += value.byteLength;
        onProgress(received);
      }
    };
    report().catch(() => {}); // cancelled below, once the bytes are in
    const stop = () => progress.cancel().catch(() => {});
    bytes.then((all) => {
      stop();
      onProgress(all.byteLength);
    }, stop);
  }
  return new Uint8Array(await bytes);
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
