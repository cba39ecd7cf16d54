"""What a skill hands back to the agent: the reply, the writes to commit, and what follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ..platform import Write
from ..slots import EditSlots

# What a question about a target is for: the agent carries it out on the record picked.
TargetAction = Literal["complete", "delete", "edit", "note.delete"]


@dataclass(frozen=True)
class Pending:
    """A question awaiting the user's answer about records of one collection.

    ``confirm`` is a yes/no question about ``ids[0]`` ("Did you mean “grab some eggs”?");
    otherwise the answer picks one of ``ids`` ("Which one do you mean: 1. … or 2. …?").
    ``edit`` is the change an edit asked for (set exactly when ``action`` is "edit").
    """

    action: TargetAction
    ids: tuple[str, ...]
    confirm: bool = False
    edit: EditSlots | None = None

    @property
    def collection(self) -> str:
        return "notes" if self.action == "note.delete" else "tasks"


@dataclass
class Outcome:
    reply: str
    writes: list[Write] = field(default_factory=list)
    # (collection, record id, embedding) to store with the writes
    vectors: list[tuple[str, str, NDArray[np.float32]]] = field(default_factory=list)
    # what changed, so the page refreshes only those panes
    changed: list[str] = field(default_factory=list)
    pending: Pending | None = None
    # The task this turn added, edited, completed or listed alone: what "it" means next.
    touched: str | None = None
    # What the change did, as undo names it: "adding “buy milk”".
    did: str | None = None
    # False for undo's own writes: they pop the undo stack instead of pushing on it.
    undoable: bool = True
