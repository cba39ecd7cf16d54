"""Which content coding to send, from a request's Accept-Encoding (RFC 9110 §12.5.3)."""

from __future__ import annotations

from collections.abc import Sequence

IDENTITY = "identity"
# RFC 9110 §8.4.1.3: a recipient should treat x-gzip as gzip.
_ALIASES = {"x-gzip": "gzip"}


def accepted_codings(header: str) -> dict[str, float]:
    """Each coding the header names with its q-value; entries that do not parse are
    skipped rather than failing the request, as a client that sent them would prefer."""
    codings: dict[str, float] = {}
    for entry in header.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        if not name:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
        if 0.0 <= quality <= 1.0:
            name = name.lower()
            codings[_ALIASES.get(name, name)] = quality
    return codings


def choose_coding(header: str | None, available: Sequence[str]) -> str | None:
    """The coding of ``available`` (the server's order of preference: smallest first) the
    client prefers, or None to send the file as it is. No header means no preference
    stated, and the file as it is is what every client can read."""
    if header is None:
        return None
    codings = accepted_codings(header)

    def quality(coding: str) -> float:
        if coding in codings:
            return codings[coding]
        if "*" in codings:
            return codings["*"]
        return 1.0 if coding == IDENTITY else 0.0

    best = max(available, key=quality, default=None)  # max keeps the first of equals
    if best is None or quality(best) == 0.0 or quality(best) < quality(IDENTITY):
        return None
    return best
