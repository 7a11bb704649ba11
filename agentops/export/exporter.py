"""InstrumentedSpanExporter: a ``SpanExporter`` that delegates to ``OTLPSpanExporter``
through its public arguments and accounts for every batch.

A batch made while authentication is pending is held (never sent without a token) until
a token is held, authentication fails for good, or ``auth_timeout`` runs out. Without a
token nothing is sent and the spans are counted as ``not_authenticated``. Every failure
is counted under its cause and reported once per cause by the LossLog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentops import vocabulary as v
from agentops.auth import AuthTracker
from agentops.export.loss_log import LossLog
from agentops.export.session import (
    Attempt,
    ExitBudget,
    ExitBudgetExhausted,
    ExportSession,
    current_attempt,
    set_current_attempt,
)
from agentops.export.stats import ExportStats
from agentops.http import endpoint_label, exception_cause, redact

# OpenTelemetry's exporter logs each failed batch; while it works for us those records are
# replaced by our accounting and the LossLog's once-per-cause lines.
_OTEL_EXPORT_LOGGERS = ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                        "opentelemetry.exporter.otlp.common.http")


class _InsideOurExport(logging.Filter):
    """Drops the exporter's records during our exports, keeping the last message as
    evidence for a failure that had no HTTP answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        attempt = current_attempt()
        if attempt is None:
            return True
        if record.levelno >= logging.WARNING:
            attempt.exporter_message = redact(str(record.getMessage())[:300])
        return False


_FILTER = _InsideOurExport()
for _name in _OTEL_EXPORT_LOGGERS:
    logging.getLogger(_name).addFilter(_FILTER)


EXIT_BUDGET_RAN_OUT = "the exit budget ran out before the batch was delivered"


def status_cause(status: int) -> str:
    if status in (401, 403):
        return v.AUTH_REJECTED
    if status == 429:
        return v.RATE_LIMITED
    if status >= 500:
        return v.SERVER_ERROR
    return v.CLIENT_ERROR


class InstrumentedSpanExporter(SpanExporter):
    def __init__(self, endpoint: str, tracker: AuthTracker, stats: ExportStats,
                 loss_log: LossLog, *, timeout: float, budget: ExitBudget) -> None:
        self.endpoint = endpoint
        self._tracker = tracker
        self._stats = stats
        self._loss_log = loss_log
        self._budget = budget
        self.session = ExportSession(tracker, stats, budget)
        self._delegate = OTLPSpanExporter(endpoint=endpoint, timeout=timeout,
                                          session=self.session)
        self._timeout = timeout
        self._stopping = threading.Event()
        self._shutdown_lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        count = len(spans)
        self._stats.batch_started(count)
        try:
            failure = self._deliver(spans)
        except Exception as error:  # never let an accounting fault escape into OpenTelemetry
            failure = (v.INTERNAL_ERROR, f"{type(error).__name__}: {error}")
        if failure is None:
            self._stats.batch_succeeded(count)
            return SpanExportResult.SUCCESS
        cause, detail = failure
        self._stats.batch_failed(cause, count, detail)
        self._loss_log.record(cause, count, detail)
        return SpanExportResult.FAILURE

    def _deliver(self, spans: Sequence[ReadableSpan]) -> tuple[str, str] | None:
        """Send with a token; None on success, else (cause, detail)."""
        if self._tracker.wait_for_token(self._hold_deadline()) is None:
            return v.NOT_AUTHENTICATED, self._no_token_detail()
        if self._stopping.is_set():
            return v.SHUTDOWN, EXIT_BUDGET_RAN_OUT
        attempt = self._send(spans)
        if attempt is not None and self._honour_retry_after(attempt):
            attempt = self._send(spans)
        return None if attempt is None else self._cause(attempt)

    def _send(self, spans: Sequence[ReadableSpan]) -> Attempt | None:
        """One delegated export; None on success, else what its HTTP requests met."""
        attempt = Attempt()
        set_current_attempt(attempt)
        try:
            result = self._delegate.export(spans)
        except Exception as error:  # 1.36 lets encoding and second connection errors escape
            if isinstance(error, requests.exceptions.RequestException):
                attempt.error = attempt.error or error
            else:
                attempt.exporter_message = redact(
                    f"failed to encode the batch: {type(error).__name__}: {error}"[:300])
            result = SpanExportResult.FAILURE
        finally:
            set_current_attempt(None)
        return None if result is SpanExportResult.SUCCESS else attempt

    def _honour_retry_after(self, attempt: Attempt) -> bool:
        """After a 429, wait what the receiver asked, once, if that fits in the export
        timeout and the exit budget (OpenTelemetry 1.36 does not retry 429 itself)."""
        delay = attempt.retry_after
        if attempt.status != 429 or delay is None or delay > self._timeout:
            return False
        exit_left = self._budget.remaining()
        if exit_left is not None and delay >= exit_left:
            return False
        return not self._stopping.wait(delay)

    def _hold_deadline(self) -> float:
        exit_left = self._budget.remaining()
        if exit_left is None:
            return self._tracker.auth_deadline
        return min(self._tracker.auth_deadline, time.monotonic() + exit_left)

    def _no_token_detail(self) -> str:
        auth = self._tracker.snapshot()
        if auth.state == v.DISABLED:
            return "no API key: spans kept local"
        if auth.state == v.PENDING:
            return f"authentication still pending after {self._tracker.auth_timeout:g}s"
        return f"no token: authentication failed ({auth.reason})"

    def _cause(self, attempt: Attempt) -> tuple[str, str]:
        where = endpoint_label(self.endpoint)
        # Once the budget is gone (or the exporter stopped at its end), a batch without an
        # answer was cut short by the exit, whatever its last attempt met.
        out_of_time = self._budget.exhausted or self._stopping.is_set()
        if isinstance(attempt.error, ExitBudgetExhausted) or (
                out_of_time and attempt.status is None):
            return v.SHUTDOWN, EXIT_BUDGET_RAN_OUT
        if attempt.status is not None and attempt.status >= 300:
            detail = f"HTTP {attempt.status} from {where}"
            if attempt.error_body:
                detail += f": {attempt.error_body}"
            return status_cause(attempt.status), detail
        if attempt.error is not None:
            return exception_cause(attempt.error, self.endpoint)
        why = attempt.exporter_message or "no reason given"
        if "max_request_size" in why:
            return v.CLIENT_ERROR, f"batch not sent: {why}"
        return v.INTERNAL_ERROR, f"the OTLP exporter failed before sending: {why}"

    def shutdown(self) -> None:
        """Also interrupts the retry waits of an export in progress. The exit path and the
        batch processor may both call it; the delegate is shut down once."""
        with self._shutdown_lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        self._delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
