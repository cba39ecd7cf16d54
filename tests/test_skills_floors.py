"""The matching floors (py_agent/skills/matching.py) against the real int8 encoder: the
pairs the floors were chosen on, so a new encoder (fine-tuned, say) that moves the cosines
shows here. The numbers are in matching.py's docstring."""

from __future__ import annotations

import numpy as np
import pytest
from support import ROOT

from py_agent.encoder import Encoder, load_encoder
from py_agent.platform import inference_runtime
from py_agent.skills.matching import NOTE_FLOORS, TASK_FLOORS
from py_agent.slots import note_target, target_slots

# (request, the task title it means)
TRUE_TASKS = [
    ("mark buy milk as done", "buy milk"),
    ("I paid the rent", "pay the rent"),
    ("delete the call mom task", "call Mom"),
    ("delete the oat milk task", "buy oat milk"),
    ("took out the trash", "take out the trash"),
    ("never mind the bike thing", "fix the bike"),
    ("I called mom", "call mom"),
    ("check off eggs", "grab some eggs"),
    ("remove milk", "buy milk"),
    ("renewed my passport", "renew passport"),
    ("done with taxes", "file taxes"),
    ("watered the plants", "water plants"),
    ("sent the invoice", "send invoice to Acme"),
    ("emailed the boss", "email boss about the report"),
    ("booked the flights", "book flights to Lisbon"),
    ("picked up the dry cleaning", "pick up dry cleaning"),
    ("finished the gym", "go to the gym"),
    ("did the laundry", "do the laundry"),
    ("got the dog food", "buy dog food"),
    ("delete the haircut", "book a haircut"),
    ("finished the report", "finish the quarterly report"),
    ("bought mom's present", "buy a present for mom's birthday"),
    ("renewed the car insurance", "renew car insurance"),
    ("washed the dishes", "wash the dishes"),
    ("mark dentist as done", "book dentist appointment"),
    ("remove the avocados", "avocados"),
    ("cancel the plumber", "call the plumber"),
    ("I bought the milk", "buy milk"),
]
# (request, a task title it does not mean)
FALSE_TASKS = [
    ("pick up the kids", "grab some eggs"),
    ("cancel the 30 minute timer", "call mom"),
    ("cancel the 30 minute timer", "check the oven"),
    ("I finished the tax return", "buy milk"),
    ("walked the dog", "buy dog food"),
    ("called dad", "call mom"),
    ("turn off the lights", "buy light bulbs"),
    ("the meeting is done", "pay the rent"),
    ("stop the music", "call mom"),
    ("delete the alarm", "wake up early"),
    ("finished the gym", "do the laundry"),
    ("mark dentist as done", "buy milk"),
    ("paid the rent", "pay the phone bill"),
    ("check off eggs", "buy milk"),
    ("emailed the boss", "call mom"),
    ("pick up the kids", "pick up dry cleaning"),
    ("delete the meeting", "fix the bike"),
    ("mark the essay as done", "water plants"),
    ("remove bananas", "buy oat milk"),
    ("cancel my netflix", "renew passport"),
    ("I fed the cat", "walk the dog"),
    ("done with the presentation", "book flights to Lisbon"),
    ("delete the gym", "go to the dentist"),
    ("cancel the order", "send invoice to Acme"),
    ("mark vacuuming as done", "wash the dishes"),
    ("turn on the heating", "renew car insurance"),
    ("delete the party", "buy a present for mom's birthday"),
    ("i paid the electricity bill", "pay the rent"),
]
NOTES = [
    "the wifi password is hunter2",
    "the gate code is 4321",
    "Sam's birthday is March 3",
    "parking spot is level 3 row F",
    "the plumber's number is 555-0134",
    "passport expires in 2029",
    "mom likes lilies",
    "the bike lock combination is 0912",
]
# (request, the note it means, or None)
NOTE_REQUESTS = [
    ("forget the wifi note", 0),
    ("delete the note about the wifi password", 0),
    ("forget the gate code", 1),
    ("delete the note about Sam's birthday", 2),
    ("forget the parking note", 3),
    ("forget where I parked", 3),
    ("forget the plumber note", 4),
    ("delete the plumber's number", 4),
    ("forget the passport note", 5),
    ("forget the note about flowers for mom", 6),
    ("forget the bike lock note", 7),
    ("delete the lock code note", 7),
    ("forget the dentist note", None),
    ("delete the recipe for pancakes", None),
    ("forget the car insurance note", None),
    ("forget the netflix login", None),
    ("delete the note about the meeting", None),
    ("forget the shopping list note", None),
    ("delete the kids school note", None),
]


@pytest.fixture
async def encoder() -> Encoder:
    return await load_encoder(str(ROOT / "models"), inference_runtime())


async def cosine(encoder: Encoder, a: str, b: str) -> float:
    return float(np.dot(await encoder.embed(a), await encoder.embed(b)))


async def task_scores(encoder: Encoder, pairs: list[tuple[str, str]]) -> list[float]:
    return [
        await cosine(encoder, target_slots(text).target or text, title) for text, title in pairs
    ]


async def test_true_task_matches_are_found_and_most_are_clear(encoder: Encoder) -> None:
    scores = await task_scores(encoder, TRUE_TASKS)
    assert min(scores) >= TASK_FLOORS.match
    assert sum(s >= TASK_FLOORS.clear for s in scores) >= 0.85 * len(scores)


async def test_false_task_matches_are_rarely_acted_on(encoder: Encoder) -> None:
    scores = await task_scores(encoder, FALSE_TASKS)
    assert sum(s >= TASK_FLOORS.clear for s in scores) <= 2
    assert sum(s < TASK_FLOORS.match for s in scores) >= 0.55 * len(scores)


async def test_note_floors(encoder: Encoder) -> None:
    notes = np.stack([await encoder.embed(note) for note in NOTES])
    for text, meant in NOTE_REQUESTS:
        scores = notes @ await encoder.embed(note_target(text) or text)
        best = int(np.argmax(scores))
        if meant is None:
            assert scores[best] < NOTE_FLOORS.clear, text
        else:
            assert (best, scores[best] >= NOTE_FLOORS.match) == (meant, True), text
