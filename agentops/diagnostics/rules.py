"""The rules: each looks at ``Facts`` and returns None or a ``Finding``.

A rule first gathers its evidence (plain values), then renders its two sentences from that
evidence only, so what a finding says is always backed by what it carries. Findings come
out in the order of ``RULES``: the sentences support documentation quotes first, then
authentication, settings, tracing, the receiver, and losses in the order of the vocabulary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agentops import vocabulary as v
from agentops.diagnostics.facts import CA_VARIABLES, PROXY_VARIABLES, Facts
from agentops.diagnostics.findings import ERROR, WARNING, Finding, plural
from agentops.http import endpoint_label, proxy_for

logger = logging.getLogger("agentops")

NO_TOKEN = "Authentication failed - no JWT token available"
CHECK_KEY = "Check if API key is valid and network connectivity is working"
HEALTHY = "Session appears healthy - data should be reaching backend"
DASHBOARD_KEY_HINT = ("copy it again from your project's settings in the AgentOps dashboard "
                      "and set AGENTOPS_API_KEY or pass api_key to agentops.init()")

Rule = Callable[[Facts], Finding | None]


# -- shared wording ----------------------------------------------------------------------

def _seconds(value: float) -> str:
    return f"{value:g}s"


def _clock(iso_time: str | None) -> str:
    """'HH:MM:SS UTC' from an ISO 8601 UTC timestamp."""
    return f"{iso_time[11:19]} UTC" if iso_time and len(iso_time) >= 19 else "an unknown time"


def _source(source: str | None) -> str:
    if source == "argument":
        return "passed to agentops.init()"
    if source and source.startswith("env:"):
        return f"from {source[4:]}"
    return "the default"


def _proxy_hint(e: dict[str, Any], where: str) -> str:
    # Variable names only: a proxy URL may carry credentials.
    names = e.get("proxy_variables") or []
    if not names:
        return ""
    return (f"; proxy settings are in the environment ({', '.join(names)}): check that the "
            f"proxy reaches {where} or that NO_PROXY/no_proxy exempts it")


def _ca_hint(e: dict[str, Any]) -> str:
    if e.get("ca_bundle_missing"):
        return (f"{e['ca_bundle_variable']} names {e['ca_bundle_missing']}, which does not "
                "exist: point it at an existing CA bundle file, or unset it to use the "
                "default trust store")
    names = e.get("ca_variables") or []
    if names:
        return (f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} set: check that "
                "the bundle contains the CA that signed the server's certificate")
    return ("if a proxy or firewall inspects TLS, point REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) "
            "at a bundle with its CA certificate")


def _network_evidence(facts: Facts, url: str) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "endpoint": endpoint_label(url),
        "proxy_variables": facts.set_variables(PROXY_VARIABLES),
        "ca_variables": facts.set_variables(CA_VARIABLES),
    }
    proxy = proxy_for(url, facts.environ)
    if proxy:
        evidence["proxy"] = proxy
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        path = facts.environ.get(name)
        if path:
            import os

            if not os.path.exists(path):
                evidence["ca_bundle_variable"], evidence["ca_bundle_missing"] = name, path
            break
    return evidence


# -- authentication ------------------------------------------------------------------------

def _auth_evidence(facts: Facts) -> dict[str, Any]:
    a, c = facts.auth, facts.config
    evidence = _network_evidence(facts, a.endpoint or c.endpoint)
    evidence.update(
        state=a.state, reason=a.reason, http_status=a.http_status, detail=a.detail,
        token_url=a.endpoint or c.endpoint, api_endpoint=c.endpoint,
        api_key=c.api_key_masked, api_key_source=c.sources.get("api_key"),
        attempts=a.attempts, retrying=a.retrying, since=a.since,
        request_timeout=a.request_timeout)
    return evidence


def _auth_tail(e: dict[str, Any]) -> str:
    retrying = ", retrying in the background" if e["retrying"] else ""
    return f"{plural(e['attempts'], 'attempt')}{retrying}, since {_clock(e['since'])}"


def _key(e: dict[str, Any]) -> str:
    source = e.get("api_key_source") or ""
    origin = "passed as api_key" if source == "argument" else (
        f"from {source[4:]}" if source.startswith("env:") else "")
    masked = e.get("api_key")
    return " ".join(part for part in (f"key {masked}" if masked else "", origin) if part)


AuthWords = Callable[[dict[str, Any]], tuple[str, str]]


def _invalid_key_format(e: dict[str, Any]) -> tuple[str, str]:
    if e["http_status"] is None:
        issue = (f"API key refused before sending (invalid_key_format): it is not a UUID "
                 f"({e['detail'] or 'invalid API key'}); nothing is sent to the backend")
    else:
        issue = (f"The AgentOps API at {e['endpoint']} rejected the API key format "
                 f"(invalid_key_format, HTTP {e['http_status']}: {e['detail']}; {_key(e)})")
    return issue, f"The key is not a UUID: {DASHBOARD_KEY_HINT}"


def _invalid_key(e: dict[str, Any]) -> tuple[str, str]:
    return (f"The AgentOps API at {e['endpoint']} does not know this API key (invalid_key, "
            f"HTTP {e['http_status']}: {e['detail']}; {_key(e)}, {_auth_tail(e)})",
            f"Check in the AgentOps dashboard which project this key belongs to (it may "
            f"have been regenerated) and that endpoint {e['api_endpoint']} is the "
            f"deployment that issued it; {DASHBOARD_KEY_HINT}")


def _auth_server_error(e: dict[str, Any]) -> tuple[str, str]:
    return (f"The AgentOps API at {e['endpoint']} answered HTTP {e['http_status']} to the "
            f"token request (server_error: {e['detail']}; {_auth_tail(e)})",
            "The API is failing, not your setup: the SDK retries in the background and "
            "spans made before a token arrives are not sent; check the AgentOps service "
            "status and try again later")


def _auth_rate_limited(e: dict[str, Any]) -> tuple[str, str]:
    return (f"The AgentOps API at {e['endpoint']} is rate limiting token requests "
            f"(rate_limited, HTTP {e['http_status']}: {e['detail']}; {_auth_tail(e)})",
            "The SDK waits as the API asks (Retry-After) and retries in the background; if "
            "many processes start at once, stagger their start")


def _bad_response(e: dict[str, Any]) -> tuple[str, str]:
    url = e["token_url"]
    return (f"The token endpoint {url} answered HTTP {e['http_status']} without a usable "
            f"token (bad_response: {e['detail']}; {_auth_tail(e)})",
            f"Check that endpoint {e['api_endpoint']} (AGENTOPS_API_ENDPOINT) is the "
            f"AgentOps API and not the dashboard or another service; a proxy or captive "
            f"portal may be answering instead: request {url} from this machine to see who "
            f"answers")


def _auth_connection_error(e: dict[str, Any]) -> tuple[str, str]:
    where = e["endpoint"]
    if e.get("proxy"):
        return (f"Could not connect to the proxy {e['proxy']} used for the AgentOps API at "
                f"{where} (connection_error: {e['detail']}; {_auth_tail(e)})",
                f"Check that the proxy {e['proxy']} (from {', '.join(e['proxy_variables'])}) "
                f"is running and reachable, or exempt {where} from it with NO_PROXY")
    return (f"Could not connect to the AgentOps API at {where} (connection_error: "
            f"{e['detail']}; {_auth_tail(e)})",
            f"Check that {where} is reachable from this machine (DNS, firewall, the endpoint "
            f"setting){_proxy_hint(e, where)}")


def _auth_timeout(e: dict[str, Any]) -> tuple[str, str]:
    where = e["endpoint"]
    return (f"The AgentOps API at {where} did not answer the token request within "
            f"{_seconds(e['request_timeout'])} (timeout: {e['detail']}; {_auth_tail(e)})",
            f"The endpoint is slow or unreachable: check the network path to {where} "
            f"(firewall, VPN){_proxy_hint(e, where)}")


def _auth_tls_error(e: dict[str, Any]) -> tuple[str, str]:
    return (f"TLS handshake with the AgentOps API at {e['endpoint']} failed (tls_error: "
            f"{e['detail']}; {_auth_tail(e)})",
            f"A certificate problem: {_ca_hint(e)}")


def _unexpected_status(e: dict[str, Any]) -> tuple[str, str]:
    return (f"The token endpoint {e['token_url']} answered HTTP {e['http_status']} "
            f"(unexpected_status: {e['detail']}; {_auth_tail(e)})",
            f"Check that endpoint {e['api_endpoint']} (AGENTOPS_API_ENDPOINT) is the "
            f"AgentOps API base URL, e.g. https://api.agentops.ai; a redirect usually means "
            f"http instead of https, an extra path, or a proxy in between")


AUTH_FAILURE_WORDS: dict[str, AuthWords] = {
    v.INVALID_KEY_FORMAT: _invalid_key_format,
    v.INVALID_KEY: _invalid_key,
    v.SERVER_ERROR: _auth_server_error,
    v.BAD_RESPONSE: _bad_response,
    v.CONNECTION_ERROR: _auth_connection_error,
    v.TIMEOUT: _auth_timeout,
    v.TLS_ERROR: _auth_tls_error,
    v.UNEXPECTED_STATUS: _unexpected_status,
    v.RATE_LIMITED: _auth_rate_limited,
}
AUTH_FAILURE_RULES = AUTH_FAILURE_WORDS  # every auth reason has its words


def no_token(facts: Facts) -> Finding | None:
    """The sentences support documentation quotes, for any session left without a token."""
    a = facts.auth
    if a.has_token or not (a.state == v.FAILED or facts.pending_too_long):
        return None
    return Finding("auth.no_token", ERROR, {"state": a.state, "reason": a.reason},
                   NO_TOKEN, CHECK_KEY)


def auth_failed(facts: Facts) -> Finding | None:
    if facts.auth.state != v.FAILED:
        return None
    e = _auth_evidence(facts)
    words = AUTH_FAILURE_WORDS.get(e["reason"] or "")
    if words is None:
        issue, advice = (f"Authentication failed ({e['reason']}: {e['detail']}; "
                         f"{_auth_tail(e)})", CHECK_KEY)
    else:
        issue, advice = words(e)
    return Finding(f"auth.{e['reason'] or 'failed'}", ERROR, e, issue, advice)


def auth_pending(facts: Facts) -> Finding | None:
    if not facts.pending_too_long:
        return None
    e = _auth_evidence(facts)
    e.update(pending_seconds=round(facts.auth_age or 0.0, 3),
             auth_timeout=facts.config.auth_timeout)
    where = e["endpoint"]
    return Finding(
        "auth.pending", ERROR, e,
        f"Authentication still pending after {e['pending_seconds']:.2f}s, longer than "
        f"auth_timeout {_seconds(e['auth_timeout'])}: no answer yet from the AgentOps API "
        f"at {where}",
        f"Check that {where} is reachable and answers quickly{_proxy_hint(e, where)}; raise "
        f"auth_timeout if the API is just slow")


def no_api_key(facts: Facts) -> Finding | None:
    if facts.auth.state != v.DISABLED:
        return None
    kept = facts.lost(v.NOT_AUTHENTICATED)
    local = f" ({plural(kept, 'span')} kept local, not_authenticated)" if kept else ""
    return Finding(
        "auth.no_api_key", WARNING, {"spans_kept_local": kept},
        f"No API key: session data stays local and is not sent to the backend{local}",
        "Set AGENTOPS_API_KEY or pass api_key to agentops.init() to send data to AgentOps")


def project_mismatch(facts: Facts) -> Finding | None:
    a = facts.auth
    body, claim = getattr(a, "project_id", None), getattr(a, "token_project_id", None)
    if not body or not claim or body == claim:
        return None
    return Finding(
        "auth.project_mismatch", WARNING,
        {"response_project_id": body, "token_project_id": claim,
         "endpoint": endpoint_label(a.endpoint or facts.config.endpoint)},
        f"The token endpoint at {endpoint_label(a.endpoint or facts.config.endpoint)} said "
        f"project {body}, but the token it issued is for project {claim}: spans are stored "
        f"under the token's project",
        "Look for the session under project " + claim + " in the dashboard; if that is not "
        "the project of this API key, report it to AgentOps with this diagnosis")


# -- settings ----------------------------------------------------------------------------

def refused_settings(facts: Facts) -> Finding | None:
    # The API key's own refusal is the invalid_key_format finding.
    c = facts.config
    refused = {name: {"message": message, "source": c.error_sources.get(name)}
               for name, message in c.errors.items() if name != "api_key"}
    if not refused:
        return None
    described = "; ".join(f"{name} ({_source(r['source'])}): {r['message']}"
                          for name, r in refused.items())
    evidence = {"settings": refused, "fail_safe": c.fail_safe}
    if c.fail_safe:
        return Finding(
            "config.refused_setting", WARNING, evidence,
            f"{plural(len(refused), 'invalid setting')} ignored (fail_safe), defaults used "
            f"instead: {described}",
            "Fix these settings (arguments to agentops.init() or AGENTOPS_* variables); "
            "fail_safe only keeps the program running")
    return Finding(
        "config.refused_setting", ERROR, evidence,
        f"agentops.init() would raise ConfigError for {plural(len(refused), 'setting')}: "
        f"{described}",
        f"Fix {', '.join(refused)} (arguments to agentops.init() or AGENTOPS_* variables), "
        f"or pass fail_safe=True to run with the defaults instead")


def plain_http(facts: Facts) -> Finding | None:
    from urllib.parse import urlsplit

    from agentops.config import is_loopback

    if not facts.config.api_key:
        return None
    exposed = {}
    for name in ("endpoint", "exporter_endpoint"):
        parts = urlsplit(getattr(facts.config, name))
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            exposed[name] = parts.hostname
    if not exposed:
        return None
    described = ", ".join(f"{name} to {host}" for name, host in exposed.items())
    return Finding("config.plain_http", WARNING, {"settings": exposed},
                   f"Plain http ({described}): the API key and token travel unencrypted",
                   f"Use https URLs for {' and '.join(exposed)}")


# -- tracing: sampling, the global provider ----------------------------------------------

def sdk_disabled(facts: Facts) -> Finding | None:
    s = facts.sampling
    if not s or not s.get("sdk_disabled"):
        return None
    return Finding(
        "session.sdk_disabled", ERROR, dict(s),
        "OTEL_SDK_DISABLED=true: OpenTelemetry records no span, so the session is not "
        "recorded and nothing is sent to AgentOps",
        "Unset OTEL_SDK_DISABLED (or set it to false) in this program's environment to "
        "record the session")


def not_sampled(facts: Facts) -> Finding | None:
    s = facts.sampling
    if not s or s.get("sdk_disabled") or s.get("sessions_recorded", True):
        return None
    return Finding(
        "session.not_sampled", ERROR, dict(s),
        f"The session is not recorded: the sampler {s.get('sampler')} ({s.get('source')}) "
        f"dropped its trace, so nothing of it is sent to AgentOps",
        _sampler_fix(s, "record every session"))


def sampled_in_part(facts: Facts) -> Finding | None:
    s = facts.sampling
    if not s or s.get("sdk_disabled") or not s.get("sessions_recorded", True) or \
            s.get("records_every_trace", True):
        return None
    return Finding(
        "session.sampled_in_part", WARNING, dict(s),
        f"The sampler {s.get('sampler')} ({s.get('source')}) records only part of the "
        f"traces: spans of dropped traces never reach AgentOps and are not counted",
        _sampler_fix(s, "record every trace"))


def _sampler_fix(s: dict[str, Any] | Any, goal: str) -> str:
    source = s.get("source") or ""
    if source.startswith("OTEL_TRACES_SAMPLER"):
        return (f"Unset OTEL_TRACES_SAMPLER (and OTEL_TRACES_SAMPLER_ARG), or set it to "
                f"always_on, to {goal}")
    return (f"Create your TracerProvider without a sampler (or with ALWAYS_ON) to {goal}; "
            "AgentOps adds its span processor to it")


def provider_replaced(facts: Facts) -> Finding | None:
    p = facts.provider
    if not p or not (p.get("replaced") or p.get("override_refused")):
        return None
    if p.get("replaced"):
        return Finding(
            "tracing.provider_replaced", ERROR, dict(p),
            f"The global OpenTelemetry tracer provider was replaced after agentops.init() "
            f"(now a {p.get('global_provider')}): spans made with "
            f"opentelemetry.trace.get_tracer() no longer reach AgentOps",
            "Set your TracerProvider before agentops.init(): init then adds its span "
            "processor to yours instead of installing its own")
    return Finding(
        "tracing.provider_override_refused", WARNING, dict(p),
        f"The program tried to set its own global tracer provider after agentops.init() "
        f"({plural(p['override_refused'], 'time')}, last at "
        f"{_clock(p.get('override_refused_at'))}); OpenTelemetry refused it, and spans made "
        f"with that provider's tracers do not reach AgentOps",
        "Set your TracerProvider before agentops.init() (init then adds its span processor "
        "to yours), or make spans with opentelemetry.trace.get_tracer()")


# -- the receiver ------------------------------------------------------------------------

def receiver(facts: Facts) -> Finding | None:
    """The receiver check, before any batch names the problem with lost spans."""
    r = facts.receiver
    state, cause = r.get("state"), r.get("cause")
    if state not in (v.REJECTING, v.UNREACHABLE, v.FAILING) or facts.lost(cause or ""):
        return None
    e = _network_evidence(facts, facts.config.exporter_endpoint)
    e.update({key: r.get(key) for key in ("state", "cause", "http_status", "detail",
                                          "checked_at", "latency_ms")})
    where, status = e["endpoint"], f"HTTP {e['http_status']}, " if e["http_status"] else ""
    issue = (f"The OTLP receiver at {where} is {state} ({cause}: {status}{e['detail']}; "
             f"checked at {_clock(e['checked_at'])}): Session data will not reach backend")
    if state == v.REJECTING:
        advice = (f"The receiver refuses the token the API issued: check that exporter_endpoint "
                  f"{facts.config.exporter_endpoint} and endpoint {facts.config.endpoint} "
                  f"belong to the same AgentOps deployment")
    elif state == v.UNREACHABLE and cause == v.TLS_ERROR:
        advice = f"A certificate problem: {_ca_hint(e)}"
    elif state == v.UNREACHABLE and e.get("proxy"):
        advice = (f"Check that the proxy {e['proxy']} (from {', '.join(e['proxy_variables'])}) "
                  f"is running and reachable, or exempt {where} from it with NO_PROXY")
    elif state == v.UNREACHABLE:
        advice = (f"Check that {where} is reachable from this machine (DNS, firewall, "
                  f"exporter_endpoint){_proxy_hint(e, where)}")
    else:
        advice = (f"Check that exporter_endpoint {facts.config.exporter_endpoint} is the "
                  f"AgentOps OTLP/HTTP traces URL (.../v1/traces)")
    return Finding(f"receiver.{state}", ERROR, e, issue, advice)


def token_refused(facts: Facts) -> Finding | None:
    t = facts.token_check
    if not t:
        return None
    status = f"HTTP {t['http_status']}" if t.get("http_status") else "no HTTP response"
    return Finding(
        "auth.token_refused", ERROR, dict(t),
        f"The API issued a token it does not accept back ({t.get('reason')}, {status}: "
        f"{t.get('detail')})",
        "Check that endpoint is one AgentOps deployment and not a load balancer in front of "
        "several; try again, and report it to AgentOps if it persists")


# -- export losses -----------------------------------------------------------------------

def _loss_evidence(facts: Facts, cause: str) -> dict[str, Any]:
    seen = facts.cause(cause)
    e = _network_evidence(facts, facts.config.exporter_endpoint)
    e.update(cause=cause, spans=facts.lost(cause),
             batches=seen.get("batches") or
             (facts.stats.get("failed_batches_by_cause") or {}).get(cause) or 0,
             last_detail=seen.get("last_detail"),
             first_at=seen.get("first_at"), last_at=seen.get("last_at"))
    return e


def _what_happened(e: dict[str, Any]) -> str:
    """The latest detail, how many batches and since when."""
    parts = [e["last_detail"]] if e["last_detail"] else []
    if e["batches"]:
        parts.append(plural(e["batches"], "failed batch", "failed batches"))
    if e["first_at"]:
        when = f"since {_clock(e['first_at'])}"
        if e["last_at"] != e["first_at"]:
            when += f", last at {_clock(e['last_at'])}"
        parts.append(when)
    return "; ".join(parts) or "counted at the span processor"


LossWords = Callable[[Facts, dict[str, Any]], tuple[str, str]]


def _not_authenticated(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    a = facts.auth
    lead = f"{plural(e['spans'], 'span')} not sent (not_authenticated)"
    e.update(auth_state=a.state, auth_reason=a.reason, auth_timeout=facts.config.auth_timeout)
    if a.state == v.FAILED:
        return (f"{lead}: no token, authentication failed ({a.reason})",
                "Fix the authentication failure reported above; spans made while no token "
                "is held are dropped, not retried")
    timeout = _seconds(e["auth_timeout"])
    why = (f"no token yet, authentication still pending after auth_timeout {timeout}"
           if a.state == v.PENDING
           else f"made before the token arrived, which took longer than auth_timeout {timeout}")
    return (f"{lead}: {why}",
            f"Raise auth_timeout (now {timeout}) or pass wait_for_auth=True to "
            f"agentops.init() so the first spans wait for the token")


def _auth_rejected(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    return (f"{plural(e['spans'], 'span')} refused by the OTLP receiver at {e['endpoint']}: "
            f"it does not accept the token (auth_rejected: {_what_happened(e)})",
            f"The token was refreshed and still refused: check that exporter_endpoint "
            f"{facts.config.exporter_endpoint} and endpoint {facts.config.endpoint} belong "
            f"to the same AgentOps deployment")


def _rate_limited(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    c = facts.config
    return (f"{plural(e['spans'], 'span')} refused by rate limiting at {e['endpoint']} "
            f"(rate_limited: {_what_happened(e)})",
            f"Send fewer spans or batch less often (raise max_wait_time, now "
            f"{c.max_wait_time}ms); retries honour Retry-After only within export_timeout "
            f"{_seconds(c.export_timeout)}")


def _server_error(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    timeout = _seconds(facts.config.export_timeout)
    return (f"{plural(e['spans'], 'span')} lost to server errors of the OTLP receiver at "
            f"{e['endpoint']} (server_error: {_what_happened(e)})",
            f"The receiver is failing, not your setup: transient errors are retried within "
            f"export_timeout {timeout}; check the AgentOps service status, and raise "
            f"export_timeout to ride out short outages")


def _client_error(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    issue = (f"{plural(e['spans'], 'span')} refused by the OTLP receiver at {e['endpoint']} "
             f"(client_error: {_what_happened(e)})")
    return (issue, f"Check that exporter_endpoint {facts.config.exporter_endpoint} is the "
                   f"AgentOps OTLP/HTTP traces URL (.../v1/traces)")


def _connection_error(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    where = e["endpoint"]
    if e.get("proxy"):
        return (f"{plural(e['spans'], 'span')} not sent: could not connect to the proxy "
                f"{e['proxy']} used for the OTLP receiver at {where} (connection_error: "
                f"{_what_happened(e)})",
                f"Check that the proxy {e['proxy']} (from {', '.join(e['proxy_variables'])}) "
                f"is running and reachable, or exempt {where} from it with NO_PROXY")
    return (f"{plural(e['spans'], 'span')} not sent: could not connect to the OTLP receiver "
            f"at {where} (connection_error: {_what_happened(e)})",
            f"Check that {where} is reachable from this machine (DNS, firewall, "
            f"exporter_endpoint){_proxy_hint(e, where)}")


def _timeout(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    where, timeout = e["endpoint"], _seconds(facts.config.export_timeout)
    return (f"{plural(e['spans'], 'span')} not sent: the OTLP receiver at {where} did not "
            f"answer within export_timeout {timeout} (timeout: {_what_happened(e)})",
            f"The endpoint is slow or unreachable: check the network path to {where}"
            f"{_proxy_hint(e, where)}; raise export_timeout (now {timeout}) if it is "
            f"just slow")


def _tls_error(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    return (f"{plural(e['spans'], 'span')} not sent: TLS handshake with the OTLP receiver "
            f"at {e['endpoint']} failed (tls_error: {_what_happened(e)})",
            f"A certificate problem: {_ca_hint(e)}")


def _queue_overflow(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    c = facts.config
    return (f"{plural(e['spans'], 'span')} dropped before export (queue_overflow): more than "
            f"max_queue_size {c.max_queue_size} finished spans were waiting to be sent",
            f"Raise max_queue_size (now {c.max_queue_size}) or flush more often (lower "
            f"max_wait_time, now {c.max_wait_time}ms)")


def _shutdown(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    budget = _seconds(facts.config.shutdown_timeout)
    return (f"{plural(e['spans'], 'span')} unsent when the exit budget (shutdown_timeout "
            f"{budget}) ran out (shutdown)",
            f"Raise shutdown_timeout (now {budget}), or end traces (agentops.end_trace()) "
            f"earlier so less is left to send at exit")


def _internal_error(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    return (f"{plural(e['spans'], 'span')} lost to an internal error (internal_error: "
            f"{_what_happened(e)})",
            "A fault in the SDK or OpenTelemetry, or a span the encoder cannot send (e.g. a "
            "name that is not a string): report it with the output of "
            "agentops.diagnose_session()")


def _rejected_by_receiver(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    return (f"{plural(e['spans'], 'span')} rejected by the OTLP receiver at {e['endpoint']} "
            f"although it accepted the request (rejected_by_receiver: {_what_happened(e)})",
            "The receiver's message says why (partial_success): usually spans too old, "
            "malformed attributes or a project limit; fix what it names")


def _unexpected_status_loss(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    return (f"{plural(e['spans'], 'span')} not delivered: the OTLP receiver at {e['endpoint']} "
            f"answered with a status that is not an answer to an export (unexpected_status: "
            f"{_what_happened(e)})",
            f"Redirects are not followed (the token must not reach another host): set "
            f"exporter_endpoint to the final URL (now {facts.config.exporter_endpoint}), "
            f"usually https:// instead of http://")


def _too_large(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    return (f"{plural(e['spans'], 'span')} refused as too large even when sent alone "
            f"(too_large: {_what_happened(e)})",
            "Put less data in that span's attributes or events (large prompts, documents, "
            "images): the receiver has a request size limit; if even small spans are refused, "
            "check that limit and any proxy in between")


def _generic_loss(facts: Facts, e: dict[str, Any]) -> tuple[str, str]:
    return (f"{plural(e['spans'], 'span')} not delivered ({e['cause']}: {_what_happened(e)})",
            "Report it with the output of agentops.diagnose_session() if the cause is unclear")


LOSS_WORDS: dict[str, LossWords] = {
    v.NOT_AUTHENTICATED: _not_authenticated,
    v.AUTH_REJECTED: _auth_rejected,
    v.RATE_LIMITED: _rate_limited,
    v.SERVER_ERROR: _server_error,
    v.CLIENT_ERROR: _client_error,
    v.CONNECTION_ERROR: _connection_error,
    v.TIMEOUT: _timeout,
    v.TLS_ERROR: _tls_error,
    v.QUEUE_OVERFLOW: _queue_overflow,
    v.SHUTDOWN: _shutdown,
    v.INTERNAL_ERROR: _internal_error,
    v.REJECTED_BY_RECEIVER: _rejected_by_receiver,
    v.UNEXPECTED_STATUS: _unexpected_status_loss,
    v.TOO_LARGE: _too_large,
}


def loss_rule(cause: str) -> Rule:
    words = LOSS_WORDS.get(cause, _generic_loss)
    severity = ERROR if cause in (v.NOT_AUTHENTICATED, v.AUTH_REJECTED) else WARNING

    def rule(facts: Facts) -> Finding | None:
        if not facts.lost(cause):
            return None
        if cause == v.NOT_AUTHENTICATED and facts.auth.state == v.DISABLED:
            return None  # told by the no-API-key finding
        e = _loss_evidence(facts, cause)
        issue, advice = words(facts, e)
        return Finding(f"export.{cause}", severity, e, issue, advice)

    rule.__name__ = f"lost_{cause}"
    return rule


def _other_losses(facts: Facts) -> list[Finding]:
    """Causes this version has no words for (a newer vocabulary) still get a finding."""
    known = set(LOSS_WORDS)
    found = []
    for cause in (facts.stats.get("failures_by_cause") or {}):
        if cause not in known:
            finding = loss_rule(cause)(facts)
            if finding is not None:
                found.append(finding)
    return found


# -- LLM instrumentation ------------------------------------------------------------------

NO_SPANS_AFTER = 60.0
"""Seconds a session trace may run without a span of its own before it is reported."""


def _imported_libraries(facts: Facts) -> list[tuple[str, Any]]:
    return [(name, lib) for name, lib in facts.instrumentation.items()
            if lib.get("imported") and lib.get("installed")]


def missing_instrumentor(facts: Facts) -> Finding | None:
    if not facts.config.instrument_llm_calls:
        return None  # told by instrumentation_disabled
    missing = [(name, lib) for name, lib in _imported_libraries(facts)
               if not lib.get("instrumentor") and not lib.get("active")]
    if not missing:
        return None
    names = " and ".join(f"{name} {lib.get('version')}" for name, lib in missing)
    lines = "; ".join(str(lib.get("pip_install")) for _, lib in missing)
    verb = "is" if len(missing) == 1 else "are"
    evidence = {"libraries": {name: {"version": lib.get("version"),
                                     "pip_install": lib.get("pip_install")}
                              for name, lib in missing}}
    return Finding(
        "instrumentation.missing_instrumentor", WARNING, evidence,
        f"{names} {verb} imported but no OpenTelemetry instrumentor for "
        f"{'it' if len(missing) == 1 else 'them'} is installed: LLM calls are not recorded",
        f"Install the instrumentor ({lines}) and restart the program")


def instrumentation_disabled(facts: Facts) -> Finding | None:
    if facts.config.instrument_llm_calls:
        return None
    unrecorded = [name for name, lib in _imported_libraries(facts) if not lib.get("active")]
    if not unrecorded:
        return None
    source = facts.config.sources.get("instrument_llm_calls", "")
    where = (f" ({source[4:]}=false)" if source.startswith("env:")
             else " (instrument_llm_calls=False passed to agentops.init())"
             if source == "argument" else "")
    return Finding(
        "instrumentation.disabled", WARNING, {"libraries": unrecorded, "source": source},
        f"instrument_llm_calls is off{where}: calls made with {' and '.join(unrecorded)} are "
        f"not recorded",
        "Remove instrument_llm_calls=False (or AGENTOPS_INSTRUMENT_LLM_CALLS) to record "
        "them, or activate an OpenTelemetry instrumentor yourself")


def instrumentation_failed(facts: Facts) -> Finding | None:
    failed = [(name, lib) for name, lib in facts.instrumentation.items()
              if lib.get("error") and not lib.get("active")]
    if not failed or not facts.config.instrument_llm_calls:
        return None
    what = "; ".join(f"{name} {lib.get('version')} with {lib.get('instrumentor')} "
                     f"{lib.get('instrumentor_version')}: {lib.get('error')}"
                     for name, lib in failed)
    evidence = {"libraries": {name: {key: lib.get(key) for key in (
        "version", "instrumentor", "instrumentor_version", "error")} for name, lib in failed}}
    return Finding(
        "instrumentation.failed", WARNING, evidence,
        f"LLM instrumentation could not be activated ({what}): those calls are not recorded",
        "Upgrade the instrumentor to a release that supports the installed library ("
        + "; ".join(f"{lib.get('pip_install')} --upgrade" for _, lib in failed) + ")")


def no_spans(facts: Facts) -> Finding | None:
    after = max(NO_SPANS_AFTER, 2 * facts.config.max_wait_time / 1000)
    if facts.stats.get("spans_pending"):
        return None  # some may belong to the session
    quiet = [session for session in facts.sessions
             if not session.get("spans") and facts.now - session["started_at"] >= after]
    if not quiet:
        return None
    session = quiet[0]
    age = facts.now - session["started_at"]
    checks = ["that your code runs inside the session (spans started while it is open, on "
              "a thread or task that carries its context)",
              "that your tracer comes from the global provider (opentelemetry.trace."
              "get_tracer) and agentops.init() ran before your spans were made"]
    if not facts.config.instrument_llm_calls:
        checks.append("instrument_llm_calls is off, so LLM calls make no spans")
    elif not any(lib.get("active") for lib in facts.instrumentation.values()):
        checks.append("no LLM instrumentor is active (see instrumentation in the diagnosis; "
                      + "; ".join(str(lib.get("pip_install"))
                                  for lib in facts.instrumentation.values()) + ")")
    return Finding(
        "session.no_spans", WARNING,
        {"trace_name": session["name"], "trace_id": session["trace_id"],
         "running_seconds": round(age, 1)},
        f"no spans recorded in this session: session trace {session['name']!r} "
        f"(trace_id {session['trace_id']}) has run for {age:.0f}s with no span but its own "
        f"root",
        "Check " + "; ".join(checks))


def storage_pending(facts: Facts) -> Finding | None:
    s = facts.storage
    if not s.get("pending_batches"):
        return None
    evidence = {key: s.get(key) for key in ("directory", "pending_batches", "pending_spans",
                                            "oldest_at")}
    return Finding(
        "storage.pending", WARNING, evidence,
        f"{plural(s['pending_spans'], 'span')} kept in offline storage ({s.get('directory')}) "
        f"since {_clock(s.get('oldest_at'))} have not reached the backend yet",
        "They are sent once the receiver accepts this process's spans, or by the next run "
        "with this API key and exporter endpoint; run `agentops flush` to send them now")


def storage_unusable(facts: Facts) -> Finding | None:
    s = facts.storage
    error = s.get("error") or s.get("write_error")
    if not error:
        return None
    return Finding(
        "storage.unusable", ERROR, {"directory": s.get("directory"), "error": error},
        f"offline storage in {s.get('directory')} cannot be used ({error}): spans that cannot "
        f"be delivered are lost instead of kept",
        "Make the directory writable, point storage_directory (AGENTOPS_STORAGE_DIRECTORY) at "
        "a writable one, or turn offline_storage off")


def storage_dropped(facts: Facts) -> Finding | None:
    dropped = facts.stats.get("stored_spans_dropped") or {}
    if not dropped:
        return None
    causes = ", ".join(f"{cause}: {n}" for cause, n in sorted(dropped.items()))
    return Finding(
        "storage.dropped", WARNING, {"spans_by_cause": dict(dropped),
                                     "directory": facts.storage.get("directory")},
        f"{plural(sum(dropped.values()), 'stored span')} removed from offline storage without "
        f"delivery ({causes})",
        "storage_full and expired: the receiver was out of reach so long that the store's "
        "bounds (50 MB, 48 hours) were reached; fix the cause in the other findings. Other "
        "causes: the receiver refused the stored batch for good")


RULES: tuple[tuple[str, Rule], ...] = (
    ("no_token", no_token),
    ("auth_failed", auth_failed),
    ("auth_pending", auth_pending),
    ("no_api_key", no_api_key),
    ("token_refused", token_refused),
    ("project_mismatch", project_mismatch),
    ("refused_settings", refused_settings),
    ("plain_http", plain_http),
    ("sdk_disabled", sdk_disabled),
    ("not_sampled", not_sampled),
    ("sampled_in_part", sampled_in_part),
    ("provider_replaced", provider_replaced),
    ("receiver", receiver),
    *((cause, loss_rule(cause)) for cause in v.LOSS_CAUSES),
    ("instrumentation.missing_instrumentor", missing_instrumentor),
    ("instrumentation.disabled", instrumentation_disabled),
    ("instrumentation.failed", instrumentation_failed),
    ("session.no_spans", no_spans),
    ("storage.pending", storage_pending),
    ("storage.unusable", storage_unusable),
    ("storage.dropped", storage_dropped),
)


def find(facts: Facts) -> list[Finding]:
    """Every finding, in the order of RULES. A rule that fails becomes a finding itself:
    one faulty rule must not hide the others."""
    found: list[Finding] = []
    for name, rule in RULES:
        try:
            finding = rule(facts)
        except Exception as error:
            logger.debug("diagnosis rule %s failed", name, exc_info=True)
            finding = Finding("diagnosis.rule_failed", WARNING,
                              {"rule": name, "error": type(error).__name__},
                              f"Diagnosis rule {name} failed: {type(error).__name__}",
                              "Report this with the rest of the diagnosis")
        if finding is not None:
            found.append(finding)
    try:
        found += _other_losses(facts)
    except Exception:
        logger.debug("diagnosis of unknown loss causes failed", exc_info=True)
    return found


def status_line(facts: Facts) -> str:
    """The single recommendation when nothing is wrong: never "healthy" before the
    receiver was seen accepting the token (the receiver check, or a delivered batch)."""
    if facts.auth.state == v.PENDING:
        age = facts.auth_age or 0.0
        return (f"Authentication in progress ({age:.1f}s so far): spans are held up to "
                f"auth_timeout {_seconds(facts.config.auth_timeout)} for the token; "
                f"check again shortly")
    if facts.auth.state == v.AUTHENTICATED and facts.receiver.get("state") != v.ACCEPTING:
        where = endpoint_label(facts.config.exporter_endpoint)
        return (f"Authenticated; the OTLP receiver at {where} has not confirmed it accepts "
                f"the token yet ({facts.receiver.get('state')}): check again shortly")
    return HEALTHY


def exporter_healthy(facts: Facts) -> bool:
    """A token is held, the receiver has accepted it (the receiver check or a batch), and
    the latest finished export succeeded."""
    return (facts.auth.has_token and facts.receiver.get("state") == v.ACCEPTING
            and facts.stats.get("last_result_ok") is not False)
