// The installable, offline app: the service worker (sw.js, precaching every file of
// the build), the "Update available — reload" prompt, and the online/offline indicator.
import { Workbox } from './vendor/workbox-window.mjs';
import { $ } from './dom.js';

// A tab left open still hears of a new build (browsers check by themselves only when
// a page is loaded).
const UPDATE_CHECK_MS = 60 * 60 * 1000;

/** The header's Online/Offline badge; with no network, what needs the server says so. */
export function startNetworkIndicator() {
  const show = () => {
    const online = navigator.onLine;
    document.body.dataset.network = online ? 'online' : 'offline';
    $('network').textContent = online ? 'Online' : 'Offline';
    // Pairing can only happen on the server; a disabled fieldset greys out its controls
    // without touching their own disabled state, which the Sync section manages.
    for (const group of document.querySelectorAll('fieldset.needs-server')) {
      if (group instanceof HTMLFieldSetElement) group.disabled = !online;
    }
  };
  addEventListener('online', show);
  addEventListener('offline', show);
  show();
}

/**
 * Register the service worker. Called once the boot has finished (or failed), so the
 * precache mostly revalidates what the boot has just downloaded instead of fetching it
 * alongside (sw.js). Every later load is served by the service worker.
 */
export async function startServiceWorker() {
  const body = document.body;
  if (!('serviceWorker' in navigator)) {
    body.dataset.sw = 'unsupported'; // e.g. plain http on another host: not a secure context
    return;
  }
  const wb = new Workbox('sw.js');
  const wasControlled = Boolean(navigator.serviceWorker.controller);
  body.dataset.sw = wasControlled ? 'controlled' : 'installing';
  wb.addEventListener('activated', (event) => {
    if (!event.isUpdate) body.dataset.sw = 'ready'; // cached: the next load works offline
  });
  wb.addEventListener('waiting', () => {
    body.dataset.sw = 'waiting';
    $('update').hidden = false;
  });
  // The new build took over (asked for here or in another tab): this page's files are the
  // old build's, so load the new ones rather than mix them.
  wb.addEventListener('controlling', () => {
    if (wasControlled) location.reload();
  });
  $('update-reload').addEventListener('click', async () => {
    $('update-reload', HTMLButtonElement).disabled = true;
    if (!wasControlled) {
      // The old worker did not serve this page (its first visit): no 'controlling' comes.
      const waiting = (await navigator.serviceWorker.getRegistration())?.waiting;
      waiting?.addEventListener('statechange', () => {
        if (waiting.state === 'activated') location.reload();
      });
    }
    wb.messageSkipWaiting();
  });
  try {
    await wb.register({ immediate: true });
  } catch (error) {
    body.dataset.sw = 'error';
    console.error('the service worker did not register; the app will need the network:', error);
    return;
  }
  setInterval(() => wb.update().catch(() => {}), UPDATE_CHECK_MS);
  addEventListener('online', () => wb.update().catch(() => {}));
}
