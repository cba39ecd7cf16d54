// The JS half of py_agent's browser platform layer, registered in Pyodide as
// the module `py_agent_js` (see py_agent/platform/browser.py). Everything here
// is promise-based so Python can `await` it.
import { openDB } from './vendor/idb.js';
import * as ortModule from './ort/ort.wasm.min.mjs';

// Python's to_js(dict, dict_converter=...) needs a plain function.
export const fromEntries = (entries) => Object.fromEntries(entries);

/** IndexedDB, one transaction per call. */
export const idb = {
  /** Open `name`, creating any object store in `storeNames` that is missing. */
  async open(name, storeNames) {
    const wanted = Array.from(storeNames);
    let db = await openDB(name);
    const missing = wanted.filter((store) => !db.objectStoreNames.contains(store));
    if (missing.length === 0) return db;
    // Object stores can only be created in a version upgrade.
    const version = db.version + 1;
    db.close();
    db = await openDB(name, version, {
      upgrade(upgrading) {
        for (const store of missing) upgrading.createObjectStore(store);
      },
    });
    return db;
  },
  get(db, store, key) {
    return db.get(store, key);
  },
  getAll(db, store) {
    return db.getAll(store);
  },
  /**
   * Apply all writes in one readwrite transaction. Resolves only after the
   * transaction completed (durably committed), rejects if it aborted.
   */
  async commit(db, writes) {
    const list = Array.from(writes);
    if (list.length === 0) return;
    const tx = db.transaction([...new Set(list.map((w) => w.store))], 'readwrite');
    const requests = list.map((w) =>
      w.op === 'put' ? tx.objectStore(w.store).put(w.value, w.key) : tx.objectStore(w.store).delete(w.key),
    );
    await Promise.all([...requests, tx.done]);
  },
};

const TYPED_ARRAYS = {
  float32: Float32Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/** onnxruntime-web (CPU wasm build). */
export const ort = {
  version: ortModule.env.versions.web,
  /** Must run before the first session: ORT reads numThreads once, when its wasm starts. */
  configure({ numThreads, wasmPaths }) {
    ortModule.env.wasm.numThreads = numThreads;
    ortModule.env.wasm.wasmPaths = wasmPaths;
  },
  /** What ORT settled on: it drops to 1 when the page is not crossOriginIsolated. */
  numThreads() {
    return ortModule.env.wasm.numThreads;
  },
  createSession(bytes) {
    return ortModule.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  },
  /** feeds: {name: {type, dims, bytes: Uint8Array}} → [{name, type, dims, bytes}] in outputNames order. */
  async run(session, feeds) {
    const inputs = {};
    for (const [name, feed] of Object.entries(feeds)) {
      const Typed = TYPED_ARRAYS[feed.type];
      if (!Typed) throw new Error(`input ${name}: unsupported tensor type ${feed.type}`);
      const { buffer, byteOffset, byteLength } = feed.bytes;
      inputs[name] = new ortModule.Tensor(
        feed.type,
        new Typed(buffer, byteOffset, byteLength / Typed.BYTES_PER_ELEMENT),
        Array.from(feed.dims),
      );
    }
    const results = await session.run(inputs);
    return session.outputNames.map((name) => {
      const tensor = results[name];
      const data = tensor.data;
      return {
        name,
        type: tensor.type,
        dims: tensor.dims,
        bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      };
    });
  },
};

/** fetch with a deadline; rejects on network failure or timeout, resolves on any HTTP status. */
export const http = {
  async request(method, url, body, headers, timeoutMs) {
    const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
    if (body != null) {
      init.body = body;
      init.headers['content-type'] = 'application/json';
    }
    const response = await fetch(url, init);
    return { status: response.status, text: await response.text() };
  },
};
