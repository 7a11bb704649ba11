"""The connectivity test against LocalBackend: each failure users meet is named at the
right step with its cause, it finishes within its time limit against a server that never
answers, and it leaves the running session alone."""

from __future__ import annotations

import io
import json
import time
import uuid

import pytest

from agentops.config import Config
from agentops.helpers.connectivity.probe import Deadline
from agentops.helpers.connectivity.records import StepResult
from agentops.helpers.connectivity.render import render_json
from agentops.helpers.connectivity.steps import Context
from agentops.helpers.connectivity.table import STEPS, Requirement, Step, run_steps
from agentops.helpers.debug_session import (
    print_connectivity_test_results,
    test_session_connectivity,
)
from agentops.testing import Faults
from tests import hostile_server as hostile
from tests.conftest import SDK_ENV_PREFIXES, SLACK, clean_env, free_port, run_python
from tests.secret_scan import assert_no_leaks, secret_forms
from tests.streams import FailingStream

STEP_NAMES = ["configuration", "api_reachable", "token_exchange", "token_verified",
              "otlp_reachable", "span_export"]


@pytest.fixture(autouse=True)
def _no_sdk_settings_from_the_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith(SDK_ENV_PREFIXES):
            monkeypatch.delenv(name)


def run_test(backend, **overrides):
    arguments = {"api_key": backend.api_key, "endpoint": backend.api_url,
                 "exporter_endpoint": backend.otlp_url, "app_url": backend.app_url,
                 "timeout": 10}
    arguments.update(overrides)
    return test_session_connectivity(**arguments)


def statuses(results) -> dict[str, str]:
    return {step["name"]: step["status"] for step in results["steps"]}


def step(results, name):
    return next(s for s in results["steps"] if s["name"] == name)


def test_healthy_setup_passes_every_step_and_its_test_span_reaches_the_backend(local_backend):
    results = run_test(local_backend)

    assert results["test_passed"] is True
    assert [s["name"] for s in results["steps"]] == STEP_NAMES
    assert set(statuses(results).values()) == {"passed"}
    assert results["issues"] == []
    exported = step(results, "span_export")
    assert exported["http_status"] == 200
    assert results["session_url"] == (
        f"{local_backend.app_url}/sessions?trace_id={exported['trace_id']}")
    assert local_backend.wait_for_spans(1, timeout=5)
    assert local_backend.spans_for_trace(exported["trace_id"])[0]["name"] == \
        "agentops.connectivity_test"
    reachable = step(results, "api_reachable")
    assert [sub["name"] for sub in reachable["substeps"]] == ["dns", "tcp", "http"]
    assert all(isinstance(s["duration_ms"], float) for s in results["steps"])
    json.dumps(results)


@pytest.mark.parametrize("name, status", [("api_reachable", 404), ("otlp_reachable", 405)])
def test_a_pass_next_to_an_http_error_status_says_why_it_is_a_pass(local_backend, name,
                                                                    status):
    # LocalBackend answers GET like the real endpoints: 404 at the API base URL, 405 at the
    # OTLP path (it takes POST).
    results = run_test(local_backend)
    reachable = step(results, name)
    assert reachable["status"] == "passed" and reachable["http_status"] == status
    assert reachable["detail"] == (
        f"127.0.0.1:{local_backend.port} is reachable; the path answers {status} to GET, as "
        "expected (the next steps send the real POST requests)")
    shown = io.StringIO()
    print_connectivity_test_results(results, file=shown)
    assert f"the path answers {status} to GET, as expected" in shown.getvalue()


def test_invalid_key_fails_at_token_exchange_with_invalid_key_and_skips_what_needs_a_token(
        local_backend):
    results = run_test(local_backend, api_key=str(uuid.uuid4()))

    assert results["test_passed"] is False
    exchange = step(results, "token_exchange")
    assert (exchange["status"], exchange["reason"], exchange["http_status"]) == \
        ("failed", "invalid_key", 403)
    assert statuses(results) == {
        "configuration": "passed", "api_reachable": "passed", "token_exchange": "failed",
        "token_verified": "skipped", "otlp_reachable": "passed", "span_export": "skipped"}
    codes = [finding["code"] for finding in results["findings"]]
    assert codes == ["auth.no_token", "auth.invalid_key"]
    assert results["issues"][0] == "Authentication failed - no JWT token available"
    invalid = results["findings"][1]
    assert invalid["evidence"]["http_status"] == 403
    assert invalid["evidence"]["endpoint"] == f"127.0.0.1:{local_backend.port}"
    assert results["session_url"] is None
    assert local_backend.spans == []


def test_malformed_key_fails_at_configuration_saying_what_to_change_without_showing_it(
        local_backend):
    results = run_test(local_backend, api_key="my-secret-api-key-not-a-uuid")

    configuration = step(results, "configuration")
    assert configuration["status"] == "failed"
    assert "UUID" in configuration["detail"]
    assert "dashboard" in " ".join(results["recommendations"])
    assert step(results, "token_exchange")["status"] == "skipped"
    assert "my-secret-api-key-not-a-uuid" not in json.dumps(results)
    assert local_backend.auth_requests == []


def test_missing_key_fails_at_configuration_but_still_checks_both_endpoints(local_backend):
    results = run_test(local_backend, api_key=None)

    assert step(results, "configuration")["status"] == "failed"
    assert "AGENTOPS_API_KEY" in step(results, "configuration")["detail"]
    assert step(results, "api_reachable")["status"] == "passed"
    assert step(results, "otlp_reachable")["status"] == "passed"
    assert step(results, "token_exchange")["status"] == "skipped"


def test_api_down_fails_at_api_reachable_with_connection_error_and_skips_the_auth_steps(
        local_backend):
    results = run_test(local_backend, endpoint=f"http://127.0.0.1:{free_port()}")

    reachable = step(results, "api_reachable")
    assert (reachable["status"], reachable["reason"]) == ("failed", "connection_error")
    assert reachable["substeps"][-1]["name"] == "tcp"
    for name in ("token_exchange", "token_verified", "span_export"):
        assert step(results, name)["status"] == "skipped"
        assert step(results, name)["detail"].startswith("not run:")
    assert results["test_passed"] is False


def test_receiver_down_fails_at_the_otlp_step(local_backend):
    results = run_test(local_backend,
                       exporter_endpoint=f"http://127.0.0.1:{free_port()}/v1/traces")

    otlp = step(results, "otlp_reachable")
    assert (otlp["status"], otlp["reason"]) == ("failed", "connection_error")
    assert step(results, "token_verified")["status"] == "passed"
    assert step(results, "span_export")["status"] == "skipped"
    assert results["session_url"] is None


def test_receiver_rejecting_the_token_is_reported_as_auth_rejected(local_backend):
    local_backend.faults = Faults(otlp_status=401)

    results = run_test(local_backend)

    exported = step(results, "span_export")
    assert (exported["status"], exported["reason"], exported["http_status"]) == \
        ("failed", "auth_rejected", 401)
    assert results["session_url"] is None


@pytest.mark.parametrize("faults, reason, advice", [
    (Faults(otlp_status=308, otlp_location="https://elsewhere.example/v1/traces"),
     "unexpected_status", "set exporter_endpoint to the final URL"),
    (Faults(otlp_partial_success=(1, "too old")), "rejected_by_receiver", "partial_success"),
    (Faults(otlp_max_bytes=10), "too_large", "request size limit"),
])
def test_the_receivers_new_answers_get_their_own_advice(local_backend, faults, reason, advice):
    local_backend.faults = faults

    results = run_test(local_backend)

    exported = step(results, "span_export")
    assert (exported["status"], exported["reason"]) == ("failed", reason)
    assert any(advice in line for line in results["recommendations"]), results["recommendations"]
    assert not any("internal error" in line for line in results["recommendations"])


TIME_LIMIT = 3.0
"""The connectivity test's ``timeout``: it finishes within it whatever the servers do."""


@pytest.mark.parametrize("silent, failing", [
    (Faults(otlp_hang=True), "span_export"),
    (Faults(auth_hang=True), "token_exchange"),
], ids=["receiver", "token-endpoint"])
def test_a_server_that_never_answers_fails_its_step_with_timeout_within_the_time_limit(
        local_backend, silent, failing):
    local_backend.faults = silent

    started = time.monotonic()
    results = run_test(local_backend, timeout=TIME_LIMIT)
    elapsed = time.monotonic() - started

    assert elapsed < TIME_LIMIT + SLACK
    failed = step(results, failing)
    assert (failed["status"], failed["reason"]) == ("failed", "timeout")
    assert results["test_passed"] is False
    if failing == "token_exchange":
        assert step(results, "span_export")["status"] == "skipped"


def test_proxy_in_the_environment_is_what_gets_checked_with_its_credentials_masked(
        local_backend, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://bob:hunter2@127.0.0.1:{free_port()}")

    results = run_test(local_backend)

    reachable = step(results, "api_reachable")
    assert (reachable["status"], reachable["reason"]) == ("failed", "connection_error")
    assert "proxy" in reachable["detail"]
    assert reachable["proxy"].startswith("http://***@127.0.0.1:")
    assert "hunter2" not in json.dumps(results)


def test_unset_arguments_come_from_the_agentops_environment_variables(local_backend,
                                                                       monkeypatch):
    monkeypatch.setenv("AGENTOPS_API_KEY", local_backend.api_key)
    monkeypatch.setenv("AGENTOPS_API_ENDPOINT", local_backend.api_url)
    monkeypatch.setenv("AGENTOPS_EXPORTER_ENDPOINT", local_backend.otlp_url)

    results = test_session_connectivity(timeout=10)

    assert results["test_passed"] is True
    assert results["sources"]["api_key"] == "env:AGENTOPS_API_KEY"
    assert results["endpoints"]["api"] == local_backend.api_url


def test_settings_are_read_from_the_environ_given_instead_of_the_process_environment(
        local_backend, monkeypatch):
    monkeypatch.setenv("AGENTOPS_EXPORT_TIMEOUT", "abc")

    clean = run_test(local_backend, environ={})
    refused = run_test(local_backend, environ={"AGENTOPS_SHUTDOWN_TIMEOUT": "-1"})

    assert clean["test_passed"] is True and clean["config_errors"] == {}
    assert set(refused["config_errors"]) == {"shutdown_timeout"}
    assert "AGENTOPS_SHUTDOWN_TIMEOUT" in step(refused, "configuration")["detail"]


def test_the_test_span_is_sent_even_where_otel_sdk_disabled_turns_tracers_off(
        local_backend, monkeypatch):
    # Whoever asks "why does no data arrive" may have OTEL_SDK_DISABLED set: the test of
    # the delivery path must still run (it crashed as an internal error).
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")

    results = run_test(local_backend)

    assert results["test_passed"] is True, results["issues"]
    assert local_backend.wait_for_spans(1, timeout=5)
    assert local_backend.span_names == ["agentops.connectivity_test"]


def test_results_show_the_key_masked_and_never_a_token(local_backend):
    results = run_test(local_backend)
    text = json.dumps(results)
    printed = io.StringIO()
    print_connectivity_test_results(results, file=printed)

    assert_no_leaks({"results": text, "printed": printed.getvalue()},
                    secret_forms(keys=[local_backend.api_key]))
    assert results["config"]["api_key"] == f"{local_backend.api_key[:4]}...{local_backend.api_key[-4:]}"


def test_report_marks_each_step_and_falls_back_to_ascii_where_symbols_cannot_be_encoded(
        local_backend):
    results = run_test(local_backend, api_key=str(uuid.uuid4()))
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    ascii_only = io.TextIOWrapper(io.BytesIO(), encoding="ascii")

    print_connectivity_test_results(results, file=utf8)
    print_connectivity_test_results(results, file=ascii_only)

    utf8.seek(0)
    fancy = utf8.read()
    assert "\u2713 1. Configuration" in fancy
    assert "\u2717 3. Token exchange" in fancy
    assert "\u2013 4. Token verified" in fancy
    ascii_only.seek(0)
    plain = ascii_only.read()
    assert "[OK] 1. Configuration" in plain and "[NO] 3. Token exchange" in plain
    assert "[--] 6. Test span exported" in plain
    assert "invalid_key (HTTP 403)" in plain
    assert "Issues Found:" in plain and "Recommendations:" in plain


def test_printing_never_raises_on_a_malformed_result_or_a_failing_stream():
    malformed = io.StringIO()
    print_connectivity_test_results({"steps": [None, 3]}, file=malformed)
    assert malformed.getvalue().startswith(
        "AgentOps Connectivity Test: could not render the result (AttributeError: ")

    failing = FailingStream()
    print_connectivity_test_results({}, file=failing)
    assert len(failing.attempts) == 1 and "Result: FAILED" in failing.attempts[0]

    closed = io.StringIO()
    closed.close()
    print_connectivity_test_results({}, file=closed)


RUNNING_CLIENT = """
import json
import agentops
from opentelemetry import trace
from agentops.helpers.debug_session import test_session_connectivity

agentops.init(wait_for_auth=True, max_wait_time=100)
client = agentops.get_client()
client.receiver.wait(5)  # the client's own receiver check is not the test's doing
tracer = trace.get_tracer("user")
with tracer.start_as_current_span("before-test"):
    pass
client.processor.force_flush(5000)
provider = trace.get_tracer_provider()
stats_before = client.stats.snapshot()
auth_before = client.tracker.snapshot().as_dict()

# Called while the session trace is the current context, as users do mid-session.
results = test_session_connectivity(timeout=10)

same = {
    "client": agentops.get_client() is client,
    "provider": trace.get_tracer_provider() is provider,
    "stats": client.stats.snapshot() == stats_before,
    "auth": client.tracker.snapshot().as_dict() == auth_before,
}
test_trace = next(s["trace_id"] for s in results["steps"] if s["name"] == "span_export")
with tracer.start_as_current_span("after-test"):
    pass
print(json.dumps({"same": same, "passed": results["test_passed"], "test_trace": test_trace,
                  "session_trace": client.traces[0].trace_id}))
"""


def test_running_session_is_not_disturbed_and_still_delivers_afterwards(local_backend):
    env = clean_env(AGENTOPS_API_KEY=local_backend.api_key,
                    AGENTOPS_API_ENDPOINT=local_backend.api_url,
                    AGENTOPS_EXPORTER_ENDPOINT=local_backend.otlp_url)

    run = run_python(RUNNING_CLIENT, env=env, timeout=60)

    assert run.returncode == 0, run.stderr
    outcome = run.last_json()
    assert outcome["passed"] is True
    assert outcome["same"] == {"client": True, "provider": True, "stats": True, "auth": True}
    assert outcome["test_trace"] != outcome["session_trace"]
    test_spans = local_backend.spans_for_trace(outcome["test_trace"])
    assert [s["name"] for s in test_spans] == ["agentops.connectivity_test"]
    assert test_spans[0]["resource"]["service.name"] == "agentops-connectivity-test"
    assert local_backend.wait_for_spans(4, timeout=5)
    assert {"before-test", "after-test", "session.session"} <= set(local_backend.span_names)


# -- the table of steps, its runner and its renderer --------------------------------------


def test_the_results_steps_are_the_tables_rows_in_order_with_the_tables_titles(local_backend):
    results = run_test(local_backend, api_key=str(uuid.uuid4()))

    assert [(s["name"], s["title"]) for s in results["steps"]] == \
        [(row.name, row.title) for row in STEPS]
    assert [row.name for row in STEPS] == STEP_NAMES


def test_the_runner_skips_a_step_whose_requirement_is_unmet_saying_why_and_stamps_each_result():
    seen: list[str] = []

    def passes(ctx):
        seen.append("first")
        return StepResult.passed("fine", answer=42)

    def fails(ctx):
        seen.append("second")
        return StepResult.failed("timeout", "too slow")

    def never(ctx):
        seen.append("never")
        return StepResult.passed("should not run")

    table = (
        Step("first", "First step", passes, uses_network=False),
        Step("second", "Second step", fails, (
            Requirement(lambda ctx: ctx.passed("first"), "first failed", after="first"),)),
        Step("third", "Third step", never, (
            Requirement(lambda ctx: ctx.passed("second"), "second failed", after="second"),)),
        Step("fourth", "Fourth step", never, (
            Requirement(lambda ctx: ctx.passed("third"), "third failed", after="third"),)),
    )
    ctx = Context(Config.resolve({}, check_all=True), {}, Deadline(10))

    run_steps(ctx, table)

    assert seen == ["first", "second"]
    shapes = [result.as_dict() for result in ctx.results]
    assert shapes[0]["name"] == "first" and shapes[0]["title"] == "First step"
    assert shapes[0]["status"] == "passed" and shapes[0]["answer"] == 42
    assert isinstance(shapes[0]["duration_ms"], float) and "reason" not in shapes[0]
    assert (shapes[1]["status"], shapes[1]["reason"], shapes[1]["detail"]) == \
        ("failed", "timeout", "too slow")
    assert shapes[2] == {"name": "third", "title": "Third step", "status": "skipped",
                         "duration_ms": 0.0, "detail": "not run: second failed"}
    assert shapes[3]["detail"] == 'not run: needs "Third step", which did not run'


def test_only_network_steps_are_skipped_once_the_time_limit_has_run_out():
    table = (Step("network", "Network", lambda ctx: StepResult.passed("sent")),
             Step("local", "Local", lambda ctx: StepResult.passed("read"), uses_network=False))
    ctx = Context(Config.resolve({}, check_all=True), {}, Deadline(0.0))

    run_steps(ctx, table)

    assert [(r.name, r.status) for r in ctx.results] == [("network", "skipped"),
                                                         ("local", "passed")]
    assert ctx.results[0].detail == "not run: the 0s time limit ran out during earlier steps"
    assert ctx.out_of_time == ["network"]


def test_a_time_limit_spent_before_the_network_steps_says_so_and_blames_nothing_else(
        local_backend):
    results = run_test(local_backend, timeout=1e-6)

    assert statuses(results) == {
        "configuration": "passed", "api_reachable": "skipped", "token_exchange": "skipped",
        "token_verified": "skipped", "otlp_reachable": "skipped", "span_export": "skipped"}
    assert step(results, "api_reachable")["detail"] == \
        "not run: the 1e-06s time limit ran out during earlier steps"
    assert step(results, "token_exchange")["detail"] == \
        'not run: needs "API endpoint reachable", which did not run'
    assert step(results, "token_verified")["detail"] == \
        'not run: needs "Token exchange", which did not run'
    # A key was given: that nothing authenticated is no "no API key" finding.
    assert [f["code"] for f in results["findings"]] == ["connectivity.out_of_time"]
    assert results["issues"] == [
        "The connectivity test ran out of time (1e-06s) before step 2 (API endpoint reachable)"]
    assert results["test_passed"] is False
    assert local_backend.auth_requests == []


@pytest.mark.parametrize("timeout", ["soon", "15", 0, -1, float("nan"), float("inf"), True])
def test_a_timeout_that_is_not_a_positive_number_is_refused_saying_what_to_pass(timeout):
    results = test_session_connectivity(api_key=str(uuid.uuid4()), timeout=timeout)

    assert results["test_passed"] is False and results["steps"] == []
    assert [f["code"] for f in results["findings"]] == ["connectivity.invalid_timeout"]
    assert results["issues"] == [
        "The connectivity test did not run: timeout must be a positive number of seconds, "
        f"got {timeout!r}"]
    assert results["recommendations"] == [
        "Pass timeout as a positive number of seconds (the default is 15)"]
    json.dumps(results, allow_nan=False)


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    context = hostile.self_signed_context(directory)
    if context is None:
        pytest.skip("no way to make a self-signed certificate: neither the cryptography "
                    "package nor the openssl command is available")
    return context, directory / "cert.pem"


@pytest.mark.parametrize("trusted", [False, True])
def test_the_tls_step_trusts_exactly_the_ca_bundle_requests_would(tls_certificate, monkeypatch,
                                                                   trusted):
    context, certificate = tls_certificate
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    if trusted:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))

    with hostile.HostileServer(hostile.answer_ok, tls_context=context) as server:
        results = test_session_connectivity(
            api_key=str(uuid.uuid4()), endpoint=server.url, timeout=10,
            exporter_endpoint=f"http://127.0.0.1:{free_port()}/v1/traces")

    reachable = step(results, "api_reachable")
    subs = {sub["name"]: sub for sub in reachable["substeps"]}
    if trusted:
        assert reachable["status"] == "passed" and reachable["http_status"] == 200
        assert list(subs) == ["dns", "tcp", "tls", "http"]
        assert subs["tls"]["detail"].startswith("TLSv1")
    else:
        assert (reachable["status"], reachable["reason"]) == ("failed", "tls_error")
        assert list(subs) == ["dns", "tcp", "tls"] and subs["tls"]["status"] == "failed"
        assert reachable["detail"].startswith("TLS handshake with 127.0.0.1 failed: ")
        assert "certificate" in reachable["detail"]


def test_the_report_of_a_result_read_back_from_json_is_the_same_report(local_backend):
    results = run_test(local_backend, api_key=str(uuid.uuid4()))
    direct, reread = io.StringIO(), io.StringIO()

    print_connectivity_test_results(results, file=direct)
    print_connectivity_test_results(json.loads(render_json(results)), file=reread)

    assert reread.getvalue() == direct.getvalue()
    assert "\u2717 3. Token exchange" in direct.getvalue()


def test_both_renderings_redact_what_they_are_given():
    token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJwcm9qZWN0X2lkIjoicCJ9.c2lnbmF0dXJl"
    results = {"steps": [{"name": "token_exchange", "title": "Token exchange",
                          "status": "failed", "detail": f"the API echoed {token}"}],
               "issues": [f"proxy http://bob:hunter2@proxy.example:3128 refused {token}"]}
    text = io.StringIO()

    print_connectivity_test_results(results, file=text)
    shown = render_json(results)

    assert_no_leaks({"text": text.getvalue(), "json": shown},
                    secret_forms(tokens=[token], others={"hunter2": "proxy password"}))
    for output in (text.getvalue(), shown):
        assert "the API echoed" in output and "proxy.example:3128" in output
    assert json.loads(shown)["steps"][0]["status"] == "failed"
