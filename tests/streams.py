"""Text streams that behave as the places reports are printed to: a terminal of a given
encoding (a TTY or not), and a stream whose every write fails."""

from __future__ import annotations

import io


class Terminal(io.StringIO):
    """Keeps what is written; says it is a TTY (colour wanted) unless ``tty`` is false and
    declares ``encoding`` (the marks fall back to ASCII where it cannot encode them)."""

    def __init__(self, encoding: str = "utf-8", tty: bool = True) -> None:
        super().__init__()
        self._encoding, self._tty = encoding, tty

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def isatty(self) -> bool:
        return self._tty


class FailingStream(io.StringIO):
    """Every write raises OSError (a closed pipe, a full disk); ``attempts`` keeps what
    was offered."""

    encoding = "utf-8"

    def __init__(self) -> None:
        super().__init__()
        self.attempts: list[str] = []

    def write(self, text: str) -> int:
        self.attempts.append(text)
        raise OSError("write failed")
