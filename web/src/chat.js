// The chat: history, sending a turn, and how each reply is shown.
import { $ } from './dom.js';

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

export async function startChat(agent, refresh) {
  for (const message of await agent.history()) {
    addMessage(message.role, message.text, message.role === 'agent' ? message : null);
  }
  await refresh();
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
      if (reply.changed.length) await refresh();
    } catch (error) {
      $('chat-error').textContent = `Sorry, that failed: ${error.message}`;
      $('chat-error').hidden = false;
    }
    document.body.dataset.turns = String(sent.length);
  });
}

