"""What a text stream can show: colour only on a TTY and never with NO_COLOR set; symbols
only where the stream's encoding can carry them (a cp1252 console gets ASCII)."""

from __future__ import annotations

import codecs
import os
from typing import TextIO

GREEN, YELLOW, RED, BLUE = "32", "33", "31", "34"


def wants_colour(stream: TextIO, force: bool | None = None) -> bool:
    if force is not None:
        return force
    if "NO_COLOR" in os.environ:
        return False
    try:
        return bool(stream.isatty())
    except Exception:  # closed or exotic streams
        return False


def can_encode(stream: TextIO, text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        codecs.lookup(encoding)
        text.encode(encoding)
    except (LookupError, UnicodeError):
        return False
    return True


def paint(text: str, colour: str, enabled: bool) -> str:
    return f"\x1b[{colour}m{text}\x1b[0m" if enabled else text
