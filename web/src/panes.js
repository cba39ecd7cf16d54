// The task and note panes and the conflicts list: rendered from the worker, edited in place.
// A task or note in conflict is marked where it is shown (data-conflict="true"), with the
// choices beside it. Before the worker is ready they show what was stored (preview.js),
// read-only.
import { $ } from './dom.js';

/**
 * @typedef {import('./types.js').Snapshot} Snapshot
 * @typedef {import('./types.js').TaskView} TaskView
 * @typedef {import('./types.js').Note} Note
 * @typedef {import('./types.js').Conflict} Conflict
 * @typedef {import('./api.js').PyAgent} PyAgent
 */

// Set while a task title is being edited: re-rendering would throw the edit away,
// so the panes wait for it to end.
let editingTitle = false;
/** @type {{ snapshot: Snapshot, conflicts: Conflict[] } | null} */
let deferredPanes = null;
// Set once the worker's panes are shown: the stored ones, read late, must not replace them.
let shownLive = false;

/** @param {string} label */
function deleteButton(label) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'delete';
  button.title = 'Delete';
  button.setAttribute('aria-label', `Delete “${label}”`);
  return button;
}

/**
 * "“buy milk”", "done", "deleted": a version of a field, as the user thinks of it.
 * @param {string} field @param {unknown} value
 */
function describeValue(field, value) {
  if (field === '_deleted') return value ? 'deleted' : 'not deleted';
  if (field === 'done') return value ? 'done' : 'not done';
  return typeof value === 'string' ? `“${value}”` : JSON.stringify(value);
}

/** @param {import('./types.js').ConflictVersion} version */
const where = (version) => (version.this_device ? 'on this device' : 'on another device');

/**
 * A contested delete's two sides (py_agent/sync/merge.py): a version that deletes, and one
 * that keeps the record -- "restore with the edit" (it has `changes`) where there is one,
 * else a plain restore. Either side restores every concurrent edit, which stays its field's.
 * @param {Conflict} conflict
 */
function deleteSides(conflict) {
  const deleted = conflict.versions.find((version) => version.value === true);
  const keeping = conflict.versions.filter((version) => version.value !== true);
  const kept = keeping.find((version) => Object.keys(version.changes).length) ?? keeping[0];
  const edited = Boolean(kept && Object.keys(kept.changes).length);
  return { deleted, kept, edited };
}

/**
 * What a contested delete is: deleted on one device, changed or restored on another.
 * @param {Conflict} conflict
 */
function describeDelete(conflict) {
  const { deleted, kept, edited } = deleteSides(conflict);
  if (!deleted || !kept) return 'Deleted on one device and kept on another.';
  return `Deleted ${where(deleted)} while it was ${edited ? 'changed' : 'restored'} ${where(kept)}.`;
}

/**
 * The choices for one conflict of a record, labelled with the record for screen readers.
 * A contested delete has two: keep it deleted, or restore it with the other device's
 * change (py_agent/sync/merge.py); an edit on two devices, one per version.
 * @param {Conflict} conflict @param {string} label
 */
function conflictChoices(conflict, label) {
  /** @type {[import('./types.js').ConflictVersion, string, string][]} */
  let choices;
  if (conflict.field === '_deleted') {
    const { deleted, kept, edited } = deleteSides(conflict);
    const withEdit = edited ? ' with the edit' : '';
    choices = [];
    if (deleted) choices.push([deleted, 'Keep deleted', `Keep “${label}” deleted`]);
    if (kept) choices.push([kept, `Restore${withEdit}`, `Restore “${label}”${withEdit}`]);
  } else {
    choices = conflict.versions.map((version) => {
      const value = describeValue(conflict.field, version.value);
      return [version, `Keep ${value}`, `Keep ${value} (${where(version)}) for “${label}”`];
    });
  }
  const box = document.createElement('div');
  box.className = 'choices';
  for (const [version, text, name] of choices) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.conflict = conflict.id;
    button.dataset.op = version.op_id;
    button.textContent = text;
    button.setAttribute('aria-label', name);
    box.append(button);
  }
  return box;
}

/**
 * Marks a task or note in conflict and puts the choices under it, as a labelled group.
 * @param {HTMLLIElement} item @param {Conflict[]} conflicts @param {string} label
 */
function markConflicts(item, conflicts, label) {
  if (!conflicts.length) return;
  item.dataset.conflict = 'true';
  for (const conflict of conflicts) {
    const group = document.createElement('div');
    group.className = 'conflict';
    group.setAttribute('role', 'group');
    const text = document.createElement('p');
    text.id = `conflict-${conflict.id}`;
    const field = conflict.field === 'text' || conflict.field === 'title' ? '' : ` (${conflict.field})`;
    text.textContent = conflict.field === '_deleted' ? describeDelete(conflict) : `Edited on two devices${field}:`;
    group.setAttribute('aria-labelledby', text.id);
    group.append(text, conflictChoices(conflict, label));
    item.append(group);
  }
}

/**
 * A task in the list; `editable` once the worker can save the edit.
 * @param {TaskView} task @param {boolean} editable @param {Conflict[]} [conflicts] the task's
 */
function taskItem(task, editable, conflicts = []) {
  const item = document.createElement('li');
  // A stable hook for tests and outside tools, as is "note" below.
  item.dataset.role = 'task';
  item.dataset.id = task.id;
  item.classList.toggle('done', task.done);
  const done = document.createElement('input');
  done.type = 'checkbox';
  done.checked = task.done;
  done.setAttribute('aria-label', `Done: ${task.title}`);
  const title = document.createElement('span');
  title.className = 'title';
  if (editable) {
    title.contentEditable = 'plaintext-only';
    title.spellcheck = false;
    title.setAttribute('role', 'textbox');
    title.setAttribute('aria-label', 'Task title (Enter saves, Escape cancels)');
  }
  title.textContent = task.title;
  title.dataset.saved = task.title;
  item.append(done, title);
  // Due date, repeat rule (in words, from the worker) and list, after the title; each
  // in its own span with a data-role ("due", "repeat", "list") for tests and styles.
  const when = task.due_date && `${task.due_date}${task.due_time ? ` ${task.due_time}` : ''}`;
  /** @type {[string, string | null][]} */
  const details = [
    ['due', when],
    ['repeat', task.repeat_text],
    ['list', task.list && `${task.list} list`],
  ];
  const shown = details.filter(([, text]) => text);
  if (shown.length) {
    const due = document.createElement('span');
    due.className = 'due';
    due.append(' — ');
    shown.forEach(([role, text], index) => {
      const part = document.createElement('span');
      part.dataset.role = role;
      part.textContent = text;
      due.append(...(index ? [' · ', part] : [part]));
    });
    item.append(due);
  }
  item.append(deleteButton(task.title));
  markConflicts(item, conflicts, task.title);
  return item;
}

/** @param {Note} note @param {Conflict[]} [conflicts] the note's */
function noteItem(note, conflicts = []) {
  const item = document.createElement('li');
  item.dataset.role = 'note';
  item.dataset.id = note.id;
  item.append(note.text, deleteButton(note.text));
  markConflicts(item, conflicts, note.text);
  return item;
}

/** @param {Snapshot} snapshot @param {Conflict[]} conflicts */
function renderPanes(snapshot, conflicts) {
  if (editingTitle) {
    deferredPanes = { snapshot, conflicts };
    return;
  }
  deferredPanes = null;
  shownLive = true;
  /** @param {'tasks' | 'notes'} collection @param {string} id */
  const of = (collection, id) =>
    conflicts.filter((conflict) => conflict.collection === collection && conflict.record_id === id);
  $('tasks').replaceChildren(...snapshot.tasks.map((task) => taskItem(task, true, of('tasks', task.id))));
  $('notes').replaceChildren(...snapshot.notes.map((note) => noteItem(note, of('notes', note.id))));
}

/**
 * The tasks and notes as stored, until the worker's own panes replace them; their
 * controls stay disabled until then (index.html's fieldset #needs-agent).
 * @param {{ tasks: TaskView[], notes: Note[] }} stored
 */
export function showStoredPanes(stored) {
  if (shownLive) return;
  $('tasks').replaceChildren(...stored.tasks.map((task) => taskItem(task, false)));
  $('notes').replaceChildren(...stored.notes.map((note) => noteItem(note)));
}

/** @param {Conflict[]} conflicts */
function renderConflicts(conflicts) {
  $('conflicts-section').hidden = conflicts.length === 0;
  $('conflicts').replaceChildren(
    ...conflicts.map((conflict) => {
      const item = document.createElement('li');
      item.dataset.id = conflict.id;
      const field = conflict.field === '_deleted' ? 'deleted' : conflict.field;
      const what = ['title', 'text'].includes(field) ? '' : ` (${field})`;
      const devices = conflict.versions.length === 2 ? 'two' : String(conflict.versions.length);
      const text = document.createElement('p');
      text.textContent = `“${conflict.label}”${what} was edited on ${devices} devices:`;
      const choices = document.createElement('div');
      choices.className = 'choices';
      for (const version of conflict.versions) {
        const button = document.createElement('button');
        button.type = 'button';
        button.dataset.conflict = conflict.id;
        button.dataset.op = version.op_id;
        const where = document.createElement('small');
        const at = new Date(version.at).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
        where.textContent = `${version.this_device ? 'this device' : 'other device'} · ${at}`;
        button.append(`Keep ${describeValue(conflict.field, version.value)}`, where);
        choices.append(button);
      }
      item.append(text, choices);
      return item;
    }),
  );
}

/** @param {unknown} error */
function showEditError(error) {
  $('edit-error').textContent = error ? `Sorry, that failed: ${/** @type {Error} */ (error).message}` : '';
  $('edit-error').hidden = !error;
}

/**
 * The task and note panes and the conflicts list, from the worker. Refreshes run
 * one after another, so an older answer never overwrites a newer one.
 * @param {PyAgent} agent
 * @returns {() => Promise<void>}
 */
export function panes(agent) {
  let queue = Promise.resolve();
  return () => {
    queue = queue.then(async () => {
      const [snapshot, conflicts] = await Promise.all([agent.snapshot(), agent.conflicts()]);
      renderPanes(snapshot, conflicts);
      renderConflicts(conflicts);
    }).catch(showEditError);
    return queue;
  };
}

/**
 * Edit in place: check a task off, rename it, delete a task or a note, pick a conflict's version.
 * @param {PyAgent} agent @param {() => Promise<void>} refresh
 */
export function startPanes(agent, refresh) {
  /** @param {() => Promise<unknown>} change */
  const act = async (change) => {
    showEditError(null);
    try {
      await change();
    } finally {
      await refresh();
    }
  };
  /** The id of the task or note an event happened in. @param {Event} event */
  const recordId = (event) => /** @type {HTMLElement} */ (event.target).closest('li')?.dataset.id ?? '';
  /** The task title an event happened on, if it did. @param {EventTarget | null} target */
  const titleOf = (target) => (target instanceof HTMLElement && target.classList.contains('title') ? target : null);
  const tasks = $('tasks');
  tasks.addEventListener('change', (event) => {
    const done = /** @type {HTMLInputElement} */ (event.target).checked;
    act(() => agent.editRecord('tasks', recordId(event), { done })).catch(showEditError);
  });
  tasks.addEventListener('keydown', (event) => {
    const title = titleOf(event.target);
    if (!title) return;
    if (event.key === 'Enter') {
      event.preventDefault();
      title.blur();
    } else if (event.key === 'Escape') {
      title.textContent = title.dataset.saved ?? '';
      title.blur();
    }
  });
  tasks.addEventListener('focusin', (event) => {
    if (titleOf(event.target)) editingTitle = true;
  });
  tasks.addEventListener('focusout', async (event) => {
    const title = titleOf(event.target);
    if (!title) return;
    // A pasted line break would end up in the title.
    const text = (title.textContent ?? '').replace(/\s+/g, ' ').trim();
    const changed = text !== title.dataset.saved;
    if (changed) {
      try {
        await agent.editRecord('tasks', recordId(event), { title: text });
        showEditError(null);
      } catch (error) {
        // Keep what was typed, and the caret in it, so nothing is lost (the panes
        // were not re-rendered meanwhile: editingTitle is still set).
        showEditError(error);
        title.focus();
        return;
      }
    }
    // Moving on to another title: the panes wait for that edit too.
    if (titleOf(event.relatedTarget) || titleOf(document.activeElement)) return;
    editingTitle = false;
    if (changed) await refresh();
    else if (deferredPanes) renderPanes(deferredPanes.snapshot, deferredPanes.conflicts);
  });
  /** @param {'tasks' | 'notes'} collection */
  const remove = (collection) => (/** @type {Event} */ event) => {
    if (!/** @type {HTMLElement} */ (event.target).classList.contains('delete')) return;
    const id = recordId(event);
    act(() => agent.removeRecord(collection, id)).catch(showEditError);
  };
  tasks.addEventListener('click', remove('tasks'));
  $('notes').addEventListener('click', remove('notes'));
  /** A conflict's choice, in the Sync section or beside its task or note. @param {Event} event */
  const choose = (event) => {
    const { conflict, op } = /** @type {HTMLElement} */ (event.target).closest('button')?.dataset ?? {};
    if (!conflict || !op) return;
    act(() => agent.resolveConflict(conflict, op)).catch(showEditError);
  };
  for (const list of ['conflicts', 'tasks', 'notes']) $(list).addEventListener('click', choose);
}

