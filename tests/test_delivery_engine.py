"""The delivery engine against receivers and token endpoints that misbehave: every answer is
read as a value, every deadline holds, nothing that could be delivered is lost. Real
sockets throughout: LocalBackend with its Faults, tests/hostile_server.py for answers
LocalBackend cannot script, subprocesses where the exit matters."""

from __future__ import annotations

import json
import math
import time

import jwt
import pytest
from opentelemetry import trace

import agentops
from agentops import vocabulary as v
from agentops.testing import Faults, LocalBackend
from tests import hostile_server as hostile
from tests.conftest import SLACK, clean_env, free_port, run_python


def init_against(backend: LocalBackend, **settings):
    settings.setdefault("exporter_endpoint", backend.otlp_url)
    agentops.init(api_key=backend.api_key, endpoint=backend.api_url, app_url=backend.app_url,
                  auto_start_session=False, max_wait_time=50, wait_for_auth=True,
                  auth_timeout=5, log_session_replay_url=False, **settings)
    return agentops.get_client()


def make_spans(count: int, prefix: str = "span", attributes: dict | None = None) -> list[str]:
    tracer = trace.get_tracer("engine")
    names = [f"{prefix}-{i}" for i in range(count)]
    for name in names:
        with tracer.start_as_current_span(name, attributes=attributes):
            pass
    return names


def timed_flush(client) -> float:
    started = time.monotonic()
    client.processor.force_flush(60_000)
    return time.monotonic() - started


# -- answers read as values -------------------------------------------------------------------

def test_partial_success_counts_the_rejected_spans_with_the_receivers_message(local_backend):
    local_backend.faults = Faults(otlp_partial_success=(5, "spans older than the retention window"))
    client = init_against(local_backend)
    make_spans(20)
    timed_flush(client)
    stats = client.stats.snapshot()
    assert stats["failures_by_cause"] == {v.REJECTED_BY_RECEIVER: 5}
    assert stats["spans_exported"] == 15
    detail = stats["causes"][v.REJECTED_BY_RECEIVER]["last_detail"]
    assert "5 of 20 spans" in detail and "retention window" in detail
    assert len(local_backend.spans) == 15
    assert agentops.diagnose_session()["exporter_healthy"] is False


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_and_is_unexpected_status_naming_the_location_host(
        local_backend, status):
    with hostile.HostileServer(hostile.answer_ok) as elsewhere:
        local_backend.faults = Faults(
            otlp_status=status, otlp_location=f"{elsewhere.url}/v1/traces?token=secret-in-query")
        client = init_against(local_backend)
        make_spans(4)
        timed_flush(client)
        stats = client.stats.snapshot()
        assert stats["failures_by_cause"] == {v.UNEXPECTED_STATUS: 4}
        detail = stats["causes"][v.UNEXPECTED_STATUS]["last_detail"]
        assert f"HTTP {status}" in detail and f"127.0.0.1:{elsewhere.port}" in detail
        assert "secret-in-query" not in detail and "not followed" in detail
        assert elsewhere.connections == [], "the token was sent to the redirect's host"
        diagnosis = agentops.diagnose_session()
        assert diagnosis["exporter_healthy"] is False
        assert diagnosis["receiver"]["state"] == v.FAILING


def test_a_dripping_answer_ends_at_the_batch_deadline_counted_timeout(local_backend):
    local_backend.faults = Faults(otlp_drip=0.5)
    client = init_against(local_backend, export_timeout=3)
    local_backend.reset()  # the receiver check above is answered before the drip starts
    local_backend.set_faults(otlp_drip=0.5)
    make_spans(3)
    seconds = timed_flush(client)
    assert seconds <= 3 + SLACK
    stats = client.stats.snapshot()
    assert stats["failures_by_cause"] == {v.TIMEOUT: 3}
    assert "still arriving" in stats["last_error"]
    assert agentops.diagnose_session()["exporter_healthy"] is False


def test_401_then_a_refresh_that_never_answers_is_bounded_by_the_batch_deadline(local_backend):
    client = init_against(local_backend, export_timeout=3)
    local_backend.faults = Faults(otlp_status=401, auth_hang=True)
    make_spans(2)
    seconds = timed_flush(client)
    local_backend.set_faults(auth_hang=False)
    assert seconds <= 3 + SLACK
    assert client.stats.snapshot()["failures_by_cause"] == {v.AUTH_REJECTED: 2}


def test_one_oversized_span_is_too_large_and_the_rest_of_its_batch_is_delivered(local_backend):
    local_backend.faults = Faults(otlp_max_bytes=4 * 1024 * 1024)
    client = init_against(local_backend, export_timeout=30, max_queue_size=200)
    tracer = trace.get_tracer("engine")
    names = []
    for i in range(100):
        name = "upload" if i == 50 else f"small-{i}"
        attributes = {"payload": "x" * (10 * 1024 * 1024)} if i == 50 else None
        with tracer.start_as_current_span(name, attributes=attributes):
            names.append(name)
    timed_flush(client)
    stats = client.stats.snapshot()
    assert stats["failures_by_cause"] == {v.TOO_LARGE: 1}
    assert stats["spans_exported"] == 99
    detail = stats["causes"][v.TOO_LARGE]["last_detail"]
    assert "'upload'" in detail and "bytes encoded" in detail and "HTTP 413" in detail
    assert sorted(local_backend.span_names) == sorted(n for n in names if n != "upload")


@pytest.mark.parametrize("fault", [
    hostile.large_body(0, encoding="gzip", body=b"this is not gzip"),
    hostile.truncated_body,
], ids=["broken-gzip", "cut-short"])
def test_a_2xx_is_acceptance_even_when_its_body_is_broken(local_backend, fault):
    with hostile.HostileServer(fault) as receiver:
        client = init_against(local_backend, exporter_endpoint=f"{receiver.url}/v1/traces",
                              export_timeout=3)
        make_spans(3)
        timed_flush(client)
        stats = client.stats.snapshot()
        assert stats["failures_by_cause"] == {} and stats["spans_exported"] == 3
        assert agentops.diagnose_session()["exporter_healthy"] is True


def server_error_with_a_huge_body(server, connection, sock) -> None:
    size = 100 * 1024 * 1024
    hostile._send(connection, sock, b"HTTP/1.1 500 Internal Server Error\r\n"
                  b"Content-Type: text/plain\r\nContent-Length: " + str(size).encode()
                  + b"\r\nConnection: close\r\n\r\nreceiver exploded ")
    sock.settimeout(5.0)
    while connection.bytes_sent < size and not server.stopping:
        hostile._send(connection, sock, hostile.CHUNK)


def test_an_error_body_is_read_at_most_64_kib(local_backend):
    with hostile.HostileServer(server_error_with_a_huge_body) as receiver:
        client = init_against(local_backend, exporter_endpoint=f"{receiver.url}/v1/traces",
                              export_timeout=5)
        make_spans(2)
        timed_flush(client)
        assert receiver.wait_for_connections(2, timeout=5)
        stats = client.stats.snapshot()
        assert stats["failures_by_cause"] == {v.SERVER_ERROR: 2}
        assert "receiver exploded" in stats["last_error"]
        time.sleep(0.5)
        # The client stopped reading after 64 KiB and closed: what the server could write
        # is that plus the sockets' buffers, far from the 100 MB announced.
        assert max(c.bytes_sent for c in receiver.connections) < 16 * 1024 * 1024


def test_429_with_retry_after_never_outlasts_export_timeout(local_backend):
    local_backend.faults = Faults(otlp_status=429, otlp_retry_after=1)
    client = init_against(local_backend, export_timeout=1.5)
    make_spans(2)
    seconds = timed_flush(client)
    assert seconds <= 1.5 + SLACK
    assert client.stats.snapshot()["failures_by_cause"] == {v.RATE_LIMITED: 2}


# -- the exit -----------------------------------------------------------------------------------

EXIT_PROGRAM = """
import json, sys, time
import agentops
from opentelemetry import trace

agentops.init(max_wait_time=60000, auto_start_session=False, wait_for_auth=True)
agentops.get_client().receiver.wait(5)
tracer = trace.get_tracer("exit")
for i in range(20):
    with tracer.start_as_current_span(f"span-{i}"):
        pass
print("END", time.time(), flush=True)
"""


def exit_env(backend: LocalBackend, **extra: str) -> dict[str, str]:
    return clean_env(AGENTOPS_API_KEY=backend.api_key, AGENTOPS_API_ENDPOINT=backend.api_url,
                     AGENTOPS_EXPORTER_ENDPOINT=extra.pop("exporter", backend.otlp_url),
                     AGENTOPS_APP_URL=backend.app_url, **extra)


def run_exit_program(env: dict[str, str], code: str = EXIT_PROGRAM, args=None):
    return run_python(code, env=env, timeout=60, args=args)


def test_503_503_200_at_exit_delivers_every_span_within_shutdown_timeout(local_backend):
    local_backend.faults = Faults(otlp_statuses=(503, 503))
    run = run_exit_program(exit_env(local_backend))
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(20, timeout=5)
    assert [r["status"] for r in local_backend.otlp_requests] == [503, 503, 200]
    assert run.exit_seconds() <= 2 + SLACK
    assert "not sent" not in run.stderr


def test_exit_with_the_receiver_refusing_connections_names_connection_error_and_attempts(
        local_backend):
    port = free_port()
    # Registered before the SDK's own exit hook, so it runs after it (atexit is LIFO).
    code = ("import atexit, json\n"
            "atexit.register(lambda: print(json.dumps(__import__('agentops')"
            ".diagnose_session()), flush=True))\n"
            + EXIT_PROGRAM.replace("agentops.get_client().receiver.wait(5)", ""))
    run = run_exit_program(exit_env(local_backend, exporter=f"http://127.0.0.1:{port}/v1/traces",
                                    NO_PROXY="127.0.0.1"), code)
    assert run.returncode == 0, run.stderr
    assert run.exit_seconds() <= 2 + SLACK
    stats = run.last_json()["export_stats"]
    assert stats["failures_by_cause"] == {v.CONNECTION_ERROR: 20}
    detail = stats["causes"][v.CONNECTION_ERROR]["last_detail"]
    assert "attempts over" in detail and "exit budget spent" in detail
    assert "(connection_error: 20)" in run.stderr


def test_python_dev_mode_reports_no_unclosed_socket_at_exit(local_backend):
    run = run_python("import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-X', "
                     "'dev', '-c', " + repr(EXIT_PROGRAM) + "]))", env=exit_env(local_backend),
                     timeout=60)
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(20, timeout=5)
    assert "ResourceWarning" not in run.stderr, run.stderr


# -- the token endpoint ---------------------------------------------------------------------------

def test_a_token_endpoint_429_once_is_retried_after_retry_after_and_everything_arrives(
        local_backend):
    local_backend.faults = Faults(auth_statuses=(429,), auth_retry_after=1)
    agentops.init(api_key=local_backend.api_key, endpoint=local_backend.api_url,
                  exporter_endpoint=local_backend.otlp_url, auto_start_session=False,
                  max_wait_time=50, auth_timeout=5, log_session_replay_url=False)
    time.sleep(0.3)
    waiting = agentops.diagnose_session()["auth"]
    assert (waiting["state"], waiting["reason"]) == (v.FAILED, v.RATE_LIMITED)
    names = make_spans(80)
    agentops.get_client().processor.force_flush(30_000)
    assert local_backend.wait_for_spans(80, timeout=5)
    assert sorted(local_backend.span_names) == sorted(names)
    requests = local_backend.auth_requests
    assert [r["status"] for r in requests] == [429, 200]
    assert requests[1]["time"] - requests[0]["time"] >= 0.95, "Retry-After was honoured"
    assert agentops.diagnose_session()["export_stats"]["failures_by_cause"] == {}


def test_a_failed_refresh_keeps_a_token_that_has_not_expired(local_backend):
    client = init_against(local_backend)
    local_backend.faults = Faults(otlp_statuses=(401,), auth_status=429)
    names = make_spans(67)
    timed_flush(client)
    assert local_backend.wait_for_spans(67, timeout=5)
    assert sorted(local_backend.span_names) == sorted(names)
    stats = client.stats.snapshot()
    assert stats["failures_by_cause"] == {}
    auth = agentops.diagnose_session()["auth"]
    assert auth["state"] == v.AUTHENTICATED and auth["last_refresh_error"].startswith("rate_limited")


def token_with_exp(backend: LocalBackend, exp) -> bytes:
    claims = {"project_id": backend.project_id, "api_key": backend.api_key, "exp": exp}
    token = jwt.encode(claims, "some-other-secret-of-32-bytes!!!", algorithm="HS256")
    return json.dumps({"token": token, "project_id": backend.project_id}).encode()


@pytest.mark.parametrize("exp", [int(time.time() * 1000) + 3_600_000, 1e308, math.nan],
                         ids=["milliseconds", "1e308", "nan"])
def test_an_implausible_exp_is_read_as_unknown_and_nothing_crashes(local_backend, exp):
    local_backend.faults = Faults(auth_body=token_with_exp(local_backend, exp))
    agentops.init(api_key=local_backend.api_key, endpoint=local_backend.api_url,
                  exporter_endpoint=local_backend.otlp_url, auto_start_session=True,
                  wait_for_auth=True, auth_timeout=3)
    diagnosis = agentops.diagnose_session()
    assert diagnosis["auth"]["state"] == v.AUTHENTICATED
    assert diagnosis["auth"]["token_expires_at"] is None
    assert not any("Diagnosis failed" in issue for issue in diagnosis["issues"])
    agentops.print_session_status(file=open("/dev/null", "w"))


def test_a_clock_ahead_of_the_tokens_exp_refreshes_at_most_once_per_receiver_401(
        local_backend):
    local_backend.token_ttl = -600  # by this machine's clock every token is 10 min old
    # The receiver's clock agrees with the issuer's.
    local_backend.faults = Faults(token_leeway=3600)
    client = init_against(local_backend)
    for round_number in range(21):
        make_spans(1, prefix=f"round{round_number}")
        client.processor.force_flush(10_000)
    assert local_backend.wait_for_spans(21, timeout=5)
    assert client.stats.snapshot()["failures_by_cause"] == {}
    assert local_backend.tokens_issued == 1
    assert agentops.diagnose_session()["auth"]["clock_skew_s"] >= 590


# -- the receiver check -----------------------------------------------------------------------------

def test_a_receiver_refusing_connections_is_named_two_seconds_after_start(local_backend):
    port = free_port()
    agentops.init(api_key=local_backend.api_key, endpoint=local_backend.api_url,
                  exporter_endpoint=f"http://127.0.0.1:{port}/v1/traces",
                  log_session_replay_url=False)
    time.sleep(2)
    diagnosis = agentops.diagnose_session()
    assert diagnosis["receiver"]["state"] == v.UNREACHABLE
    assert diagnosis["receiver"]["cause"] == v.CONNECTION_ERROR
    assert diagnosis["exporter_healthy"] is False
    assert any("is unreachable" in issue for issue in diagnosis["issues"])
    assert diagnosis["export_stats"]["total_attempts"] == 0, "before any batch was due"


def test_a_receiver_rejecting_the_token_turns_the_url_line_red(local_backend):
    local_backend.faults = Faults(otlp_status=401)
    code = ("import agentops, time\nagentops.init()\ntime.sleep(1.5)\n"
            "import json; print(json.dumps(agentops.diagnose_session()))\n")
    run = run_python(code, env=exit_env(local_backend), timeout=60)
    assert run.returncode == 0, run.stderr
    line = next(line for line in run.stderr.splitlines() if "Session Replay" in line)
    assert "\U0001f7e2" not in line and "[OK]" not in line
    assert "receiver is rejecting: auth_rejected, HTTP 401" in line
    diagnosis = run.last_json()
    assert diagnosis["receiver"]["state"] == v.REJECTING
    assert diagnosis["exporter_healthy"] is False


def test_a_healthy_receiver_is_accepting_with_its_latency(local_backend):
    init_against(local_backend)
    assert agentops.get_client().receiver.wait(5) == v.ACCEPTING
    receiver = agentops.diagnose_session()["receiver"]
    assert receiver["http_status"] == 200 and receiver["latency_ms"] is not None
    assert receiver["checked_at"] is not None
    assert len(local_backend.receiver_checks) == 1 and local_backend.otlp_requests == []


# -- headers ---------------------------------------------------------------------------------------

def test_the_exporter_sends_none_of_the_otel_exporter_headers_meant_for_other_vendors(
        local_backend):
    env = exit_env(local_backend,
                   OTEL_EXPORTER_OTLP_HEADERS="x-vendor-key=VENDOR-SECRET-1",
                   OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-other-vendor=VENDOR-SECRET-2",
                   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:9/v1/traces")
    run = run_exit_program(env)
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(20, timeout=5)
    for request in local_backend.otlp_requests + local_backend.receiver_checks:
        assert "x-vendor-key" not in request["header_names"]
        assert "x-other-vendor" not in request["header_names"]


# -- answers that try to outlast or outwit the loop ------------------------------------------------

def drip_head(status_line: bytes, dripped_status_line: bytes = b""):
    """Sends ``status_line`` at once, then ``dripped_status_line`` and the headers a byte
    every 0.5 s."""

    def fault(server, connection, sock) -> None:
        hostile._send(connection, sock, status_line)
        head = dripped_status_line + b"Content-Type: application/x-protobuf\r\nX-Padding: " + \
            b"p" * 60 + b"\r\nContent-Length: 0\r\n\r\n"
        for i in range(len(head)):
            if server.stopping or hostile._peer_closed(sock):
                connection.closed_by_client = True
                return
            hostile._send(connection, sock, head[i:i + 1])
            time.sleep(0.5)

    return fault


@pytest.mark.parametrize("what", ["headers", "status line"])
def test_a_receiver_dripping_its_status_line_or_headers_is_bounded_by_the_deadline(
        local_backend, what):
    status_line = b"HTTP/1.1 200 OK\r\n"
    fault = drip_head(status_line) if what == "headers" else drip_head(b"", status_line)

    with hostile.HostileServer(fault) as receiver:
        client = init_against(local_backend, exporter_endpoint=f"{receiver.url}/v1/traces",
                              export_timeout=3)
        make_spans(2)
        seconds = timed_flush(client)
        assert seconds <= 3 + SLACK
        stats = client.stats.snapshot()
        assert stats["failures_by_cause"] == {v.TIMEOUT: 2}


def interim_then_ok(server, connection, sock) -> None:
    hostile._send(connection, sock, b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n")
    time.sleep(0.1)
    hostile._send(connection, sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf"
                  b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def test_an_interim_103_before_the_answer_is_skipped_and_the_spans_count_as_delivered(
        local_backend):
    with hostile.HostileServer(interim_then_ok) as receiver:
        client = init_against(local_backend, exporter_endpoint=f"{receiver.url}/v1/traces")
        make_spans(3)
        timed_flush(client)
        stats = client.stats.snapshot()
        assert stats["failures_by_cause"] == {} and stats["spans_exported"] == 3


@pytest.mark.parametrize("retry_after", ["0", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_retry_after_of_zero_or_in_the_past_never_makes_a_tight_retry_loop(local_backend,
                                                                              retry_after):
    def rate_limited(server, connection, sock) -> None:
        hostile._send(connection, sock, b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: "
                      + retry_after.encode() + b"\r\nContent-Length: 0\r\n"
                      b"Connection: close\r\n\r\n")

    with hostile.HostileServer(rate_limited) as receiver:
        client = init_against(local_backend, exporter_endpoint=f"{receiver.url}/v1/traces",
                              export_timeout=3)
        before = len(receiver.connections)
        make_spans(1)
        timed_flush(client)
        attempts = len(receiver.connections) - before
        # Backoff 0.5 s, 1 s, ... shrunk to half the time left, at least 0.1 s: a handful.
        assert 2 <= attempts <= 12, attempts
        assert client.stats.snapshot()["failures_by_cause"] == {v.RATE_LIMITED: 1}


def test_a_retry_after_that_cannot_fit_says_so(local_backend):
    local_backend.faults = Faults(otlp_status=429, otlp_retry_after=600)
    client = init_against(local_backend, export_timeout=3)
    make_spans(1)
    timed_flush(client)
    assert "Retry-After 600 s does not fit" in client.stats.snapshot()["last_error"]


def test_a_token_endpoint_429_once_still_gives_a_green_url_line_and_no_data_loss_warning(
        local_backend):
    local_backend.faults = Faults(auth_statuses=(429,), auth_retry_after=1)
    run = run_python("import agentops, time\nagentops.init()\ntime.sleep(2.5)\n",
                     env=exit_env(local_backend), timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "Session Replay" in line]
    assert len(lines) == 1 and "(authenticated)" in lines[0], run.stderr
    assert "will not reach backend" not in run.stderr
    assert "retrying in the background" in run.stderr
