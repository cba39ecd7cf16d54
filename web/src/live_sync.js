// Live sync: the page keeps the server's event stream open (GET /api/v1/spaces/{id}/events,
// Server-Sent Events: server/live.py) and hands each "changed" cursor to the worker, which
// pulls at once when it is behind (py_agent/device_sync.py decides; this only listens).
// The stream carries no data of the user's, only the space's newest cursor.
//
// - fetch, not EventSource: EventSource cannot send the Authorization header /sync is
//   authenticated with, and a token in the URL would end up in server and proxy logs.
// - While the stream is down the worker polls (setLive(false)); the stream reconnects with
//   exponential backoff and full jitter, at once when the browser comes back online, and
//   gives up on 401/403 (the device was unpaired: the Sync section says so) until the
//   pairing changes.
// - One stream per device: only the tab that runs the worker listens (tabs.js's leader, or
//   a tab running alone); a follower that takes over starts listening then.

/**
 * @typedef {import('./api.js').PyAgent} PyAgent
 * @typedef {import('./types.js').SyncStatus} SyncStatus
 * @typedef {{ heard: boolean, stop?: boolean, retryAfterMs?: number }} Outcome
 */

const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;
// The server sends a keep-alive comment every 15 s (server/live.py, PING_S): a stream
// silent for this long is dead (a half-open connection after a network change), not quiet.
const SILENCE_MS = 40_000;

// bench/live_sync.py times a change's way to the other device by these marks (only the
// newest of each is kept: a PerformanceObserver sees every one).
export const HEARD = 'py_agent:live-changed';

/** A performance mark for the benchmark, replacing the previous one of its name. @param {string} name @param {unknown} detail */
export function mark(name, detail) {
  performance.clearMarks(name);
  performance.mark(name, { detail });
}

/** The tab runs the worker (tabs.js's roles, published on the body). */
const runsTheWorker = () => ['leader', 'alone'].includes(document.body.dataset.tabs ?? '');

/**
 * Reads Server-Sent Events off a text stream: `onEvent(type, data)` for each event. The
 * server ends lines with "\n" alone (server/sync_api.py); a "\r" before it is dropped.
 * @param {(type: string, data: string) => void} onEvent
 */
function eventReader(onEvent) {
  let rest = '';
  let type = '';
  /** @type {string[]} */
  let data = [];
  return (/** @type {string} */ text) => {
    const lines = (rest + text).split('\n');
    rest = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line === '') {
        if (data.length) onEvent(type || 'message', data.join('\n'));
        type = '';
        data = [];
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = value;
        else if (field === 'data') data.push(value);
      }
    }
  };
}

/**
 * One connection, until it ends or `signal` aborts.
 * @param {PyAgent} agent @param {AbortSignal} signal @returns {Promise<Outcome>}
 */
async function listenOnce(agent, signal) {
  const source = await agent.liveStream();
  if (!source) return { heard: false, stop: true };
  const connection = new AbortController();
  const abort = () => connection.abort();
  signal.addEventListener('abort', abort);
  let silence = 0;
  const quiet = () => {
    clearTimeout(silence);
    silence = setTimeout(abort, SILENCE_MS);
  };
  let heard = false;
  try {
    quiet();
    const response = await fetch(source.url, {
      headers: { Authorization: `Bearer ${source.token}`, Accept: 'text/event-stream' },
      cache: 'no-store',
      signal: connection.signal,
    });
    if (response.status === 401 || response.status === 403) return { heard, stop: true };
    if (!response.ok || !response.body || !response.headers.get('content-type')?.startsWith('text/event-stream')) {
      // 429 (too many streams, or reconnecting too fast) says when to come back.
      const wait = Number(response.headers.get('retry-after'));
      return { heard, retryAfterMs: Number.isFinite(wait) && wait > 0 ? wait * 1000 : undefined };
    }
    await agent.setLive(true);
    document.body.dataset.live = 'true'; // a hook for tests: the stream is open
    const read = eventReader((type, data) => {
      if (type !== 'changed') return;
      heard = true;
      mark(HEARD, data);
      agent.spaceChanged(data).catch((error) => console.error('py_agent: live sync:', error));
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      quiet();
      read(value);
    }
    return { heard };
  } catch {
    return { heard }; // offline, the server went away, or the stream fell silent
  } finally {
    clearTimeout(silence);
    signal.removeEventListener('abort', abort);
  }
}

/**
 * Keeps the live stream open while the device is paired and this tab runs the worker.
 * @param {PyAgent} agent
 * @returns {(status: SyncStatus) => void} to call with every sync status
 */
export function startLiveSync(agent) {
  /** @type {string | null} the space listened to */
  let space = null;
  /** @type {AbortController | null} */
  let running = null;
  /** @type {() => void} ends the wait before a reconnect */
  let wakeUp = () => {};

  /** @param {AbortSignal} signal */
  const listen = async (signal) => {
    let failures = 0;
    while (!signal.aborted) {
      const outcome = await listenOnce(agent, signal);
      await agent.setLive(false).catch(() => {}); // the worker polls meanwhile
      document.body.dataset.live = 'false';
      if (signal.aborted || outcome.stop) return;
      failures = outcome.heard ? 0 : failures + 1;
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(failures, 16));
      const delay = outcome.retryAfterMs ?? Math.random() * ceiling;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        wakeUp = () => {
          clearTimeout(timer);
          resolve(undefined);
        };
        signal.addEventListener('abort', wakeUp, { once: true });
      });
    }
  };

  const settle = () => {
    const wanted = runsTheWorker() ? space : null;
    if (running && !wanted) {
      running.abort();
      running = null;
    } else if (!running && wanted) {
      const controller = (running = new AbortController());
      listen(controller.signal).finally(() => {
        if (running === controller) running = null;
      });
    }
  };

  // Back online: reconnect now rather than at the end of the backoff.
  addEventListener('online', () => wakeUp());
  new MutationObserver(settle).observe(document.body, { attributeFilter: ['data-tabs'] });

  return (status) => {
    const next = status.paired ? status.space_id : null;
    if (next === space) return;
    running?.abort(); // another space, or none: the old stream is of no use
    running = null;
    space = next;
    settle();
  };
}
