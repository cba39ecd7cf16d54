// Your data: Export downloads every task and note as one JSON file, Import merges one in.

// py_agent/export.py's MAX_BYTES: a larger file is refused here, before it is read at all.
const MAX_BYTES = 20_000_000;

/** @typedef {import('./api.js').PyAgent} PyAgent */

/**
 * The element with data-role `name`, of the class `kind`.
 * @template {HTMLElement} T
 * @param {string} name @param {new () => T} kind
 * @returns {T}
 */
function role(name, kind) {
  const element = document.querySelector(`[data-role="${name}"]`);
  if (!(element instanceof kind)) throw new Error(`index.html has no ${kind.name} [data-role="${name}"]`);
  return element;
}

/** py_agent-export-YYYY-MM-DD.json, on the user's own calendar. */
function exportName(now = new Date()) {
  const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `py_agent-export-${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}.json`;
}

/** @param {string} text @param {string} name */
function download(text, name) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started from the URL by now; revoking at once can cancel it in
  // some browsers, so the URL goes a little later.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * state: "busy", "done" or "error" (tests wait on data-state).
 * @param {string} text @param {'busy' | 'done' | 'error'} state
 */
function showStatus(text, state) {
  const status = role('import-status', HTMLElement);
  status.textContent = text;
  status.dataset.state = state;
  status.classList.toggle('error', state === 'error');
  status.hidden = false;
}

/** @param {PyAgent} agent @param {() => Promise<void>} refresh */
export function startData(agent, refresh) {
  const exportButton = role('export', HTMLButtonElement);
  const input = role('import', HTMLInputElement);
  exportButton.addEventListener('click', async () => {
    exportButton.disabled = true;
    try {
      download(await agent.exportData(), exportName());
    } catch (error) {
      showStatus(`Export failed: ${/** @type {Error} */ (error).message}`, 'error');
    } finally {
      exportButton.disabled = false;
    }
  });
  input.addEventListener('change', async () => {
    const file = input.files?.[0];
    if (!file) return;
    input.disabled = true;
    showStatus(`Importing ${file.name}…`, 'busy');
    try {
      if (file.size > MAX_BYTES) {
        // Rounded up: a file just over the limit must not read as the limit ("20.0 MB").
        const megabytes = (Math.ceil(file.size / 1e5) / 10).toFixed(1);
        throw new Error(`the file is ${megabytes} MB; the limit is ${MAX_BYTES / 1e6} MB`);
      }
      const result = await agent.importData(await file.text());
      await refresh();
      showStatus(result.summary, 'done');
    } catch (error) {
      showStatus(`Nothing was imported from ${file.name}:\n${/** @type {Error} */ (error).message}`, 'error');
    } finally {
      input.disabled = false;
      input.value = ''; // so choosing the same file again imports it again
    }
  });
}
