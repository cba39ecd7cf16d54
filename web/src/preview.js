// What the user had, on screen before Python is up: the tasks, notes and settings read
// straight from the worker's IndexedDB database, in the form the page shows them
// (py_agent/state.py keeps these stores: "tasks" and "notes" by record id, and the
// settings at "meta"/"settings"). Read-only and short-lived: the database is never created
// or upgraded here, and the connection closes as soon as the read is done, or at once when
// the worker wants to upgrade it. index.html loads this module on its own (async), so the
// read starts without waiting for the rest of the page's scripts.
import { openDB } from './vendor/idb.js';
import { showStoredSettings } from './cloud_view.js';
import { showStoredPanes } from './panes.js';

/** py_agent/worker_api.py's STATE_DB. */
const DATABASE = 'py_agent';

/**
 * @typedef {import('./types.js').TaskView} TaskView
 * @typedef {import('./types.js').Note} Note
 * @typedef {{ tasks: TaskView[], notes: Note[], settings: { cloud_help?: unknown, threshold?: unknown } }} Stored
 */

/** Whether `value` is a record whose `fields` are all strings (what the lists need). @param {unknown} value @param {string[]} fields */
const hasStrings = (value, ...fields) =>
  value !== null &&
  typeof value === 'object' &&
  fields.every((name) => typeof (/** @type {Record<string, unknown>} */ (value))[name] === 'string');

/**
 * Records in the order they were made, as the worker lists them (py_agent/state.py's
 * creation_order): by created_at, then id. Code-unit order, as Python's for these ASCII keys.
 * @template {{ id: string, created_at: string }} T @param {T[]} records
 */
function inCreationOrder(records) {
  const key = (/** @type {T} */ r) => [String(r.created_at ?? ''), r.id];
  return records.sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    return ka[0] < kb[0] ? -1 : ka[0] > kb[0] ? 1 : ka[1] < kb[1] ? -1 : ka[1] > kb[1] ? 1 : 0;
  });
}

/** @returns {Promise<Stored | null>} null when nothing is stored yet */
async function readStored() {
  // Opening a database that does not exist would create it, an empty one the worker would
  // then have to upgrade: look first.
  const databases = await indexedDB.databases();
  if (!databases.some((database) => database.name === DATABASE)) return null;
  const db = await openDB(DATABASE, undefined, {
    // Only reached if the database went away since: leave it uncreated.
    upgrade(_db, _old, _new, transaction) {
      transaction.abort();
    },
    // The worker upgrades the database (a new store) or it is being deleted: let go now.
    blocking(_current, _blocked, event) {
      /** @type {IDBDatabase} */ (event.target).close();
    },
  });
  try {
    const names = ['tasks', 'notes', 'meta'].filter((name) => db.objectStoreNames.contains(name));
    if (!names.length) return null;
    const transaction = db.transaction(names, 'readonly');
    /** @param {string} name */
    const all = (name) => (names.includes(name) ? transaction.objectStore(name).getAll() : Promise.resolve([]));
    const [tasks, notes, settings] = await Promise.all([
      all('tasks'),
      all('notes'),
      names.includes('meta') ? transaction.objectStore('meta').get('settings') : undefined,
    ]);
    return {
      tasks: inCreationOrder(tasks.filter((task) => hasStrings(task, 'id', 'title'))),
      notes: inCreationOrder(notes.filter((note) => hasStrings(note, 'id', 'text'))),
      settings: settings !== null && typeof settings === 'object' ? settings : {},
    };
  } finally {
    db.close();
  }
}

/** Resolves once the document is parsed: an async module may run before. */
function parsed() {
  if (document.readyState !== 'loading') return Promise.resolve();
  return new Promise((resolve) => document.addEventListener('readystatechange', resolve, { once: true }));
}

/**
 * Show the stored tasks, notes and settings until the worker's own replace them. Failing
 * to read them only loses the preview: the worker shows the same once it is ready.
 */
async function showStored() {
  try {
    const stored = await readStored();
    await parsed();
    showStoredSettings(stored?.settings ?? {});
    showStoredPanes(stored ?? { tasks: [], notes: [] });
  } catch (error) {
    await parsed();
    showStoredSettings({});
    console.warn('py_agent: could not show the stored tasks and notes before the agent started:', error);
  }
}

showStored();
