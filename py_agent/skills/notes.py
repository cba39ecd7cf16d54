"""Notes: add, list, search by meaning, and forget (delete) by meaning.

Forgetting finds its note like a task action finds its task (`matching.resolve`, with the
note floors): a clear match is deleted, a close call or a weak match is asked about first.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from ..platform import Delete, JsonObject, Put
from ..slots import note_target, note_text
from ..state import State, creation_order, embedding_key, new_id
from .matching import NOTE_FLOORS, Embed, label, resolve
from .outcome import Outcome

# Below this cosine no note is taken to answer the question.
SEARCH_FLOOR = 0.25
# A runner-up this close to the best is quoted too.
RUNNER_UP_MARGIN = 0.05


async def add(
    state: State, text: str, now: datetime, embed: Embed, content: str | None = None
) -> Outcome:
    """``content``: the server's reading of the note's text; None reads it here."""
    content = note_text(text) if content is None else content.strip()
    if not content:
        return Outcome("What should the note say? For example: “note that the wifi password is …”.")
    note: JsonObject = {"id": new_id(), "text": content, "created_at": now.isoformat()}
    return Outcome(
        f"Noted: “{content}”",
        writes=[Put("notes", note["id"], note)],
        vectors=[("notes", note["id"], await embed(content))],
        changed=["notes"],
        did=f"noting “{label(note)}”",
    )


def list_notes(state: State) -> Outcome:
    if not state.notes:
        return Outcome("You have no notes yet. Try “note that the gate code is 4321”.")
    notes = sorted(state.notes.values(), key=creation_order, reverse=True)
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


def forget_note(note: JsonObject) -> Outcome:
    return Outcome(
        f"Forgot the note “{label(note)}”.",
        writes=[
            Delete("notes", note["id"]),
            Delete("embeddings", embedding_key("notes", note["id"])),
        ],
        changed=["notes"],
        did=f"forgetting the note “{label(note)}”",
    )


async def forget(state: State, text: str, embed: Embed, target: str | None = None) -> Outcome:
    """Delete the note ``text`` names ("forget the wifi note"); ``target``: the server's
    reading of the words naming it, None reads them here."""
    if not state.notes:
        return Outcome("You have no notes, so there is nothing to forget.")
    query = (note_target(text) if target is None else target.strip()) or text
    found = await resolve(
        state,
        "notes",
        query,
        set(state.notes),
        "note.delete",
        embed,
        floors=NOTE_FLOORS,
        not_found=f"I couldn't find a note about “{query}”. Say “show my notes” to see them.",
    )
    return found if isinstance(found, Outcome) else forget_note(found)
