"""Installing from the page (web/src/install.js), in Chromium with a profile on disk (where
installing is possible): the Install button follows the browser's `beforeinstallprompt`
from before the boot ends, shows the browser's prompt from a click or the keyboard, and
goes once the app is installed; an installed app shows neither button nor hint, and iOS,
which has no prompt, gets a hint instead.

The prompts are the test's own: a `beforeinstallprompt` Event with a stubbed prompt() and
userChoice, as Chromium's BeforeInstallPromptEvent has."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright

from .harness import (
    BOOT_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    READY,
    HeldRequests,
    ServerProcess,
    wait_for_boot,
)

# Chromium may offer its own prompt once the app is installable; that one is kept from the
# page, so what the page shows follows the test's prompts alone. offerInstall(outcome)
# offers one whose user answers `outcome`, and says whether the page kept it
# (preventDefault); window.promptCalls counts its prompt() calls.
PROMPTS = """
addEventListener('beforeinstallprompt', (event) => {
    if (event.isTrusted) event.stopImmediatePropagation();
});
window.promptCalls = 0;
window.offerInstall = (outcome) => {
    const event = new Event('beforeinstallprompt', { cancelable: true });
    let choose;
    event.userChoice = new Promise((resolve) => { choose = resolve; });
    event.prompt = async () => {
        window.promptCalls += 1;
        choose({ outcome, platform: 'web' });
    };
    dispatchEvent(event);
    return event.defaultPrevented;
};
"""
# Playwright cannot emulate the display-mode media feature: the page asks matchMedia.
STANDALONE = """
const matchMedia = window.matchMedia.bind(window);
window.matchMedia = (query) =>
    matchMedia(query === '(display-mode: standalone)' ? 'all' : query);
"""
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
INSTALL = "#install"
HINT = "#install-hint"

Profile = Callable[..., tuple[Page, HeldRequests]]


@pytest.fixture
def profile(playwright: Playwright, tmp_path: Path) -> Iterator[Profile]:
    """Opens a browser with a new profile on disk, the test's prompts and the ``scripts``
    given; its page, and its boot held at Python's runtime (the page is up, the agent
    does not get ready until the boot is released)."""
    contexts: list[BrowserContext] = []

    def open_profile(*scripts: str, **options: Any) -> tuple[Page, HeldRequests]:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / f"profile-{len(contexts)}",
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            **options,
            bypass_csp=True,
        )
        contexts.append(context)
        context.set_default_timeout(BOOT_TIMEOUT_MS)
        for script in (PROMPTS, *scripts):
            context.add_init_script(script)
        return context.pages[0], HeldRequests(context, "**/pyodide.asm.wasm")

    yield open_profile
    for context in contexts:
        context.close()


def test_the_button_shows_the_browsers_prompt_from_before_the_boot_ends(
    profile: Profile, server: ServerProcess
) -> None:
    page, held = profile()
    page.goto(server.url + "/")
    button = page.get_by_role("button", name="Install app")
    assert not button.is_visible()

    assert page.evaluate("offerInstall('accepted')") is True
    assert button.is_visible()
    assert page.evaluate(READY) is False  # the boot is held: the page listened before it ended
    held.release()
    assert wait_for_boot(page) == "ready", page.inner_text("body")
    assert button.is_visible()

    button.press("Enter")  # a real button: the keyboard uses it as a click does
    page.wait_for_function("window.promptCalls === 1")
    assert not page.is_visible(INSTALL)
    assert not page.is_visible(HINT)


def test_a_dismissed_prompt_leaves_a_hint_for_the_browsers_menu(
    profile: Profile, server: ServerProcess
) -> None:
    page, _ = profile()
    page.goto(server.url + "/")
    page.evaluate("offerInstall('dismissed')")
    page.click(INSTALL)
    page.wait_for_selector(HINT, state="visible")
    assert page.inner_text(HINT) == "You can install py_agent later from your browser's menu."
    assert page.evaluate("window.promptCalls") == 1
    assert not page.is_visible(INSTALL)


def test_installing_from_the_browsers_own_menu_hides_the_button(
    profile: Profile, server: ServerProcess
) -> None:
    page, _ = profile()
    page.goto(server.url + "/")
    page.evaluate("offerInstall('accepted')")
    assert page.is_visible(INSTALL)
    page.evaluate("dispatchEvent(new Event('appinstalled'))")
    assert not page.is_visible(INSTALL)
    assert page.evaluate("window.promptCalls") == 0


def test_ios_has_no_prompt_and_gets_a_hint(profile: Profile, server: ServerProcess) -> None:
    page, _ = profile(user_agent=IPHONE)
    page.goto(server.url + "/")
    assert page.is_visible(HINT)
    assert page.inner_text(HINT) == "To install py_agent, tap Share, then Add to Home Screen."
    assert not page.is_visible(INSTALL)


def test_the_installed_app_offers_no_install(profile: Profile, server: ServerProcess) -> None:
    page, _ = profile(STANDALONE, user_agent=IPHONE)
    page.goto(server.url + "/")
    assert page.evaluate("matchMedia('(display-mode: standalone)').matches") is True
    # Kept from the browser's own banner, but not offered: the app is installed.
    assert page.evaluate("offerInstall('accepted')") is True
    assert not page.is_visible(INSTALL)
    assert not page.is_visible(HINT)
