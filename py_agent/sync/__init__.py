"""Delta sync between a user's devices, sans-IO.

Every local change is an ``Op`` (``ops``) stamped by a hybrid logical clock (``hlc``);
``merge.Replica`` merges any set of ops -- in any order, with duplicates -- into the same
state on every device and on the server, keeping concurrent different values of a field
as a ``Conflict`` until a later write resolves it. Nothing here does I/O: the sync client
feeds ops in and out through a transport, the server through its routes.
"""

from .hlc import HLCError, HybridClock, Timestamp, system_wall_ms
from .merge import Conflict, Replica, Version
from .ops import TOMBSTONE, JsonValue, Op, OpError, canonical_json, new_op

__all__ = [
    "TOMBSTONE",
    "Conflict",
    "HLCError",
    "HybridClock",
    "JsonValue",
    "Op",
    "OpError",
    "Replica",
    "Timestamp",
    "Version",
    "canonical_json",
    "new_op",
    "system_wall_ms",
]
