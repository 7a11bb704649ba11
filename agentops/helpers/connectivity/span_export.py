"""The connectivity test's last step: one span sent the way a session sends its spans,
through an auth tracker and exporter of the test's own, so the SDK's delivery code path is
what is tested and none of the running session's state is touched.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags

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


class _UnloggedLossLog(LossLog):
    """The test reports its span's fate itself; its loss is not the user's session data."""

    def record(self, cause: str, spans: int, detail: str) -> None:
        return None


def _test_span() -> tuple[ReadableSpan, SpanContext]:
    """The test span, finished, and its span context: the root of a trace of its own, never
    part of a session trace that is current in the caller's code."""
    # Made finished rather than through a tracer: a tracer provider records nothing under
    # OTEL_SDK_DISABLED=true, which the program being debugged may have set, and only the
    # span's delivery is under test.
    ids = RandomIdGenerator()
    context = SpanContext(ids.generate_trace_id(), ids.generate_span_id(), is_remote=False,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    now = time.time_ns()
    span = ReadableSpan(
        TEST_SPAN_NAME, context=context,
        resource=Resource.create({"service.name": "agentops-connectivity-test"}),
        attributes={SpanAttributes.AGENTOPS_SPAN_KIND: CONNECTIVITY_TEST_KIND},
        instrumentation_scope=InstrumentationScope("agentops.connectivity"),
        start_time=now, end_time=now)
    return span, context


def _send(ctx: Context, tracker: AuthTracker, endpoint: str) -> StepResult:
    exporter = InstrumentedSpanExporter(
        ctx.config.exporter_endpoint, tracker, ctx.stats, _UnloggedLossLog(),
        timeout=max(0.05, ctx.deadline.remaining()), budget=ExitBudget())
    try:
        span, span_context = _test_span()
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
    """One span through an auth tracker and exporter of the test's own: the SDK's code
    path, none of the running session's state."""
    endpoint = endpoint_label(ctx.config.exporter_endpoint)
    budget = ctx.deadline.remaining()
    tracker = AuthTracker(ctx.api, ctx.config.api_key, auth_timeout=budget,
                          request_timeout=budget)
    try:
        tracker.start()
        if tracker.wait(ctx.deadline.remaining()) != v.AUTHENTICATED:
            auth = tracker.snapshot()
            why = (f"{auth.reason}: {auth.detail}" if auth.reason
                   else "the token exchange did not finish within the time limit")
            return StepResult.failed(v.NOT_AUTHENTICATED,
                                     f"not sent: the exporter got no token ({why})",
                                     endpoint=endpoint)
        result = _send(ctx, tracker, endpoint)
    finally:
        tracker.close()
    if result.reason == v.TIMEOUT and not ctx.stats.snapshot()["failures_by_cause"]:
        # Abandoned mid-request: count the span so the diagnosis rules see the timeout.
        ctx.stats.batch_finished(ctx.stats.batch_started(1), 0, [(v.TIMEOUT, 1, result.detail)])
    return result
