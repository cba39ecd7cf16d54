// Installing the app from the page: an Install button when the browser offers its install
// prompt (Chromium's `beforeinstallprompt`), nothing once the app is installed, and a hint
// where there is no prompt to show: iOS, where installing is Share → Add to Home Screen, and
// after the user dismissed the prompt. Updates are pwa.js's.
import { $ } from './dom.js';

/**
 * Chromium's BeforeInstallPromptEvent (not in TypeScript's DOM types). The page keeps it:
 * its prompt() is the browser's install dialog, allowed once, from a user's click.
 * @typedef {Event & {
 *   prompt(): Promise<unknown>,
 *   userChoice: Promise<{ outcome: 'accepted' | 'dismissed' }>,
 * }} InstallPromptEvent
 */

const IOS_HINT = 'To install py_agent, tap Share, then Add to Home Screen.';
const MENU_HINT = "You can install py_agent later from your browser's menu.";

/** iPhone, iPad (whose Safari says it is a Mac, but a Mac has no touch screen) or iPod. */
function isIOS() {
  const agent = navigator.userAgent;
  return /iPhone|iPad|iPod/.test(agent) || (/Macintosh/.test(agent) && navigator.maxTouchPoints > 1);
}

/**
 * Called before the boot starts: the browser may offer its prompt as soon as the page has
 * loaded, and an event nobody listened for is gone.
 */
export function startInstall() {
  const button = $('install', HTMLButtonElement);
  const hint = $('install-hint');
  /** @type {InstallPromptEvent | null} */
  let offered = null;
  // Opened from the home screen or as an app window: installed already. (Safari on iOS
  // says so with navigator.standalone, its own property.)
  const installed =
    matchMedia('(display-mode: standalone)').matches ||
    /** @type {{ standalone?: boolean }} */ (navigator).standalone === true;

  /** @param {string} text an empty text hides the hint */
  const showHint = (text) => {
    hint.textContent = text;
    hint.hidden = !text;
  };

  if (!installed && isIOS()) showHint(IOS_HINT);

  addEventListener('beforeinstallprompt', (event) => {
    // Kept for the button: without this Chromium may show its own install banner at once.
    event.preventDefault();
    if (installed) return;
    offered = /** @type {InstallPromptEvent} */ (event);
    button.hidden = false;
    showHint('');
  });
  button.addEventListener('click', async () => {
    const event = offered;
    if (!event) return;
    // A prompt can be shown once: whatever the user answers, this one is used up.
    offered = null;
    button.hidden = true;
    const outcome = await event.prompt().then(
      () => event.userChoice.then((choice) => choice.outcome),
      () => 'dismissed', // the browser refused to show it: the menu still works
    );
    showHint(outcome === 'accepted' ? '' : MENU_HINT);
  });
  // Installed from the button or from the browser's own menu or address bar.
  addEventListener('appinstalled', () => {
    offered = null;
    button.hidden = true;
    showHint('');
  });
}
