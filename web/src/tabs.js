// Two tabs are safe: exactly one tab of this origin (the leader) runs the agent worker and
// writes the user's data; every other tab (a follower) sends its window.pyAgent calls to the
// leader over a BroadcastChannel and hears the leader's events, so all tabs keep working on
// the same data. The leader is whoever holds the Web Lock LOCK; when it closes or reloads,
// the browser hands the lock to the follower that asked first, which starts its own worker
// and takes over. See docs/pwa.md, "Several tabs".
//
// Generic over the page API: a call is a method name and its arguments, whatever methods
// the worker has. Four things are told apart by name (the lists below):
// - ONCE methods (boot) run once per worker: a tab that asks while or after it runs gets
//   the same result, and its callbacks hear the same progress;
// - a call with function arguments (watchSync(callback), boot(options, onStage)) is a
//   subscription: the leader hands the worker one stand-in per (method, argument) and
//   broadcasts each call of it to every tab, which calls its own callbacks;
// - CHANGES methods change the user's data: once one finished, the other tabs call their
//   REFRESH subscriptions (the chat's "something changed, re-render" callback), and one that
//   a closing leader had taken up is never sent again (it may or may not have been done);
// - every other call is a read, sent again to the next leader when the last one left.

/** The Web Lock the leader holds for as long as its page lives. */
const LOCK = 'py_agent-agent';
/** The tabs' channel (calls, results, events). */
const CHANNEL = 'py_agent-tabs';
/** The worker's bridge reports its IndexedDB connections here (web/src/bridge.js DB_EVENTS). */
const DB_EVENTS = 'py_agent-db';
/** Bumped when the messages below change: tabs of another protocol do not talk to each other. */
const PROTOCOL = 1;
/**
 * A follower's call that no leader has taken up within this long fails, readably; so does
 * one taken up whose leader then stops answering "still there?" (asked this often).
 */
const ANSWER_MS = 10_000;
/** sessionStorage flag: the user chose "Use here", so this load takes the lock from the other tab. */
const STEAL_FLAG = 'py_agent-use-here';
/** A function argument, as it crosses the channel. */
const CALLBACK = '__pyAgentCallback';

const ONCE = new Set(['boot']);
const CHANGES = new Set([
  'ask',
  'applyProposal',
  'answerConsent',
  'editRecord',
  'removeRecord',
  'restoreRecord',
  'resolveConflict',
  'importData',
  'setSettings',
  'createSpace',
  'joinSpace',
  'newPairingCode',
  'leaveSpace',
]);
const REFRESH = 'watchChat';

/**
 * @typedef {(...args: any[]) => any} Callback
 * @typedef {{ [method: string]: (...args: any[]) => Promise<any> }} Agent
 * @typedef {{ agent: Agent, worker?: Worker }} Started
 * @typedef {{ name: string, message: string, stack?: string, fields: Record<string, unknown> }} WireError
 * @typedef {{
 *   id: string, method: string, args: any[], wire: any[],
 *   resolve: (value: any) => void, reject: (error: Error) => void,
 *   accepted: boolean, sentTo: string | null, timer: number, asked: boolean,
 * }} Call
 * @typedef {'starting' | 'ready' | 'failed'} LeaderState
 * @typedef {{ v: number, from: string, type: string, [field: string]: any }} Message
 */

/** @param {string} method @param {number} index */
const keyOf = (method, index) => `${method}#${index}`;

/**
 * An error as it crosses to another tab: its name, message and stack, and its own plain
 * fields (a WorkerError's `type` and `field`), so the page reads it as it would here.
 * @param {unknown} error @returns {WireError}
 */
function toWire(error) {
  const e = /** @type {{ name?: unknown, message?: unknown, stack?: unknown }} */ (error ?? {});
  /** @type {Record<string, unknown>} */
  const fields = {};
  if (error && typeof error === 'object') {
    for (const [name, value] of Object.entries(error)) {
      if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) fields[name] = value;
    }
  }
  return {
    name: typeof e.name === 'string' ? e.name : 'Error',
    message: typeof e.message === 'string' ? e.message : String(error),
    stack: typeof e.stack === 'string' ? e.stack : undefined,
    fields,
  };
}

/** @param {WireError} wire @returns {Error} */
function fromWire(wire) {
  const error = Object.assign(new Error(wire.message), wire.fields ?? {});
  error.name = wire.name;
  if (wire.stack) error.stack = wire.stack;
  return error;
}

/** @param {string} name @param {string} message @returns {Error} */
function named(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** The header's tab status: a line of text and, when there is something to do, one button. */
const banner = {
  /**
   * @param {string} text empty hides it
   * @param {{ label: string, run: () => void } | null} [action]
   */
  show(text, action = null) {
    const box = document.getElementById('tabs');
    const line = document.getElementById('tabs-text');
    const button = /** @type {HTMLButtonElement | null} */ (document.getElementById('tabs-action'));
    if (!box || !line || !button) {
      if (text) console.info(`py_agent: ${text}`);
      return;
    }
    box.hidden = !text;
    box.classList.toggle('warn', Boolean(action));
    line.textContent = text;
    button.hidden = !action;
    button.textContent = action?.label ?? '';
    button.onclick = action ? () => action.run() : null;
  },
};

const reload = { label: 'Reload', run: () => location.reload() };

/**
 * Share one agent between every tab of this origin.
 *
 * `start()` makes this tab's agent (a Comlink-wrapped worker); it is called only when this
 * tab leads, and again never. `options.callback` marks a function the page hands the agent
 * (Comlink.proxy), as the page itself does for its own callbacks.
 *
 * Returns the agent to use as window.pyAgent (any method name; each call resolves to the
 * leader's answer or rejects with its error), and `failed`, which rejects if this tab's
 * worker does not start (the page shows that like a failed boot).
 *
 * @param {() => Started} start
 * @param {{ callback?: (fn: Callback) => Callback }} [options]
 * @returns {{ agent: Agent, failed: Promise<never> }}
 */
export function shareAgent(start, options = {}) {
  const mark = options.callback ?? ((fn) => fn);
  const me = crypto.randomUUID();
  const body = document.body;

  /** @type {'starting' | 'follower' | 'leader' | 'alone' | 'closed'} */
  let role = 'starting';
  /** @type {string | null} */
  let leaderId = null;
  /** @type {LeaderState} */
  let leaderState = 'starting';
  let hadLeader = false; // a leader has served this page before (its subscriptions included)
  /** @type {Started | null} */
  let local = null;
  /** @type {(error: Error) => void} */
  let failStart = () => {};
  /** @type {Promise<never>} */
  const failed = new Promise((_, reject) => {
    failStart = reject;
  });
  failed.catch(() => {}); // the page may never look at it

  // This page's own calls and callbacks.
  /** @type {Map<string, Call>} calls not answered yet (as a follower, or before the role is known) */
  const pending = new Map();
  /** @type {Map<string, Set<Callback>>} this page's callbacks, by (method, argument) */
  const subscribers = new Map();
  /** @type {Map<string, any[]>} this page's subscription calls, redone with each new leader */
  const subscriptions = new Map();
  /** @type {Map<string, any[]>} this page's ONCE calls, redone by this tab if it takes over */
  const onceCalls = new Map();
  let changing = 0; // this page's CHANGES calls still running
  let refreshing = 0; // REFRESH callbacks still running
  let refreshWanted = false;

  // As the leader.
  /** @type {Map<string, Promise<any>>} */
  const onceResults = new Map();
  /** @type {Map<string, Callback>} the stand-ins handed to the worker */
  const fans = new Map();
  /** @type {Map<string, any[]>} the last call of each ONCE stand-in (boot progress), for late tabs */
  const lastEvent = new Map();

  /** @type {BroadcastChannel | null} */
  let channel = null;

  /** @param {string} type @param {Record<string, any>} [fields] */
  const post = (type, fields = {}) => {
    channel?.postMessage({ v: PROTOCOL, from: me, type, ...fields });
  };

  const setRole = (/** @type {typeof role} */ next) => {
    role = next;
    body.dataset.tabs = next;
  };

  /** @param {LeaderState} state @param {string} [detail] */
  const setLeaderState = (state, detail = '') => {
    const previous = leaderState;
    leaderState = state;
    body.dataset.tabsState = state;
    if (role === 'leader') {
      post('state', { state, detail });
      if (state === 'failed') banner.show(`py_agent could not start in this tab: ${detail}`, reload);
      else if (state === 'ready') banner.show('');
    } else if (role === 'follower') {
      if (state === 'ready' && previous !== 'ready') refresh(); // a new leader: catch up
      if (state === 'starting') {
        banner.show(`py_agent is starting in another tab${detail ? `: ${detail}` : ''}…`);
      } else if (state === 'failed') {
        banner.show(`py_agent could not start in the other tab: ${detail}`, reload);
      } else {
        banner.show('');
      }
    }
  };

  // -- callbacks ------------------------------------------------------------------------

  /**
   * Call this page's callbacks for `key`; resolves when they all have.
   * @param {string} key @param {any[]} args
   */
  const deliver = (key, args) =>
    Promise.all(
      [...(subscribers.get(key) ?? [])].map((callback) =>
        Promise.resolve()
          .then(() => callback(...args))
          .catch((error) => console.error(`py_agent: a ${key} callback failed:`, error)),
      ),
    );

  /**
   * Another tab changed the user's data: re-render. Never while this page's own changes
   * are running (the chat shows a turn as it goes, and a re-render from the data would
   * drop or double it), and one re-render at a time; a change of this page that starts
   * during one gets another re-render once both are over, so the last always shows
   * everything.
   */
  const refresh = () => {
    refreshWanted = true;
    flushRefresh();
  };
  let flushTimer = 0;
  const flushRefresh = () => {
    if (changing > 0 || refreshing > 0) return; // called again when they are over
    // A macrotask: the page's own code after its last call (the chat appending the reply it
    // got) runs first, so the re-render sees it.
    clearTimeout(flushTimer);
    flushTimer = setTimeout(() => {
      if (!refreshWanted || changing > 0 || refreshing > 0) return;
      refreshWanted = false;
      const keys = [...subscribers.keys()].filter((key) => key.startsWith(`${REFRESH}#`));
      refreshing += 1;
      Promise.all(keys.map((key) => deliver(key, []))).finally(() => {
        refreshing -= 1;
        if (refreshWanted) flushRefresh();
      });
    }, 0);
  };

  /** The stand-in the worker gets for (method, argument): calls every tab's callbacks. */
  const fan = (/** @type {string} */ key) => {
    let stand = fans.get(key);
    if (!stand) {
      const method = key.slice(0, key.lastIndexOf('#'));
      stand = mark(async (/** @type {any[]} */ ...args) => {
        if (ONCE.has(method)) {
          lastEvent.set(key, args);
          const label = args[0]?.label;
          if (typeof label === 'string' && leaderState === 'starting' && onceResults.size && local) {
            // Taking over from a closed tab: this page already showed the app, so the
            // progress goes in the banner.
            if (subscriptions.size) banner.show(`Starting py_agent in this tab: ${label}…`);
            post('state', { state: 'starting', detail: label });
          }
        }
        deliver(key, args);
        post('event', { key, args });
      });
      fans.set(key, stand);
    }
    return stand;
  };

  // -- running calls as the leader ------------------------------------------------------

  /** @returns {Agent} */
  const agentHere = () => {
    if (!local) throw named('TabsError', 'py_agent is not running in this tab');
    return local.agent;
  };

  /**
   * Run one call on this tab's worker, for this page or for tab `from`.
   * @param {string} method @param {any[]} args real arguments, functions as stand-ins already
   * @param {string} from
   */
  const runHere = async (method, args, from) => {
    if (ONCE.has(method)) {
      let result = onceResults.get(method);
      if (!result) {
        result = Promise.resolve().then(() => agentHere()[method](...args));
        onceResults.set(method, result);
        // Ready once every ONCE call on this worker is.
        Promise.all(onceResults.values()).then(
          () => {
            if (role !== 'leader' || onceResults.get(method) !== result) return;
            setLeaderState('ready');
            if (subscriptions.size) refresh(); // a takeover: the data may have moved on meanwhile
          },
          (error) => setLeaderState('failed', toWire(error).message),
        );
      }
      return result;
    }
    await Promise.all(onceResults.values()); // nothing runs on a worker that has not booted
    try {
      return await agentHere()[method](...args);
    } finally {
      if (CHANGES.has(method)) {
        post('changed', { by: from });
        if (from !== me) refresh();
      }
    }
  };

  /** @param {string} method @param {any[]} wire */
  const withStandIns = (method, wire) =>
    wire.map((arg, index) => (arg && typeof arg === 'object' && arg[CALLBACK] ? fan(keyOf(method, index)) : arg));

  /** @param {string} method @param {any[]} args */
  const toWireArgs = (method, args) =>
    args.map((arg) => (typeof arg === 'function' ? { [CALLBACK]: true } : arg));

  /** @type {Set<Call>} this page's calls running on this tab's worker */
  const runningHere = new Set();

  /** @param {Call} call */
  const runOwnHere = (call) => {
    pending.delete(call.id);
    clearTimeout(call.timer);
    runningHere.add(call);
    runHere(call.method, withStandIns(call.method, call.wire), me)
      .then(call.resolve, call.reject)
      .finally(() => runningHere.delete(call));
  };

  // -- sending calls as a follower ------------------------------------------------------

  /** @param {Call} call */
  const armTimer = (call) => {
    clearTimeout(call.timer);
    call.timer = setTimeout(() => {
      if (!pending.has(call.id)) return;
      if (call.accepted && !call.asked) {
        // Taken up, and still running (a boot, a sync): is the leader's tab still there?
        call.asked = true;
        post('ping', { to: call.sentTo, id: call.id });
        armTimer(call);
        return;
      }
      pending.delete(call.id);
      call.reject(
        named(
          'TabsError',
          'py_agent is open in another tab, which is not answering (it may be busy, frozen or ' +
            'still closing). Close that tab, or use py_agent here instead.',
        ),
      );
      banner.show('py_agent is open in another tab, which is not answering.', {
        label: 'Use here',
        run: () => {
          sessionStorage.setItem(STEAL_FLAG, '1');
          location.reload();
        },
      });
      body.dataset.tabsState = 'unanswered';
    }, ANSWER_MS);
  };

  /** @param {Call} call */
  const send = (call) => {
    call.accepted = false;
    call.asked = false;
    call.sentTo = leaderId;
    armTimer(call);
    if (leaderId === null) return; // sent when a leader makes itself known
    try {
      post('call', { to: leaderId, id: call.id, method: call.method, args: call.wire });
    } catch (error) {
      // Arguments that cannot be copied to another tab (DataCloneError).
      pending.delete(call.id);
      clearTimeout(call.timer);
      call.reject(/** @type {Error} */ (error));
    }
  };

  /** @param {Call} call */
  const retryable = (call) => ONCE.has(call.method) || !CHANGES.has(call.method) || call.wire.some((a) => a?.[CALLBACK]);

  /**
   * The leader that had these calls is gone: send again what may be sent again, and fail
   * what it may or may not have done.
   * @param {(call: Call) => void} again
   */
  const leaderGone = (again) => {
    for (const call of [...pending.values()]) {
      if (call.accepted && !retryable(call)) {
        pending.delete(call.id);
        clearTimeout(call.timer);
        call.reject(
          named(
            'TabsError',
            `the tab that was running py_agent closed while doing this (${call.method}); ` +
              'it may or may not have been done: check, and try again if it was not',
          ),
        );
      } else {
        again(call);
      }
    }
  };

  /** A subscription or call made by this tab itself, not by its page. @param {string} method @param {any[]} args */
  const internal = (method, args) => dispatch(method, args).catch((error) => console.warn(`py_agent: ${method}:`, error));

  /** @param {string} method @param {any[]} args @returns {Promise<any>} */
  const dispatch = (method, args) =>
    new Promise((resolve, reject) => {
      /** @type {Call} */
      const call = {
        id: crypto.randomUUID(),
        method,
        args,
        wire: toWireArgs(method, args),
        resolve,
        reject,
        accepted: false,
        sentTo: null,
        timer: 0,
        asked: false,
      };
      if (role === 'leader' || role === 'alone') {
        runOwnHere(call);
        return;
      }
      if (role === 'closed') {
        reject(named('TabsError', 'py_agent now runs in another tab: reload this tab to use it here'));
        return;
      }
      pending.set(call.id, call);
      if (role === 'follower') send(call);
      else armTimer(call); // the role is not known yet: sent or run once it is
    });

  // -- the page's agent -----------------------------------------------------------------

  /** @param {string} method @param {any[]} args */
  const callFromPage = (method, args) => {
    args.forEach((arg, index) => {
      if (typeof arg !== 'function') return;
      const key = keyOf(method, index);
      if (!subscribers.has(key)) subscribers.set(key, new Set());
      subscribers.get(key)?.add(arg);
    });
    if (ONCE.has(method)) onceCalls.set(method, args);
    else if (args.some((arg) => typeof arg === 'function')) subscriptions.set(method, args);
    const result = dispatch(method, args);
    if (CHANGES.has(method)) {
      changing += 1;
      if (refreshing > 0) refreshWanted = true; // that re-render may miss or double this
      result
        .finally(() => {
          changing -= 1;
          if (refreshWanted) flushRefresh();
        })
        .catch(() => {});
    }
    return result;
  };

  /** @type {Agent} */
  const agent = new Proxy(/** @type {Agent} */ ({}), {
    get(_, name) {
      // Not a thenable (await agent), nor anything but a method name.
      if (typeof name !== 'string' || name === 'then') return undefined;
      return (/** @type {any[]} */ ...args) => callFromPage(name, args);
    },
  });

  // -- taking the lead ------------------------------------------------------------------

  /** Start this tab's worker; `handover`: this page already runs the app (another tab led). */
  const lead = () => {
    const handover = role === 'follower';
    setRole('leader');
    leaderId = me;
    post('leader', { state: 'starting' });
    setLeaderState('starting');
    try {
      local = start();
    } catch (error) {
      failStart(/** @type {Error} */ (error));
      setLeaderState('failed', toWire(error).message);
      return;
    }
    local.worker?.addEventListener('error', (event) => {
      event.preventDefault();
      const error = new Error(`the agent worker failed to start: ${event.message || 'a module did not load'}`);
      failStart(error);
      setLeaderState('failed', error.message);
    });
    if (handover) banner.show('The tab running py_agent closed: starting it in this tab…');
    // Whatever this page booted with, again on its own worker; then its subscriptions.
    for (const [method, args] of onceCalls) runHere(method, withStandIns(method, toWireArgs(method, args)), me).catch(() => {});
    for (const [method, args] of subscriptions) {
      runHere(method, withStandIns(method, toWireArgs(method, args)), me).catch((error) =>
        console.warn(`py_agent: ${method}:`, error),
      );
    }
    leaderGone(runOwnHere);
  };

  /** The lock was taken from this tab ("Use here" in another): stop writing at once. */
  const stepDown = () => {
    local?.worker?.terminate();
    local = null;
    setRole('closed');
    // A terminated worker never answers: nothing of this page's may wait for it.
    for (const call of [...pending.values(), ...runningHere]) {
      clearTimeout(call.timer);
      call.reject(named('TabsError', 'py_agent now runs in another tab: reload this tab to use it here'));
    }
    pending.clear();
    runningHere.clear();
    banner.show('py_agent now runs in another tab.', reload);
  };

  // -- messages from other tabs ---------------------------------------------------------

  /** @param {Message} message */
  const onMessage = (message) => {
    if (!message || message.from === me) return;
    if (message.v !== PROTOCOL) {
      if (message.type === 'leader') {
        banner.show('py_agent is open in another tab running a different version: reload that tab.', reload);
      }
      return;
    }
    switch (message.type) {
      case 'hello':
        if (role === 'leader') post('leader', { state: leaderState });
        break;
      case 'leader': {
        const changed = leaderId !== message.from;
        leaderId = message.from;
        if (role !== 'follower') break;
        if (changed) {
          // A new leader: calls the old one never answered go to it, and so do this page's
          // subscriptions (its worker has not heard of them).
          leaderGone(send);
          if (hadLeader) for (const [method, args] of subscriptions) internal(method, args);
          hadLeader = true;
        }
        setLeaderState(message.state);
        break;
      }
      case 'bye':
        if (message.from === leaderId) {
          leaderId = null;
          if (role === 'follower') {
            banner.show('The tab running py_agent closed: moving it…');
            leaderGone(send);
          }
        }
        break;
      case 'state':
        if (message.from === leaderId && role === 'follower') setLeaderState(message.state, message.detail);
        break;
      case 'call':
        if (message.to !== me || role !== 'leader') break;
        onCall(message);
        break;
      case 'accepted':
      case 'pong': {
        const call = message.to === me ? pending.get(message.id) : undefined;
        if (call && message.from === call.sentTo) {
          call.accepted = true;
          call.asked = false;
          armTimer(call);
        }
        break;
      }
      case 'ping':
        if (message.to === me && role === 'leader') post('pong', { to: message.from, id: message.id });
        break;
      case 'result': {
        const call = message.to === me ? pending.get(message.id) : undefined;
        if (!call) break;
        pending.delete(call.id);
        clearTimeout(call.timer);
        if (message.ok) call.resolve(message.value);
        else call.reject(fromWire(message.error));
        break;
      }
      case 'event':
        if (!message.to || message.to === me) deliver(message.key, message.args);
        break;
      case 'changed':
        if (message.by !== me) refresh();
        break;
      default:
        break;
    }
  };

  /** @param {Message} message */
  const onCall = (message) => {
    const { from, id, method } = message;
    post('accepted', { to: from, id });
    const args = withStandIns(method, message.args);
    if (ONCE.has(method)) {
      // A tab that asks while this runs hears where it has got to.
      message.args.forEach((/** @type {any} */ arg, /** @type {number} */ index) => {
        const last = arg?.[CALLBACK] ? lastEvent.get(keyOf(method, index)) : undefined;
        if (last) post('event', { to: from, key: keyOf(method, index), args: last });
      });
    }
    runHere(method, args, from).then(
      (value) => {
        try {
          post('result', { to: from, id, ok: true, value });
        } catch (error) {
          post('result', { to: from, id, ok: false, error: toWire(error) });
        }
      },
      (error) => post('result', { to: from, id, ok: false, error: toWire(error) }),
    );
  };

  /** @param {{ type: string, message: string }} event */
  const onDbEvent = (event) => {
    if (event.type === 'blocked') {
      body.dataset.tabsDb = 'blocked';
      banner.show(`Waiting: ${event.message}.`);
    } else if (event.type === 'unblocked') {
      body.dataset.tabsDb = 'open';
      banner.show('');
    } else if (event.type === 'blocking' || event.type === 'terminated') {
      body.dataset.tabsDb = event.type;
      banner.show(`${event.message[0].toUpperCase()}${event.message.slice(1)}.`, reload);
    }
  };

  // -- start ----------------------------------------------------------------------------

  if (typeof BroadcastChannel === 'function') {
    const dbChannel = new BroadcastChannel(DB_EVENTS);
    dbChannel.onmessage = (event) => onDbEvent(event.data);
  }
  if (!('locks' in navigator) || typeof BroadcastChannel !== 'function') {
    // Not a secure context (plain http to another host), or an old browser: no way to
    // agree on one writer, so this tab runs alone and says so.
    setRole('alone');
    local = start();
    local.worker?.addEventListener('error', (event) => {
      event.preventDefault();
      failStart(new Error(`the agent worker failed to start: ${event.message || 'a module did not load'}`));
    });
    banner.show('This browser cannot share py_agent between tabs here: keep it open in one tab only.');
    return { agent, failed };
  }

  channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = (event) => onMessage(event.data);

  const never = () => new Promise(() => {});
  const follow = () => {
    setRole('follower');
    setLeaderState('starting');
    post('hello');
    for (const call of pending.values()) send(call);
    // Next in line: when the leader's page goes, the browser gives this tab the lock.
    navigator.locks
      .request(LOCK, async () => {
        lead();
        return never();
      })
      .catch(stepDown);
  };

  const steal = sessionStorage.getItem(STEAL_FLAG) === '1';
  sessionStorage.removeItem(STEAL_FLAG);
  navigator.locks
    .request(LOCK, steal ? { steal: true } : { ifAvailable: true }, async (lock) => {
      if (!lock) {
        follow();
        return null;
      }
      lead();
      return never();
    })
    .catch(stepDown);

  addEventListener('pagehide', () => {
    if (role === 'leader') post('bye');
  });
  // A page back from the back/forward cache missed everything meanwhile: start it afresh.
  addEventListener('pageshow', (event) => {
    if (event.persisted) location.reload();
  });

  return { agent, failed };
}
