"""Every authentication reason and every loss cause of the vocabulary, produced by a real
program (a subprocess using the SDK) against LocalBackend, and what its diagnosis says:
the auth state and reason, spans by cause, the token and exporter flags, and an issue with
a recommendation naming it."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentops import diagnostics as d
from agentops import vocabulary as v
from agentops.testing import Faults
from tests.conftest import clean_env, free_port, run_python

SPANS = 3

# Settings arrive as JSON in argv[1]; the keys below the first line are the scenario's
# steps, the rest go to agentops.init().
PROGRAM = """
import json, sys
import agentops
from opentelemetry import trace

settings = json.loads(sys.argv[1])
spans = settings.pop("spans")
wait_for_outcome = settings.pop("wait_for_outcome", None)
flush = settings.pop("flush", True)
shutdown = settings.pop("shutdown", None)
unencodable_span = settings.pop("unencodable_span", False)

agentops.init(max_wait_time=100, auto_start_session=False, log_session_replay_url=False,
              **settings)
client = agentops.get_client()
if wait_for_outcome:
    client.tracker.wait(wait_for_outcome)
tracer = trace.get_tracer("diagnosis-e2e")
for i in range(spans):
    with tracer.start_as_current_span(f"span-{i}"):
        pass
if unencodable_span:
    tracer.start_span(12345).end()  # a span name must be a string
if flush:
    client.processor.force_flush()
if shutdown is not None:
    client.shutdown(shutdown)
print(json.dumps(agentops.diagnose_session()))
"""


def diagnose(backend, *, spans: int = SPANS, env: dict[str, str] | None = None,
             timeout: float = 40, **settings) -> dict:
    settings = {"api_key": backend.api_key, "endpoint": backend.api_url,
                "exporter_endpoint": backend.otlp_url, "app_url": backend.app_url,
                "spans": spans, **settings}
    settings = {name: value for name, value in settings.items() if value is not None}
    run = run_python(PROGRAM, args=[json.dumps(settings)], env=clean_env(**(env or {})),
                     timeout=timeout)
    assert run.returncode == 0, run.stderr
    diagnosis = run.last_json()
    stats = diagnosis["export_stats"]
    assert stats["spans_made"] == stats["spans_exported"] + stats["spans_failed"] + \
        stats["spans_pending"], "every span is accounted for"
    return diagnosis


def finding(diagnosis: dict, word: str, *, issue_has: tuple = (),
            advice_has: tuple = ()) -> tuple[str, str]:
    """The one (issue, recommendation) whose issue names ``word``."""
    issues, advice = diagnosis["issues"], diagnosis["recommendations"]
    assert len(issues) == len(advice), diagnosis
    # The not_authenticated issue quotes the auth reason too: it is found by its own name.
    matches = [pair for pair in zip(issues, advice, strict=True) if word in pair[0] and (
        word == v.NOT_AUTHENTICATED or v.NOT_AUTHENTICATED not in pair[0])]
    assert len(matches) == 1, (word, issues)
    issue, recommendation = matches[0]
    for text in issue_has:
        assert text in issue, (text, issue)
    for text in advice_has:
        assert text in recommendation, (text, recommendation)
    return issue, recommendation


def assert_auth_failed(diagnosis: dict, reason: str, http_status: int | None) -> None:
    auth = diagnosis["auth"]
    assert (auth["state"], auth["reason"], auth["http_status"]) == (v.FAILED, reason, http_status)
    assert diagnosis["has_auth_token"] is False
    assert diagnosis["exporter_healthy"] is False
    assert diagnosis["issues"][0] == d.NO_TOKEN
    assert diagnosis["recommendations"][0] == d.CHECK_KEY
    assert diagnosis["export_stats"]["failures_by_cause"] == {v.NOT_AUTHENTICATED: SPANS}
    finding(diagnosis, v.NOT_AUTHENTICATED, issue_has=(f"{SPANS} spans", f"({reason})"),
            advice_has=("authentication failure",))


def assert_lost(diagnosis: dict, cause: str, spans: int = SPANS) -> None:
    assert diagnosis["auth"]["state"] == v.AUTHENTICATED
    assert diagnosis["has_auth_token"] is True
    assert diagnosis["export_stats"]["failures_by_cause"] == {cause: spans}
    assert diagnosis["exporter_healthy"] is False


class TLSServer:
    """Accepts TLS on 127.0.0.1 with a self-signed certificate the client cannot verify,
    or, without ``openssl`` to make one, answers plain text where TLS is expected; either
    way the client's handshake fails."""

    def __init__(self, cert: Path | None, key: Path | None) -> None:
        self.context = None
        if cert is not None and key is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # so that stop() is seen promptly
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                if self.context is not None:
                    self.context.wrap_socket(conn, server_side=True).close()
                else:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            finally:
                conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory) -> tuple[Path | None, Path | None]:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None, None
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture
def tls_server(self_signed) -> Iterator[TLSServer]:
    server = TLSServer(*self_signed)
    yield server
    server.stop()


# -- healthy ---------------------------------------------------------------------------------

def test_healthy_session_has_no_issue_and_every_span_arrives(local_backend):
    diagnosis = diagnose(local_backend)
    assert diagnosis["issues"] == []
    assert diagnosis["recommendations"] == [d.HEALTHY]
    assert diagnosis["has_auth_token"] is True and diagnosis["exporter_healthy"] is True
    assert diagnosis["auth"]["state"] == v.AUTHENTICATED
    assert diagnosis["export_stats"]["failures_by_cause"] == {}
    assert diagnosis["export_stats"]["spans_exported"] == SPANS
    assert local_backend.wait_for_spans(SPANS, timeout=5)


# -- authentication reasons ------------------------------------------------------------------

def test_non_uuid_key_under_fail_safe_is_refused_locally_as_invalid_key_format(local_backend):
    diagnosis = diagnose(local_backend, api_key="not-a-uuid", fail_safe=True)
    assert_auth_failed(diagnosis, v.INVALID_KEY_FORMAT, None)
    finding(diagnosis, v.INVALID_KEY_FORMAT, issue_has=("not a UUID",),
            advice_has=("not a UUID", "project's settings"))
    assert diagnosis["has_api_key"] is True
    assert local_backend.auth_requests == [] and local_backend.otlp_requests == []


def test_key_format_refused_by_the_api_with_400_is_invalid_key_format(local_backend):
    local_backend.faults = Faults(auth_status=400)
    diagnosis = diagnose(local_backend)
    assert_auth_failed(diagnosis, v.INVALID_KEY_FORMAT, 400)
    finding(diagnosis, v.INVALID_KEY_FORMAT,
            issue_has=("HTTP 400", f"127.0.0.1:{local_backend.port}"),
            advice_has=("not a UUID", "dashboard"))


def test_unknown_key_is_invalid_key_with_403(local_backend):
    diagnosis = diagnose(local_backend, api_key=str(uuid.uuid4()))
    assert_auth_failed(diagnosis, v.INVALID_KEY, 403)
    finding(diagnosis, v.INVALID_KEY, issue_has=("HTTP 403", "does not know this API key"),
            advice_has=("which project",))
    assert local_backend.otlp_requests == [], "nothing is sent without a token"


def test_api_answering_500_is_server_error_retried_in_the_background(local_backend):
    local_backend.faults = Faults(auth_status=500)
    diagnosis = diagnose(local_backend, auth_timeout=0.5)
    assert_auth_failed(diagnosis, v.SERVER_ERROR, 500)
    assert diagnosis["auth"]["retrying"] is True
    finding(diagnosis, v.SERVER_ERROR, issue_has=("HTTP 500", "retrying in the background"),
            advice_has=("retries in the background",))


def test_html_page_instead_of_a_token_is_bad_response_naming_the_endpoint(local_backend):
    local_backend.faults = Faults(
        auth_body="<html><body>Sign in to the guest network</body></html>",
        auth_content_type="text/html")
    diagnosis = diagnose(local_backend)
    assert_auth_failed(diagnosis, v.BAD_RESPONSE, 200)
    finding(diagnosis, v.BAD_RESPONSE,
            issue_has=(f"{local_backend.api_url}/v3/auth/token", "text/html"),
            advice_has=("captive portal",))


def test_closed_api_port_is_connection_error_naming_host_port_and_proxy_settings(local_backend):
    port = free_port()
    diagnosis = diagnose(local_backend, endpoint=f"http://127.0.0.1:{port}", auth_timeout=0.5,
                         env={"no_proxy": "127.0.0.1"})
    assert_auth_failed(diagnosis, v.CONNECTION_ERROR, None)
    finding(diagnosis, v.CONNECTION_ERROR, issue_has=(f"127.0.0.1:{port}",),
            advice_has=(f"127.0.0.1:{port}", "no_proxy"))


def test_api_that_never_answers_is_timeout_after_the_request_timeout(local_backend):
    local_backend.faults = Faults(auth_hang=True)
    diagnosis = diagnose(local_backend, auth_timeout=0.5, wait_for_outcome=20, timeout=60)
    assert_auth_failed(diagnosis, v.TIMEOUT, None)
    finding(diagnosis, v.TIMEOUT, issue_has=("within 10s", f"127.0.0.1:{local_backend.port}"),
            advice_has=("slow or unreachable",))


def test_api_still_silent_after_auth_timeout_is_reported_as_pending(local_backend):
    local_backend.faults = Faults(auth_hang=True)
    diagnosis = diagnose(local_backend, auth_timeout=0.3)
    auth = diagnosis["auth"]
    assert (auth["state"], auth["reason"]) == (v.PENDING, None)
    assert diagnosis["has_auth_token"] is False and diagnosis["exporter_healthy"] is False
    assert diagnosis["issues"][0] == d.NO_TOKEN
    assert diagnosis["export_stats"]["failures_by_cause"] == {v.NOT_AUTHENTICATED: SPANS}
    finding(diagnosis, "still pending after", issue_has=("auth_timeout 0.3s",),
            advice_has=("raise auth_timeout",))
    finding(diagnosis, v.NOT_AUTHENTICATED, issue_has=("still pending",),
            advice_has=("wait_for_auth=True",))


def test_certificate_the_client_cannot_verify_is_tls_error(local_backend, tls_server):
    diagnosis = diagnose(local_backend, endpoint=tls_server.url)
    assert_auth_failed(diagnosis, v.TLS_ERROR, None)
    finding(diagnosis, v.TLS_ERROR, issue_has=(tls_server.url.removeprefix("https://"),),
            advice_has=("certificate", "REQUESTS_CA_BUNDLE"))


@pytest.mark.parametrize("status", [302, 418])
def test_redirect_or_odd_status_from_the_api_is_unexpected_status(local_backend, status):
    local_backend.faults = Faults(auth_status=status)
    diagnosis = diagnose(local_backend)
    assert_auth_failed(diagnosis, v.UNEXPECTED_STATUS, status)
    finding(diagnosis, v.UNEXPECTED_STATUS, issue_has=(f"HTTP {status}",),
            advice_has=("AGENTOPS_API_ENDPOINT",))


def test_settings_ignored_by_fail_safe_are_an_issue(local_backend):
    diagnosis = diagnose(local_backend, fail_safe=True, max_queue_size="lots")
    finding(diagnosis, "invalid setting", issue_has=("max_queue_size",),
            advice_has=("Fix these settings",))
    assert diagnosis["export_stats"]["failures_by_cause"] == {}


# -- loss causes -----------------------------------------------------------------------------

def test_without_a_key_spans_stay_local_as_not_authenticated(local_backend):
    diagnosis = diagnose(local_backend, api_key=None)
    assert diagnosis["auth"]["state"] == v.DISABLED
    assert diagnosis["has_api_key"] is False and diagnosis["has_auth_token"] is False
    assert diagnosis["exporter_healthy"] is False
    assert diagnosis["export_stats"]["failures_by_cause"] == {v.NOT_AUTHENTICATED: SPANS}
    finding(diagnosis, v.NOT_AUTHENTICATED, issue_has=("No API key", f"{SPANS} spans kept local"),
            advice_has=("AGENTOPS_API_KEY", "api_key"))
    assert local_backend.auth_requests == [] and local_backend.otlp_requests == []


def test_receiver_refusing_the_token_is_auth_rejected(local_backend):
    local_backend.faults = Faults(otlp_status=401)
    diagnosis = diagnose(local_backend)
    assert_lost(diagnosis, v.AUTH_REJECTED)
    finding(diagnosis, v.AUTH_REJECTED, issue_has=("HTTP 401", f"{SPANS} spans"),
            advice_has=("same AgentOps deployment",))


def test_receiver_answering_429_is_rate_limited(local_backend):
    local_backend.faults = Faults(otlp_status=429)
    diagnosis = diagnose(local_backend, export_timeout=1)
    assert_lost(diagnosis, v.RATE_LIMITED)
    finding(diagnosis, v.RATE_LIMITED, issue_has=("HTTP 429",), advice_has=("max_wait_time",))


def test_receiver_answering_500_is_server_error(local_backend):
    local_backend.faults = Faults(otlp_status=500)
    diagnosis = diagnose(local_backend, export_timeout=1)
    assert_lost(diagnosis, v.SERVER_ERROR)
    finding(diagnosis, v.SERVER_ERROR, issue_has=("HTTP 500", "OTLP receiver"),
            advice_has=("export_timeout 1s",))


@pytest.mark.parametrize("status,cause,advice", [(413, v.TOO_LARGE, "less data"),
                                                 (400, v.CLIENT_ERROR, "/v1/traces")])
def test_receiver_refusing_the_request_is_client_error_or_too_large(local_backend, status,
                                                                    cause, advice):
    local_backend.faults = Faults(otlp_status=status)
    diagnosis = diagnose(local_backend)
    assert_lost(diagnosis, cause)
    finding(diagnosis, cause, issue_has=(f"HTTP {status}",), advice_has=(advice,))


def test_closed_receiver_port_is_connection_error(local_backend):
    port = free_port()
    diagnosis = diagnose(local_backend, exporter_endpoint=f"http://127.0.0.1:{port}/v1/traces",
                         export_timeout=1, env={"NO_PROXY": "127.0.0.1"})
    assert_lost(diagnosis, v.CONNECTION_ERROR)
    finding(diagnosis, v.CONNECTION_ERROR, issue_has=(f"127.0.0.1:{port}",),
            advice_has=(f"127.0.0.1:{port}", "NO_PROXY"))


def test_receiver_that_never_answers_is_timeout(local_backend):
    local_backend.faults = Faults(otlp_hang=True)
    diagnosis = diagnose(local_backend, export_timeout=1, shutdown_timeout=0.5)
    assert_lost(diagnosis, v.TIMEOUT)
    finding(diagnosis, v.TIMEOUT, issue_has=("export_timeout 1s",),
            advice_has=("raise export_timeout",))


def test_receiver_certificate_the_client_cannot_verify_is_tls_error(local_backend, tls_server):
    diagnosis = diagnose(local_backend, exporter_endpoint=f"{tls_server.url}/v1/traces",
                         export_timeout=1)
    assert_lost(diagnosis, v.TLS_ERROR)
    finding(diagnosis, v.TLS_ERROR, issue_has=(tls_server.url.removeprefix("https://"),),
            advice_has=("REQUESTS_CA_BUNDLE",))


def test_burst_beyond_max_queue_size_while_exports_wait_is_queue_overflow(local_backend):
    # Exports wait for the token while spans keep coming.
    local_backend.faults = Faults(auth_delay=1.0)
    diagnosis = diagnose(local_backend, spans=60, max_queue_size=10)
    stats = diagnosis["export_stats"]
    overflow = stats["failures_by_cause"].get(v.QUEUE_OVERFLOW, 0)
    assert overflow > 0 and set(stats["failures_by_cause"]) == {v.QUEUE_OVERFLOW}
    assert stats["spans_exported"] + overflow == 60
    assert diagnosis["has_auth_token"] is True
    assert diagnosis["exporter_healthy"] is True, "the exports themselves succeeded"
    finding(diagnosis, v.QUEUE_OVERFLOW, issue_has=(f"{overflow} spans", "max_queue_size 10"),
            advice_has=("Raise max_queue_size",))


def test_a_batch_in_flight_when_the_exit_budget_runs_out_keeps_the_cause_it_met(local_backend):
    local_backend.faults = Faults(otlp_hang=True)
    diagnosis = diagnose(local_backend, flush=False, shutdown=1, shutdown_timeout=1)
    assert diagnosis["client_initialized"] is False
    assert diagnosis["export_stats"]["failures_by_cause"] == {v.TIMEOUT: SPANS}
    assert "exit budget" in diagnosis["export_stats"]["causes"][v.TIMEOUT]["last_detail"]
    assert diagnosis["has_auth_token"] is True
    finding(diagnosis, v.TIMEOUT, issue_has=(f"{SPANS} spans",))


def test_span_the_encoder_cannot_send_loses_its_batch_as_internal_error(local_backend):
    diagnosis = diagnose(local_backend, unencodable_span=True)
    assert_lost(diagnosis, v.INTERNAL_ERROR, spans=SPANS + 1)
    finding(diagnosis, v.INTERNAL_ERROR, issue_has=(f"{SPANS + 1} spans",),
            advice_has=("report it",))
