"""The 'agentops' logger: where the SDK's warnings and the session URL line go."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

logger = logging.getLogger("agentops")

_handler: logging.Handler | None = None


def configure_logging(level: int) -> None:
    """Set the 'agentops' logger's level; give it a stderr handler when the program has
    not configured logging, so warnings are seen at the default setup."""
    global _handler
    logger.setLevel(level)
    if _handler is None and not logger.handlers and not logging.getLogger().handlers:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("AgentOps: %(message)s"))
        logger.addHandler(_handler)


def log_stream() -> TextIO:
    stream = getattr(_handler, "stream", None)
    return stream if stream is not None else sys.stderr
