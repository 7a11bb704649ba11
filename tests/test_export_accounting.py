"""The instrumented exporter: each receiver answer to its cause, per-span counts, the
bearer token on every request, and exact counts under concurrency (HTTP faked with
`responses`)."""

from __future__ import annotations

import threading
import time

import jwt
import pytest
import requests
import responses
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentops.api import AgentOpsAPI
from agentops.auth import AuthTracker
from agentops.export.exporter import InstrumentedSpanExporter
from agentops.export.loss_log import LossLog
from agentops.export.request import ExitBudget
from agentops.export.stats import ExportStats
from tests.conftest import SLACK

API = "https://api.example.test"
OTLP = "https://otlp.example.test/v1/traces"
KEY = "6f4e1c2a-9b1d-4c3e-8f00-123456787f79"


def a_jwt() -> str:
    return jwt.encode({"project_id": "p1", "exp": int(time.time()) + 3600, "n": time.time_ns()},
                      "s" * 32, algorithm="HS256")


def make_spans(count: int):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(count):
        tracer.start_span(f"s{i}").end()
    return memory.get_finished_spans()


def make_exporter(api_key: str | None = KEY, timeout: float = 0.5):
    tracker = AuthTracker(AgentOpsAPI(API), api_key, auth_timeout=2)
    stats = ExportStats()
    exporter = InstrumentedSpanExporter(OTLP, tracker, stats, LossLog(), timeout=timeout,
                                        budget=ExitBudget())
    tracker.start()
    tracker.wait(2)
    return exporter, stats


def token_endpoint():
    responses.post(f"{API}/v3/auth/token", json={"token": a_jwt(), "project_id": "p1"})


@responses.activate
def test_success_counts_spans_and_sends_the_bearer_token():
    token_endpoint()
    responses.post(OTLP, body=b"")
    exporter, stats = make_exporter()
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    sent = [c for c in responses.calls if c.request.url == OTLP]
    assert sent[0].request.headers["Authorization"].startswith("Bearer ey")
    snap = stats.snapshot()
    assert (snap["total_attempts"], snap["successful_exports"], snap["spans_exported"]) == (1, 1, 3)


@pytest.mark.parametrize("status, body, cause", [
    (401, {"error": "Unauthorized"}, "auth_rejected"),
    (403, {"error": "Forbidden"}, "auth_rejected"),
    (429, {"error": "slow down"}, "rate_limited"),
    (500, {"error": "boom"}, "server_error"),
    (413, {"error": "too large"}, "too_large"),  # split to single spans, each refused
    (400, {"error": "bad protobuf"}, "client_error"),
])
@responses.activate
def test_receiver_status_maps_to_its_cause_with_spans_counted(status, body, cause):
    token_endpoint()
    responses.post(OTLP, json=body, status=status)
    exporter, stats = make_exporter()
    assert exporter.export(make_spans(4)) is SpanExportResult.FAILURE
    snap = stats.snapshot()
    assert snap["failures_by_cause"] == {cause: 4}
    assert snap["failed_exports"] == 1 and snap["successful_exports"] == 0
    assert f"HTTP {status}" in snap["last_error"] and body["error"] in snap["last_error"]


@pytest.mark.parametrize("error, cause", [
    (requests.exceptions.ConnectionError("[Errno 111] Connection refused"), "connection_error"),
    (requests.exceptions.ReadTimeout("read timed out"), "timeout"),
    (requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"), "tls_error"),
])
@responses.activate
def test_transport_error_maps_to_its_cause(error, cause):
    token_endpoint()
    responses.post(OTLP, body=error)
    exporter, stats = make_exporter()
    assert exporter.export(make_spans(2)) is SpanExportResult.FAILURE
    assert stats.snapshot()["failures_by_cause"] == {cause: 2}
    assert "otlp.example.test:443" in stats.snapshot()["last_error"]


@responses.activate
def test_401_refreshes_the_token_once_and_resends_the_batch():
    token_endpoint()
    token_endpoint()
    responses.post(OTLP, status=401, json={"error": "expired"})
    responses.post(OTLP, body=b"")
    exporter, stats = make_exporter()
    assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    token_calls = [c for c in responses.calls if c.request.url.endswith("/v3/auth/token")]
    otlp_calls = [c for c in responses.calls if c.request.url == OTLP]
    assert len(token_calls) == 2 and len(otlp_calls) == 2
    first, second = (c.request.headers["Authorization"] for c in otlp_calls)
    assert first != second
    assert stats.snapshot()["spans_exported"] == 2


@responses.activate
def test_without_a_key_nothing_is_sent_and_spans_count_as_not_authenticated():
    exporter, stats = make_exporter(api_key=None)
    assert exporter.export(make_spans(5)) is SpanExportResult.FAILURE
    assert len(responses.calls) == 0
    assert stats.snapshot()["failures_by_cause"] == {"not_authenticated": 5}


@responses.activate
def test_counts_stay_exact_when_many_threads_export_at_once():
    token_endpoint()
    responses.post(OTLP, body=b"")
    exporter, stats = make_exporter()
    batch = make_spans(3)

    def work():
        for _ in range(40):
            exporter.export(batch)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    snap = stats.snapshot()
    assert snap["total_attempts"] == snap["successful_exports"] + snap["failed_exports"] == 320
    assert snap["spans_exported"] == 960 and snap["http_requests"] == 320


@responses.activate
def test_429_with_retry_after_is_waited_out_once_then_sent_again():
    token_endpoint()
    responses.post(OTLP, status=429, headers={"Retry-After": "0.3"}, json={"error": "slow down"})
    responses.post(OTLP, body=b"")
    exporter, stats = make_exporter(timeout=0.25 + 1)
    started = time.monotonic()
    assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    assert time.monotonic() - started >= 0.3
    assert stats.snapshot()["spans_exported"] == 2


@responses.activate
def test_retry_after_longer_than_the_export_timeout_is_not_waited():
    token_endpoint()
    responses.post(OTLP, status=429, headers={"Retry-After": "30"}, json={"error": "slow down"})
    exporter, stats = make_exporter(timeout=0.5)
    started = time.monotonic()
    assert exporter.export(make_spans(2)) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 0.5 + SLACK
    assert stats.snapshot()["failures_by_cause"] == {"rate_limited": 2}


def test_spans_and_batches_of_a_cause_are_counted_apart_with_when_it_was_first_and_last_met():
    stats = ExportStats()
    for _ in range(7):
        stats.span_finished(capacity=100)
    stats.batch_finished(stats.batch_started(4), 0, [("timeout", 4, "first detail")])
    time.sleep(0.01)  # the timestamps have millisecond resolution
    stats.batch_finished(stats.batch_started(3), 1, [("timeout", 2, "second detail")])
    snap = stats.snapshot()
    assert snap["failures_by_cause"] == {"timeout": 6}, "spans"
    assert snap["failed_batches_by_cause"] == {"timeout": 2}, "batches"
    seen = snap["causes"]["timeout"]
    assert (seen["spans"], seen["batches"], seen["last_detail"]) == (6, 2, "second detail")
    assert seen["first_at"] < seen["last_at"] == snap["last_error_at"]
    assert (snap["spans_exported"], snap["spans_failed"], snap["spans_pending"]) == (1, 6, 0)
