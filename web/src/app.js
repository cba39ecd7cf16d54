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
  await startChat(agent);
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

function renderPanes({ tasks, notes }) {
  const taskList = $('tasks');
  taskList.replaceChildren(
    ...tasks.map((task) => {
      const item = document.createElement('li');
      item.textContent = task.title;
      item.classList.toggle('done', task.done);
      if (task.due_date) {
        const due = document.createElement('span');
        due.className = 'due';
        due.textContent = ` — ${task.due_date}${task.due_time ? ` ${task.due_time}` : ''}`;
        item.append(due);
      }
      return item;
    }),
  );
  $('notes').replaceChildren(
    ...notes.map((note) => {
      const item = document.createElement('li');
      item.textContent = note.text;
      return item;
    }),
  );
}

async function startChat(agent) {
  for (const message of await agent.history()) {
    addMessage(message.role, message.text, message.role === 'agent' ? message : null);
  }
  renderPanes(await agent.snapshot());
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
      if (reply.changed.length) renderPanes(await agent.snapshot());
    } catch (error) {
      $('chat-error').textContent = `Sorry, that failed: ${error.message}`;
      $('chat-error').hidden = false;
    }
    document.body.dataset.turns = String(sent.length);
  });
}

boot().catch(showError);
