"""Server help by consent, in Chromium against the real server: until the user agrees,
an unsure request is answered with a question and nothing reaches POST /api/v1/infer
(counted twice: the requests the page and its worker make, and the server's log);
"Always" sends that very request and the later ones, "Not now" asks again next time,
"Never" never sends, and the Server help panel shows and changes the choice."""

from __future__ import annotations

import json

from playwright.sync_api import Locator, Page, Request, expect

from .harness import ServerProcess, say, wait_for_boot
from .test_cloud import LAST, boot_unsure, infer_calls

QUESTION = "I'm not sure what you mean. Ask the server? Only these words are sent."
ASKED = "Ask the server about this request?"


def infer_requests(page: Page) -> list[Request]:
    """Every /api/v1/infer request of the page's worker from now on, as it is sent."""
    sent: list[Request] = []

    def seen(request: Request) -> None:
        if "/api/v1/infer" in request.url:
            sent.append(request)

    page.on("request", seen)
    return sent


def answer(page: Page, question: Locator, label: str) -> str:
    """Press one of the question's buttons; the reply it brings, once shown."""
    turn = int(page.evaluate("document.body.dataset.turns")) + 1
    question.get_by_role("group", name=ASKED).get_by_role("button", name=label).click()
    page.wait_for_function(f"document.body.dataset.turns === '{turn}'")
    return page.inner_text(LAST)


def asked(page: Page, text: str) -> Locator:
    """Send ``text``; the reply must be the consent question, with its three buttons."""
    reply = say(page, text)
    assert reply.startswith(QUESTION), reply
    question = page.locator(f"#{page.get_attribute(LAST, 'id')}")
    buttons = question.get_by_role("group", name=ASKED).get_by_role("button")
    expect(buttons).to_have_text(["Always", "Not now", "Never"])
    for index in range(3):
        expect(buttons.nth(index)).to_be_enabled()
    return question


def test_nothing_is_sent_before_consent_not_now_asks_again_and_never_is_kept(
    page: Page, server: ServerProcess
) -> None:
    sent = infer_requests(page)
    before = infer_calls(server)
    boot_unsure(page, server.url, consent="unasked")
    expect(page.locator("#consent")).to_have_value("unasked")

    question = asked(page, "remind me to water the plants")
    expect(page.locator('[data-role="task"]')).to_have_count(0)  # not carried out yet
    reply = answer(page, question, "Not now")
    assert "Added “water the plants”" in reply and "A guess" in reply
    assert page.get_attribute(LAST, "data-source") == "tentative"
    not_now = question.get_by_role("button", name="Not now")
    expect(not_now).to_have_attribute("aria-pressed", "true")
    for index in range(3):
        expect(question.get_by_role("button").nth(index)).to_be_disabled()
    expect(page.locator("#consent")).to_have_value("unasked")

    question = asked(page, "remind me to buy stamps")  # "not now" was for one request
    reply = answer(page, question, "Never")
    assert "Added “buy stamps”" in reply and "A guess" in reply
    expect(page.locator("#consent")).to_have_value("never")
    reply = say(page, "remind me to call the plumber")  # no question: never
    assert "Added “call the plumber”" in reply
    assert page.locator(LAST).get_by_role("group", name=ASKED).count() == 0

    page.select_option("#consent", "unasked")  # changed back in the panel: asked again
    page.wait_for_function("document.body.dataset.consent === 'unasked'")
    asked(page, "remind me to book the flights")
    assert [request.url for request in sent] == []
    assert infer_calls(server) == before


def test_always_sends_that_very_request_then_and_later_ones_by_themselves(
    page: Page, server: ServerProcess
) -> None:
    sent = infer_requests(page)
    before = infer_calls(server)
    boot_unsure(page, server.url, consent="unasked")
    question = asked(page, "remind me to call the bank tomorrow")
    assert sent == []

    reply = answer(page, question, "Always")
    assert "Added “call the bank”" in reply  # the server's reading, carried out here
    assert page.get_attribute(LAST, "data-source") == "cloud"
    assert page.inner_text(f"{LAST} .badge") == "server"
    (request,) = sent
    body = json.loads(request.post_data or "{}")
    assert set(body) == {"text", "now", "tz", "locale"}  # only these words, and when
    assert body["text"] == "remind me to call the bank tomorrow"
    expect(page.locator("#consent")).to_have_value("always")

    reply = say(page, "remind me to book the car service")
    assert "Added “book the car service”" in reply
    assert page.get_attribute(LAST, "data-source") == "cloud"
    assert page.locator(LAST).get_by_role("group", name=ASKED).count() == 0
    assert len(sent) == 2
    assert infer_calls(server) == before + 2

    page.reload()
    assert wait_for_boot(page) == "ready"
    expect(page.locator("#consent")).to_have_value("always")  # kept
    answered = page.locator(f"#{question.get_attribute('id')}")
    expect(answered.get_by_role("button", name="Always")).to_have_attribute("aria-pressed", "true")
