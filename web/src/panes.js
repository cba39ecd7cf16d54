// The task list and the notes: grouped as people plan (Overdue, Today, Upcoming, Anytime,
// Done), narrowed by the views bar (a section, the notes, or one of the user's lists), and
// changed in place: check off, rename, edit the date, time and list, delete with an Undo
// toast. Every change is the same synced op as the agent's (worker_api.edit_record,
// remove_record, restore_record). A task or note in conflict is marked where it is shown
// (data-conflict="true"), with the choices beside it. Before the worker is ready the list
// shows what was stored (preview.js), read-only.
import { $ } from './dom.js';
import { SECTIONS, dueDatetime, humanDue, sectionOf } from './when.js';

/**
 * @typedef {import('./types.js').Snapshot} Snapshot
 * @typedef {import('./types.js').TaskView} TaskView
 * @typedef {import('./types.js').Note} Note
 * @typedef {import('./types.js').Conflict} Conflict
 * @typedef {import('./api.js').PyAgent} PyAgent
 * @typedef {import('./when.js').Section} Section
 * @typedef {{ tasks: TaskView[], notes: Note[], conflicts: Conflict[], editable: boolean }} Shown
 */

/** @type {Record<Section, string>} */
const SECTION_TITLES = {
  overdue: 'Overdue',
  today: 'Today',
  upcoming: 'Upcoming',
  anytime: 'Anytime',
  done: 'Done',
};

// The views bar's fixed views: [view, label, the sections it shows (null: every one, and the notes)].
/** @type {[string, string, Section[] | null][]} */
const VIEWS = [
  ['all', 'All', null],
  ['today', 'Today', ['overdue', 'today']],
  ['upcoming', 'Upcoming', ['upcoming']],
  ['overdue', 'Overdue', ['overdue']],
  ['done', 'Done', ['done']],
  ['notes', 'Notes', []],
];

/** @type {Record<string, string>} what an empty view says to do */
const EMPTY = {
  today: 'Nothing due today. Add one: “call mum today at 5pm”.',
  upcoming: 'Nothing coming up. Give a task a date: “dentist on Friday at 10am”.',
  overdue: 'Nothing overdue.',
  done: 'Tasks you check off show up here.',
  notes: 'No notes yet. Try “note: the door code is 4711”.',
  all: 'Nothing here yet: type a task or a note below.',
};

/** What is shown now; null until the stored or the worker's records arrive. @type {Shown | null} */
let shown = null;
let view = 'all';
// Set while a task title or an editor is being edited: re-rendering would throw the edit
// away, so the list waits for it to end and then shows the newest records.
let editingTitle = false;
/** @type {Shown | null} */
let deferred = null;

const busy = () => editingTitle || Boolean(document.querySelector('#lists .editor'));

/**
 * A task's or note's Edit or Delete button, named for the record. Its visible word comes
 * from the stylesheet, so the item's text stays the record's own (tests and outside tools
 * read a note's text from its data-role="note" item).
 * @param {'edit' | 'delete'} action @param {string} label
 */
function actionButton(action, label) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = action;
  button.setAttribute('aria-label', label);
  return button;
}

/**
 * "“buy milk”", "done", "deleted": a version of a field, as the user thinks of it.
 * @param {string} field @param {unknown} value
 */
function describeValue(field, value) {
  if (field === '_deleted') return value ? 'deleted' : 'not deleted';
  if (field === 'done') return value ? 'done' : 'not done';
  if (value === null) return 'nothing';
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

/** What a contested delete is: deleted on one device, changed or restored on another. @param {Conflict} conflict */
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

/** @type {Record<string, string>} a conflicting field as the user knows it */
const FIELD_NAMES = { due_date: 'date', due_time: 'time', list: 'list', repeat: 'repeat', done: 'done' };

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
    const field = FIELD_NAMES[conflict.field] ? ` (${FIELD_NAMES[conflict.field]})` : '';
    text.textContent = conflict.field === '_deleted' ? describeDelete(conflict) : `Edited on two devices${field}:`;
    group.setAttribute('aria-labelledby', text.id);
    group.append(text, conflictChoices(conflict, label));
    item.append(group);
  }
}

/**
 * A task in the list; `editable` once the worker can save an edit.
 * @param {TaskView} task @param {boolean} editable @param {Conflict[]} conflicts the task's @param {Date} now
 */
function taskItem(task, editable, conflicts, now) {
  const item = document.createElement('li');
  // A stable hook for tests and outside tools, as is "note" below.
  item.dataset.role = 'task';
  item.dataset.id = task.id;
  item.classList.toggle('done', task.done);
  const done = document.createElement('input');
  done.type = 'checkbox';
  done.checked = task.done;
  done.setAttribute('aria-label', `Done: ${task.title}`);
  const text = document.createElement('div');
  text.className = 'item-text';
  const title = document.createElement('span');
  title.className = 'title';
  if (editable) {
    title.contentEditable = 'plaintext-only';
    title.spellcheck = false;
    title.setAttribute('role', 'textbox');
    title.setAttribute('aria-label', `Title of “${task.title}” (Enter saves, Escape cancels)`);
  }
  title.textContent = task.title;
  title.dataset.saved = task.title;
  text.append(title);
  // When it is due, its repeat rule (in words, from the worker) and its list; each with a
  // data-role ("due", "repeat", "list") for tests and styles.
  const meta = document.createElement('span');
  meta.className = 'meta';
  const due = humanDue(task, now);
  if (due) {
    const time = document.createElement('time');
    time.dataset.role = 'due';
    time.dataset.section = sectionOf(task, now);
    time.dateTime = dueDatetime(task);
    time.textContent = due;
    meta.append(time);
  }
  /** @type {[string, string | null | undefined][]} */
  const details = [['repeat', task.repeat_text], ['list', task.list]];
  for (const [role, value] of details) {
    if (!value) continue;
    const part = document.createElement('span');
    part.dataset.role = role;
    part.textContent = value;
    meta.append(part);
  }
  if (meta.childElementCount) text.append(meta);
  const actions = document.createElement('span');
  actions.className = 'actions';
  actions.append(
    actionButton('edit', `Edit “${task.title}”`),
    actionButton('delete', `Delete “${task.title}”`),
  );
  item.append(done, text, actions);
  markConflicts(item, conflicts, task.title);
  return item;
}

/** @param {Note} note @param {Conflict[]} conflicts the note's */
function noteItem(note, conflicts) {
  const item = document.createElement('li');
  item.dataset.role = 'note';
  item.dataset.id = note.id;
  const text = document.createElement('span');
  text.className = 'item-text';
  text.textContent = note.text;
  const label = note.text.length > 40 ? `${note.text.slice(0, 40)}…` : note.text;
  const actions = document.createElement('span');
  actions.className = 'actions';
  actions.append(actionButton('edit', `Edit note “${label}”`), actionButton('delete', `Delete note “${label}”`));
  item.append(text, actions);
  markConflicts(item, conflicts, label);
  return item;
}

/** The order within a section: by due moment (no time last), done ones newest first. @param {Section} section */
function order(section) {
  if (section === 'done') {
    return (/** @type {TaskView} */ a, /** @type {TaskView} */ b) => (b.done_at ?? '').localeCompare(a.done_at ?? '');
  }
  const key = (/** @type {TaskView} */ task) => `${task.due_date ?? ''}T${task.due_time ?? '99:99'}`;
  return (/** @type {TaskView} */ a, /** @type {TaskView} */ b) => key(a).localeCompare(key(b));
}

/** @param {Section} section @param {HTMLLIElement[]} items */
function sectionElement(section, items) {
  const element = document.createElement('section');
  element.dataset.section = section;
  element.setAttribute('aria-labelledby', `section-${section}`);
  const heading = document.createElement('h2');
  heading.id = `section-${section}`;
  const count = document.createElement('span');
  count.className = 'count';
  count.textContent = String(items.length);
  heading.append(SECTION_TITLES[section], ' ', count);
  const list = document.createElement('ul');
  list.append(...items);
  element.append(heading, list);
  return element;
}

/** The views bar: the fixed views with their counts, then one per list. @param {Shown} what @param {Map<Section, TaskView[]>} bySection */
function renderViews(what, bySection) {
  const count = (/** @type {Section} */ section) => bySection.get(section)?.length ?? 0;
  const lists = [...new Set(what.tasks.map((task) => task.list).filter((name) => name))].sort();
  if (view.startsWith('list:') && !lists.includes(view.slice(5))) view = 'all';
  /** @type {[string, string][]} */
  const buttons = VIEWS.map(([name, label, sections]) => {
    const total = name === 'notes' ? what.notes.length : sections ? sections.reduce((sum, s) => sum + count(s), 0) : null;
    return [name, total === null ? label : `${label} ${total}`];
  });
  for (const list of lists) buttons.push([`list:${list}`, `# ${list}`]);
  $('views').replaceChildren(
    ...buttons.map(([name, label]) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.view = name;
      button.textContent = label;
      button.setAttribute('aria-pressed', String(name === view));
      return button;
    }),
  );
}

/** Draws the list for the current view from `what`. @param {Shown} what */
function draw(what) {
  const now = new Date();
  /** @param {'tasks' | 'notes'} collection @param {string} id */
  const of = (collection, id) =>
    what.conflicts.filter((conflict) => conflict.collection === collection && conflict.record_id === id);
  /** @type {Map<Section, TaskView[]>} */
  const bySection = new Map(SECTIONS.map((section) => [section, []]));
  for (const task of what.tasks) bySection.get(sectionOf(task, now))?.push(task);
  renderViews(what, bySection);
  const list = view.startsWith('list:') ? view.slice(5) : null;
  const fixed = VIEWS.find(([name]) => name === view);
  const sections = list ? SECTIONS : fixed?.[2] ?? SECTIONS;
  const elements = sections.flatMap((section) => {
    const tasks = (bySection.get(section) ?? []).filter((task) => !list || task.list === list).sort(order(section));
    if (!tasks.length) return [];
    return [sectionElement(section, tasks.map((task) => taskItem(task, what.editable, of('tasks', task.id), now)))];
  });
  $('tasks').replaceChildren(...elements);
  const showNotes = view === 'all' || view === 'notes';
  $('notes').replaceChildren(...(showNotes ? what.notes.map((note) => noteItem(note, of('notes', note.id))) : []));
  $('notes-section').hidden = !showNotes || !what.notes.length;
  const nothing = !what.tasks.length && !what.notes.length;
  $('welcome').hidden = !nothing;
  $('views').hidden = nothing;
  const empty = !nothing && !elements.length && !(showNotes && what.notes.length);
  $('view-empty').hidden = !empty;
  $('view-empty').textContent = empty ? EMPTY[view] ?? `Nothing left in ${list}.` : '';
  document.body.dataset.view = view;
}

/** Shows `what`, now or once the edit in progress ends. @param {Shown} what */
function show(what) {
  shown = what;
  if (busy()) {
    deferred = what;
    return;
  }
  deferred = null;
  draw(what);
}

/** Draws what arrived during an edit, if anything did. */
function showDeferred() {
  if (deferred && !busy()) show(deferred);
}

/**
 * The tasks and notes as stored, until the worker's own replace them; their controls
 * stay disabled until then (index.html's fieldset #needs-agent).
 * @param {{ tasks: TaskView[], notes: Note[] }} stored
 */
export function showStoredPanes(stored) {
  if (shown?.editable) return;
  show({ tasks: stored.tasks, notes: stored.notes, conflicts: [], editable: false });
}

/** @param {Conflict[]} conflicts */
function renderConflicts(conflicts) {
  $('conflicts-section').hidden = conflicts.length === 0;
  $('conflicts').replaceChildren(
    ...conflicts.map((conflict) => {
      const item = document.createElement('li');
      item.dataset.id = conflict.id;
      const field = conflict.field === '_deleted' ? 'deleted' : FIELD_NAMES[conflict.field];
      const what = field ? ` (${field})` : '';
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
        const at = new Date(version.at).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
        const small = document.createElement('small');
        small.textContent = `${version.this_device ? 'this device' : 'other device'} · ${at}`;
        button.append(`Keep ${describeValue(conflict.field, version.value)}`, small);
        choices.append(button);
      }
      item.append(text, choices);
      return item;
    }),
  );
}

/** @param {unknown} error */
function showEditError(error) {
  $('edit-error').textContent = error ? `Couldn't save that: ${/** @type {Error} */ (error).message}` : '';
  $('edit-error').hidden = !error;
}

/**
 * The task and note list and the conflicts list, from the worker. Refreshes run one
 * after another, so an older answer never overwrites a newer one.
 * @param {PyAgent} agent
 * @returns {() => Promise<void>}
 */
export function panes(agent) {
  let queue = Promise.resolve();
  return () => {
    queue = queue.then(async () => {
      const [snapshot, conflicts] = await Promise.all([agent.snapshot(), agent.conflicts()]);
      show({ tasks: snapshot.tasks, notes: snapshot.notes, conflicts, editable: true });
      renderConflicts(conflicts);
    }).catch(showEditError);
    return queue;
  };
}

// The undo toast stays this long, and while it has the focus or the pointer.
const TOAST_MS = 10_000;

/**
 * "Deleted “buy milk”. Undo": the toast after a delete. Focus moves to Undo, since the
 * deleted item's button is gone.
 * @param {string} text @param {() => Promise<void>} undo
 */
function toast(text, undo) {
  const box = $('toast');
  const button = $('toast-undo', HTMLButtonElement);
  $('toast-text').textContent = text;
  box.hidden = false;
  button.disabled = false;
  let timer = 0;
  const close = () => {
    clearTimeout(timer);
    box.hidden = true;
    button.onclick = null;
  };
  const later = () => {
    clearTimeout(timer);
    timer = window.setTimeout(() => {
      if (!box.matches(':hover, :focus-within')) close();
      else later();
    }, TOAST_MS);
  };
  later();
  button.onclick = async () => {
    button.disabled = true;
    try {
      await undo();
      close();
    } catch (error) {
      close();
      showEditError(error);
    }
  };
  button.focus();
}

/** A labelled field of an editor. @param {string} label @param {HTMLInputElement | HTMLTextAreaElement} input @param {string} [className] */
function field(label, input, className = '') {
  const element = document.createElement('label');
  element.className = className;
  element.append(label, input);
  return element;
}

/** @param {string} name @param {string} type @param {string} value */
function input(name, type, value) {
  const element = document.createElement('input');
  element.name = name;
  element.type = type;
  element.value = value;
  return element;
}

/**
 * The inline editor of a task (title, date, time, list) or a note (text), in place of
 * its text; Escape or Cancel closes it unchanged.
 * @param {HTMLLIElement} item @param {TaskView | Note} record @param {(changes: Record<string, string | null>) => Promise<void>} save
 */
function openEditor(item, record, save) {
  const form = document.createElement('form');
  form.className = 'editor';
  const isTask = 'title' in record;
  form.dataset.role = isTask ? 'task-edit' : 'note-edit';
  form.setAttribute('aria-label', isTask ? `Edit “${record.title}”` : 'Edit note');
  /** @type {HTMLInputElement | HTMLTextAreaElement} */
  let first;
  if (isTask) {
    const lists = document.createElement('datalist');
    lists.id = `lists-${record.id}`;
    const names = new Set((shown?.tasks ?? []).map((task) => task.list).filter((name) => name));
    lists.append(...[...names].map((name) => Object.assign(document.createElement('option'), { value: name })));
    const list = input('list', 'text', record.list ?? '');
    list.setAttribute('list', lists.id);
    list.placeholder = 'none';
    first = input('title', 'text', record.title);
    form.append(
      field('Title', first, 'wide'),
      field('Date', input('due_date', 'date', record.due_date ?? '')),
      field('Time', input('due_time', 'time', record.due_time ?? '')),
      field('List', list),
      lists,
    );
  } else {
    first = document.createElement('textarea');
    first.name = 'text';
    first.value = record.text;
    form.append(field('Note', first, 'wide'));
  }
  const error = document.createElement('p');
  error.className = 'error';
  error.setAttribute('role', 'alert');
  error.hidden = true;
  const buttons = document.createElement('div');
  buttons.className = 'buttons';
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.textContent = 'Cancel';
  const submit = document.createElement('button');
  submit.type = 'submit';
  submit.textContent = 'Save';
  buttons.append(submit, cancel);
  form.append(error, buttons);
  const close = () => {
    form.remove();
    item.classList.remove('editing');
    showDeferred();
    // Back where the edit started: the item's Edit button (the item may be drawn anew).
    const again = document.querySelector(`#lists li[data-id="${CSS.escape(record.id)}"] .edit`);
    if (again instanceof HTMLElement) again.focus();
  };
  cancel.addEventListener('click', close);
  form.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      close();
    }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    /** @type {Record<string, string | null>} */
    const changes = {};
    for (const [name, value] of new FormData(form)) {
      const text = String(value).trim();
      const before = /** @type {Record<string, unknown>} */ (record)[name] ?? '';
      if (text !== before) changes[name] = text || (name === 'title' || name === 'text' ? '' : null);
    }
    submit.disabled = true;
    try {
      if (Object.keys(changes).length) await save(changes);
      close();
    } catch (failure) {
      error.textContent = /** @type {Error} */ (failure).message;
      error.hidden = false;
      submit.disabled = false;
    }
  });
  item.classList.add('editing');
  item.append(form);
  first.focus();
}

/**
 * Edit in place: check a task off, rename it, edit it, delete a task or a note (with
 * Undo), pick a conflict's version, switch views.
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
  /** The task or note item an event happened in. @param {Event} event */
  const itemOf = (event) => /** @type {HTMLElement} */ (event.target).closest('li');
  /** The task title an event happened on, if it did. @param {EventTarget | null} target */
  const titleOf = (target) => (target instanceof HTMLElement && target.classList.contains('title') ? target : null);
  $('views').addEventListener('click', (event) => {
    const button = /** @type {HTMLElement} */ (event.target).closest('button');
    if (!button?.dataset.view || !shown) return;
    view = button.dataset.view;
    show(shown);
    $('views').querySelector(`[data-view="${CSS.escape(view)}"]`)?.closest('button')?.focus();
  });
  const tasks = $('tasks');
  tasks.addEventListener('change', (event) => {
    const target = /** @type {HTMLInputElement} */ (event.target);
    if (target.type !== 'checkbox') return;
    const id = itemOf(event)?.dataset.id ?? '';
    act(() => agent.editRecord('tasks', id, { done: target.checked })).catch(showEditError);
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
        await agent.editRecord('tasks', itemOf(event)?.dataset.id ?? '', { title: text });
        showEditError(null);
      } catch (error) {
        // Keep what was typed, and the caret in it, so nothing is lost (the list was not
        // re-drawn meanwhile: editingTitle is still set).
        showEditError(error);
        title.focus();
        return;
      }
    }
    // Moving on to another title: the list waits for that edit too.
    if (titleOf(event.relatedTarget) || titleOf(document.activeElement)) return;
    editingTitle = false;
    if (changed) await refresh();
    else showDeferred();
  });
  /** @param {'tasks' | 'notes'} collection */
  const onAction = (collection) => (/** @type {Event} */ event) => {
    const button = /** @type {HTMLElement} */ (event.target).closest('button');
    const item = itemOf(event);
    const id = item?.dataset.id;
    if (!button || !item || !id || button.closest('.editor')) return;
    const record = collection === 'tasks'
      ? shown?.tasks.find((task) => task.id === id)
      : shown?.notes.find((note) => note.id === id);
    if (!record) return;
    const label = 'title' in record ? record.title : record.text;
    if (button.classList.contains('delete')) {
      act(async () => {
        await agent.removeRecord(collection, id);
        toast(`Deleted “${label.length > 40 ? `${label.slice(0, 40)}…` : label}”.`, () =>
          act(() => agent.restoreRecord(collection, id)));
      }).catch(showEditError);
    } else if (button.classList.contains('edit') && !item.querySelector('.editor')) {
      openEditor(item, record, async (changes) => {
        await agent.editRecord(collection, id, changes);
        await refresh();
      });
    }
  };
  tasks.addEventListener('click', onAction('tasks'));
  $('notes').addEventListener('click', onAction('notes'));
  /** A conflict's choice, in the Sync section or beside its task or note. @param {Event} event */
  const choose = (event) => {
    const { conflict, op } = /** @type {HTMLElement} */ (event.target).closest('button')?.dataset ?? {};
    if (!conflict || !op) return;
    act(() => agent.resolveConflict(conflict, op)).catch(showEditError);
  };
  for (const list of ['conflicts', 'tasks', 'notes']) $(list).addEventListener('click', choose);
}
