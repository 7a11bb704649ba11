"""LossLog: tells the user, at WARNING, that spans did not reach the backend: once per
cause, then at most one summary per interval, never one line per batch."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

logger = logging.getLogger("agentops")

SUMMARY_INTERVAL = 60.0
DETAILS_HINT = "run agentops.print_session_status() for details"


class LossLog:
    def __init__(self, summary_interval: float = SUMMARY_INTERVAL) -> None:
        self._interval = summary_interval
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._since_summary: Counter[str] = Counter()
        self._last_line = time.monotonic()

    def record(self, cause: str, spans: int, detail: str) -> None:
        with self._lock:
            first = cause not in self._seen
            self._seen.add(cause)
            now = time.monotonic()
            if first:
                self._last_line = now
            else:
                self._since_summary[cause] += spans
                if now - self._last_line < self._interval:
                    return
                summary, self._since_summary = self._since_summary, Counter()
                self._last_line = now
        if first:
            # Without an API key, local-only is what the user asked for: no warning.
            level = logging.INFO if detail.startswith("no API key") else logging.WARNING
            logger.log(level, "Session data not sent to backend: %d spans (%s: %s); %s",
                       spans, cause, detail, DETAILS_HINT)
        else:
            causes = ", ".join(f"{c}: {n}" for c, n in summary.most_common())
            logger.warning("Session data not sent to backend: %d more spans in the last %ds (%s)",
                           sum(summary.values()), round(self._interval), causes)

    def after_fork(self) -> None:
        """In a forked child: the child's first loss of each cause is told again."""
        self._lock = threading.Lock()
        self._seen = set()
        self._since_summary = Counter()


def exit_summary(made: int, lost: Counter[str] | dict[str, int]) -> str | None:
    """The one line printed at exit when spans failed to reach the backend."""
    total = sum(lost.values())
    if not total:
        return None
    top = ", ".join(f"{cause}: {n}" for cause, n in Counter(lost).most_common(3))
    return (f"Session data not sent to backend: {total} of {made} spans not delivered "
            f"({top}); call agentops.print_session_status() before exit or run "
            f"`agentops doctor` for details")
