"""Native resources: files on disk, checked against their sha256."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .integrity import check_sha256
from .interfaces import ResourceError


async def load_resource(location: str, sha256: str | None = None) -> bytes:
    """The bytes of the file at ``location``; checked against ``sha256`` when given."""
    try:
        data = await asyncio.to_thread(Path(location).read_bytes)
    except OSError as exc:
        raise ResourceError(f"cannot read {location}: {exc.strerror}") from exc
    if sha256 is not None:
        check_sha256(location, data, sha256)
    return data
