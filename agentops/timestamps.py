"""How the diagnosis, doctor and the connectivity test write a moment: ISO 8601 in UTC
with milliseconds (``2026-01-01T10:00:00.000+00:00``), from a ``time.time()`` value."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(timestamp: float | None) -> str | None:
    """``timestamp`` (seconds since the epoch) as ISO 8601 UTC text; None stays None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def seconds_since(text: str | None, now: float) -> float | None:
    """Seconds from the moment ``text`` (as ``iso()`` writes it) to ``now``; None when
    there is no such moment or the text is not ISO 8601."""
    if not text:
        return None
    try:
        return now - datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
