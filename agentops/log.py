"""The 'agentops' logger: where the SDK's warnings and the session URL line go.

When the program has not configured logging, the SDK gives the logger a stderr handler so
its warnings are seen. That handler steps aside as soon as another handler would print the
same record (``logging.basicConfig()`` called after ``init``, a handler added to the
'agentops' logger): every line is printed once.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from agentops import terminal

logger = logging.getLogger("agentops")

_handler: logging.Handler | None = None


def _emitting_handlers(level: int) -> list[logging.Handler]:
    """The handlers a record of ``level`` from the 'agentops' logger reaches, as
    ``Logger.callHandlers`` walks them."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found += [h for h in current.handlers if level >= h.level]
        if not current.propagate:
            break
        current = current.parent  # type: ignore[assignment]
    return found


class _UnlessHandledElsewhere(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(h is not _handler for h in _emitting_handlers(record.levelno))


def configure_logging(level: int) -> None:
    """Set the 'agentops' logger's level; give it a stderr handler when the program has
    not configured logging, so warnings are seen at the default setup."""
    global _handler
    logger.setLevel(level)
    if _handler is None and not logger.handlers and not logging.getLogger().handlers:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("AgentOps: %(message)s"))
        _handler.addFilter(_UnlessHandledElsewhere())
        logger.addHandler(_handler)


def _streams(level: int) -> list[TextIO]:
    streams: list[TextIO] = []
    for handler in _emitting_handlers(level):
        if handler is _handler and not _handler.filter(
                logging.LogRecord("agentops", level, "", 0, "", None, None)):
            continue
        stream = getattr(handler, "stream", None)
        if stream is None and isinstance(handler, logging.FileHandler):
            # Opened lazily (delay=True): judge by the encoding it will open with.
            stream = _EncodingOnly(handler.encoding or _default_file_encoding())
        if stream is not None:
            streams.append(stream)
    return streams


class _EncodingOnly:
    def __init__(self, encoding: str) -> None:
        self.encoding = encoding

    def isatty(self) -> bool:
        return False


def _default_file_encoding() -> str:
    import locale

    return locale.getpreferredencoding(False)


def can_show(text: str, level: int = logging.INFO) -> bool:
    """True when every stream a record of ``level`` reaches can encode ``text`` (a cp1252
    console or file cannot encode emoji)."""
    return all(terminal.can_encode(stream, text) for stream in _streams(level))


def wants_colour(level: int = logging.INFO) -> bool:
    """Colour only when every destination is a terminal that wants it: never escape codes
    in a file."""
    streams = _streams(level)
    return bool(streams) and all(terminal.wants_colour(stream) for stream in streams)


def log_stream() -> TextIO:
    stream = getattr(_handler, "stream", None)
    return stream if stream is not None else sys.stderr
