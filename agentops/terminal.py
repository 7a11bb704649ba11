"""What a text stream can show: colour only on a TTY and never with NO_COLOR set; symbols
only where the stream's encoding can carry them (a cp1252 console gets ASCII)."""

from __future__ import annotations

import codecs
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

GREEN, YELLOW, RED = "32", "33", "31"


@dataclass(frozen=True)
class Mark:
    """A status mark: its symbol, the ASCII that a stream which cannot encode the symbol
    gets instead, and the colour it is painted in where colour is wanted (None: never)."""

    symbol: str
    ascii: str
    colour: str | None = None

    def shown(self, unicode: bool, colour: bool = False) -> str:
        """The symbol, or its ASCII where ``unicode`` is false; painted where ``colour``."""
        return self.paint(self.symbol if unicode else self.ascii, colour)

    def paint(self, text: str, enabled: bool) -> str:
        """``text`` in the mark's colour (the URL next to a marker, say)."""
        return paint(text, self.colour, enabled) if self.colour else text


# The marks of the session report and the connectivity test's steps: the same everywhere.
PASS = Mark("\u2713", "[OK]", GREEN)
FAIL = Mark("\u2717", "[NO]", RED)
SKIP = Mark("\u2013", "[--]", YELLOW)
BULLET = Mark("\u2022", "*")


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
    encoding = getattr(stream, "encoding", None)
    if encoding is None and isinstance(stream, io.StringIO):  # keeps str as it is
        return True
    encoding = encoding or "ascii"
    try:
        codecs.lookup(encoding)
        text.encode(encoding)
    except (LookupError, UnicodeError):
        return False
    return True


def paint(text: str, colour: str, enabled: bool) -> str:
    return f"\x1b[{colour}m{text}\x1b[0m" if enabled else text


def write_text(stream: TextIO, text: str) -> bool:
    """Write ``text``, replacing what the stream's encoding cannot carry (details quoted
    from servers may hold such characters). Never raises: a closed stream or a failing
    write costs the output, not the program. False when nothing could be written."""
    try:
        if not can_encode(stream, text):
            encoding = getattr(stream, "encoding", None) or "ascii"
            try:
                text = text.encode(encoding, "replace").decode(encoding)
            except LookupError:
                text = text.encode("ascii", "replace").decode("ascii")
        stream.write(text)
        stream.flush()
        return True
    except Exception:
        return False


def quiet_on_broken_pipe(run: Callable[[], int]) -> int:
    """``run()``'s exit status, or 1 without a traceback when whoever read stdout has gone
    (``... | head``). As Python's documentation advises, stdout then points at devnull, so
    the flush at interpreter exit cannot fail again; SIGPIPE keeps Python's handling, which
    the program's own sockets rely on."""
    try:
        status = run()
        if sys.stdout is not None:
            sys.stdout.flush()
        return status
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):
            pass
        return 1
