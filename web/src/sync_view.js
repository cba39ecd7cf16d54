// The Sync section: the indicator, pairing, and re-rendering what other devices changed.
import * as Comlink from './vendor/comlink.mjs';
import { $ } from './dom.js';

/** "Chromium on Linux", or "This browser" where the browser does not say. */
function defaultDeviceName() {
  const data = navigator.userAgentData;
  const brands = (data?.brands ?? []).map(({ brand }) => brand).filter((brand) => !/not.?a.?brand/i.test(brand));
  // Chrome and Edge list "Chromium" beside their own name.
  const brand = brands.find((name) => name !== 'Chromium') ?? brands[0];
  if (!brand) return 'This browser';
  return data.platform ? `${brand} on ${data.platform}` : brand;
}

// At least 1, like the detail line: a retry that is due shows "in 1 s", not "in 0 s".
const secondsLeft = (at) => Math.max(1, Math.ceil((at - Date.now()) / 1000));

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
export async function startSync(agent, refresh) {
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
