"""More training utterances for the server's intent head, made from the training split alone.

Each training utterance gives up to ``copies`` variants, each the result of a few of these
steps, chosen by a random generator seeded with the utterance itself (so a variant does not
depend on what else is in the file, and a rebuild makes the same ones):

- **template paraphrase**, for the intents whose slots py_agent can read: the task title
  (and due phrase), the note text or the completion target is put into another phrasing of
  the same request ("remind me to {title}", "note that {text}", "mark {target} as done");
- **wrapper**: a neutral opening or closing word ("hey,", "ok so", "please");
- **typo**: one adjacent-letter swap or one dropped letter inside a word;
- **casing / punctuation**: lower case, capitalised, upper case, end punctuation added or
  taken away, apostrophes dropped.

A variant that equals (ignoring case and spacing) its source, another variant, or any
utterance of the ``exclude`` set (the valid and test splits) is not kept.

`with_typo` makes the noisy copy of the test split that the build measures both heads on.
Its typos are of the kinds the variants have, so that measure favours the server's head by
design: it says how much robustness the variants bought, not how either head does on
people's own typos.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# Bump when a change here changes the variants made: it is part of the server head's version.
AUGMENT_REVISION = 1
# task_slots resolves dates against a time; only the phrase's position matters here.
_SLOT_TIME = dt.datetime(2026, 1, 7, 10, 0, tzinfo=dt.UTC)

_TASK_ADD = (
    "remind me to {title}{due}",
    "add {title} to my list{due}",
    "todo: {title}{due}",
    "i need to {title}{due}",
    "don't let me forget to {title}{due}",
    "new task: {title}{due}",
    "put {title} on my to-do list{due}",
    "can you remind me to {title}{due}",
)
_NOTE_ADD = (
    "note that {text}",
    "take a note: {text}",
    "jot down: {text}",
    "make a note that {text}",
    "remember that {text}",
    "save a note: {text}",
    "write down {text}",
)
_TASK_COMPLETE = (
    "mark {target} as done",
    "{target} is done",
    "check off {target}",
    "done with {target}",
    "cross {target} off my list",
    "finished {target}",
)
_TASK_DELETE = (
    "delete {target}",
    "remove {target} from my tasks",
    "cancel {target}",
    "get rid of {target}",
    "drop {target} from the list",
    "delete the task {target}",
)
_PREFIXES = ("hey, ", "ok, ", "ok so ", "um ", "so ", "hey ")
_SUFFIXES = (" please", " pls", ", please", " thx")
# Greetings are their wording: an added "please" or "hey" could make one another intent.
_NO_WRAPPER = frozenset({"greeting"})
_WORD = re.compile(r"[A-Za-z]{4,}")


@dataclass(frozen=True)
class Augmentation:
    copies: int = 4
    """Variants made per training utterance, at most."""
    seed: int = 0
    revision: int = AUGMENT_REVISION

    def manifest(self) -> dict[str, Any]:
        return {
            "copies": self.copies,
            "seed": self.seed,
            "steps": ["template paraphrase", "wrapper", "typo", "casing/punctuation"],
            "excluded": "variants equal to a valid or test utterance",
            "revision": self.revision,
        }


def normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def augment(
    examples: Sequence[tuple[str, str]],
    settings: Augmentation,
    exclude: Collection[str] = (),
) -> list[tuple[str, str]]:
    """The new (text, intent) pairs for ``examples`` (which are not repeated), in order."""
    seen = {normalized(text) for text, _ in examples} | {normalized(t) for t in exclude}
    made: list[tuple[str, str]] = []
    for text, intent in examples:
        for variant in _variants(text, intent, settings):
            key = normalized(variant)
            if key and key not in seen:
                seen.add(key)
                made.append((variant, intent))
    return made


def with_typo(text: str) -> str:
    """``text`` with one typo and maybe a change of case or end punctuation, the same every
    time: the noisy copy of an utterance the build measures robustness on."""
    rng = random.Random(f"typo\0{text}")
    return _recase(_typo(text, rng), rng) if rng.random() < 0.5 else _typo(text, rng)


def _variants(text: str, intent: str, settings: Augmentation) -> Iterator[str]:
    rng = random.Random(f"{settings.seed}\0{intent}\0{text}")
    paraphrases = _paraphrases(text, intent)
    for _ in range(settings.copies):
        variant = text
        if paraphrases and rng.random() < 0.6:
            variant = rng.choice(paraphrases)
        if intent not in _NO_WRAPPER and rng.random() < 0.3:
            variant = _wrap(variant, rng)
        if rng.random() < 0.5:
            variant = _typo(variant, rng)
        if rng.random() < 0.5:
            variant = _recase(variant, rng)
        yield variant


def _paraphrases(text: str, intent: str) -> list[str]:
    """``text`` in every other phrasing of its intent's templates; [] when the slots cannot
    be read out of it (nothing left, or nothing stripped that would make it a request)."""
    # py_agent's own slot readers: the same rules the device applies to a request.
    from py_agent.slots import completion_target, note_text, task_slots

    fill: Callable[[str], str]
    templates: tuple[str, ...]
    if intent == "task.add":
        slots = task_slots(text, _SLOT_TIME)
        if not slots.title:
            return []
        due = f" {slots.due.phrase}" if slots.due else ""
        title = slots.title

        def fill(template: str) -> str:
            return template.format(title=title, due=due)

        templates = _TASK_ADD
    elif intent == "note.add":
        content = note_text(text)
        if not content or content == text.strip():
            return []

        def fill(template: str) -> str:
            return template.format(text=content)

        templates = _NOTE_ADD
    elif intent in ("task.complete", "task.delete"):
        target = completion_target(text)
        if not target or normalized(target) == normalized(text):
            return []

        def fill(template: str) -> str:
            return template.format(target=target)

        templates = _TASK_COMPLETE if intent == "task.complete" else _TASK_DELETE
    else:
        return []
    return [fill(template) for template in templates]


def _wrap(text: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_PREFIXES) + text
    return text.rstrip(" .!?") + rng.choice(_SUFFIXES)


def _typo(text: str, rng: random.Random) -> str:
    words = list(_WORD.finditer(text))
    if not words:
        return text
    word = rng.choice(words)
    # Never the first letter: people rarely get that wrong.
    at = rng.randrange(word.start() + 1, word.end() - 1)
    if rng.random() < 0.5:
        return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    return text[:at] + text[at + 1 :]


def _recase(text: str, rng: random.Random) -> str:
    choice = rng.randrange(6)
    if choice == 0:
        return text.lower()
    if choice == 1:
        return text[:1].upper() + text[1:]
    if choice == 2 and len(text) <= 40:  # shouting is for short requests
        return text.upper()
    if choice == 3:
        return text.rstrip(" .!?")
    if choice == 4:
        return text.rstrip(" .!?") + rng.choice(("?", ".", "!", "!!"))
    return text.replace("'", "").replace("\u2019", "")
