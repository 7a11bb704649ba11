"""The diagnosis rules, from constructed facts (real AuthSnapshot, ExportStats and Config
values), and the diagnosis dict of a real client: keys, JSON, no secret, never raising."""

from __future__ import annotations

import json
import time

import pytest
from opentelemetry import trace

import agentops
from agentops import diagnostics as d
from agentops import vocabulary as v
from agentops.auth import AuthSnapshot
from agentops.client import replace_current
from agentops.config import Config
from agentops.export.stats import ExportStats
from agentops.testing import Faults
from agentops.timestamps import iso
from tests.secret_scan import assert_no_leaks, secret_forms

KEY = "0123abcd-1111-2222-3333-444455556666"
API = "https://api.agentops.ai"
NOW = 1_800_000_000.0
DESIGN_KEYS = {"sdk_initialized", "client_initialized", "has_api_key", "has_auth_token",
               "active_traces", "exporter_healthy", "export_stats", "auth", "issues",
               "recommendations"}
EXPORT_KEYS = {"total_attempts", "successful_exports", "failed_exports", "success_rate",
               "spans_exported", "spans_failed", "failures_by_cause", "last_error",
               "last_error_at", "last_success_at"}
AUTH_KEYS = {"state", "reason", "http_status", "detail", "attempts", "authenticated_at",
             "token_expires_at", "project_id"}


def auth(state: str = v.AUTHENTICATED, reason: str | None = None, http_status: int | None = 200,
         detail: str | None = "token issued", attempts: int = 1, age: float = 3.0,
         retrying: bool = False, endpoint: str | None = f"{API}/v3/auth/token") -> AuthSnapshot:
    has_token = state == v.AUTHENTICATED
    return AuthSnapshot(
        state=state, reason=reason, http_status=http_status, detail=detail, attempts=attempts,
        since=iso(NOW - age), authenticated_at=iso(NOW - age) if has_token else None,
        token_expires_at=iso(NOW + 86400) if has_token else None,
        project_id="project-1" if has_token else None, has_token=has_token,
        retrying=retrying, endpoint=endpoint)


def failed(reason: str, http_status: int | None, detail: str, **kwargs) -> AuthSnapshot:
    return auth(v.FAILED, reason, http_status, detail, **kwargs)


def stats(*, exported: int = 0, failures: tuple = (), overflowed: int = 0,
          unsent_at_exit: int = 0) -> dict:
    """An ExportStats snapshot after ``exported`` delivered spans, ``failures`` batches of
    (cause, spans, detail), ``overflowed`` spans refused by a full queue and, last,
    ``unsent_at_exit`` spans still queued when the exit budget ran out."""
    s = ExportStats()
    for _ in range(exported + sum(f[1] for f in failures) + unsent_at_exit):
        s.span_finished(capacity=10**6)
    if exported:
        s.batch_finished(s.batch_started(exported), exported, [])
    for cause, spans, detail in failures:
        s.batch_finished(s.batch_started(spans), 0, [(cause, spans, detail)])
    for _ in range(overflowed):
        s.span_finished(capacity=0)
    if unsent_at_exit:
        s.close(v.SHUTDOWN)
    return s.snapshot()


def config(**arguments) -> Config:
    arguments.setdefault("api_key", KEY)
    return Config.resolve(environ={}, **arguments)


ACCEPTING = {"state": v.ACCEPTING, "cause": None, "http_status": 200, "detail": "HTTP 200",
             "checked_at": iso(NOW - 2), "latency_ms": 3.0}


def facts(auth_snapshot: AuthSnapshot | None = None, stats_snapshot: dict | None = None,
          cfg: Config | None = None, environ: dict | None = None,
          receiver: dict | None = None) -> d.Facts:
    return d.Facts(auth=auth_snapshot or auth(), stats=stats_snapshot or stats(exported=5),
                   config=cfg or config(), environ=environ or {}, now=NOW,
                   receiver=ACCEPTING if receiver is None else receiver)


def findings(f: d.Facts) -> list[tuple[str, str]]:
    issues, recommendations = d.evaluate(f)
    assert len(issues) == len(recommendations), "issues and recommendations are paired"
    return list(zip(issues, recommendations, strict=True))


def finding_about(f: d.Facts, word: str) -> tuple[str, str]:
    matches = [pair for pair in findings(f) if word in pair[0]]
    assert len(matches) == 1, (word, findings(f))
    return matches[0]


# -- healthy, not initialised, the quoted sentences ------------------------------------------

def test_healthy_session_has_no_issue_and_the_single_healthy_recommendation():
    assert d.evaluate(facts()) == ([], [d.HEALTHY])


def test_before_init_the_diagnosis_says_not_initialized_and_to_call_init():
    replace_current(None)
    diagnosis = agentops.diagnose_session()
    assert diagnosis["sdk_initialized"] is False
    assert diagnosis["issues"] == ["AgentOps SDK not initialized"]
    assert diagnosis["recommendations"] == ["Call agentops.init() to initialize the SDK"]
    assert DESIGN_KEYS <= set(diagnosis)


@pytest.mark.parametrize("reason,status", [(v.INVALID_KEY, 403), (v.SERVER_ERROR, 500),
                                           (v.CONNECTION_ERROR, None)])
def test_failed_authentication_starts_with_the_quoted_sentences(reason, status):
    issues, recommendations = d.evaluate(facts(failed(reason, status, "detail")))
    assert issues[0] == "Authentication failed - no JWT token available"
    assert recommendations[0] == "Check if API key is valid and network connectivity is working"
    assert len(issues) == 2 and reason in issues[1]


def test_authentication_in_progress_within_auth_timeout_is_not_an_issue():
    f = facts(auth(v.PENDING, None, None, None, attempts=0, age=1.0), stats())
    issues, recommendations = d.evaluate(f)
    assert issues == []
    assert len(recommendations) == 1 and "Authentication in progress" in recommendations[0]


def test_authentication_pending_longer_than_auth_timeout_is_reported_with_the_endpoint():
    f = facts(auth(v.PENDING, None, None, None, attempts=0, age=7.5), stats(),
              config(auth_timeout=5))
    issues, recommendations = d.evaluate(f)
    assert issues[0] == d.NO_TOKEN and recommendations[0] == d.CHECK_KEY
    issue, advice = finding_about(f, "pending")
    assert "7.50s" in issue and "auth_timeout 5s" in issue and "api.agentops.ai:443" in issue
    assert "raise auth_timeout" in advice


# -- one finding per authentication reason ---------------------------------------------------

def test_invalid_key_format_refused_locally_says_not_a_uuid_and_where_to_copy_it():
    cfg = config(api_key="not-a-uuid", fail_safe=True)
    f = facts(failed(v.INVALID_KEY_FORMAT, None, cfg.api_key_error, attempts=0, endpoint=None),
              stats(), cfg)
    issue, advice = finding_about(f, "invalid_key_format")
    assert "not a UUID" in issue
    assert "not a UUID" in advice and "project's settings" in advice and "AGENTOPS_API_KEY" in advice
    # the key's error is the auth finding; the config rule does not repeat it
    assert not any("invalid setting" in issue for issue, _ in findings(f))


def test_invalid_key_format_answered_by_the_api_names_status_and_host():
    f = facts(failed(v.INVALID_KEY_FORMAT, 400, "Invalid API key format"), stats())
    issue, advice = finding_about(f, "invalid_key_format")
    assert "HTTP 400" in issue and "api.agentops.ai:443" in issue
    assert "0123...6666" in issue and KEY not in issue
    assert "not a UUID" in advice and "dashboard" in advice


def test_invalid_key_says_the_backend_does_not_know_it_and_to_check_the_project():
    f = facts(failed(v.INVALID_KEY, 403, "Invalid API key", attempts=1, age=60), stats())
    issue, advice = finding_about(f, "invalid_key")
    assert "does not know this API key" in issue and "HTTP 403" in issue
    assert "api.agentops.ai:443" in issue and "since" in issue and "1 attempt" in issue
    assert "which project" in advice


def test_auth_server_error_names_status_and_says_retrying_in_background():
    f = facts(failed(v.SERVER_ERROR, 503, "Authentication failed", attempts=3, retrying=True),
              stats())
    issue, advice = finding_about(f, "server_error")
    assert "HTTP 503" in issue and "3 attempts" in issue and "retrying in the background" in issue
    assert "retries in the background" in advice and "service status" in advice


def test_bad_response_names_the_endpoint_and_suspects_a_proxy_or_wrong_url():
    f = facts(failed(v.BAD_RESPONSE, 200, "200 without a token in a JSON body (text/html)"),
              stats())
    issue, advice = finding_about(f, "bad_response")
    assert f"{API}/v3/auth/token" in issue and "text/html" in issue
    assert "captive portal" in advice and "AGENTOPS_API_ENDPOINT" in advice


def test_auth_connection_error_names_host_and_port_and_the_proxy_variables_set():
    environ = {"HTTPS_PROXY": "http://user:pr0xy-pa55@proxy:3128", "no_proxy": "localhost"}
    f = facts(failed(v.CONNECTION_ERROR, None, "could not connect to api.agentops.ai:443: "
                     "Connection refused", retrying=True), stats(), environ=environ)
    issue, advice = finding_about(f, "connection_error")
    assert "api.agentops.ai:443" in issue and "Connection refused" in issue
    assert "api.agentops.ai:443" in advice
    assert "HTTPS_PROXY" in advice and "no_proxy" in advice
    # the proxy in use is named, its credentials never
    assert "http://***@proxy:3128" in issue and "http://***@proxy:3128" in advice
    assert "pr0xy-pa55" not in issue + advice and "user" not in issue + advice


def test_connection_error_without_proxy_variables_does_not_mention_proxies():
    f = facts(failed(v.CONNECTION_ERROR, None, "could not connect"), stats())
    _, advice = finding_about(f, "connection_error")
    assert "PROXY" not in advice.upper()


def test_auth_timeout_names_the_timeout_used_and_the_endpoint():
    f = facts(failed(v.TIMEOUT, None, "timed out waiting for a response to "
                     "api.agentops.ai:443", retrying=True), stats())
    issue, advice = finding_about(f, "timeout")
    assert "within 10s" in issue and "api.agentops.ai:443" in issue
    assert "slow or unreachable" in advice


def test_auth_tls_error_points_at_the_ca_bundle_variables():
    f = facts(failed(v.TLS_ERROR, None, "TLS handshake to api.agentops.ai:443 failed: "
                     "certificate verify failed"), stats())
    issue, advice = finding_about(f, "tls_error")
    assert "certificate verify failed" in issue
    assert "certificate" in advice and "REQUESTS_CA_BUNDLE" in advice and "SSL_CERT_FILE" in advice


def test_tls_error_with_a_ca_bundle_set_asks_to_check_that_bundle():
    f = facts(failed(v.TLS_ERROR, None, "failed"), stats(),
              environ={"SSL_CERT_FILE": "/etc/corp.pem"})
    _, advice = finding_about(f, "tls_error")
    assert "SSL_CERT_FILE is set" in advice


def test_unexpected_status_names_status_and_endpoint():
    f = facts(failed(v.UNEXPECTED_STATUS, 302, "redirected to https://example.test/login"),
              stats())
    issue, advice = finding_about(f, "unexpected_status")
    assert "HTTP 302" in issue and "redirected to" in issue
    assert "AGENTOPS_API_ENDPOINT" in advice and "redirect" in advice


def test_every_auth_reason_has_a_rule():
    assert set(v.AUTH_REASONS) <= set(d.AUTH_FAILURE_RULES)


# -- no key, settings ------------------------------------------------------------------------

def test_no_api_key_says_data_stays_local_and_how_to_set_a_key():
    f = facts(auth(v.DISABLED, None, None, "no API key: spans stay local", attempts=0,
                   endpoint=None),
              stats(failures=[(v.NOT_AUTHENTICATED, 4, "no API key: spans kept local")]),
              config(api_key=None))
    issues, recommendations = d.evaluate(f)
    assert len(issues) == 1, issues
    assert "No API key" in issues[0] and "stays local" in issues[0]
    assert "4 spans kept local, not_authenticated" in issues[0]
    assert "AGENTOPS_API_KEY" in recommendations[0] and "api_key" in recommendations[0]


def test_settings_ignored_by_fail_safe_are_reported_by_name():
    cfg = config(fail_safe=True, max_queue_size="lots", export_timeout=-1)
    issue, advice = finding_about(facts(cfg=cfg), "invalid setting")
    assert "2 invalid settings ignored (fail_safe)" in issue
    assert "max_queue_size" in issue and "export_timeout" in issue
    assert "AGENTOPS_" in advice


# -- one finding per loss cause --------------------------------------------------------------

OTLP = "https://otlp.agentops.ai/v1/traces"


def lost_to(cause: str, spans: int, detail: str, **kwargs) -> d.Facts:
    return facts(stats_snapshot=stats(exported=2, failures=[(cause, spans, detail)]), **kwargs)


def test_not_authenticated_after_a_failed_auth_says_why_there_is_no_token():
    f = facts(failed(v.INVALID_KEY, 403, "Invalid API key"),
              stats(failures=[(v.NOT_AUTHENTICATED, 7, "no token")]))
    issue, advice = finding_about(f, "not_authenticated")
    assert "7 spans" in issue and "authentication failed (invalid_key)" in issue
    assert "authentication failure" in advice


def test_not_authenticated_while_pending_recommends_a_longer_auth_timeout():
    f = facts(auth(v.PENDING, None, None, None, attempts=0, age=9),
              stats(failures=[(v.NOT_AUTHENTICATED, 3, "pending")]), config(auth_timeout=2))
    issue, advice = finding_about(f, "not_authenticated")
    assert "still pending after auth_timeout 2s" in issue
    assert "auth_timeout (now 2s)" in advice and "wait_for_auth=True" in advice


def test_not_authenticated_before_a_late_token_says_it_arrived_after_auth_timeout():
    f = facts(auth(), stats(exported=3, failures=[(v.NOT_AUTHENTICATED, 2, "pending")]))
    issue, _ = finding_about(f, "not_authenticated")
    assert "before the token arrived" in issue


def test_auth_rejected_says_the_receiver_refuses_the_token():
    f = lost_to(v.AUTH_REJECTED, 5, "HTTP 401 from otlp.agentops.ai:443: Unauthorized")
    issue, advice = finding_about(f, "auth_rejected")
    assert "5 spans" in issue and "HTTP 401" in issue and "otlp.agentops.ai:443" in issue
    assert "refuses" in issue or "does not accept the token" in issue
    assert "same AgentOps deployment" in advice


def test_rate_limited_names_429_and_suggests_batching_less_often():
    issue, advice = finding_about(lost_to(v.RATE_LIMITED, 5, "HTTP 429 from otlp"),
                                  "rate_limited")
    assert "HTTP 429" in issue and "5 spans" in issue
    assert "max_wait_time" in advice


def test_export_server_error_names_status_and_export_timeout():
    issue, advice = finding_about(lost_to(v.SERVER_ERROR, 6, "HTTP 500 from otlp.agentops.ai:443"),
                                  "server_error")
    assert "HTTP 500" in issue and "6 spans" in issue and "since " in issue
    assert "export_timeout 10s" in advice and "service status" in advice


def test_too_large_names_the_span_and_says_to_put_less_data_in_it():
    detail = "span 'upload' is 10485812 bytes encoded, refused even alone (HTTP 413 from x:443)"
    issue, advice = finding_about(lost_to(v.TOO_LARGE, 1, detail), "too_large")
    assert "1 span refused as too large" in issue and "'upload'" in issue
    assert "less data" in advice


def test_rejected_by_receiver_quotes_the_receivers_message():
    detail = "5 of 20 spans rejected by otlp.agentops.ai:443 (partial_success): span too old"
    issue, advice = finding_about(lost_to(v.REJECTED_BY_RECEIVER, 5, detail),
                                  "rejected_by_receiver")
    assert "5 spans rejected" in issue and "span too old" in issue and "partial_success" in advice


def test_unexpected_status_says_redirects_are_not_followed():
    detail = "HTTP 301 from x:80 redirecting to otlp.agentops.ai:443 (not followed)"
    issue, advice = finding_about(lost_to(v.UNEXPECTED_STATUS, 2, detail), "unexpected_status")
    assert "HTTP 301" in issue and "not followed" in advice and "https://" in advice


@pytest.mark.parametrize("state, cause, status, words", [
    (v.REJECTING, v.AUTH_REJECTED, 401, "same AgentOps deployment"),
    (v.UNREACHABLE, v.CONNECTION_ERROR, None, "reachable from this machine"),
    (v.FAILING, v.CLIENT_ERROR, 404, "OTLP/HTTP traces URL"),
])
def test_a_receiver_check_that_failed_is_named_before_any_span_is_lost(state, cause, status,
                                                                       words):
    receiver = {"state": state, "cause": cause, "http_status": status, "detail": "evidence",
                "checked_at": iso(NOW - 1), "latency_ms": 2.0}
    issues, recommendations = d.evaluate(facts(stats_snapshot=stats(), receiver=receiver))
    assert len(issues) == 1 and f"is {state} ({cause}" in issues[0]
    assert "Session data will not reach backend" in issues[0] and words in recommendations[0]


def test_no_healthy_line_before_the_receiver_accepted():
    _, recommendations = d.evaluate(facts(stats_snapshot=stats(),
                                          receiver={"state": v.CHECKING}))
    assert recommendations != [d.HEALTHY] and "not confirmed" in recommendations[0]


def test_client_error_400_points_at_the_exporter_endpoint():
    _, advice = finding_about(lost_to(v.CLIENT_ERROR, 2, "HTTP 400 from otlp.agentops.ai:443"),
                              "client_error")
    assert OTLP in advice and "/v1/traces" in advice


def test_export_connection_error_names_the_receiver_and_proxies():
    f = lost_to(v.CONNECTION_ERROR, 3, "could not connect to otlp.agentops.ai:443: refused",
                environ={"NO_PROXY": "*"})
    issue, advice = finding_about(f, "connection_error")
    assert "otlp.agentops.ai:443" in issue and "3 spans" in issue
    assert "otlp.agentops.ai:443" in advice and "NO_PROXY" in advice


def test_export_timeout_names_export_timeout():
    f = lost_to(v.TIMEOUT, 3, "timed out", cfg=config(export_timeout=1.5))
    issue, advice = finding_about(f, "timeout")
    assert "export_timeout 1.5s" in issue and "otlp.agentops.ai:443" in issue
    assert "raise export_timeout (now 1.5s)" in advice


def test_export_tls_error_points_at_the_ca_bundle_variables():
    issue, advice = finding_about(lost_to(v.TLS_ERROR, 3, "TLS handshake failed"), "tls_error")
    assert "otlp.agentops.ai:443" in issue
    assert "REQUESTS_CA_BUNDLE" in advice


def test_queue_overflow_recommends_a_bigger_queue_or_more_frequent_flushes():
    f = facts(stats_snapshot=stats(exported=10, overflowed=40),
              cfg=config(max_queue_size=10, max_wait_time=100))
    issue, advice = finding_about(f, "queue_overflow")
    assert "40 spans" in issue and "max_queue_size 10" in issue
    assert "Raise max_queue_size (now 10)" in advice and "max_wait_time" in advice


def test_shutdown_recommends_a_longer_shutdown_timeout_or_ending_traces_earlier():
    f = facts(stats_snapshot=stats(unsent_at_exit=8), cfg=config(shutdown_timeout=1))
    issue, advice = finding_about(f, "shutdown")
    assert "8 spans" in issue and "shutdown_timeout 1s" in issue
    assert "Raise shutdown_timeout (now 1s)" in advice and "end_trace" in advice


def test_internal_error_asks_for_a_report_with_the_diagnosis():
    issue, advice = finding_about(
        lost_to(v.INTERNAL_ERROR, 2, "the OTLP exporter failed without an HTTP request"),
        "internal_error")
    assert "2 spans" in issue and "without an HTTP request" in issue
    assert "report it" in advice


def test_every_loss_cause_has_a_rule_and_one_finding_each():
    rule_names = [name for name, _ in d.RULES]
    assert set(v.LOSS_CAUSES) <= set(rule_names)
    f = facts(stats_snapshot=stats(failures=[(c, 1, f"detail {c}") for c in v.LOSS_CAUSES]))
    issues, recommendations = d.evaluate(f)
    assert len(issues) == len(v.LOSS_CAUSES) == len(recommendations)
    for cause, issue in zip(v.LOSS_CAUSES, issues, strict=True):
        assert "1 span " in issue and cause in issue


def test_evidence_of_an_earlier_cause_keeps_its_own_detail_and_times_when_another_came_last():
    f = facts(stats_snapshot=stats(failures=[(v.SERVER_ERROR, 4, "HTTP 500 from x"),
                                             (v.SERVER_ERROR, 4, "HTTP 503 from x"),
                                             (v.TIMEOUT, 1, "timed out")]))
    issue, _ = finding_about(f, "server_error")
    assert "8 spans" in issue and "2 failed batches" in issue
    assert "HTTP 503 from x" in issue and "since " in issue


def test_a_faulty_rule_becomes_an_issue_instead_of_an_exception():
    bad = dict(stats(exported=1), failures_by_cause={v.TIMEOUT: "many"})
    issues, _ = d.evaluate(facts(stats_snapshot=bad))
    assert any("Diagnosis rule timeout failed" in issue for issue in issues)


# -- the diagnosis of a real client ------------------------------------------------------------

def init_against(backend, **kwargs):
    kwargs.setdefault("api_key", backend.api_key)
    agentops.init(endpoint=backend.api_url, exporter_endpoint=backend.otlp_url,
                  app_url=backend.app_url, max_wait_time=50, auth_timeout=2,
                  auto_start_session=False, log_session_replay_url=False, **kwargs)
    return agentops.get_client()


def make_spans(n: int) -> None:
    tracer = trace.get_tracer("diagnostics-tests")
    for i in range(n):
        with tracer.start_as_current_span(f"span-{i}"):
            pass


def test_diagnosis_of_a_real_client_has_the_documented_keys_and_is_json(local_backend):
    client = init_against(local_backend, wait_for_auth=True)
    make_spans(3)
    client.processor.force_flush()
    diagnosis = agentops.diagnose_session()
    assert DESIGN_KEYS <= set(diagnosis)
    assert EXPORT_KEYS <= set(diagnosis["export_stats"])
    assert AUTH_KEYS <= set(diagnosis["auth"])
    assert json.loads(json.dumps(diagnosis)) == diagnosis
    assert diagnosis["exporter_healthy"] is True and diagnosis["issues"] == []
    assert diagnosis["recommendations"] == [d.HEALTHY]


def test_exporter_turns_unhealthy_when_the_latest_export_failed_and_healthy_again(local_backend):
    client = init_against(local_backend, wait_for_auth=True, export_timeout=1)
    local_backend.faults = Faults(otlp_status=500)
    make_spans(2)
    client.processor.force_flush()
    assert agentops.diagnose_session()["exporter_healthy"] is False
    local_backend.set_faults(otlp_status=None)
    make_spans(2)
    client.processor.force_flush()
    diagnosis = agentops.diagnose_session()
    assert diagnosis["exporter_healthy"] is True
    # the two lost spans remain an issue: they never arrived
    assert any("server_error" in issue for issue in diagnosis["issues"])


def test_no_secret_in_the_diagnosis_of_an_authenticated_client(local_backend):
    init_against(local_backend, wait_for_auth=True)
    text = json.dumps(agentops.diagnose_session())
    assert_no_leaks({"diagnosis": text}, secret_forms(keys=[local_backend.api_key]))
    assert local_backend.api_key[:4] in text  # the masked key is shown


def test_a_token_or_the_key_echoed_by_the_server_is_scrubbed_from_the_diagnosis(local_backend):
    token = local_backend.issue_token(local_backend.api_key)
    local_backend.faults = Faults(auth_status=403, auth_body=json.dumps(
        {"error": f"key {local_backend.api_key} rejected, token {token}"}))
    client = init_against(local_backend)
    client.tracker.wait(5)
    diagnosis = agentops.diagnose_session()
    text = json.dumps(diagnosis)
    assert diagnosis["auth"]["reason"] == v.INVALID_KEY
    assert_no_leaks({"diagnosis": text},
                    secret_forms(keys=[local_backend.api_key], tokens=[token]))
    assert "<api key>" in diagnosis["auth"]["detail"] and "<token>" in diagnosis["auth"]["detail"]


def test_a_key_refused_by_fail_safe_still_counts_as_present(local_backend):
    init_against(local_backend, api_key="not-a-uuid", fail_safe=True)
    diagnosis = agentops.diagnose_session()
    assert diagnosis["has_api_key"] is True
    assert diagnosis["auth"]["state"] == v.FAILED
    assert diagnosis["auth"]["reason"] == v.INVALID_KEY_FORMAT
    assert "not-a-uuid" not in json.dumps(diagnosis)


# -- secrets echoed by servers, and failures without an HTTP request ------------------------

def test_auth_failure_warning_never_logs_a_key_or_token_echoed_by_the_server(local_backend,
                                                                             caplog):
    token = local_backend.issue_token(local_backend.api_key)
    local_backend.faults = Faults(auth_status=403, auth_body=json.dumps(
        {"error": f"key {local_backend.api_key} rejected, token {token}"}))
    init_against(local_backend)
    deadline = time.monotonic() + 5
    while "Authentication failed" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)  # the warning follows the state change, on the auth thread
    logged = caplog.text
    assert "Authentication failed" in logged
    assert_no_leaks({"log": logged}, secret_forms(keys=[local_backend.api_key], tokens=[token]))


def test_internal_error_says_why_the_exporter_failed_without_a_request(local_backend):
    client = init_against(local_backend, wait_for_auth=True)
    trace.get_tracer("diagnostics-tests").start_span(12345).end()
    client.processor.force_flush()
    diagnosis = agentops.diagnose_session()
    assert diagnosis["export_stats"]["failures_by_cause"] == {v.INTERNAL_ERROR: 1}
    assert "encode" in diagnosis["export_stats"]["last_error"]
