"""Refusals: a short, specific reply for each ability py_agent does not have."""

from __future__ import annotations

import pytest

from py_agent.skills.conversation import GENERIC_REFUSAL, HELP, out_of_scope, refusal

REFUSED = [
    ("set a timer for 5 minutes", "I can't set timers. Want a reminder instead?"),
    ("cancel the 30 minute timer", "I can't set timers."),
    ("wake me up at 7", "I can't set alarms. Want a reminder instead?"),
    ("set an alarm for 6am", "I can't set alarms."),
    ("turn off the lights in the kitchen", "I can't control devices in your home."),
    ("set the thermostat to 21", "I can't control devices in your home."),
    ("turn on the tv", "I can't control devices in your home."),
    ("play some jazz", "I can't play music or media."),
    ("next song", "I can't play music or media."),
    ("what's the weather like tomorrow", "I can't check the weather"),
    ("will it rain today", "I can't check the weather"),
    ("call mom", "I can't make calls. Want a reminder to call?"),
    ("text Sam that I'm late", "I can't send messages or email."),
    ("send an email to my boss", "I can't send messages or email."),
    ("order a pizza", "I can't order or book things."),
    ("book me a table for two at 8", "I can't order or book things."),
]


@pytest.mark.parametrize(("text", "start"), REFUSED)
def test_each_missing_ability_gets_its_own_refusal(text: str, start: str) -> None:
    assert (refusal(text) or "").startswith(start)
    outcome = out_of_scope(text, answer="A generative answer")
    assert outcome.reply.startswith(start) and outcome.writes == []  # the server's answer loses


def test_a_timer_refusal_offers_a_reminder_the_agent_understands() -> None:
    assert refusal("set a timer for 5 minutes") == (
        "I can't set timers. Want a reminder instead? Say “remind me in 10 minutes to …”."
    )


def test_other_requests_get_the_server_s_answer_or_the_generic_refusal() -> None:
    assert refusal("what is the capital of peru") is None
    assert out_of_scope("what is the capital of peru").reply == GENERIC_REFUSAL
    answered = out_of_scope("what is the capital of peru", answer="Lima.").reply
    assert answered.startswith("Lima.\n(Answered by the server's language model")


def test_help_mentions_the_new_abilities() -> None:
    for example in ("grocery list", "every monday", "rename", "move", "undo", "last", "forget"):
        assert example in HELP
