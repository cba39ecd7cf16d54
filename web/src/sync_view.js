// The Sync section: the indicator, pairing, and re-rendering what other devices changed.
// When to sync is the worker's to decide (py_agent/device_sync.py); this page passes on
// the browser's events it needs: back online, the page shown or hidden, and what the
// server's live stream says (live_sync.js).
import * as Comlink from './vendor/comlink.mjs';
import { $ } from './dom.js';
import { mark, startLiveSync } from './live_sync.js';

/**
 * @typedef {import('./types.js').SyncStatus} SyncStatus
 * @typedef {import('./api.js').PyAgent} PyAgent
 * @typedef {{ brands?: { brand: string }[], platform?: string }} UserAgentData
 */

/** "Chromium on Linux", or "This browser" where the browser does not say. */
function defaultDeviceName() {
  // Chromium only (not in TypeScript's DOM types yet).
  const data = /** @type {{ userAgentData?: UserAgentData }} */ (navigator).userAgentData;
  const brands = (data?.brands ?? []).map(({ brand }) => brand).filter((brand) => !/not.?a.?brand/i.test(brand));
  // Chrome and Edge list "Chromium" beside their own name.
  const brand = brands.find((name) => name !== 'Chromium') ?? brands[0];
  if (!brand) return 'This browser';
  return data?.platform ? `${brand} on ${data.platform}` : brand;
}

// At least 1: a retry that is due shows "in 1 s", not "in 0 s".
const secondsLeft = (/** @type {number} */ atMs) => Math.max(1, Math.ceil((atMs - Date.now()) / 1000));

/** @param {SyncStatus} status @param {number | null} retryAt the retry, in ms */
function indicatorText(status, retryAt) {
  switch (status.state) {
    case 'local':
      return 'Local only';
    case 'synced':
      return 'Synced';
    case 'pending':
      return `${status.pending} pending`;
    case 'behind':
      return 'Getting changes…';
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

/** @param {SyncStatus} status @param {number | null} retryAt the retry, in ms */
function syncDetail(status, retryAt) {
  if (status.error) {
    if (retryAt === null) return status.error;
    return `${status.error}, retrying in ${secondsLeft(retryAt)} s`;
  }
  if (status.last_synced_at) {
    return `Last synced ${new Date(status.last_synced_at * 1000).toLocaleTimeString([], { timeStyle: 'short' })}`;
  }
  return '';
}

/** @param {Error | null} error */
function showSyncError(error) {
  $('sync-error').textContent = error ? error.message : '';
  $('sync-error').hidden = !error;
}

/**
 * The Sync section: the indicator, pairing, and re-rendering what other devices changed.
 * @param {PyAgent} agent @param {() => Promise<void>} refresh
 */
export async function startSync(agent, refresh) {
  const body = document.body;
  /** @type {number | null} */
  let revision = null;
  let countdown = 0;
  const live = startLiveSync(agent);

  /** @param {SyncStatus} status */
  const show = (status) => {
    mark('py_agent:sync-status', { state: status.state, pending: status.pending, revision: status.revision });
    body.dataset.sync = status.state;
    body.dataset.syncPending = String(status.pending);
    const retryAt = status.retry_at === null ? null : status.retry_at * 1000;
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
    $('sync-now', HTMLButtonElement).disabled = !status.paired;
    $('sync-unpaired').hidden = status.paired;
    $('sync-paired').hidden = !status.paired;
    $('sync-space').textContent = status.space_id ?? '';
    $('pairing').hidden = !code;
    $('copy-code').hidden = !code;
    if ($('pairing-code').textContent !== (code ?? '')) $('copy-code').textContent = 'Copy';
    $('pairing-code').textContent = code ?? '';
    live(status);

    if (status.revision !== revision) {
      revision = status.revision;
      // Tests wait on syncRevision: set it once the panes show that revision.
      refresh().then(() => {
        if (revision === status.revision) body.dataset.syncRevision = String(revision);
      });
    }
  };

  /**
   * Pairing and "Sync now": errors stay on screen, and so does what was typed.
   * @param {HTMLButtonElement} button @param {() => Promise<unknown>} action
   */
  const attempt = (button, action) => async (/** @type {Event} */ event) => {
    event?.preventDefault();
    showSyncError(null);
    button.disabled = true;
    try {
      await action(); // its Status reaches `show` through watchSync
    } catch (error) {
      showSyncError(/** @type {Error} */ (error));
    } finally {
      button.disabled = false;
    }
  };
  const deviceName = $('device-name', HTMLInputElement);
  deviceName.value = defaultDeviceName();
  const name = () => deviceName.value.trim() || defaultDeviceName();
  /** @param {string} id */
  const button = (id) => $(id, HTMLButtonElement);
  $('sync-now').addEventListener('click', attempt(button('sync-now'), () => agent.syncNow()));
  $('create-space').addEventListener('click', attempt(button('create-space'), () => agent.createSpace(name())));
  const joinButton = /** @type {HTMLButtonElement} */ ($('join').querySelector('button'));
  const joinCode = $('join-code', HTMLInputElement);
  $('join').addEventListener(
    'submit',
    attempt(joinButton, async () => {
      const code = joinCode.value.trim();
      if (!code) throw new Error('Type the pairing code shown on your other device.');
      await agent.joinSpace(code, name());
      joinCode.value = '';
    }),
  );
  $('new-code').addEventListener('click', attempt(button('new-code'), () => agent.newPairingCode()));
  $('leave-space').addEventListener('click', attempt(button('leave-space'), () => agent.leaveSpace()));
  $('copy-code').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('pairing-code').textContent);
      $('copy-code').textContent = 'Copied';
    } catch {
      // No clipboard permission: select the code so the user can copy it by hand.
      getSelection()?.selectAllChildren($('pairing-code'));
    }
  });
  // Chromium's workers get no online event of their own (checked under Playwright's
  // offline emulation, where the worker's navigator.onLine flips but no event fires),
  // so the page passes it on; the worker then syncs without waiting out its backoff.
  addEventListener('online', () => agent.online().catch(showSyncError));
  // Nor do workers see the page hidden or shown: a hidden page skips the periodic pull,
  // and pulls as soon as it is shown again if one is overdue.
  document.addEventListener('visibilitychange', () => {
    agent.setVisible(document.visibilityState === 'visible').catch(showSyncError);
  });

  await agent.watchSync(Comlink.proxy(show));
}
