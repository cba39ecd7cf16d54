"""Replies overtaken by a conflict: the chat does not go on claiming what is no longer true.

A reply whose turn changed tasks or notes names them in ``records`` (``"tasks:<id>"``,
`touched`). When such a record's delete becomes contested -- deleted on one device while it
was changed on another, before either had seen the other's change (``py_agent.sync.merge``)
-- `follow_ups` adds a message about the latest reply that named it, other than the one
that added it (``refines``: its id): what happened, and that the record waits, marked, for
the user's choice. Once the choice is made, on this device or another, the same message
says how it was settled. "Marked
“buy milk” as done" is thus never left standing under a task that is gone, nor "Deleted
“buy milk”" under one that came back.

The follow-ups still waiting for a choice are kept, on this device only, in
``meta/conflict_notes``: record key -> the follow-up's message id ("" when no reply
named the record: the marking in the list is all there is to correct).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..platform import JsonObject, Put, Write
from ..state import SYNCED, State, embedding_key
from ..sync.ops import TOMBSTONE

META_KEY = "conflict_notes"
INTENT = "sync.conflict"  # how a follow-up reads in the chat's details: not a request
SETTLED_DELETED = "\nSettled: it stays deleted."
SETTLED_RESTORED = "\nSettled: it was restored."
# Replies no delete can contradict: a device deletes only what it has seen, the adding too.
ADDING = ("task.add", "note.add")


def touched(writes: Sequence[Write]) -> list[str]:
    """The tasks and notes ``writes`` change, as ``"collection:id"``: a reply's ``records``."""
    return sorted({embedding_key(w.collection, w.key) for w in writes if w.collection in SYNCED})


def _follow_up(state: State, key: str, reply: JsonObject) -> str:
    collection, _, record_id = key.partition(":")
    record = state.records[collection].get(record_id, {})
    label = record.get(SYNCED[collection], "it")
    where = "tasks" if collection == "tasks" else "notes"
    if str(reply.get("intent", "")).endswith("delete"):
        return (
            f"“{label}” was changed on another device before your delete reached it, so it's "
            f"back in your {where}, marked as a conflict: keep it deleted, or restore it with "
            "that change."
        )
    return (
        f"“{label}” was deleted on another device before this change reached it. It stays in "
        f"your {where}, marked as a conflict, until you choose: keep it deleted, or restore it "
        "with the change."
    )


async def follow_ups(state: State, now: datetime) -> list[Write]:
    """The messages to add or settle for records whose delete became contested or was
    settled since the last call, with ``meta/conflict_notes``; none when nothing changed."""
    notes = state.meta.get(META_KEY, {})
    contested = {
        embedding_key(c.collection, c.record_id) for c in state.conflicts() if c.field == TOMBSTONE
    }
    new = sorted(contested - notes.keys())
    settled = sorted(notes.keys() - contested)
    if not new and not settled:
        return []
    kept = {key: str(notes[key]) for key in notes if key in contested}
    writes: list[Write] = []
    if new:
        # Newest first: the latest reply about a record is the one the user last read.
        messages = sorted(await state.store.get_all("messages"), key=lambda m: str(m["id"]))
        replies = [
            m
            for m in reversed(messages)
            if m.get("role") == "agent" and m.get("intent") not in ADDING
        ]
        for key in new:
            reply = next((m for m in replies if key in m.get("records", ())), None)
            if reply is None:
                kept[key] = ""
                continue
            details = {"intent": INTENT, "confidence": 1.0, "source": "local"}
            message = state.message(
                "agent", _follow_up(state, key, reply), now, refines=reply["id"], **details
            )
            writes.append(message)
            kept[key] = message.key
    for key in settled:
        message_id = str(notes[key])
        stored = await state.store.get("messages", message_id) if message_id else None
        if stored is None:
            continue
        collection, _, record_id = key.partition(":")
        outcome = SETTLED_RESTORED if record_id in state.records[collection] else SETTLED_DELETED
        writes.append(Put("messages", message_id, {**stored, "text": stored["text"] + outcome}))
    writes.append(Put("meta", META_KEY, kept))
    return writes


def changed_chat(writes: Sequence[Write]) -> int:
    """How many chat messages ``writes`` add or change: the page re-reads the chat if any."""
    return sum(1 for write in writes if write.collection == "messages")
