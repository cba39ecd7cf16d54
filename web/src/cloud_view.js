// Server help: the privacy switch, the confidence threshold, and the agent's stats.
import { $ } from './dom.js';

/**
 * @typedef {import('./types.js').Stats} Stats
 * @typedef {import('./types.js').RouterSettings} RouterSettings
 * @typedef {import('./types.js').SettingsChanges} SettingsChanges
 * @typedef {import('./api.js').PyAgent} PyAgent
 */

// Set once the worker's settings are shown: the stored ones, read late, must not replace them.
let shownLive = false;

const percent = (/** @type {number | null} */ value) => (value === null ? '—' : `${Math.round(value * 100)}%`);
const millis = (/** @type {number | null} */ value) => (value === null ? '—' : `${Math.round(value)} ms`);

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
}

/**
 * The settings as stored, before the worker is ready (preview.js); a setting never saved
 * shows neither on nor off (the worker's default applies), and the inputs stay disabled
 * until then (index.html's fieldset #needs-agent).
 * @param {{ cloud_help?: unknown, threshold?: unknown }} stored
 */
export function showStoredSettings(stored) {
  if (shownLive) return;
  const cloudHelp = $('cloud-help', HTMLInputElement);
  cloudHelp.indeterminate = typeof stored.cloud_help !== 'boolean';
  cloudHelp.checked = stored.cloud_help === true;
  $('threshold', HTMLInputElement).value = typeof stored.threshold === 'number' ? String(stored.threshold) : '';
}

/**
 * Binds the settings; returns the function that refreshes the stats panel.
 * @param {PyAgent} agent
 */
export async function startCloud(agent) {
  const refreshStats = async () => showStats(await agent.stats());
  const settings = await agent.settings();
  const cloudHelp = $('cloud-help', HTMLInputElement);
  const threshold = $('threshold', HTMLInputElement);
  shownLive = true;
  cloudHelp.indeterminate = false;
  cloudHelp.checked = settings.cloud_help;
  threshold.value = String(settings.threshold);
  const mark = (/** @type {RouterSettings} */ saved) => {
    // Tests wait on these: the settings the agent now uses.
    document.body.dataset.cloudHelp = String(saved.cloud_help);
    document.body.dataset.threshold = String(saved.threshold);
  };
  mark(settings);
  const save = async (/** @type {SettingsChanges} */ changes) => {
    $('cloud-error').hidden = true;
    try {
      const saved = await agent.setSettings(changes);
      cloudHelp.checked = saved.cloud_help;
      threshold.value = String(saved.threshold);
      mark(saved);
    } catch (error) {
      $('cloud-error').textContent = `Not saved: ${/** @type {Error} */ (error).message}`;
      $('cloud-error').hidden = false;
    }
  };
  cloudHelp.addEventListener('change', () => save({ cloud_help: cloudHelp.checked }));
  threshold.addEventListener('change', () => save({ threshold: Number(threshold.value) }));
  await refreshStats();
  return refreshStats;
}
