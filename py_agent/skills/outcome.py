from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..platform import Write


@dataclass
class Outcome:
    reply: str
    writes: list[Write] = field(default_factory=list)
    # (collection, record id, embedding) to store with the writes
    vectors: list[tuple[str, str, NDArray[np.float32]]] = field(default_factory=list)
    # what changed, so the page refreshes only those panes
    changed: list[str] = field(default_factory=list)
    # a question awaiting the user's answer: {"action": ..., "ids": [...]}
    pending: dict[str, object] | None = None
