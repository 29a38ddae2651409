"""A short, bounded name for why a reply failed, stored with the reply (``Message.error_kind``)
so that /metrics counts failed replies by kind in one grouped query instead of reading every
error text at each scrape (studyapp/operations/metrics.py)."""

from __future__ import annotations

# First match wins: a lost server's reply often says "timeout" too.
_KINDS = (
    ("server_lost", ("server stopped", "stopped before the reply ended", "lost", "no end after")),
    ("timeout", ("timeout", "timed out", "stall")),
    ("connect", ("connect", "refused", "unreachable")),
    ("http_4xx", ("http 4", " 40", " 41", " 42")),
    ("http_5xx", ("http 5", " 50")),
    ("blinding", ("response",)),
)
OTHER = "other"


def error_kind(error: str) -> str:
    """The kind of a stored error text; ``""`` for no error."""
    if not error:
        return ""
    text = error.lower()
    for kind, needles in _KINDS:
        if any(needle in text for needle in needles):
            return kind
    return OTHER
