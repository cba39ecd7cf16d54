// Settings → Sync → "Devices in this space": every device the server knows in this
// device's space, when each was last heard from, and Remove for the others (their token
// stops working at once; this device leaves with Leave). Read when opened.
import { $ } from './dom.js';

/**
 * @typedef {import('./types.js').SpaceDevice} SpaceDevice
 * @typedef {import('./api.js').PyAgent} PyAgent
 */

/** "5 minutes ago", "yesterday": how long ago an ISO time was, in the user's language. @param {string} iso */
function ago(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  /** @type {[Intl.RelativeTimeFormatUnit, number][]} */
  const units = [['day', 86_400], ['hour', 3_600], ['minute', 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return format.format(0, 'minute');
}

/** @param {SpaceDevice[]} devices */
function render(devices) {
  $('device-list').replaceChildren(
    ...devices.map((device) => {
      const item = document.createElement('li');
      item.dataset.id = device.device_id;
      const name = document.createElement('span');
      name.textContent = device.name;
      const seen = document.createElement('small');
      seen.textContent = device.this_device
        ? 'this device'
        : device.last_seen ? `last seen ${ago(device.last_seen)}` : 'not synced yet';
      item.append(name, ' ', seen);
      if (!device.this_device) {
        const remove = document.createElement('button');
        remove.type = 'button';
        remove.textContent = 'Remove';
        remove.dataset.device = device.device_id;
        remove.setAttribute('aria-label', `Remove “${device.name}” from this space`);
        item.append(' ', remove);
      }
      return item;
    }),
  );
}

/** @param {string} text @param {boolean} [failed] */
function say(text, failed = false) {
  const status = $('devices-status');
  status.textContent = text;
  status.classList.toggle('error', failed);
  status.hidden = !text;
}

/** @param {PyAgent} agent */
export function startDevices(agent) {
  const details = $('devices', HTMLDetailsElement);
  details.addEventListener('toggle', async () => {
    if (!details.open) return;
    say('Asking the server…');
    try {
      render(await agent.spaceDevices());
      say('');
    } catch (error) {
      say(/** @type {Error} */ (error).message, true);
    }
  });
  $('device-list').addEventListener('click', async (event) => {
    const button = /** @type {HTMLElement} */ (event.target).closest('button');
    const id = button?.dataset.device;
    if (!(button instanceof HTMLButtonElement) || !id) return;
    const name = button.closest('li')?.querySelector('span')?.textContent ?? 'the device';
    button.disabled = true;
    try {
      render(await agent.removeDevice(id));
      say(`Removed “${name}”. It can join again with a pairing code.`);
    } catch (error) {
      button.disabled = false;
      say(/** @type {Error} */ (error).message, true);
    }
  });
}
