// Server help: the user's consent (ask first, always, never), the confidence threshold,
// and the agent's stats.
import { $ } from './dom.js';

/**
 * @typedef {import('./types.js').Stats} Stats
 * @typedef {import('./types.js').RouterSettings} RouterSettings
 * @typedef {import('./types.js').SettingsChanges} SettingsChanges
 * @typedef {import('./api.js').PyAgent} PyAgent
 * @typedef {RouterSettings['consent']} Consent
 */

// Set once the worker's settings are shown: the stored ones, read late, must not replace them.
let shownLive = false;

const percent = (/** @type {number | null} */ value) => (value === null ? '—' : `${Math.round(value * 100)}%`);
const millis = (/** @type {number | null} */ value) => (value === null ? '—' : `${Math.round(value)} ms`);

/** @param {RouterSettings} settings */
function showSettings(settings) {
  $('consent', HTMLSelectElement).value = settings.consent;
  $('threshold', HTMLInputElement).value = String(settings.threshold);
  // Tests wait on these: the settings the agent now uses.
  document.body.dataset.consent = settings.consent;
  document.body.dataset.cloudHelp = String(settings.cloud_help);
  document.body.dataset.threshold = String(settings.threshold);
}

/** @param {Stats} stats */
function showStats(stats) {
  const rows = {
    'turns': String(stats.turns),
    'sent to the server': percent(stats.fallback_rate),
    'server answers': String(stats.cloud_answered),
    'server latency p50 / p95': `${millis(stats.cloud_p50_ms)} / ${millis(stats.cloud_p95_ms)}`,
    'device and server agree': percent(stats.agreement),
    'guesses (server unreachable)': String(stats.tentative),
    'waiting to ask the server': String(stats.queue),
  };
  $('stats').replaceChildren(
    ...Object.entries(rows).flatMap(([name, value]) => {
      const term = document.createElement('dt');
      term.textContent = name;
      const detail = document.createElement('dd');
      detail.textContent = value;
      return [term, detail];
    }),
  );
  document.body.dataset.queue = String(stats.queue);
  // Answering "Ask the server?" in the chat changes the consent too.
  showSettings(stats.settings);
}

/**
 * The settings as stored, before the worker is ready (preview.js); a setting never saved
 * shows no choice (the worker's default applies), and the inputs stay disabled until
 * then (index.html's fieldset #needs-agent). Settings stored before consent was asked
 * for have only cloud_help: off means never, on was the default, not an answer
 * (py_agent.router.stored_consent).
 * @param {{ consent?: unknown, cloud_help?: unknown, threshold?: unknown }} stored
 */
export function showStoredSettings(stored) {
  if (shownLive) return;
  let consent = '';
  if (typeof stored.consent === 'string' && ['unasked', 'always', 'never'].includes(stored.consent)) {
    consent = stored.consent;
  } else if (typeof stored.cloud_help === 'boolean') {
    consent = stored.cloud_help ? 'unasked' : 'never';
  }
  $('consent', HTMLSelectElement).value = consent; // '' selects nothing
  $('threshold', HTMLInputElement).value = typeof stored.threshold === 'number' ? String(stored.threshold) : '';
}

/**
 * Binds the settings; returns the function that refreshes the stats panel (and the
 * settings shown with it).
 * @param {PyAgent} agent
 */
export async function startCloud(agent) {
  const refreshStats = async () => showStats(await agent.stats());
  const consent = $('consent', HTMLSelectElement);
  const threshold = $('threshold', HTMLInputElement);
  shownLive = true;
  showSettings(await agent.settings());
  const save = async (/** @type {SettingsChanges} */ changes) => {
    $('cloud-error').hidden = true;
    try {
      showSettings(await agent.setSettings(changes));
      await refreshStats(); // "never" empties the queue
    } catch (error) {
      $('cloud-error').textContent = `Not saved: ${/** @type {Error} */ (error).message}`;
      $('cloud-error').hidden = false;
    }
  };
  consent.addEventListener('change', () => save({ consent: /** @type {Consent} */ (consent.value) }));
  threshold.addEventListener('change', () => save({ threshold: Number(threshold.value) }));
  await refreshStats();
  return refreshStats;
}
