// The chat: history, sending a turn, and how each reply is shown. The message box works
// from the first paint: what is sent before the agent is ready waits in the chat, and is
// sent, in order, once it is.
import * as Comlink from './vendor/comlink.mjs';
import { $ } from './dom.js';

/**
 * @typedef {import('./types.js').Reply} Reply
 * @typedef {import('./types.js').Message} Message
 * @typedef {import('./api.js').PyAgent} PyAgent
 */

/**
 * The user's local time with its UTC offset, e.g. 2026-11-18T10:00:00.250+01:00. To the
 * millisecond: records made in the same second must still sort in the order they were made.
 */
function localIso(date = new Date()) {
  const pad = (/** @type {number} */ n) => String(Math.trunc(Math.abs(n))).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `.${String(date.getMilliseconds()).padStart(3, '0')}` +
    `${sign}${pad(offset / 60)}:${pad(offset % 60)}`
  );
}

/** @type {Record<string, [string, string]>} */
const SOURCE_BADGES = {
  cloud: ['server', 'The server\'s larger model read this request (only its text was sent)'],
  tentative: ['guess', 'The device was unsure and could not ask the server: a best guess'],
};

// The answers to "Ask the server?": [choice, label, what it means].
const CONSENT_CHOICES = /** @type {const} */ ([
  ['always', 'Always', 'Ask the server now, and whenever the device is unsure'],
  ['not_now', 'Not now', 'Answer with the device\'s own guess; ask again next time'],
  ['never', 'Never', 'Never ask the server (you can change this under Server help)'],
]);

/**
 * The three answers to a consent question, as real buttons in a labelled group; once
 * answered they stay, disabled, the chosen one pressed.
 * @param {string} id the question's message id @param {string | undefined} answer
 */
function consentButtons(id, answer) {
  const group = document.createElement('span');
  group.className = 'consent';
  group.setAttribute('role', 'group');
  group.setAttribute('aria-label', 'Ask the server about this request?');
  for (const [choice, label, title] of CONSENT_CHOICES) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.message = id;
    button.dataset.consent = choice;
    button.textContent = label;
    button.title = title;
    button.disabled = answer !== undefined;
    if (answer !== undefined) button.setAttribute('aria-pressed', String(answer === choice));
    group.append(button);
  }
  return group;
}

/** @param {string} text @param {string} title */
function badge(text, title) {
  const element = document.createElement('span');
  element.className = 'badge';
  element.textContent = text;
  element.title = title;
  return element;
}

/**
 * One chat message; an agent's carries how it was understood and by which model: the
 * reply to a turn, or the stored message from the history.
 * @param {string} role @param {string} text @param {Reply | Message | null} [details]
 */
function addMessage(role, text, details) {
  const item = document.createElement('li');
  item.className = role;
  // A stable hook for tests and outside tools: every answer the agent gave, however it came.
  if (role === 'agent') item.dataset.role = 'reply';
  const id = details && ('id' in details ? details.id : details.message_id);
  if (id) item.id = `m-${id}`;
  if (details && 'refines' in details && details.refines) {
    const link = document.createElement('a');
    link.href = `#m-${details.refines}`;
    link.className = 'refines';
    link.textContent = '↳ about an earlier reply';
    item.append(link, document.createElement('br'));
  }
  item.append(text);
  if (details) {
    /** @type {Partial<Message>} the fields only a stored message has */
    const stored = 'id' in details ? details : {};
    const source = details.source ?? 'local';
    item.dataset.source = source;
    const [label, title] = SOURCE_BADGES[source] ?? [];
    if (label) item.append(' ', badge(label, details.model ? `${title} (${details.model})` : title));
    if (stored.confirmed_by) item.append(' ', badge('✓ server agrees', `Confirmed by ${stored.confirmed_by}`));
    if (stored.proposal && id) {
      const apply = document.createElement('button');
      apply.type = 'button';
      apply.className = 'apply';
      apply.dataset.message = id;
      apply.textContent = stored.applied ? 'Applied' : 'Apply';
      apply.disabled = Boolean(stored.applied);
      item.append(' ', apply);
    }
    const question = 'asks_consent' in details ? details.asks_consent : Boolean(stored.consent_question);
    if (question && id) item.append(' ', consentButtons(id, stored.consent_answer));
    const more = document.createElement('details');
    const summary = document.createElement('summary');
    const confidence = details.confidence ?? 0;
    summary.textContent = 'details';
    summary.setAttribute('aria-label', 'details: how this request was understood');
    const body = document.createElement('div');
    const latency = details.latency_ms === undefined ? '' : ` · ${details.latency_ms.toFixed(1)} ms`;
    const cloud = stored.cloud_ms === undefined ? '' : ` · server ${stored.cloud_ms} ms`;
    body.textContent = `intent ${details.intent}, confidence ${confidence.toFixed(3)}${latency}${cloud}` +
      (details.cached ? ' · cached' : '') +
      (stored.local_intent && stored.local_intent !== details.intent ? ` · the device read ${stored.local_intent}` : '');
    more.append(summary, body);
    item.append(more);
  }
  $('messages').append(item);
  showConversationToggle();
  item.scrollIntoView({ block: 'nearest' });
  return item;
}

/** The conversation scrolls in a short box; the toggle makes it taller, once there is more than an exchange. */
function showConversationToggle() {
  const count = $('messages').childElementCount;
  const toggle = $('conversation-toggle', HTMLButtonElement);
  const expanded = $('conversation').dataset.expanded === 'true';
  toggle.hidden = count <= 2;
  toggle.textContent = expanded ? 'Show less of the conversation' : `Show more of the conversation (${count} messages)`;
}

/**
 * A message the user sent: its text, when it was sent, and its item in the chat.
 * @typedef {{ text: string, at: string, item: HTMLLIElement }} Turn
 * @typedef {{ agent: PyAgent, refresh: () => Promise<void>, afterTurn: () => Promise<void> }} Live
 */

// Messages not handed to the agent yet, kept for this tab (sessionStorage): a reload during
// the boot, or after a failed one, sends them then. A message is dropped from it as it is
// handed over, so a reload never sends one twice.
const WAITING_KEY = 'py_agent-waiting';

/** Set once the agent is ready: turns are then sent as they come. @type {Live | null} */
let live = null;
/** Turns not handed to the agent yet, oldest first. @type {Turn[]} */
const unsent = [];
/** Turns run one after another, so the agent reads them in the order they were sent. */
let turns = Promise.resolve();
let answered = 0;

/** @returns {{ text: string, at: string }[]} */
function readWaiting() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(WAITING_KEY) ?? '[]');
    if (Array.isArray(stored)) {
      return stored.filter((turn) => typeof turn?.text === 'string' && typeof turn?.at === 'string');
    }
  } catch (error) {
    console.warn('py_agent: the messages kept from the last load are unreadable, so they are dropped:', error);
  }
  return [];
}

function keepWaiting() {
  try {
    if (unsent.length) {
      sessionStorage.setItem(WAITING_KEY, JSON.stringify(unsent.map(({ text, at }) => ({ text, at }))));
    } else {
      sessionStorage.removeItem(WAITING_KEY);
    }
  } catch (error) {
    // Storage full or refused: the messages still wait on this page, only not past a reload.
    console.warn('py_agent: could not keep the waiting messages for a reload:', error);
  }
}

/** @param {Turn} turn @param {'waiting' | 'failed'} state */
function mark(turn, state) {
  turn.item.dataset.state = state;
  turn.item.querySelector('.badge')?.remove();
  turn.item.append(
    ' ',
    state === 'waiting'
      ? badge('waiting', 'Sent as soon as py_agent has started')
      : badge('not sent', 'py_agent could not start, so this was not sent'),
  );
}

/** @param {Message[]} messages */
function showHistory(messages) {
  $('messages').replaceChildren();
  showConversationToggle();
  for (const message of messages) {
    addMessage(message.role, message.text, message.role === 'agent' ? message : null);
  }
  // Not in the history yet: they stay below it until their turn.
  $('messages').append(...unsent.map((turn) => turn.item));
}

/** @param {Error | null} error */
function showChatError(error) {
  $('chat-error').textContent = error ? `Sorry, that didn't work: ${error.message}` : '';
  $('chat-error').hidden = !error;
}

/** @param {Turn} turn @param {Live} ready */
async function runTurn(turn, { agent, refresh, afterTurn }) {
  unsent.splice(unsent.indexOf(turn), 1);
  delete turn.item.dataset.state;
  turn.item.querySelector('.badge')?.remove();
  keepWaiting();
  showChatError(null);
  try {
    // Resolves only after the turn was committed to IndexedDB.
    const reply = await agent.ask(turn.text, turn.at);
    addMessage('agent', reply.text, reply);
    if (reply.changed.length) await refresh();
  } catch (error) {
    showChatError(/** @type {Error} */ (error));
  }
  document.body.dataset.turns = String(++answered);
  await afterTurn();
}

/** @param {Turn} turn @param {Live} ready */
function take(turn, ready) {
  turns = turns.then(() => runTurn(turn, ready)).catch(showChatError);
}

/** @param {string} text @param {string} at */
function queue(text, at) {
  /** @type {Turn} */
  const turn = { text, at, item: addMessage('user', text) };
  unsent.push(turn);
  keepWaiting();
  if (live) take(turn, live);
  else mark(turn, 'waiting');
}

/**
 * The message box, from the first paint: Enter or Send puts the message in the chat, and
 * it is sent once the agent is ready (startChat). Arrow keys recall earlier messages; the
 * welcome's examples are sent as if typed; the toggle folds and unfolds the conversation.
 */
export function startComposer() {
  for (const { text, at } of readWaiting()) queue(text, at);
  const input = $('input', HTMLInputElement);
  /** @type {string[]} */
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
  // The form is method="dialog", so even before this ran a submit went nowhere.
  $('ask').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    sent.push(text);
    recall = sent.length;
    input.value = '';
    queue(text, localIso());
  });
  $('welcome').addEventListener('click', (event) => {
    const example = /** @type {HTMLElement} */ (event.target).closest('button')?.dataset.example;
    if (!example) return;
    sent.push(example);
    recall = sent.length;
    queue(example, localIso());
    input.focus();
  });
  $('conversation-toggle').addEventListener('click', () => {
    const conversation = $('conversation');
    const expanded = conversation.dataset.expanded !== 'true';
    conversation.dataset.expanded = String(expanded);
    $('conversation-toggle').setAttribute('aria-expanded', String(expanded));
    showConversationToggle();
    $('messages').lastElementChild?.scrollIntoView({ block: 'nearest' });
  });
}

/**
 * The agent could not start: what waits is marked not sent (and kept for the next load),
 * and the box says why instead of taking more.
 */
export function stopChat() {
  for (const turn of unsent) mark(turn, 'failed');
  $('chat-status').textContent = 'py_agent could not start, so nothing was sent. Your messages are kept: reload to send them.';
  $('chat-status').classList.add('error');
  $('input', HTMLInputElement).disabled = true;
  /** @type {HTMLButtonElement} */ ($('ask').querySelector('button')).disabled = true;
}

/**
 * The chat, once the agent is ready. `refresh` re-renders the panes after a change;
 * `afterTurn` runs after every turn (the stats panel). Second opinions the worker gets
 * from the server later arrive through watchChat and re-render the history. Returns the
 * function that sends what waited, in order, and every later message as it comes.
 * @param {PyAgent} agent @param {() => Promise<void>} refresh @param {() => Promise<void>} afterTurn
 * @returns {Promise<() => void>}
 */
export async function startChat(agent, refresh, afterTurn) {
  showHistory(await agent.history());
  await refresh();
  $('messages').addEventListener('click', async (event) => {
    const button = /** @type {Element} */ (event.target).closest('button.apply');
    if (!(button instanceof HTMLButtonElement) || !button.dataset.message) return;
    button.disabled = true;
    showChatError(null);
    try {
      const reply = await agent.applyProposal(button.dataset.message, localIso());
      button.textContent = 'Applied';
      addMessage('agent', reply.text, reply);
      if (reply.changed.length) await refresh();
    } catch (error) {
      button.disabled = false;
      showChatError(/** @type {Error} */ (error));
    }
    await afterTurn();
  });
  $('messages').addEventListener('click', async (event) => {
    const button = /** @type {Element} */ (event.target).closest('button[data-consent]');
    if (!(button instanceof HTMLButtonElement) || !button.dataset.message) return;
    const choice = /** @type {'always' | 'not_now' | 'never'} */ (button.dataset.consent);
    const group = [...(button.parentElement?.querySelectorAll('button') ?? [])];
    for (const each of group) each.disabled = true;
    showChatError(null);
    try {
      const reply = await agent.answerConsent(button.dataset.message, choice, localIso());
      for (const each of group) each.setAttribute('aria-pressed', String(each === button));
      addMessage('agent', reply.text, reply);
      if (reply.changed.length) await refresh();
    } catch (error) {
      for (const each of group) each.disabled = false;
      showChatError(/** @type {Error} */ (error));
    }
    document.body.dataset.turns = String(++answered);
    // The stats panel, and the consent setting it shows, which "always" and "never" change.
    await afterTurn();
  });
  let opinions = 0;
  await agent.watchChat(
    Comlink.proxy(async () => {
      showHistory(await agent.history());
      await refresh();
      await afterTurn();
      // Tests wait on this: the history now shows every second opinion so far.
      document.body.dataset.secondOpinions = String(++opinions);
    }),
  );
  return () => {
    live = { agent, refresh, afterTurn };
    $('chat-status').hidden = true;
    for (const turn of [...unsent]) take(turn, live);
  };
}
