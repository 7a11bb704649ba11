"""LossLog: tells the user, at WARNING, that spans did not reach the backend: once per
cause when it first happens, then at most one summary per interval, never one line per
batch; and one line at exit. The warning and the exit line name the same cause in the
same words, with correct plurals.

Spans without a token because authentication failed are not warned about again: the
authentication warning already said, when it happened, that session data will not reach
the backend. Losses during the exit itself are told by the exit line alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping

from agentops import vocabulary as v
from agentops.diagnostics.findings import plural

logger = logging.getLogger("agentops")

SUMMARY_INTERVAL = 60.0
DETAILS_HINT = "run agentops.print_session_status() for details"
NOT_SENT = "Session data not sent to backend"
STORED_KEY = "\0stored"


def spans(count: int) -> str:
    return plural(count, "span")


class LossLog:
    def __init__(self, summary_interval: float = SUMMARY_INTERVAL) -> None:
        self._interval = summary_interval
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._since_summary: Counter[str] = Counter()
        self._last_line = time.monotonic()
        self.exiting = False
        """Set when the exit begins: from then on the exit line tells."""

    def record(self, cause: str, count: int, detail: str) -> None:
        with self._lock:
            if self.exiting:
                return
            first = cause not in self._seen
            self._seen.add(cause)
            now = time.monotonic()
            if first:
                self._last_line = now
            else:
                self._since_summary[cause] += count
                if now - self._last_line < self._interval:
                    return
                summary, self._since_summary = self._since_summary, Counter()
                self._last_line = now
        if first:
            # Local-only is what the user asked for; a failed authentication was warned
            # about by the tracker when it happened.
            quiet = (logging.INFO if detail.startswith("no API key") else
                     logging.DEBUG if detail.startswith("no token: authentication failed")
                     else None)
            if quiet is not None:
                logger.log(quiet, "%s: %s not delivered (%s: %s)", NOT_SENT, spans(count),
                           cause, detail)
                return
            logger.warning("%s: %s not delivered (%s: %s); %s", NOT_SENT, spans(count), cause,
                           detail, DETAILS_HINT)
        else:
            causes = ", ".join(f"{c}: {n}" for c, n in summary.most_common())
            logger.warning("%s: %s more not delivered in the last %ds (%s)", NOT_SENT,
                           spans(sum(summary.values())), round(self._interval), causes)

    def stored(self, cause: str, count: int, detail: str, directory: object) -> None:
        """Spans saved to offline storage: told once per process, when it first happens
        (the exit line tells what the exit itself stored)."""
        with self._lock:
            if self.exiting or STORED_KEY in self._seen:
                return
            self._seen.add(STORED_KEY)
        logger.warning("Session data not sent yet: %s kept in offline storage in %s (%s: %s); "
                       "they are sent once the receiver accepts again (or by the next run)",
                       spans(count), directory, cause, detail)

    def after_fork(self) -> None:
        """In a forked child: the child's first loss of each cause is told again."""
        self._lock = threading.Lock()
        self._seen = set()
        self._since_summary = Counter()
        self.exiting = False


def exit_summary(made: int, lost: Mapping[str, int], auth_reason: str | None = None,
                 storage_refused: tuple[object, str] | None = None) -> str | None:
    """The one line logged at exit when spans failed to reach the backend, naming each
    cause as the warning did (and, for spans without a token, why authentication failed);
    ``storage_refused`` (directory, error): why offline storage, although on, did not keep
    them."""
    total = sum(lost.values())
    if not total:
        return None
    causes = []
    for cause, n in Counter(lost).most_common(3):
        why = f" (authentication failed: {auth_reason})" if (
            cause == v.NOT_AUTHENTICATED and auth_reason) else ""
        causes.append(f"{cause}: {n}{why}")
    refused = (f"; offline storage in {storage_refused[0]} could not keep them "
               f"({storage_refused[1]})" if storage_refused else "")
    return (f"{NOT_SENT}: {total} of {spans(made)} not delivered ({', '.join(causes)}){refused}; "
            f"call agentops.print_session_status() before exit or run `agentops doctor` for "
            f"details")


def stored_summary(made: int, stored: Mapping[str, int], directory: object) -> str | None:
    """The exit line's account of spans saved to offline storage, or None when none were."""
    total = sum(stored.values())
    if not total:
        return None
    return (f"{total} of {spans(made)} not sent yet ({_top_causes(stored)}) and saved to offline storage "
            f"in {directory}: the next run with this API key and exporter endpoint sends them, "
            f"or run `agentops flush` to send them now")


def storage_dropped_summary(dropped: Mapping[str, int], directory: object) -> str | None:
    """The exit line's account of stored spans removed without delivery (to respect the
    store's bounds, found corrupt, or refused for good when replayed), or None."""
    total = sum(dropped.values())
    if not total:
        return None
    return (f"{plural(total, 'stored span')} removed from offline storage in {directory} "
            f"without delivery ({_top_causes(dropped)})")


def _top_causes(counts: Mapping[str, int]) -> str:
    """'cause: n, ...' for the three largest counts."""
    return ", ".join(f"{cause}: {n}" for cause, n in Counter(counts).most_common(3))
