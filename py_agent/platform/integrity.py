"""sha256 checks shared by both adapters, so both refuse a tampered file the same way."""

from __future__ import annotations

import hashlib

from .interfaces import IntegrityError


def check_sha256(location: str, data: bytes, expected: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise IntegrityError(
            f"{location}: sha256 is {actual}, but its manifest expects {expected}; "
            "refusing it (rebuild the models, or the download was corrupted)"
        )
