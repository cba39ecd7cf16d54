// The task and note panes and the conflicts list: rendered from the worker, edited in place.
// Before the worker is ready they show what was stored (preview.js), read-only.
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
/** @type {Snapshot | null} */
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
 * A task in the list; `editable` once the worker can save the edit.
 * @param {TaskView} task @param {boolean} editable
 */
function taskItem(task, editable) {
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
  return item;
}

/** @param {Note} note */
function noteItem(note) {
  const item = document.createElement('li');
  item.dataset.role = 'note';
  item.dataset.id = note.id;
  item.append(note.text, deleteButton(note.text));
  return item;
}

/** @param {Snapshot} panes */
function renderPanes(panes) {
  if (editingTitle) {
    deferredPanes = panes;
    return;
  }
  deferredPanes = null;
  shownLive = true;
  $('tasks').replaceChildren(...panes.tasks.map((task) => taskItem(task, true)));
  $('notes').replaceChildren(...panes.notes.map(noteItem));
}

/**
 * The tasks and notes as stored, until the worker's own panes replace them; their
 * controls stay disabled until then (index.html's fieldset #needs-agent).
 * @param {{ tasks: TaskView[], notes: Note[] }} stored
 */
export function showStoredPanes(stored) {
  if (shownLive) return;
  $('tasks').replaceChildren(...stored.tasks.map((task) => taskItem(task, false)));
  $('notes').replaceChildren(...stored.notes.map(noteItem));
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
      renderPanes(snapshot);
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
    else if (deferredPanes) renderPanes(deferredPanes);
  });
  /** @param {'tasks' | 'notes'} collection */
  const remove = (collection) => (/** @type {Event} */ event) => {
    if (!/** @type {HTMLElement} */ (event.target).classList.contains('delete')) return;
    const id = recordId(event);
    act(() => agent.removeRecord(collection, id)).catch(showEditError);
  };
  tasks.addEventListener('click', remove('tasks'));
  $('notes').addEventListener('click', remove('notes'));
  $('conflicts').addEventListener('click', (event) => {
    const { conflict, op } = /** @type {HTMLElement} */ (event.target).closest('button')?.dataset ?? {};
    if (!conflict || !op) return;
    act(() => agent.resolveConflict(conflict, op)).catch(showEditError);
  });
}

