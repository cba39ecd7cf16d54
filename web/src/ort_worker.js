// onnxruntime-web in a worker of its own, started by the agent worker (bridge.js talks
// to it through Comlink). Creating the session (ORT's wasm start, the model's graph
// optimisation) takes 0.5–0.7 s alone but took 1.5–3.5 s on the agent worker's thread,
// where every synchronous step of Python's start held it up; here it runs beside Python,
// on the other core. A run costs one message each way (the tensors' buffers are moved).
import * as Comlink from './vendor/comlink.mjs';
import * as ortModule from './ort/ort.wasm.min.mjs';

/**
 * @typedef {import('./ort/ort.wasm.min.mjs').InferenceSession} Session
 * @typedef {{ type: string, dims: number[], bytes: Uint8Array<ArrayBuffer> }} Tensor
 * @typedef {Tensor & { name: string }} Output
 * @typedef {{ download: number, verify: number, create: number }} LoadTimes
 * @typedef {{ id: number, inputNames: string[], outputNames: string[], numThreads: number }} SessionInfo
 * @typedef {typeof api} OrtWorker
 */

/** @type {Record<string, Float32ArrayConstructor | BigInt64ArrayConstructor | Int32ArrayConstructor | Uint8ArrayConstructor>} */
const TYPED_ARRAYS = {
  float32: Float32Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/** @type {Map<number, Session>} */
const sessions = new Map();

/** @param {ArrayBuffer} buffer */
function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * The bytes at `url`. `onProgress` hears how many have arrived, from a copy of the body:
 * reading the body itself chunk by chunk is slower than taking it whole.
 * @param {string} url @param {((received: number) => void) | undefined} onProgress
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

/** @param {Uint8Array} bytes @returns {Promise<SessionInfo>} */
async function open(bytes) {
  const session = await ortModule.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  const id = sessions.size + 1;
  sessions.set(id, session);
  // ORT settles numThreads when its wasm starts: 1 when the page is not crossOriginIsolated.
  const { inputNames, outputNames } = session;
  return { id, inputNames: [...inputNames], outputNames: [...outputNames], numThreads: ortModule.env.wasm.numThreads ?? 1 };
}

const api = {
  version: ortModule.env.versions.web ?? 'unknown',

  /** Must come before the first session: ORT reads numThreads once, when its wasm starts. */
  /** @param {{ numThreads: number, wasmPaths: string }} options */
  configure({ numThreads, wasmPaths }) {
    ortModule.env.wasm.numThreads = numThreads;
    ortModule.env.wasm.wasmPaths = wasmPaths;
    return api.version;
  },

  /** @param {Uint8Array} bytes */
  create(bytes) {
    return open(bytes);
  },

  /**
   * The model at `url`, refused (IntegrityError) unless its bytes hash to `sha256`.
   * @param {string} url @param {string} location for messages @param {string} sha256
   * @param {(received: number) => void} [onProgress]
   * @returns {Promise<SessionInfo & { timings: LoadTimes }>}
   */
  async load(url, location, sha256, onProgress) {
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
    const info = await open(bytes);
    const timings = { download: downloaded - started, verify: verified - downloaded, create: performance.now() - verified };
    return { ...info, timings };
  },

  /**
   * The session's outputs, in outputNames order.
   * @param {number} id @param {Record<string, Tensor>} feeds @returns {Promise<Output[]>}
   */
  async run(id, feeds) {
    const session = sessions.get(id);
    if (!session) throw new Error(`no ORT session ${id}`);
    /** @type {Record<string, import('./ort/ort.wasm.min.mjs').Tensor>} */
    const inputs = {};
    for (const [name, feed] of Object.entries(feeds)) {
      const Typed = TYPED_ARRAYS[feed.type];
      if (!Typed) throw new Error(`input ${name}: unsupported tensor type ${feed.type}`);
      const { buffer, byteOffset, byteLength } = feed.bytes;
      inputs[name] = new ortModule.Tensor(
        /** @type {'float32'} the type the array is of */ (feed.type),
        /** @type {Float32Array} */ (new Typed(buffer, byteOffset, byteLength / Typed.BYTES_PER_ELEMENT)),
        feed.dims,
      );
    }
    const results = await session.run(inputs);
    const outputs = session.outputNames.map((name) => {
      const tensor = results[name];
      const data = /** @type {ArrayBufferView} */ (tensor.data);
      // A copy of exactly the tensor's bytes, so its buffer can be moved, not cloned.
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      return { name, type: tensor.type, dims: [...tensor.dims], bytes };
    });
    return Comlink.transfer(outputs, outputs.map(({ bytes }) => bytes.buffer));
  },
};

Comlink.expose(api);
