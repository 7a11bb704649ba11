"""AccountingSpanProcessor: counts every finished span before the batch processor sees it.

``BatchSpanProcessor`` drops spans silently when its queue is full. This processor keeps
its own count of queued spans and, at capacity, drops the span itself and counts it as
``queue_overflow``, so the batch processor's queue never overflows unseen.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentops import vocabulary as v
from agentops.export.loss_log import LossLog
from agentops.export.stats import ExportStats


class AccountingSpanProcessor(SpanProcessor):
    def __init__(self, delegate: BatchSpanProcessor, stats: ExportStats, capacity: int,
                 check_sampled: bool = True, loss_log: LossLog | None = None) -> None:
        self._delegate = delegate
        self._loss_log = loss_log
        self._overflow_detail = (f"more than max_queue_size {capacity} finished spans were "
                                 f"waiting to be sent")
        self._stats = stats
        self._capacity = capacity
        self._check_sampled = check_sampled

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass  # BatchSpanProcessor does nothing at span start

    def on_end(self, span: ReadableSpan) -> None:
        # Unsampled spans are dropped by the batch processor and are not ours to count.
        if self._check_sampled and not span.context.trace_flags.sampled:
            return
        if self._stats.span_finished(self._capacity):
            self._delegate.on_end(span)
        elif self._loss_log is not None and not self._stats.closed:
            # Told when it happens (once, then in the periodic summary), not only at exit.
            self._loss_log.record(v.QUEUE_OVERFLOW, 1, self._overflow_detail)

    def shutdown(self) -> None:
        self._delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._delegate.force_flush(timeout_millis)
