"""The connectivity test's last step: one span sent the way a session sends its spans,
through an auth tracker, exporter and tracer provider of the test's own, so the SDK's
delivery code path is what is tested and none of the running session's state is touched.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context as OTelContext
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext

from agentops import vocabulary as v
from agentops.auth import AuthTracker
from agentops.export.exporter import InstrumentedSpanExporter
from agentops.export.loss_log import LossLog
from agentops.export.request import ExitBudget
from agentops.helpers.connectivity.probe import OutOfTime, within
from agentops.helpers.connectivity.records import StepResult
from agentops.helpers.connectivity.steps import Context
from agentops.helpers.dashboard import session_url
from agentops.http import endpoint_label
from agentops.semconv import CONNECTIVITY_TEST_KIND, SpanAttributes

__all__ = ["TEST_SPAN_NAME", "export_test_span"]

TEST_SPAN_NAME = "agentops.connectivity_test"


# -- span export -----------------------------------------------------------------------


class _UnloggedLossLog(LossLog):
    """The test reports its span's fate itself; its loss is not the user's session data."""

    def record(self, cause: str, spans: int, detail: str) -> None:
        return None


def _test_span(provider: TracerProvider) -> tuple[ReadableSpan, SpanContext]:
    """The test span, ended, and its span context."""
    # An empty context: the test span must start a trace of its own, never join a session
    # trace that is current in the caller's code.
    span = provider.get_tracer("agentops.connectivity").start_span(
        TEST_SPAN_NAME, context=OTelContext(),
        attributes={SpanAttributes.AGENTOPS_SPAN_KIND: CONNECTIVITY_TEST_KIND})
    span.end()
    if not isinstance(span, ReadableSpan):  # the SDK's tracer makes SDK spans
        raise TypeError(f"unexpected span type {type(span).__name__}")
    return span, span.get_span_context()


def _send(ctx: Context, tracker: AuthTracker, provider: TracerProvider,
          endpoint: str) -> StepResult:
    exporter = InstrumentedSpanExporter(
        ctx.config.exporter_endpoint, tracker, ctx.stats, _UnloggedLossLog(),
        timeout=max(0.05, ctx.deadline.remaining()), budget=ExitBudget())
    try:
        span, span_context = _test_span(provider)
        trace_id = span_context.trace_id
        facts: dict[str, Any] = {"endpoint": endpoint, "trace_id": f"{trace_id:032x}",
                                 "span_id": f"{span_context.span_id:016x}"}
        try:
            outcome: SpanExportResult | None = within(ctx.deadline.remaining(),
                                                      lambda: exporter.export([span]))
        except OutOfTime:
            outcome = None
        snapshot = ctx.stats.snapshot()
        facts.update(http_status=snapshot["last_http_status"],
                     http_requests=snapshot["http_requests"])
        if outcome is SpanExportResult.SUCCESS:
            ctx.session_url = session_url(ctx.config.app_url, trace_id)
            return StepResult.passed(f"1 span acknowledged by {endpoint} "
                                     f"(HTTP {snapshot['last_http_status']})", **facts)
        if outcome is None:
            return StepResult.failed(v.TIMEOUT, f"no answer from {endpoint} within the time "
                                                "limit", **facts)
        cause = snapshot["last_error_cause"] or v.INTERNAL_ERROR
        return StepResult.failed(cause, f"{cause}: {snapshot['last_error']}", **facts)
    finally:
        exporter.shutdown()


def export_test_span(ctx: Context) -> StepResult:
    """One span through an auth tracker, exporter and provider of the test's own: the SDK's
    code path, none of the running session's state."""
    endpoint = endpoint_label(ctx.config.exporter_endpoint)
    budget = ctx.deadline.remaining()
    tracker = AuthTracker(ctx.api, ctx.config.api_key, auth_timeout=budget,
                          request_timeout=budget)
    provider = TracerProvider(
        resource=Resource.create({"service.name": "agentops-connectivity-test"}),
        shutdown_on_exit=False)
    try:
        tracker.start()
        if tracker.wait(ctx.deadline.remaining()) != v.AUTHENTICATED:
            auth = tracker.snapshot()
            why = (f"{auth.reason}: {auth.detail}" if auth.reason
                   else "the token exchange did not finish within the time limit")
            return StepResult.failed(v.NOT_AUTHENTICATED,
                                     f"not sent: the exporter got no token ({why})",
                                     endpoint=endpoint)
        result = _send(ctx, tracker, provider, endpoint)
    finally:
        tracker.close()
        provider.shutdown()
    if result.reason == v.TIMEOUT and not ctx.stats.snapshot()["failures_by_cause"]:
        # Abandoned mid-request: count the span so the diagnosis rules see the timeout.
        ctx.stats.batch_finished(ctx.stats.batch_started(1), 0, [(v.TIMEOUT, 1, result.detail)])
    return result
