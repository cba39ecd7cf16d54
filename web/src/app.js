// The page: paints at once with a message box that already takes messages (chat.js) and
// the user's stored tasks and notes (preview.js, loaded on its own); starts the agent
// worker, shows its progress, and enables what needs the agent once it is ready. Never a
// blank screen: a failed or stalled boot shows the real error.
import * as Comlink from './vendor/comlink.mjs';
import { connect } from './api.js';
import { startChat, startComposer, stopChat } from './chat.js';
import { startCloud } from './cloud_view.js';
import { startData } from './data_view.js';
import { startDevices } from './devices_view.js';
import { $ } from './dom.js';
import { startInstall } from './install.js';
import { panes, startPanes } from './panes.js';
import { startNetworkIndicator, startServiceWorker } from './pwa.js';
import { startSync } from './sync_view.js';
import { shareAgent } from './tabs.js';

// Chosen by bench/ort_threads.py (see README "Benchmarks").
const DEFAULT_THREADS = 2;
// A stage that reports nothing for this long is shown as stalled, not left spinning.
const STALL_MS = 120_000;

function requestedThreads() {
  const raw = new URLSearchParams(location.search).get('threads');
  if (raw === null) return DEFAULT_THREADS;
  const threads = Number(raw);
  if (!Number.isInteger(threads) || threads < 1 || threads > 16) {
    throw new Error(`?threads= must be an integer from 1 to 16, got "${raw}"`);
  }
  return threads;
}

/** @param {unknown} error */
function showError(error) {
  $('boot').hidden = true;
  $('boot-error').hidden = false;
  const { stack, message } = error instanceof Error ? error : { stack: '', message: '' };
  $('boot-error-text').textContent = stack || message || String(error);
  // Not loading any more: what is shown is what was stored, and stays read-only.
  $('side').removeAttribute('aria-busy');
  $('messages').removeAttribute('aria-busy');
  stopChat();
  document.body.dataset.state = 'error';
}

/** Everything is live: the agent answers, and what needs it is enabled. */
function showReady() {
  $('boot').hidden = true;
  $('needs-agent', HTMLFieldSetElement).disabled = false;
  $('settings-controls', HTMLFieldSetElement).disabled = false;
  $('side').removeAttribute('aria-busy');
  $('messages').removeAttribute('aria-busy');
  // A stable hook for tests and outside tools: the agent can answer from now on.
  document.documentElement.dataset.ready = 'true';
  document.body.dataset.state = 'ready';
}

/** @param {Record<string, unknown>} environment */
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

/** The self-check's findings, one line each. @param {import('./types.js').SelfCheck} result */
function showSelfCheck(result) {
  $('self-check-result').replaceChildren(
    ...Object.entries(result.checks).map(([name, check]) => {
      const item = document.createElement('li');
      item.dataset.ok = String(check.ok);
      item.textContent = `${name}: ${check.ok ? 'working' : `not working${check.error ? ` (${check.error})` : ''}`}`;
      return item;
    }),
  );
}

/** @param {string} text */
function selfCheckLine(text) {
  const item = document.createElement('li');
  item.textContent = text;
  $('self-check-result').replaceChildren(item);
}

/**
 * The settings panel on a phone: the Settings button opens it in place of the list, and
 * closes it again (as does Escape). From 60rem it is always shown beside the list.
 */
function startSettingsToggle() {
  const toggle = $('settings-toggle', HTMLButtonElement);
  /** @param {boolean} open */
  const set = (open) => {
    document.body.dataset.settings = open ? 'open' : 'closed';
    toggle.setAttribute('aria-expanded', String(open));
    toggle.textContent = open ? 'Close settings' : 'Settings';
  };
  toggle.addEventListener('click', () => {
    const open = document.body.dataset.settings !== 'open';
    set(open);
    if (open) $('settings-title').focus();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && document.body.dataset.settings === 'open') {
      set(false);
      toggle.focus();
    }
  });
}

async function boot() {
  // One tab runs the worker; the others use it through that tab (tabs.js).
  const { agent, failed: workerFailed } = shareAgent(() => {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    return { agent: connect(worker), worker };
  }, { callback: Comlink.proxy });
  // Every method name reaches the leader's worker, so the shared agent is the page's API.
  window.pyAgent = /** @type {import('./api.js').PyAgent} */ (/** @type {unknown} */ (agent));

  /** @type {(error: Error) => void} */
  let stalled = () => {};
  const stallTimer = { id: 0 };
  /** @type {Promise<never>} */
  const stallPromise = new Promise((_, reject) => { stalled = reject; });
  /** @param {import('./worker.js').Stage} stage */
  const onStage = ({ stage, label, detail, fraction }) => {
    clearTimeout(stallTimer.id);
    stallTimer.id = setTimeout(() => stalled(new Error(`boot stalled at "${label}" for ${STALL_MS / 1000} s`)), STALL_MS);
    // `fraction` is the whole boot's progress, so the bar moves through every stage.
    $('boot-label').textContent = detail ? `${label} (${detail})` : label;
    $('boot-progress', HTMLProgressElement).value = fraction;
    const stages = $('boot-stages');
    const last = /** @type {HTMLElement | null} */ (stages.lastElementChild);
    if (last?.dataset.stage !== stage) {
      last?.classList.add('done');
      const item = document.createElement('li');
      item.dataset.stage = stage;
      item.textContent = label;
      stages.append(item);
    }
    document.body.dataset.stage = stage;
  };

  const result = await Promise.race([
    window.pyAgent.boot({ numThreads: requestedThreads() }, Comlink.proxy(onStage)),
    workerFailed,
    stallPromise,
  ]);
  clearTimeout(stallTimer.id);
  window.pyAgentBoot = result;
  showEnvironment({
    ...result.environment,
    boot_ms: result.total_ms,
    // Without COOP/COEP the model runtime gets one thread (README "Serving").
    model_threads: crossOriginIsolated ? 'isolated: several threads' : 'not isolated: 1 thread',
  });
  $('self-check').addEventListener('click', async () => {
    selfCheckLine('Checking…');
    try {
      showSelfCheck(await window.pyAgent.selfCheck());
    } catch (error) {
      selfCheckLine(`The self-check could not run: ${/** @type {Error} */ (error).message}`);
    }
  });
  const refresh = panes(window.pyAgent);
  startPanes(window.pyAgent, refresh);
  startData(window.pyAgent, refresh);
  const refreshStats = await startCloud(window.pyAgent);
  const sendWaiting = await startChat(window.pyAgent, refresh, refreshStats);
  await startSync(window.pyAgent, refresh);
  startDevices(window.pyAgent);
  showReady();
  sendWaiting();
}

startNetworkIndicator();
startInstall();
startSettingsToggle();
startComposer();
boot().catch(showError).finally(startServiceWorker);
