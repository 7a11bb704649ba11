"""ExportStats: the one place that records what happened to every finished span.

Each span ends in exactly one bucket: exported, stored for a later process, or lost under a
cause of the vocabulary; until then it is pending. Batches are counted too: every export
attempt finishes as a success or a failure. All updates take one lock, so counts stay
exact under concurrency.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentops import vocabulary as v
from agentops.redaction import redacted_repr
from agentops.timestamps import iso


@dataclass(eq=False)
class Batch:
    """A batch taken out of the queue for export, and the last real cause it met."""

    spans: int
    cause: str | None = None
    detail: str | None = None
    taken_over: bool = False
    """Its fate was decided by another thread (``InstrumentedSpanExporter.store_in_flight``):
    the export still running for it must neither store nor count it."""


@dataclass
class CauseSeen:
    """When a cause was first and last met (``time.time()`` seconds), and the latest detail
    given with it: every cause can say since when, not only the latest."""

    first_at: float
    last_at: float
    last_detail: str | None = None


@redacted_repr
@dataclass
class ExportStats:
    spans_made: int = 0
    spans_exported: int = 0
    spans_lost_by_cause: Counter[str] = field(default_factory=Counter)
    """Spans, by the cause they were lost under (the snapshot's ``failures_by_cause``)."""
    attempts: int = 0
    successes: int = 0
    failures: int = 0
    failed_batches_by_cause: Counter[str] = field(default_factory=Counter)
    """Export attempts (batches) that lost spans, by cause."""
    timeline: dict[str, CauseSeen] = field(default_factory=dict)
    last_error: str | None = None
    last_error_cause: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    last_result_ok: bool | None = None
    http_requests: int = 0
    http_latency_total: float = 0.0
    http_latency_max: float = 0.0
    last_http_status: int | None = None
    queued: int = 0
    """Spans handed to the batch processor and not yet taken out for export; an upper
    bound of its queue length, so the queue never overflows silently."""
    in_flight: list[Batch] = field(default_factory=list)
    spans_stored_by_cause: Counter[str] = field(default_factory=Counter)
    """Spans saved to offline storage (not lost, not pending), by the cause that kept them
    from being delivered."""
    spans_replayed: int = 0
    """Stored spans (of this or an earlier process) this process delivered."""
    storage_dropped: Counter[str] = field(default_factory=Counter)
    """Stored spans this process removed from the store (``storage_full``, ``expired``,
    ``corrupt``, or a definitive refusal on replay), whichever process made them."""
    closed: bool = False
    """Set once the exit budget ran out: late results of abandoned exports are ignored."""
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    """Re-entrant: the SIGTERM handler closes the stats on the main thread, which the
    signal may have interrupted inside one of these methods."""

    def span_finished(self, capacity: int) -> bool:
        """Count a finished span; False (and counted as lost) when it must not be queued:
        the queue is at ``capacity`` or the pipeline is closed."""
        with self._lock:
            self.spans_made += 1
            if self.closed:
                self._lose(v.SHUTDOWN, 1)
                return False
            if self.queued >= capacity:
                self._lose(v.QUEUE_OVERFLOW, 1)
                return False
            self.queued += 1
            return True

    def batch_started(self, spans: int) -> Batch:
        """A batch left the queue for an export attempt."""
        batch = Batch(spans)
        with self._lock:
            self.attempts += 1
            self.queued = max(0, self.queued - spans)
            self.in_flight.append(batch)
        return batch

    def batch_progress(self, batch: Batch, cause: str, detail: str) -> None:
        """The last real cause ``batch`` met: what its spans are counted under if the exit
        cuts the export short."""
        batch.cause, batch.detail = cause, detail

    def batch_finished(self, batch: Batch, exported: int, losses: list[tuple[str, int, str]],
                       stored: Sequence[tuple[str, int, str]] = ()) -> None:
        """``exported`` spans accepted; the rest lost, or saved to offline storage, as
        ``(cause, spans, detail)``."""
        with self._lock:
            if batch in self.in_flight:
                self.in_flight.remove(batch)
            if self.closed:
                return
            self.spans_exported += exported
            for cause, spans, _ in stored:
                self.spans_stored_by_cause[cause] += spans
            if exported:
                self.last_success_at = time.time()
            for cause, spans, detail in losses:
                self.failed_batches_by_cause[cause] += 1
                self.last_error, self.last_error_cause = detail, cause
                self.last_error_at = self._lose(cause, spans, detail)
            delivered = not losses and not stored  # stored spans have not arrived yet
            if delivered:
                self.successes += 1
            else:
                self.failures += 1
            self.last_result_ok = delivered

    def _lose(self, cause: str, spans: int, detail: str | None = None) -> float:
        """Count ``spans`` lost under ``cause`` (the lock held); the time it happened."""
        self.spans_lost_by_cause[cause] += spans
        now = time.time()
        seen = self.timeline.get(cause)
        if seen is None:
            self.timeline[cause] = CauseSeen(now, now, detail)
        else:
            seen.last_at = now
            if detail is not None:
                seen.last_detail = detail
        return now

    def http_response(self, status: int | None, latency: float) -> None:
        with self._lock:
            self.http_requests += 1
            self.http_latency_total += latency
            self.http_latency_max = max(self.http_latency_max, latency)
            self.last_http_status = status

    def stored_spans_replayed(self, spans: int, stored_here_as: str | None = None) -> None:
        """``spans`` of a stored batch were delivered. ``stored_here_as``: the cause this
        process stored them under; they are then delivered, no longer stored."""
        with self._lock:
            self.spans_replayed += spans
            if stored_here_as is not None and not self.closed:
                moved = min(spans, self.spans_stored_by_cause[stored_here_as])
                self.spans_stored_by_cause[stored_here_as] -= moved
                self.spans_exported += moved
            if spans:
                self.last_success_at = time.time()

    def stored_spans_dropped(self, dropped: dict[str, int]) -> None:
        with self._lock:
            for cause, spans in dropped.items():
                self.storage_dropped[cause] += spans

    @property
    def spans_pending(self) -> int:
        """Spans finished and not yet exported, stored or lost."""
        return (self.spans_made - self.spans_exported - sum(self.spans_stored_by_cause.values())
                - sum(self.spans_lost_by_cause.values()))

    def close(self, cause: str) -> int:
        """Freeze the counts: spans of batches still in flight are counted under the last
        real cause their export met; every other pending span under ``cause``."""
        with self._lock:
            pending = self.spans_pending
            for batch in self.in_flight:
                if pending <= 0:
                    break
                if batch.cause is None:
                    continue
                spans = min(batch.spans, pending)
                self.failed_batches_by_cause[batch.cause] += 1
                self.failures += 1
                self._lose(batch.cause, spans, batch.detail)
                pending -= spans
            if pending > 0:
                self._lose(cause, pending)
            self.in_flight = []
            self.closed = True
            return max(pending, 0)

    def after_fork(self) -> None:
        """In a forked child: forget the parent's spans. The old lock is not taken: a
        parent thread may have held it at the fork."""
        fresh = ExportStats()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def snapshot(self) -> dict[str, Any]:
        """The ``export_stats`` of a diagnosis: plain, JSON-serialisable values."""
        with self._lock:
            finished = self.successes + self.failures
            return {
                "total_attempts": self.attempts,
                "successful_exports": self.successes,
                "failed_exports": self.failures,
                # None until an export finished: 0% would claim failures that never happened.
                "success_rate": round(100.0 * self.successes / finished, 1) if finished else None,
                "in_flight_exports": self.attempts - finished,
                "spans_made": self.spans_made,
                "spans_exported": self.spans_exported,
                "spans_failed": sum(self.spans_lost_by_cause.values()),
                "spans_pending": self.spans_pending,
                "spans_stored": sum(self.spans_stored_by_cause.values()),
                "stored_by_cause": {cause: n for cause, n
                                    in sorted(self.spans_stored_by_cause.items()) if n},
                "spans_replayed": self.spans_replayed,
                "stored_spans_dropped": {cause: n for cause, n
                                         in sorted(self.storage_dropped.items()) if n},
                # Spans, by cause: the name support tools have always read.
                "failures_by_cause": {cause: n for cause, n
                                      in sorted(self.spans_lost_by_cause.items()) if n},
                "failed_batches_by_cause": dict(sorted(self.failed_batches_by_cause.items())),
                "causes": {cause: {"spans": self.spans_lost_by_cause[cause],
                                   "batches": self.failed_batches_by_cause.get(cause, 0),
                                   "first_at": iso(seen.first_at), "last_at": iso(seen.last_at),
                                   "last_detail": seen.last_detail}
                           for cause, seen in sorted(self.timeline.items())},
                "last_error": self.last_error,
                "last_error_cause": self.last_error_cause,
                "last_error_at": iso(self.last_error_at),
                "last_success_at": iso(self.last_success_at),
                "last_result_ok": self.last_result_ok,
                "last_http_status": self.last_http_status,
                "http_requests": self.http_requests,
                "http_latency_avg_ms": round(1000 * self.http_latency_total / self.http_requests, 2)
                if self.http_requests else None,
                "http_latency_max_ms": round(1000 * self.http_latency_max, 2),
            }
