// The Pyodide memory snapshot the worker boots from on a revisit: Python's heap once it
// had started and imported py_agent.preload, kept in Cache Storage. It is only used when
// it was made by this Pyodide for these very wheels (the key) and its bytes are those
// that were stored (their sha256); anything else is refused and the worker starts Python
// afresh, then replaces it.

const CACHE = 'py_agent-boot';
// Never fetched: only the Cache Storage key the snapshot is kept under.
const ENTRY = new URL('./boot-snapshot', import.meta.url).href;
// Bumped when what the worker does before its snapshot changes (not the wheels: the key
// has their sha256).
const FORMAT = 1;
// Pyodide 0.27's snapshot header (src/js/snapshot.ts): a magic number, then the offset of
// the heap, which fills whole 64 KiB wasm pages. Bytes that are not shaped so are refused
// here: Pyodide would size the wasm memory from them, and its instantiation failure only
// logs a warning and never settles.
const SNAPSHOT_MAGIC = 0x706e7300;
const WASM_PAGE = 65536;

/** @param {ArrayBuffer} buffer */
function isPyodideSnapshot(buffer) {
  if (buffer.byteLength < 16) return false;
  const [magic, heapOffset] = new Uint32Array(buffer, 0, 2);
  const heap = buffer.byteLength - heapOffset;
  return magic === SNAPSHOT_MAGIC && heap > 0 && heap % WASM_PAGE === 0;
}

/** @param {BufferSource} bytes */
export async function sha256(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * What a snapshot depends on: the Pyodide build, the wheels unpacked before it.
 * @param {string} pyodideVersion @param {{ sha256: string }[]} wheels
 */
export function keyFor(pyodideVersion, wheels) {
  return `${FORMAT}/${pyodideVersion}/${wheels.map((wheel) => wheel.sha256).join('+')}`;
}

/**
 * The stored snapshot for `key`: its bytes, still being read and checked (they reject if
 * they are not those stored), or why there is none to use (`rejected` null: none stored).
 * @param {string} key
 * @returns {Promise<{ bytes: Promise<Uint8Array> | null, rejected: string | null }>}
 */
export async function find(key) {
  let response;
  try {
    response = await (await caches.open(CACHE)).match(ENTRY);
  } catch (error) {
    return { bytes: null, rejected: `Cache Storage failed: ${/** @type {Error} */ (error).message}` };
  }
  if (!response) return { bytes: null, rejected: null };
  if (response.headers.get('x-snapshot-key') !== key) {
    return { bytes: null, rejected: 'it was made for another build' };
  }
  const expected = response.headers.get('x-snapshot-sha256');
  const bytes = response.arrayBuffer().then(async (buffer) => {
    if ((await sha256(buffer)) !== expected) throw new Error('its bytes are not those stored (corrupted)');
    if (!isPyodideSnapshot(buffer)) throw new Error('it is not a Pyodide snapshot');
    return new Uint8Array(buffer);
  });
  bytes.catch(() => {}); // loadPyodide awaits it and reports its error
  return { bytes, rejected: null };
}

/** @param {string} key @param {Uint8Array<ArrayBuffer>} bytes */
export async function write(key, bytes) {
  const headers = { 'x-snapshot-key': key, 'x-snapshot-sha256': await sha256(bytes) };
  await (await caches.open(CACHE)).put(ENTRY, new Response(bytes, { headers }));
}

export async function remove() {
  await (await caches.open(CACHE)).delete(ENTRY);
}
