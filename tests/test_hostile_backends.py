"""Hostile and broken backends: every misbehaviour of the token endpoint maps to its reason
within the request timeout and with bounded memory, every receiver fault to its cause,
and programs still exit promptly. Real sockets throughout (LocalBackend, or
tests/hostile_server.py for faults LocalBackend cannot script)."""

from __future__ import annotations

import json
import re
import time
import tracemalloc
import zlib

import pytest

import agentops
from agentops.api import AgentOpsAPI
from agentops.auth import REQUEST_TIMEOUT as SDK_REQUEST_TIMEOUT
from agentops.testing import Faults
from tests import hostile_server as hostile
from tests.conftest import SLACK, STARTUP, clean_env, run_python

KEY = "6f4e1c2a-9b1d-4c3e-8f00-123456787f79"
REQUEST_TIMEOUT = 2.0


def fetch(url: str, timeout: float = REQUEST_TIMEOUT):
    started = time.monotonic()
    outcome = AgentOpsAPI(url).fetch_token(KEY, timeout=timeout)
    return outcome, time.monotonic() - started




@pytest.fixture
def server():
    """Start a HostileServer with a given fault; every server is stopped at test end."""
    started: list[hostile.HostileServer] = []

    def start(fault, **kwargs) -> hostile.HostileServer:
        instance = hostile.HostileServer(fault, **kwargs).start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory):
    context = hostile.self_signed_context(tmp_path_factory.mktemp("tls"))
    if context is None:
        pytest.skip("no way to make a self-signed certificate: neither the cryptography "
                    "package nor the openssl command is available")
    return context


# -- the token endpoint, in process ------------------------------------------------------

def test_200_with_an_html_page_is_bad_response(local_backend):
    local_backend.faults = Faults(
        auth_body="<html><body>Please sign in to the Wi-Fi</body></html>",
        auth_content_type="text/html")
    outcome, seconds = fetch(local_backend.api_url)
    assert (outcome.reason, outcome.http_status, outcome.token) == ("bad_response", 200, None)
    assert "text/html" in outcome.detail
    assert seconds < REQUEST_TIMEOUT


@pytest.mark.parametrize("token", ["not-a-jwt", "eyJhbGciOi.broken.parts", "a.b.c", ""])
def test_200_with_a_token_that_is_not_a_jwt_is_bad_response(local_backend, token):
    local_backend.faults = Faults(auth_body=json.dumps({"token": token, "project_id": "p"}))
    outcome, _ = fetch(local_backend.api_url)
    assert (outcome.reason, outcome.http_status, outcome.token) == ("bad_response", 200, None)


def peak_bytes_during(call):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        result = call()
        return result, tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


MAX_PEAK = 2 * 1024 * 1024
"""A 10 MB body must not be held: 64 KiB read plus the interpreter's own noise."""


def test_a_10_mb_body_is_bad_response_and_is_not_read_into_memory(local_backend):
    local_backend.faults = Faults(auth_body=b"x" * (10 * 1024 * 1024))
    (outcome, seconds), peak = peak_bytes_during(lambda: fetch(local_backend.api_url))
    assert (outcome.reason, outcome.http_status) == ("bad_response", 200)
    assert "64 KiB" in outcome.detail
    assert peak < MAX_PEAK, f"peak grew by {peak} bytes"
    assert seconds < REQUEST_TIMEOUT + SLACK


def gzip_bomb(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes, made without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    return b"".join([*(packer.compress(zeros) for _ in range(size // len(zeros))),
                     packer.flush()])


HUGE_BODIES = {
    "chunked-10MB": lambda: hostile.large_body(10 * 1024 * 1024, chunked=True),
    "gzip-bomb-100MB": lambda: hostile.large_body(0, encoding="gzip",
                                                  body=gzip_bomb(100 * 1024 * 1024)),
}


@pytest.mark.parametrize("kind", list(HUGE_BODIES))
def test_an_unframed_or_compressed_huge_body_is_bad_response_with_bounded_memory(server, kind):
    backend = server(HUGE_BODIES[kind]())
    (outcome, seconds), peak = peak_bytes_during(lambda: fetch(backend.url))
    assert (outcome.reason, outcome.http_status) == ("bad_response", 200)
    assert peak < MAX_PEAK, f"peak grew by {peak} bytes"
    assert seconds < REQUEST_TIMEOUT + SLACK


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_that_never_ends_times_out_within_the_request_timeout(server, chunked):
    backend = server(hostile.drip(interval=0.2, chunked=chunked))
    outcome, seconds = fetch(backend.url)
    assert outcome.reason == "timeout" and outcome.token is None
    assert seconds <= REQUEST_TIMEOUT + SLACK
    assert backend.wait_for_connections(1, timeout=2)
    assert backend.connections[0].closed_by_client, "the client must hang up on the drip"


def test_headers_then_silence_is_timeout(server):
    backend = server(hostile.silence_after_headers)
    outcome, seconds = fetch(backend.url)
    assert seconds <= REQUEST_TIMEOUT + SLACK
    assert outcome.reason == "timeout"


def test_a_body_cut_short_by_the_server_is_connection_error(server):
    backend = server(hostile.truncated_body)
    outcome, _ = fetch(backend.url)
    assert outcome.reason == "connection_error"


def test_a_body_that_does_not_decode_as_its_content_encoding_is_bad_response(server):
    backend = server(hostile.large_body(0, encoding="gzip", body=b"plainly not gzip"))
    outcome, _ = fetch(backend.url)
    assert (outcome.reason, outcome.http_status) == ("bad_response", 200)


def test_a_redirect_loop_is_unexpected_status_after_one_request(server):
    backend = server(hostile.redirect_to_itself)
    outcome, seconds = fetch(backend.url)
    assert (outcome.reason, outcome.http_status) == ("unexpected_status", 302)
    assert backend.url in outcome.detail
    assert backend.wait_for_connections(1, timeout=2)
    time.sleep(0.2)
    assert len(backend.connections) == 1
    assert seconds < REQUEST_TIMEOUT


def test_an_untrusted_certificate_is_tls_error(server, tls_context):
    backend = server(hostile.answer_ok, tls_context=tls_context)
    outcome, seconds = fetch(backend.url)
    assert (outcome.reason, outcome.http_status) == ("tls_error", None)
    assert f"127.0.0.1:{backend.port}" in outcome.detail
    assert "certificate" in outcome.detail
    assert seconds < REQUEST_TIMEOUT


# -- the token endpoint, in a whole program ----------------------------------------------

AUTH_PROGRAM = """
import json, time
import agentops
from opentelemetry import trace

agentops.init(auth_timeout=1, shutdown_timeout=1, max_wait_time=100)
tracer = trace.get_tracer("hostile")
for i in range(5):
    with tracer.start_as_current_span(f"span-{{i}}"):
        pass
agentops.get_client().tracker.wait({wait})
agentops.get_client().processor.force_flush()
print(json.dumps(agentops.diagnose_session()))
print("END", time.time(), flush=True)
"""


def run_program(code: str, timeout: float = 60, **env: str):
    run = run_python(code, env=clean_env(**env), timeout=timeout)
    return run, run.exit_seconds()


def program_env(api_url: str, otlp_url: str) -> dict[str, str]:
    return {"AGENTOPS_API_KEY": KEY, "AGENTOPS_API_ENDPOINT": api_url,
            "AGENTOPS_EXPORTER_ENDPOINT": otlp_url, "AGENTOPS_APP_URL": "http://127.0.0.1:9/app"}


def test_program_against_a_dripping_token_endpoint_diagnoses_timeout_and_exits_promptly(
        server, local_backend):
    backend = server(hostile.drip(interval=0.2), max_seconds=45)
    # The token request times out after the SDK's request timeout (10 s), however slowly
    # the body keeps coming; the program waits for that outcome, then exits.
    run, exit_seconds = run_program(AUTH_PROGRAM.format(wait=20),
                                    **program_env(backend.url, local_backend.otlp_url))
    assert run.returncode == 0, run.stderr
    diagnosis = run.last_json()
    assert diagnosis["auth"]["state"] == "failed" and diagnosis["auth"]["reason"] == "timeout"
    assert diagnosis["export_stats"]["failures_by_cause"].get("not_authenticated", 0) >= 5
    # the time actually waited: auth_timeout (1 s), plus the margin
    waited = re.search(r"Authentication timeout after (\d+\.\d)s\. Session data may not reach "
                       r"backend", run.stderr)
    assert waited and 1.0 <= float(waited.group(1)) <= 1 + SLACK, run.stderr
    assert exit_seconds <= 1 + SLACK  # shutdown_timeout
    # The token request's own timeout bounds the run: start-up, that request, the exit.
    assert run.seconds < SDK_REQUEST_TIMEOUT + STARTUP + 1 + SLACK
    assert local_backend.otlp_requests == []


def test_program_against_an_untrusted_certificate_diagnoses_tls_error_and_exits_promptly(
        server, tls_context, local_backend):
    backend = server(hostile.answer_ok, tls_context=tls_context)
    run, exit_seconds = run_program(AUTH_PROGRAM.format(wait=5),
                                    **program_env(backend.url, local_backend.otlp_url))
    assert run.returncode == 0, run.stderr
    diagnosis = run.last_json()
    assert diagnosis["auth"]["state"] == "failed" and diagnosis["auth"]["reason"] == "tls_error"
    assert diagnosis["auth"]["attempts"] == 1, "a TLS failure is not retried"
    assert diagnosis["export_stats"]["failures_by_cause"].get("not_authenticated", 0) >= 5
    assert "tls_error" in run.stderr
    assert exit_seconds <= 1 + SLACK
    assert local_backend.otlp_requests == []


# -- the OTLP receiver -------------------------------------------------------------------

def init_against(backend, **settings):
    agentops.init(api_key=backend.api_key, endpoint=backend.api_url,
                  exporter_endpoint=backend.otlp_url, app_url=backend.app_url,
                  auto_start_session=False, max_wait_time=50, wait_for_auth=True,
                  auth_timeout=5, **settings)
    return agentops.get_client()


def make_spans(names):
    from opentelemetry import trace

    tracer = trace.get_tracer("hostile")
    for name in names:
        with tracer.start_as_current_span(name):
            pass


def flushed_stats(client):
    client.processor.force_flush()
    return client.stats.snapshot()


def test_receiver_413_to_every_size_is_too_large_for_each_span_after_splitting(local_backend):
    local_backend.faults = Faults(otlp_status=413)
    client = init_against(local_backend, export_timeout=3)
    make_spans([f"span-{i}" for i in range(10)])
    stats = flushed_stats(client)
    assert stats["failures_by_cause"] == {"too_large": 10}
    assert stats["last_error_cause"] == "too_large" and "HTTP 413" in stats["last_error"]
    assert stats["spans_pending"] == 0
    # Halves down to single spans: 2n - 1 requests for a batch of n, none retried.
    assert len(local_backend.otlp_requests) == 2 * 10 - 1


def test_receiver_400_is_client_error_with_the_receivers_error_text(local_backend):
    local_backend.faults = Faults(otlp_status=400)
    client = init_against(local_backend, export_timeout=3)
    make_spans(["a", "b", "c"])
    stats = flushed_stats(client)
    assert stats["failures_by_cause"] == {"client_error": 3}
    assert "HTTP 400" in stats["last_error"] and "Bad Request" in stats["last_error"]


def test_receiver_persistently_429_with_retry_after_is_rate_limited(local_backend):
    local_backend.faults = Faults(otlp_status=429, otlp_retry_after=1)
    client = init_against(local_backend, export_timeout=1.5)
    make_spans([f"span-{i}" for i in range(4)])
    stats = flushed_stats(client)
    assert stats["failures_by_cause"] == {"rate_limited": 4}
    assert "HTTP 429" in stats["last_error"]
    assert local_backend.spans == []
    seen = local_backend.otlp_requests
    assert all(request["status"] == 429 for request in seen)
    # One wait of Retry-After 1 s fits in export_timeout 1.5 s, a second does not: the loop
    # stops at the deadline instead of sleeping past it.
    assert len(seen) == 2
    assert seen[1]["time"] - seen[0]["time"] >= 0.95
    assert "Retry-After 1 s does not fit" in stats["last_error"]


def test_receiver_429_once_with_retry_after_then_ok_delivers_every_span(local_backend):
    local_backend.faults = Faults(otlp_statuses=(429,), otlp_retry_after=2)
    client = init_against(local_backend, export_timeout=6)
    names = [f"span-{i}" for i in range(6)]
    make_spans(names)
    stats = flushed_stats(client)
    assert local_backend.wait_for_spans(len(names), timeout=5)
    assert sorted(local_backend.span_names) == names
    assert stats["failures_by_cause"] == {}
    seen = local_backend.otlp_requests
    assert [request["status"] for request in seen] == [429, 200]
    # The resend waited the receiver's 2 s (the loop's own first backoff is at most 0.5 s):
    # Retry-After was honoured.
    assert seen[1]["time"] - seen[0]["time"] >= 1.5


EXIT_PROGRAM = """
import json, time
import agentops
from opentelemetry import trace

agentops.init(max_wait_time=60000)
tracer = trace.get_tracer("hostile")
for i in range(10):
    with tracer.start_as_current_span(f"span-{i}"):
        pass
print("END", time.time(), flush=True)
"""


def test_program_with_a_persistent_429_retry_after_30_exits_within_the_shutdown_budget(
        local_backend):
    local_backend.faults = Faults(otlp_status=429, otlp_retry_after=30)
    env = program_env(local_backend.api_url, local_backend.otlp_url)
    env.update(AGENTOPS_API_KEY=local_backend.api_key, AGENTOPS_SHUTDOWN_TIMEOUT="2",
               AGENTOPS_EXPORT_TIMEOUT="60")
    run, exit_seconds = run_program(EXIT_PROGRAM, timeout=40, **env)
    assert run.returncode == 0, run.stderr
    assert exit_seconds <= 2 + SLACK
    assert local_backend.otlp_requests, "the batch was sent at exit"
    assert "Session data not sent to backend" in run.stderr
    assert local_backend.spans == []


class Opaque:
    """Not a valid attribute value: OpenTelemetry warns and drops or stringifies it."""


ODD_ATTRIBUTES = {
    "huge": "x" * (1024 * 1024),
    "mapping": {"nested": {"deeper": 1}},
    "object": Opaque(),
    "bytes": b"\x00\x01binary",
    "bad_utf8": b"\xff\xfe",
    "none_in_list": ["a", None, "b"],
    "mixed_list": [1, "a", 2.5],
    "nested_list": [[1, 2], [3]],
    "nan": float("nan"),
    "huge_int": 10 ** 30,
    "none": None,
}


def test_spans_with_huge_or_invalid_attributes_do_not_stop_the_other_spans(local_backend):
    client = init_against(local_backend, export_timeout=10)
    from opentelemetry import trace

    tracer = trace.get_tracer("hostile")
    valid = []
    for index, (key, value) in enumerate(ODD_ATTRIBUTES.items()):
        with tracer.start_as_current_span(f"odd-{key}") as span:
            span.set_attribute(key, value)
            span.set_attribute("ok", index)
        valid.append(f"valid-{index}")
        with tracer.start_as_current_span(valid[-1]) as span:
            span.set_attribute("ok", index)
    stats = flushed_stats(client)
    assert local_backend.wait_for_spans(2 * len(ODD_ATTRIBUTES), timeout=10)
    names = local_backend.span_names
    assert set(valid) <= set(names)
    assert {f"odd-{key}" for key in ODD_ATTRIBUTES} <= set(names)
    assert stats["failures_by_cause"] == {}
    huge = next(s for s in local_backend.spans if s["name"] == "odd-huge")
    assert len(huge["attributes"]["huge"]) == 1024 * 1024
