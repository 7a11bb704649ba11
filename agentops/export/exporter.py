"""InstrumentedSpanExporter: a ``SpanExporter`` that encodes each batch with OpenTelemetry's
public encoder, sends it through the SDK's request loop, and accounts for every span.

A batch made while authentication is pending is held (never sent without a token) until a
token is held, authentication fails for good, or ``auth_timeout`` runs out; without a token
nothing is sent and the spans are counted as ``not_authenticated``. Each batch has one
deadline, ``export_timeout`` from when it is sent, shortened by the exit budget. A 413
splits the batch in halves, re-sent within the same deadline, down to single spans; a
single span refused with 413 is ``too_large``. Spans a receiver rejects through
``partial_success`` are ``rejected_by_receiver``. Every loss is counted under its cause and
reported once per cause by the LossLog.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentops import vocabulary as v
from agentops.auth import AuthTracker
from agentops.export.loss_log import LossLog
from agentops.export.receiver import ReceiverStatus
from agentops.export.request import ExitBudget, OTLPRequestLoop, Outcome
from agentops.export.stats import Batch, ExportStats

Result = tuple[str | None, int, str | None]
"""(cause or None when delivered, spans, detail)."""


def _by_cause(results: list[Result]) -> list[tuple[str, int, str]]:
    """Losses summed per cause, each with its latest detail (a split batch meets a cause
    once per part)."""
    merged: dict[str, tuple[int, str]] = {}
    for cause, count, detail in results:
        if cause is not None and count:
            merged[cause] = (merged.get(cause, (0, ""))[0] + count, detail or "")
    return [(cause, count, detail) for cause, (count, detail) in merged.items()]


class InstrumentedSpanExporter(SpanExporter):
    def __init__(self, endpoint: str, tracker: AuthTracker, stats: ExportStats,
                 loss_log: LossLog, *, timeout: float, budget: ExitBudget,
                 receiver: ReceiverStatus | None = None) -> None:
        self.endpoint = endpoint
        self._tracker = tracker
        self._stats = stats
        self._loss_log = loss_log
        self._budget = budget
        self._timeout = timeout
        self.receiver = receiver or ReceiverStatus()
        self.loop = OTLPRequestLoop(endpoint, tracker, budget, on_response=stats.http_response)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        batch = self._stats.batch_started(len(spans))
        try:
            results = self._deliver(list(spans), batch)
        except Exception as error:  # never let an accounting fault escape into OpenTelemetry
            results = [(v.INTERNAL_ERROR, len(spans), f"{type(error).__name__}: {error}"[:300])]
        losses = _by_cause(results)
        exported = sum(count for cause, count, _ in results if cause is None)
        self._stats.batch_finished(batch, exported, losses)
        for cause, count, detail in losses:
            self._loss_log.record(cause, count, detail)
        return SpanExportResult.FAILURE if losses else SpanExportResult.SUCCESS

    def _deliver(self, spans: list[ReadableSpan], batch: Batch) -> list[Result]:
        if self._tracker.wait_for_token(self._budget.limit(self._tracker.auth_deadline)) is None:
            return [(v.NOT_AUTHENTICATED, len(spans), self._no_token_detail())]
        return self._send(spans, time.monotonic() + self._timeout, batch)

    def _send(self, spans: list[ReadableSpan], until: float, batch: Batch) -> list[Result]:
        try:
            payload = encode_spans(spans).SerializeToString()
        except Exception as error:  # a span the encoder cannot represent
            return [(v.INTERNAL_ERROR, len(spans),
                     f"failed to encode the batch: {type(error).__name__}: {error}"[:300])]
        self._stats.batch_progress(batch, v.TIMEOUT, f"no answer from {self.loop.where} "
                                   "before the exit budget ran out")
        outcome = self.loop.send(payload, until,
                                 progress=lambda cause, detail: self._stats.batch_progress(
                                     batch, cause, detail))
        self.receiver.observe(outcome)
        if outcome.accepted:
            return self._accepted(spans, outcome)
        if outcome.http_status == 413:
            if len(spans) == 1:
                span = spans[0]
                return [(v.TOO_LARGE, 1, f"span {span.name!r} is {len(payload)} bytes encoded, "
                                         f"refused even alone ({outcome.detail})")]
            half = len(spans) // 2
            return self._send(spans[:half], until, batch) + self._send(spans[half:], until, batch)
        cause = outcome.cause or v.INTERNAL_ERROR  # not accepted: the loop named a cause
        self._stats.batch_progress(batch, cause, outcome.detail)
        return [(cause, len(spans), outcome.detail)]

    def _accepted(self, spans: list[ReadableSpan], outcome: Outcome) -> list[Result]:
        rejected = min(outcome.rejected_spans, len(spans))
        if not rejected:
            return [(None, len(spans), None)]
        detail = (f"{rejected} of {len(spans)} spans rejected by {self.loop.where} "
                  f"(partial_success): {outcome.rejected_message or 'no message given'}")
        return [(None, len(spans) - rejected, None), (v.REJECTED_BY_RECEIVER, rejected, detail)]

    def _no_token_detail(self) -> str:
        auth = self._tracker.snapshot()
        if auth.state == v.DISABLED:
            return "no API key: spans kept local"
        if auth.state == v.PENDING:
            return f"authentication still pending after {self._tracker.auth_timeout:g}s"
        return f"no token: authentication failed ({auth.reason})"

    def shutdown(self) -> None:
        """Closes the HTTP connections; the batch processor and the exit path may both call it."""
        self.loop.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
