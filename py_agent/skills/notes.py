"""Notes: add, list, and search by meaning."""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from ..platform import JsonObject, Put
from ..state import State, new_id
from .outcome import Outcome
from .tasks import Embed

# Leading phrasing that is about noting, not part of the note.
NOTE_PREFIX = re.compile(
    r"^\s*(?:please\s+)?(?:(?:make|take|save|add|create|write)\s+(?:a\s+)?note(?:\s+that)?|"
    r"note\s+(?:that|down|to\s+self)?|jot\s+(?:this\s+)?down|write\s+(?:this\s+)?down|"
    r"remember\s+that|keep\s+in\s+mind\s+that|for\s+the\s+record)\s*[:,\-\u2013]?\s*",
    re.IGNORECASE,
)
# Below this cosine no note is taken to answer the question.
SEARCH_FLOOR = 0.25
# A runner-up this close to the best is quoted too.
RUNNER_UP_MARGIN = 0.05


def note_text(text: str) -> str:
    return NOTE_PREFIX.sub("", text, count=1).strip()


async def add(state: State, text: str, now: datetime, embed: Embed) -> Outcome:
    content = note_text(text)
    if not content:
        return Outcome("What should the note say? For example: “note that the wifi password is …”.")
    note: JsonObject = {"id": new_id(), "text": content, "created_at": now.isoformat()}
    return Outcome(
        f"Noted: “{content}”",
        writes=[Put("notes", note["id"], note)],
        vectors=[("notes", note["id"], await embed(content))],
        changed=["notes"],
    )


def list_notes(state: State) -> Outcome:
    if not state.notes:
        return Outcome("You have no notes yet. Try “note that the gate code is 4321”.")
    notes = sorted(state.notes.values(), key=lambda n: str(n["created_at"]), reverse=True)
    shown = "\n".join(f"• {note['text']}" for note in notes[:20])
    more = f"\n…and {len(notes) - 20} more." if len(notes) > 20 else ""
    return Outcome(f"Your notes ({len(notes)}):\n{shown}{more}")


def search(state: State, query: NDArray[np.float32]) -> Outcome:
    if not state.notes:
        return Outcome("You have no notes yet, so there is nothing to search.")
    ranked = state.vectors["notes"].nearest(query, 2)
    if not ranked or ranked[0][1] < SEARCH_FLOOR:
        return Outcome("I couldn't find a note about that.")
    best = state.notes[ranked[0][0]]["text"]
    reply = f"From your notes: “{best}”"
    if len(ranked) == 2 and ranked[0][1] - ranked[1][1] < RUNNER_UP_MARGIN:
        reply += f"\nAlso close: “{state.notes[ranked[1][0]]['text']}”"
    return Outcome(reply)
