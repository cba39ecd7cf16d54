// The page: starts the agent worker, shows boot progress, and never leaves a
// blank screen — a failed or stalled boot shows the real error.
import * as Comlink from './vendor/comlink.mjs';

// Chosen by bench/ort_threads.py (see README "Benchmarks").
const DEFAULT_THREADS = 2;
// A stage that reports nothing for this long is shown as stalled, not left spinning.
const STALL_MS = 120_000;

const $ = (id) => document.getElementById(id);

function requestedThreads() {
  const raw = new URLSearchParams(location.search).get('threads');
  if (raw === null) return DEFAULT_THREADS;
  const threads = Number(raw);
  if (!Number.isInteger(threads) || threads < 1 || threads > 16) {
    throw new Error(`?threads= must be an integer from 1 to 16, got "${raw}"`);
  }
  return threads;
}

function showError(error) {
  $('boot').hidden = true;
  $('boot-error').hidden = false;
  $('boot-error-text').textContent = error?.stack || error?.message || String(error);
  document.body.dataset.state = 'error';
}

function showEnvironment(environment) {
  const list = $('environment');
  list.replaceChildren();
  for (const [key, value] of Object.entries(environment)) {
    const term = document.createElement('dt');
    term.textContent = key;
    const detail = document.createElement('dd');
    detail.textContent = String(value);
    list.append(term, detail);
  }
}

function showIsolation() {
  const badge = $('isolation');
  badge.hidden = false;
  badge.textContent = crossOriginIsolated ? 'isolated' : 'not isolated: 1 thread';
  badge.classList.toggle('warn', !crossOriginIsolated);
  badge.title = crossOriginIsolated
    ? 'crossOriginIsolated: the model runtime can use threads'
    : 'The server did not send COOP/COEP headers, so the model runs on one thread';
}

async function boot() {
  document.body.dataset.state = 'booting';
  showIsolation();
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  const workerFailed = new Promise((_, reject) => {
    worker.addEventListener('error', (event) => {
      event.preventDefault();
      reject(new Error(`the agent worker failed to start: ${event.message || 'a module did not load'}`));
    });
  });
  const agent = Comlink.wrap(worker);
  window.pyAgent = agent;

  let stalled;
  const stallTimer = { id: 0 };
  const stallPromise = new Promise((_, reject) => { stalled = reject; });
  const onStage = ({ stage, label, fraction }) => {
    clearTimeout(stallTimer.id);
    stallTimer.id = setTimeout(() => stalled(new Error(`boot stalled at "${label}" for ${STALL_MS / 1000} s`)), STALL_MS);
    $('boot-label').textContent = fraction > 0 && fraction < 1 ? `${label} (${Math.round(fraction * 100)}%)` : label;
    $('boot-progress').value = fraction;
    const stages = $('boot-stages');
    if (stages.lastElementChild?.dataset.stage !== stage) {
      stages.lastElementChild?.classList.add('done');
      const item = document.createElement('li');
      item.dataset.stage = stage;
      item.textContent = label;
      stages.append(item);
    }
    document.body.dataset.stage = stage;
  };

  const result = await Promise.race([
    agent.boot({ numThreads: requestedThreads() }, Comlink.proxy(onStage)),
    workerFailed,
    stallPromise,
  ]);
  clearTimeout(stallTimer.id);
  window.pyAgentBoot = result;
  $('boot').hidden = true;
  $('app').hidden = false;
  showEnvironment({ ...result.environment, boot_ms: result.total_ms, crossOriginIsolated });
  $('self-check').addEventListener('click', async () => {
    $('self-check-result').textContent = 'Checking…';
    try {
      $('self-check-result').textContent = JSON.stringify(await agent.selfCheck(), null, 2);
    } catch (error) {
      $('self-check-result').textContent = `Self-check failed: ${error.message}`;
    }
  });
  const refresh = panes(agent);
  startPanes(agent, refresh);
  await startChat(agent, refresh);
  await startSync(agent, refresh);
  document.body.dataset.state = 'ready';
}

/** The user's local time with its UTC offset, e.g. 2026-11-18T10:00:00+01:00. */
function localIso(date = new Date()) {
  const pad = (n) => String(Math.trunc(Math.abs(n))).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(offset / 60)}:${pad(offset % 60)}`
  );
}

function addMessage(role, text, details) {
  const item = document.createElement('li');
  item.className = role;
  item.textContent = text;
  if (details) {
    const more = document.createElement('details');
    const summary = document.createElement('summary');
    summary.textContent = `${details.intent} · ${Math.round(details.confidence * 100)}%`;
    const body = document.createElement('div');
    const latency = details.latency_ms === undefined ? '' : ` · ${details.latency_ms.toFixed(1)} ms`;
    body.textContent = `intent ${details.intent}, confidence ${details.confidence.toFixed(3)}${latency}` +
      (details.cached ? ' · cached' : '');
    more.append(summary, body);
    item.append(more);
  }
  $('messages').append(item);
  item.scrollIntoView({ block: 'end' });
  return item;
}

// Set while a task title is being edited: re-rendering would throw the edit away,
// so the panes wait for it to end.
let editingTitle = false;
let deferredPanes = null;

function deleteButton(label) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'delete';
  button.title = 'Delete';
  button.setAttribute('aria-label', `Delete “${label}”`);
  return button;
}

function taskItem(task) {
  const item = document.createElement('li');
  item.dataset.id = task.id;
  item.classList.toggle('done', task.done);
  const done = document.createElement('input');
  done.type = 'checkbox';
  done.checked = task.done;
  done.setAttribute('aria-label', `Done: ${task.title}`);
  const title = document.createElement('span');
  title.className = 'title';
  title.contentEditable = 'plaintext-only';
  title.spellcheck = false;
  title.setAttribute('role', 'textbox');
  title.setAttribute('aria-label', 'Task title (Enter saves, Escape cancels)');
  title.textContent = task.title;
  title.dataset.saved = task.title;
  item.append(done, title);
  if (task.due_date) {
    const due = document.createElement('span');
    due.className = 'due';
    due.textContent = ` — ${task.due_date}${task.due_time ? ` ${task.due_time}` : ''}`;
    item.append(due);
  }
  item.append(deleteButton(task.title));
  return item;
}

function noteItem(note) {
  const item = document.createElement('li');
  item.dataset.id = note.id;
  item.append(note.text, deleteButton(note.text));
  return item;
}

function renderPanes(panes) {
  if (editingTitle) {
    deferredPanes = panes;
    return;
  }
  deferredPanes = null;
  $('tasks').replaceChildren(...panes.tasks.map(taskItem));
  $('notes').replaceChildren(...panes.notes.map(noteItem));
}

/** "“buy milk”", "done", "deleted": a version of a field, as the user thinks of it. */
function describeValue(field, value) {
  if (field === '_deleted') return value ? 'deleted' : 'not deleted';
  if (field === 'done') return value ? 'done' : 'not done';
  return typeof value === 'string' ? `“${value}”` : JSON.stringify(value);
}

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

function showEditError(error) {
  $('edit-error').textContent = error ? `Sorry, that failed: ${error.message}` : '';
  $('edit-error').hidden = !error;
}

/**
 * The task and note panes and the conflicts list, from the worker. Refreshes run
 * one after another, so an older answer never overwrites a newer one.
 */
function panes(agent) {
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

/** Edit in place: check a task off, rename it, delete a task or a note, pick a conflict's version. */
function startPanes(agent, refresh) {
  const act = async (change) => {
    showEditError(null);
    try {
      await change();
    } finally {
      await refresh();
    }
  };
  const tasks = $('tasks');
  tasks.addEventListener('change', (event) => {
    const id = event.target.closest('li').dataset.id;
    act(() => agent.editRecord('tasks', id, { done: event.target.checked })).catch(showEditError);
  });
  tasks.addEventListener('keydown', (event) => {
    if (!event.target.classList.contains('title')) return;
    if (event.key === 'Enter') {
      event.preventDefault();
      event.target.blur();
    } else if (event.key === 'Escape') {
      event.target.textContent = event.target.dataset.saved;
      event.target.blur();
    }
  });
  tasks.addEventListener('focusin', (event) => {
    if (event.target.classList.contains('title')) editingTitle = true;
  });
  tasks.addEventListener('focusout', async (event) => {
    const title = event.target;
    if (!title.classList.contains('title')) return;
    // A pasted line break would end up in the title.
    const text = title.textContent.replace(/\s+/g, ' ').trim();
    const changed = text !== title.dataset.saved;
    if (changed) {
      try {
        await agent.editRecord('tasks', title.closest('li').dataset.id, { title: text });
        showEditError(null);
      } catch (error) {
        // Keep what was typed, and the caret in it, so nothing is lost (the panes
        // were not re-rendered meanwhile: editingTitle is still set).
        showEditError(error);
        title.focus();
        return;
      }
    }
    const isTitle = (element) => element?.classList.contains('title');
    // Moving on to another title: the panes wait for that edit too.
    if (isTitle(event.relatedTarget) || isTitle(document.activeElement)) return;
    editingTitle = false;
    if (changed) await refresh();
    else if (deferredPanes) renderPanes(deferredPanes);
  });
  const remove = (collection) => (event) => {
    if (!event.target.classList.contains('delete')) return;
    const id = event.target.closest('li').dataset.id;
    act(() => agent.removeRecord(collection, id)).catch(showEditError);
  };
  tasks.addEventListener('click', remove('tasks'));
  $('notes').addEventListener('click', remove('notes'));
  $('conflicts').addEventListener('click', (event) => {
    const button = event.target.closest('button');
    if (!button) return;
    act(() => agent.resolveConflict(button.dataset.conflict, button.dataset.op)).catch(showEditError);
  });
}

async function startChat(agent, refresh) {
  for (const message of await agent.history()) {
    addMessage(message.role, message.text, message.role === 'agent' ? message : null);
  }
  await refresh();
  const input = $('input');
  const sent = [];
  let recall = 0;
  input.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowUp' && sent.length) {
      recall = Math.max(0, recall - 1);
      input.value = sent[recall];
      event.preventDefault();
    } else if (event.key === 'ArrowDown' && sent.length) {
      recall = Math.min(sent.length, recall + 1);
      input.value = sent[recall] ?? '';
      event.preventDefault();
    }
  });
  $('ask').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    sent.push(text);
    recall = sent.length;
    input.value = '';
    $('chat-error').hidden = true;
    addMessage('user', text);
    try {
      // Resolves only after the turn was committed to IndexedDB.
      const reply = await agent.ask(text, localIso());
      addMessage('agent', reply.text, reply);
      if (reply.changed.length) await refresh();
    } catch (error) {
      $('chat-error').textContent = `Sorry, that failed: ${error.message}`;
      $('chat-error').hidden = false;
    }
    document.body.dataset.turns = String(sent.length);
  });
}

/** "Chromium on Linux", or "This browser" where the browser does not say. */
function defaultDeviceName() {
  const data = navigator.userAgentData;
  const brands = (data?.brands ?? []).map(({ brand }) => brand).filter((brand) => !/not.?a.?brand/i.test(brand));
  // Chrome and Edge list "Chromium" beside their own name.
  const brand = brands.find((name) => name !== 'Chromium') ?? brands[0];
  if (!brand) return 'This browser';
  return data.platform ? `${brand} on ${data.platform}` : brand;
}

const secondsLeft = (at) => Math.max(0, Math.ceil((at - Date.now()) / 1000));

function indicatorText(status, retryAt) {
  switch (status.state) {
    case 'local':
      return 'Local only';
    case 'synced':
      return 'Synced';
    case 'pending':
      return `${status.pending} pending`;
    case 'syncing':
      return 'Syncing…';
    case 'offline':
      return 'Offline';
    case 'error':
      if (retryAt === null) return 'Error';
      return `Error, retrying in ${secondsLeft(retryAt)} s`;
    default:
      return status.state;
  }
}

function syncDetail(status, retryAt) {
  if (status.error) {
    // The message names the delay as it was when written ("…, retrying in 4 s"): count it down.
    if (retryAt === null) return status.error;
    return status.error.replace(/retrying in \d+ s$/, `retrying in ${secondsLeft(retryAt)} s`);
  }
  if (status.last_synced_at) {
    return `Last synced ${new Date(status.last_synced_at * 1000).toLocaleTimeString([], { timeStyle: 'short' })}`;
  }
  return '';
}

function showSyncError(error) {
  $('sync-error').textContent = error ? error.message : '';
  $('sync-error').hidden = !error;
}

/** The Sync section: the indicator, pairing, and re-rendering what other devices changed. */
async function startSync(agent, refresh) {
  const body = document.body;
  let revision = null;
  let countdown = 0;

  const show = (status) => {
    body.dataset.sync = status.state;
    body.dataset.syncPending = String(status.pending);
    const retryAt = status.retry_in_s == null ? null : Date.now() + status.retry_in_s * 1000;
    const indicator = $('sync-indicator');
    const tick = () => {
      indicator.textContent = indicatorText(status, retryAt);
      const detail = syncDetail(status, retryAt);
      $('sync-detail').textContent = detail;
      $('sync-detail').hidden = !detail;
    };
    // A screen reader hears each new status, not every second of a countdown.
    indicator.setAttribute('aria-live', 'polite');
    tick();
    clearInterval(countdown);
    if (retryAt !== null) {
      countdown = setInterval(() => {
        indicator.setAttribute('aria-live', 'off');
        tick();
      }, 1000);
    }
    indicator.dataset.state = status.state;

    const code = status.paired ? status.pairing_code : null;
    $('sync-now').disabled = !status.paired;
    $('sync-unpaired').hidden = status.paired;
    $('sync-paired').hidden = !status.paired;
    $('sync-space').textContent = status.space_id ?? '';
    $('pairing').hidden = !code;
    $('copy-code').hidden = !code;
    if ($('pairing-code').textContent !== (code ?? '')) $('copy-code').textContent = 'Copy';
    $('pairing-code').textContent = code ?? '';

    if (status.revision !== revision) {
      revision = status.revision;
      // Tests wait on syncRevision: set it once the panes show that revision.
      refresh().then(() => {
        if (revision === status.revision) body.dataset.syncRevision = String(revision);
      });
    }
  };

  // Pairing and "Sync now": errors stay on screen, and so does what was typed.
  const attempt = (button, action) => async (event) => {
    event?.preventDefault();
    showSyncError(null);
    button.disabled = true;
    try {
      await action(); // its Status reaches `show` through watchSync
    } catch (error) {
      showSyncError(error);
    } finally {
      button.disabled = false;
    }
  };
  const deviceName = $('device-name');
  deviceName.value = defaultDeviceName();
  const name = () => deviceName.value.trim() || defaultDeviceName();
  $('sync-now').addEventListener('click', attempt($('sync-now'), () => agent.syncNow()));
  $('create-space').addEventListener('click', attempt($('create-space'), () => agent.createSpace(name())));
  const joinButton = $('join').querySelector('button');
  $('join').addEventListener(
    'submit',
    attempt(joinButton, async () => {
      const code = $('join-code').value.trim();
      if (!code) throw new Error('Type the pairing code shown on your other device.');
      await agent.joinSpace(code, name());
      $('join-code').value = '';
    }),
  );
  $('new-code').addEventListener('click', attempt($('new-code'), () => agent.newPairingCode()));
  $('leave-space').addEventListener('click', attempt($('leave-space'), () => agent.leaveSpace()));
  $('copy-code').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('pairing-code').textContent);
      $('copy-code').textContent = 'Copied';
    } catch {
      // No clipboard permission: select the code so the user can copy it by hand.
      getSelection().selectAllChildren($('pairing-code'));
    }
  });
  // Chromium's workers get no online event of their own (checked under Playwright's
  // offline emulation, where the worker's navigator.onLine flips but no event fires),
  // so the page passes it on; the worker then syncs without waiting out its backoff.
  addEventListener('online', () => agent.online().catch(showSyncError));

  await agent.watchSync(Comlink.proxy(show));
}

boot().catch(showError);
