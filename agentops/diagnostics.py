"""diagnose_session(): the facts of the running client as a plain dict, plus rules that
turn those facts into issues and recommendations. Rendering lives in ``report``.

The rules are pure functions of a ``Facts`` value (snapshots of the auth tracker and the
export statistics, the configuration and the environment). Each returns None or one
``(issue, recommendation)`` pair that names its evidence (HTTP status, host:port, spans,
since when) and the action to take. ``issues[i]`` is answered by ``recommendations[i]``;
with no issue, ``recommendations`` holds a single status line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from agentops import vocabulary as v
from agentops.auth import AuthSnapshot
from agentops.client import Client
from agentops.config import Config
from agentops.http import endpoint_label
from agentops.instrumentation import instrumentation
from agentops.redaction import redact_data

logger = logging.getLogger("agentops")

NOT_INITIALIZED = "AgentOps SDK not initialized"
CALL_INIT = "Call agentops.init() to initialize the SDK"
NO_TOKEN = "Authentication failed - no JWT token available"
CHECK_KEY = "Check if API key is valid and network connectivity is working"
HEALTHY = "Session appears healthy - data should be reaching backend"

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                   "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
DASHBOARD_KEY_HINT = ("copy it again from your project's settings in the AgentOps dashboard "
                      "and set AGENTOPS_API_KEY or pass api_key to agentops.init()")

_AUTH_FIELDS = tuple(f.name for f in fields(AuthSnapshot))
"""Its fields are plain values: a shallow copy is the same dict as ``asdict`` at a
fraction of its cost."""

Finding = tuple[str, str]
"""(issue, recommendation)."""


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at, collected once per diagnosis."""

    auth: AuthSnapshot
    stats: Mapping[str, Any]
    """``ExportStats.snapshot()``."""
    config: Config
    receiver: Mapping[str, Any] = field(default_factory=dict)
    """``ReceiverStatus.snapshot()``."""
    environ: Mapping[str, str] = field(default_factory=dict)
    now: float = field(default_factory=time.time)
    instrumentation: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``Instrumentation.snapshot()``: per supported LLM library."""
    sessions: tuple[Mapping[str, Any], ...] = ()
    """Open session traces: ``name``, ``trace_id``, ``started_at`` (epoch seconds) and
    ``spans`` (spans of the trace seen on their way to export, its root excluded)."""

    def lost(self, cause: str) -> int:
        by_cause = self.stats.get("failures_by_cause")
        return int(by_cause.get(cause, 0)) if by_cause else 0

    @property
    def auth_age(self) -> float | None:
        """Seconds since the auth state last changed."""
        if not self.auth.since:
            return None
        try:
            return self.now - datetime.fromisoformat(self.auth.since).timestamp()
        except ValueError:
            return None

    @property
    def pending_too_long(self) -> bool:
        if self.auth.state != v.PENDING:
            return False
        age = self.auth_age
        return age is not None and age > self.config.auth_timeout


# -- shared wording --------------------------------------------------------------------

def _spans(count: int) -> str:
    return f"{count} span" if count == 1 else f"{count} spans"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _clock(iso_time: str | None) -> str:
    """'HH:MM:SS UTC' from the ISO timestamps of the snapshots."""
    return f"{iso_time[11:19]} UTC" if iso_time and len(iso_time) >= 19 else "an unknown time"


def _api(facts: Facts) -> str:
    return endpoint_label(facts.auth.endpoint or facts.config.endpoint)


def _otlp(facts: Facts) -> str:
    return endpoint_label(facts.config.exporter_endpoint)


def _set_variables(facts: Facts, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if facts.environ.get(name)]


def _proxy_hint(facts: Facts, where: str) -> str:
    # Names only: a proxy URL may carry credentials.
    names = _set_variables(facts, PROXY_VARIABLES)
    if not names:
        return ""
    return (f"; proxy settings are in the environment ({', '.join(names)}): check that the "
            f"proxy reaches {where} or that NO_PROXY/no_proxy exempts it")


def _ca_hint(facts: Facts) -> str:
    names = _set_variables(facts, CA_VARIABLES)
    if names:
        return (f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} set: check that "
                "the bundle contains the CA that signed the server's certificate")
    return ("if a proxy or firewall inspects TLS, point REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) "
            "at a bundle with its CA certificate")


def _auth_tail(facts: Facts) -> str:
    a = facts.auth
    attempts = f"{a.attempts} attempt" + ("" if a.attempts == 1 else "s")
    retrying = ", retrying in the background" if a.retrying else ""
    return f"{attempts}{retrying}, since {_clock(a.since)}"


def _key(facts: Facts) -> str:
    source = facts.config.sources.get("api_key", "")
    origin = "passed as api_key" if source == "argument" else (
        f"from {source[4:]}" if source.startswith("env:") else "")
    masked = facts.config.api_key_masked
    return " ".join(part for part in (f"key {masked}" if masked else "", origin) if part)


def _loss_evidence(facts: Facts, cause: str) -> str:
    """What this cause last met and since when: its own latest detail, first and last time,
    and how many batches it cost."""
    seen = facts.stats.get("causes", {}).get(cause) or {}
    parts = [seen["last_detail"]] if seen.get("last_detail") else []
    batches = seen.get("batches") or facts.stats.get("failed_batches_by_cause", {}).get(cause)
    if batches:
        parts.append(f"{batches} failed batch" + ("" if batches == 1 else "es"))
    if seen.get("first_at"):
        when = f"since {_clock(seen['first_at'])}"
        if seen.get("last_at") != seen["first_at"]:
            when += f", last at {_clock(seen.get('last_at'))}"
        parts.append(when)
    return "; ".join(parts) or "counted at the span processor"


# -- authentication rules ----------------------------------------------------------------

def _invalid_key_format(facts: Facts) -> Finding:
    a = facts.auth
    if a.http_status is None:
        issue = (f"API key refused before sending (invalid_key_format): it is not a UUID "
                 f"({a.detail or 'invalid API key'}); nothing is sent to the backend")
    else:
        issue = (f"The AgentOps API at {_api(facts)} rejected the API key format "
                 f"(invalid_key_format, HTTP {a.http_status}: {a.detail}; {_key(facts)})")
    return issue, f"The key is not a UUID: {DASHBOARD_KEY_HINT}"


def _invalid_key(facts: Facts) -> Finding:
    a = facts.auth
    return (f"The AgentOps API at {_api(facts)} does not know this API key (invalid_key, "
            f"HTTP {a.http_status}: {a.detail}; {_key(facts)}, {_auth_tail(facts)})",
            f"Check in the AgentOps dashboard which project this key belongs to (it may "
            f"have been regenerated) and that endpoint {facts.config.endpoint} is the "
            f"deployment that issued it; {DASHBOARD_KEY_HINT}")


def _auth_server_error(facts: Facts) -> Finding:
    a = facts.auth
    return (f"The AgentOps API at {_api(facts)} answered HTTP {a.http_status} to the token "
            f"request (server_error: {a.detail}; {_auth_tail(facts)})",
            "The API is failing, not your setup: the SDK retries in the background and "
            "spans made before a token arrives are not sent; check the AgentOps service "
            "status and try again later")


def _bad_response(facts: Facts) -> Finding:
    a = facts.auth
    url = a.endpoint or facts.config.endpoint
    return (f"The token endpoint {url} answered HTTP {a.http_status} without a usable token "
            f"(bad_response: {a.detail}; {_auth_tail(facts)})",
            f"Check that endpoint {facts.config.endpoint} (AGENTOPS_API_ENDPOINT) is the "
            f"AgentOps API and not the dashboard or another service; a proxy or captive "
            f"portal may be answering instead: request {url} from this machine to see who "
            f"answers")


def _auth_connection_error(facts: Facts) -> Finding:
    where = _api(facts)
    return (f"Could not connect to the AgentOps API at {where} (connection_error: "
            f"{facts.auth.detail}; {_auth_tail(facts)})",
            f"Check that {where} is reachable from this machine (DNS, firewall, the endpoint "
            f"setting){_proxy_hint(facts, where)}")


def _auth_timeout(facts: Facts) -> Finding:
    where = _api(facts)
    return (f"The AgentOps API at {where} did not answer the token request within "
            f"{_seconds(facts.auth.request_timeout)} (timeout: {facts.auth.detail}; {_auth_tail(facts)})",
            f"The endpoint is slow or unreachable: check the network path to {where} "
            f"(firewall, VPN){_proxy_hint(facts, where)}")


def _auth_tls_error(facts: Facts) -> Finding:
    return (f"TLS handshake with the AgentOps API at {_api(facts)} failed (tls_error: "
            f"{facts.auth.detail}; {_auth_tail(facts)})",
            f"A certificate problem: {_ca_hint(facts)}")


def _unexpected_status(facts: Facts) -> Finding:
    a = facts.auth
    return (f"The token endpoint {a.endpoint or facts.config.endpoint} answered HTTP "
            f"{a.http_status} (unexpected_status: {a.detail}; {_auth_tail(facts)})",
            f"Check that endpoint {facts.config.endpoint} (AGENTOPS_API_ENDPOINT) is the "
            f"AgentOps API base URL, e.g. https://api.agentops.ai; a redirect usually means "
            f"http instead of https, an extra path, or a proxy in between")


def _auth_rate_limited(facts: Facts) -> Finding:
    where = _api(facts)
    return (f"The AgentOps API at {where} is rate limiting token requests (rate_limited, "
            f"HTTP {facts.auth.http_status}: {facts.auth.detail}; {_auth_tail(facts)})",
            "The SDK waits as the API asks (Retry-After) and retries in the background; if "
            "many processes start at once, stagger their start")


AUTH_FAILURE_RULES: dict[str, Callable[[Facts], Finding]] = {
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


def no_token(facts: Facts) -> Finding | None:
    """The sentences support documentation quotes, for any session left without a token."""
    a = facts.auth
    if not a.has_token and (a.state == v.FAILED or facts.pending_too_long):
        return NO_TOKEN, CHECK_KEY
    return None


def auth_failed(facts: Facts) -> Finding | None:
    a = facts.auth
    if a.state != v.FAILED:
        return None
    rule = AUTH_FAILURE_RULES.get(a.reason or "")
    if rule is not None:
        return rule(facts)
    return (f"Authentication failed ({a.reason}: {a.detail}; {_auth_tail(facts)})",
            CHECK_KEY)


def auth_pending(facts: Facts) -> Finding | None:
    if not facts.pending_too_long:
        return None
    where = _api(facts)
    return (f"Authentication still pending after {facts.auth_age:.2f}s, longer than "
            f"auth_timeout {_seconds(facts.config.auth_timeout)}: no answer yet from the "
            f"AgentOps API at {where}",
            f"Check that {where} is reachable and answers quickly"
            f"{_proxy_hint(facts, where)}; raise auth_timeout if the API is just slow")


def no_api_key(facts: Facts) -> Finding | None:
    if facts.auth.state != v.DISABLED:
        return None
    kept = facts.lost(v.NOT_AUTHENTICATED)
    local = f" ({_spans(kept)} kept local, not_authenticated)" if kept else ""
    return (f"No API key: session data stays local and is not sent to the backend{local}",
            "Set AGENTOPS_API_KEY or pass api_key to agentops.init() to send data to "
            "AgentOps")


def config_errors(facts: Facts) -> Finding | None:
    # The API key's own error is explained by the invalid_key_format rule.
    errors = [error for name, error in facts.config.errors.items() if name != "api_key"]
    if not errors:
        return None
    return (f"{len(errors)} invalid setting{'s' if len(errors) > 1 else ''} ignored "
            f"(fail_safe), defaults used instead: {'; '.join(errors)}",
            "Fix these settings (arguments to agentops.init() or AGENTOPS_* variables); "
            "fail_safe only keeps the program running")


# -- export loss rules -------------------------------------------------------------------

def lost_not_authenticated(facts: Facts) -> Finding | None:
    count, a = facts.lost(v.NOT_AUTHENTICATED), facts.auth
    if not count or a.state == v.DISABLED:  # told by no_api_key
        return None
    lead = f"{_spans(count)} not sent (not_authenticated)"
    if a.state == v.FAILED:
        return (f"{lead}: no token, authentication failed ({a.reason})",
                "Fix the authentication failure reported above; spans made while no token "
                "is held are dropped, not retried")
    timeout = _seconds(facts.config.auth_timeout)
    why = (f"no token yet, authentication still pending after auth_timeout {timeout}"
           if a.state == v.PENDING
           else f"made before the token arrived, which took longer than auth_timeout {timeout}")
    return (f"{lead}: {why}",
            f"Raise auth_timeout (now {timeout}) or pass wait_for_auth=True to "
            f"agentops.init() so the first spans wait for the token")


def lost_auth_rejected(facts: Facts) -> Finding | None:
    count = facts.lost(v.AUTH_REJECTED)
    if not count:
        return None
    return (f"{_spans(count)} refused by the OTLP receiver at {_otlp(facts)}: it does not "
            f"accept the token (auth_rejected: {_loss_evidence(facts, v.AUTH_REJECTED)})",
            f"The token was refreshed and still refused: check that exporter_endpoint "
            f"{facts.config.exporter_endpoint} and endpoint {facts.config.endpoint} belong "
            f"to the same AgentOps deployment")


def lost_rate_limited(facts: Facts) -> Finding | None:
    count = facts.lost(v.RATE_LIMITED)
    if not count:
        return None
    return (f"{_spans(count)} refused by rate limiting at {_otlp(facts)} (rate_limited: "
            f"{_loss_evidence(facts, v.RATE_LIMITED)})",
            f"Send fewer spans or batch less often (raise max_wait_time, now "
            f"{facts.config.max_wait_time}ms); retries honour Retry-After only within "
            f"export_timeout {_seconds(facts.config.export_timeout)}")


def lost_server_error(facts: Facts) -> Finding | None:
    count = facts.lost(v.SERVER_ERROR)
    if not count:
        return None
    timeout = _seconds(facts.config.export_timeout)
    return (f"{_spans(count)} lost to server errors of the OTLP receiver at {_otlp(facts)} "
            f"(server_error: {_loss_evidence(facts, v.SERVER_ERROR)})",
            f"The receiver is failing, not your setup: transient errors are retried within "
            f"export_timeout {timeout}; check the AgentOps service status, and raise "
            f"export_timeout to ride out short outages")


def lost_client_error(facts: Facts) -> Finding | None:
    count = facts.lost(v.CLIENT_ERROR)
    if not count:
        return None
    issue = (f"{_spans(count)} refused by the OTLP receiver at {_otlp(facts)} (client_error: "
             f"{_loss_evidence(facts, v.CLIENT_ERROR)})")
    return (issue, f"Check that exporter_endpoint {facts.config.exporter_endpoint} is the "
                   f"AgentOps OTLP/HTTP traces URL (.../v1/traces)")


def lost_connection_error(facts: Facts) -> Finding | None:
    count = facts.lost(v.CONNECTION_ERROR)
    if not count:
        return None
    where = _otlp(facts)
    return (f"{_spans(count)} not sent: could not connect to the OTLP receiver at {where} "
            f"(connection_error: {_loss_evidence(facts, v.CONNECTION_ERROR)})",
            f"Check that {where} is reachable from this machine (DNS, firewall, "
            f"exporter_endpoint){_proxy_hint(facts, where)}")


def lost_timeout(facts: Facts) -> Finding | None:
    count = facts.lost(v.TIMEOUT)
    if not count:
        return None
    where, timeout = _otlp(facts), _seconds(facts.config.export_timeout)
    return (f"{_spans(count)} not sent: the OTLP receiver at {where} did not answer within "
            f"export_timeout {timeout} (timeout: {_loss_evidence(facts, v.TIMEOUT)})",
            f"The endpoint is slow or unreachable: check the network path to {where}"
            f"{_proxy_hint(facts, where)}; raise export_timeout (now {timeout}) if it is "
            f"just slow")


def lost_tls_error(facts: Facts) -> Finding | None:
    count = facts.lost(v.TLS_ERROR)
    if not count:
        return None
    return (f"{_spans(count)} not sent: TLS handshake with the OTLP receiver at "
            f"{_otlp(facts)} failed (tls_error: {_loss_evidence(facts, v.TLS_ERROR)})",
            f"A certificate problem: {_ca_hint(facts)}")


def lost_rejected_by_receiver(facts: Facts) -> Finding | None:
    count = facts.lost(v.REJECTED_BY_RECEIVER)
    if not count:
        return None
    return (f"{_spans(count)} rejected by the OTLP receiver at {_otlp(facts)} although it "
            f"accepted the request (rejected_by_receiver: "
            f"{_loss_evidence(facts, v.REJECTED_BY_RECEIVER)})",
            "The receiver's message says why (partial_success): usually spans too old, "
            "malformed attributes or a project limit; fix what it names")


def lost_unexpected_status(facts: Facts) -> Finding | None:
    count = facts.lost(v.UNEXPECTED_STATUS)
    if not count:
        return None
    return (f"{_spans(count)} not delivered: the OTLP receiver at {_otlp(facts)} answered "
            f"with a status that is not an answer to an export (unexpected_status: "
            f"{_loss_evidence(facts, v.UNEXPECTED_STATUS)})",
            f"Redirects are not followed (the token must not reach another host): set "
            f"exporter_endpoint (now {facts.config.exporter_endpoint}) to the final URL, "
            f"usually https:// instead of http://")


def lost_too_large(facts: Facts) -> Finding | None:
    count = facts.lost(v.TOO_LARGE)
    if not count:
        return None
    return (f"{_spans(count)} refused as too large even when sent alone (too_large: "
            f"{_loss_evidence(facts, v.TOO_LARGE)})",
            "Put less data in that span's attributes or events (large prompts, documents, "
            "images): the receiver limits the size of one request")


def receiver_not_accepting(facts: Facts) -> Finding | None:
    """The receiver check, before any batch names the problem with lost spans."""
    r = facts.receiver
    state, cause = r.get("state"), r.get("cause")
    if state not in (v.REJECTING, v.UNREACHABLE, v.FAILING) or facts.lost(cause or ""):
        return None
    status = f"HTTP {r['http_status']}, " if r.get("http_status") else ""
    issue = (f"The OTLP receiver at {_otlp(facts)} is {state} ({cause}: {status}"
             f"{r.get('detail')}; checked at {_clock(r.get('checked_at'))}): "
             f"Session data will not reach backend")
    if state == v.REJECTING:
        return (issue, f"The receiver refuses the token the API issued: check that "
                       f"exporter_endpoint {facts.config.exporter_endpoint} and endpoint "
                       f"{facts.config.endpoint} belong to the same AgentOps deployment")
    if state == v.UNREACHABLE:
        where = _otlp(facts)
        return (issue, f"Check that {where} is reachable from this machine (DNS, firewall, "
                       f"exporter_endpoint){_proxy_hint(facts, where)}")
    return (issue, f"Check that exporter_endpoint {facts.config.exporter_endpoint} is the "
                   f"AgentOps OTLP/HTTP traces URL (.../v1/traces)")


def lost_queue_overflow(facts: Facts) -> Finding | None:
    count = facts.lost(v.QUEUE_OVERFLOW)
    if not count:
        return None
    c = facts.config
    return (f"{_spans(count)} dropped before export (queue_overflow): more than "
            f"max_queue_size {c.max_queue_size} finished spans were waiting to be sent",
            f"Raise max_queue_size (now {c.max_queue_size}) or flush more often (lower "
            f"max_wait_time, now {c.max_wait_time}ms)")


def lost_shutdown(facts: Facts) -> Finding | None:
    count = facts.lost(v.SHUTDOWN)
    if not count:
        return None
    budget = _seconds(facts.config.shutdown_timeout)
    return (f"{_spans(count)} unsent when the exit budget (shutdown_timeout {budget}) ran "
            f"out (shutdown)",
            f"Raise shutdown_timeout (now {budget}), or end traces (agentops.end_trace()) "
            f"earlier so less is left to send at exit")


def lost_internal_error(facts: Facts) -> Finding | None:
    count = facts.lost(v.INTERNAL_ERROR)
    if not count:
        return None
    return (f"{_spans(count)} lost to an internal error (internal_error: "
            f"{_loss_evidence(facts, v.INTERNAL_ERROR)})",
            "A fault in the SDK or OpenTelemetry, or a span the encoder cannot send (e.g. a "
            "name that is not a string): report it with the output of "
            "agentops.diagnose_session()")


# -- instrumentation rules -----------------------------------------------------------------

NO_SPANS_AFTER = 60.0
"""Seconds a session trace may run without a span of its own before it is reported."""


def _imported_libraries(facts: Facts) -> list[tuple[str, Mapping[str, Any]]]:
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
    return (f"{names} {verb} imported but no OpenTelemetry instrumentor for "
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
    return (f"instrument_llm_calls is off{where}: calls made with "
            f"{' and '.join(unrecorded)} are not recorded",
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
    return (f"LLM instrumentation could not be activated ({what}): those calls are not "
            f"recorded",
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
    return (f"no spans recorded in this session: session trace {session['name']!r} "
            f"(trace_id {session['trace_id']}) has run for {age:.0f}s with no span but its "
            f"own root",
            "Check " + "; ".join(checks))


Rule = Callable[[Facts], Finding | None]

RULES: tuple[tuple[str, Rule], ...] = (
    ("no_token", no_token),
    ("auth_failed", auth_failed),
    ("auth_pending", auth_pending),
    ("no_api_key", no_api_key),
    ("config_errors", config_errors),
    (v.NOT_AUTHENTICATED, lost_not_authenticated),
    (v.AUTH_REJECTED, lost_auth_rejected),
    (v.RATE_LIMITED, lost_rate_limited),
    (v.SERVER_ERROR, lost_server_error),
    (v.CLIENT_ERROR, lost_client_error),
    (v.CONNECTION_ERROR, lost_connection_error),
    (v.TIMEOUT, lost_timeout),
    (v.TLS_ERROR, lost_tls_error),
    (v.QUEUE_OVERFLOW, lost_queue_overflow),
    (v.SHUTDOWN, lost_shutdown),
    (v.INTERNAL_ERROR, lost_internal_error),
    (v.REJECTED_BY_RECEIVER, lost_rejected_by_receiver),
    (v.UNEXPECTED_STATUS, lost_unexpected_status),
    (v.TOO_LARGE, lost_too_large),
    ("receiver", receiver_not_accepting),
    ("instrumentation.missing_instrumentor", missing_instrumentor),
    ("instrumentation.disabled", instrumentation_disabled),
    ("instrumentation.failed", instrumentation_failed),
    ("session.no_spans", no_spans),
)
"""Evaluated in this order: the quoted sentences first, then authentication, then losses
in the order of the vocabulary."""


def evaluate(facts: Facts) -> tuple[list[str], list[str]]:
    """(issues, recommendations), paired by index; a single status line when no issue."""
    issues: list[str] = []
    recommendations: list[str] = []
    for name, rule in RULES:
        try:
            finding = rule(facts)
        except Exception as error:  # one faulty rule must not hide the others
            logger.debug("diagnosis rule %s failed", name, exc_info=True)
            finding = (f"Diagnosis rule {name} failed: {type(error).__name__}",
                       "Report this with the rest of the diagnosis")
        if finding is not None:
            issues.append(finding[0])
            recommendations.append(finding[1])
    if not issues:
        recommendations.append(status_line(facts))
    return issues, recommendations


def status_line(facts: Facts) -> str:
    if facts.auth.state == v.PENDING:
        age = facts.auth_age or 0.0
        return (f"Authentication in progress ({age:.1f}s so far): spans are held up to "
                f"auth_timeout {_seconds(facts.config.auth_timeout)} for the token; "
                f"check again shortly")
    if facts.auth.state == v.AUTHENTICATED and facts.receiver.get("state") != v.ACCEPTING:
        return (f"Authenticated; the OTLP receiver at {_otlp(facts)} has not confirmed it "
                f"accepts the token yet ({facts.receiver.get('state')}): check again shortly")
    return HEALTHY


# -- collecting ----------------------------------------------------------------------------

def exporter_healthy(facts: Facts) -> bool:
    """A token is held, the receiver has accepted it (the receiver check or a batch), and
    the latest finished export succeeded."""
    return (facts.auth.has_token and facts.receiver.get("state") == v.ACCEPTING
            and facts.stats.get("last_result_ok") is not False)


def collect(client: Client, environ: Mapping[str, str] | None = None,
            now: float | None = None) -> Facts:
    auth = client.tracker.snapshot()
    stats = client.stats.snapshot()
    sessions = tuple({"name": t.name, "trace_id": t.trace_id, "started_at": t.started_at,
                      "spans": client.tally.spans_in(t.span.get_span_context().trace_id)}
                     for t in list(client.traces))
    return Facts(auth=auth, stats=stats, config=client.config,
                 receiver=client.receiver.snapshot(),
                 environ=os.environ if environ is None else environ,
                 now=time.time() if now is None else now,
                 instrumentation=instrumentation.snapshot(client.tally.library_counts()),
                 sessions=sessions)


def diagnose(client: Client | None) -> dict[str, Any]:
    """The diagnosis as plain data, every string of it (the rules quote details that came
    from servers) passed through the redaction."""
    return redact_data(_diagnose(client))


def _diagnose(client: Client | None) -> dict[str, Any]:
    if client is None:
        return {
            "sdk_initialized": False, "client_initialized": False, "has_api_key": False,
            "has_auth_token": False, "active_traces": 0, "exporter_healthy": False,
            "export_stats": {}, "auth": {}, "issues": [NOT_INITIALIZED],
            "recommendations": [CALL_INIT],
        }
    facts = collect(client)
    config = client.config
    issues, recommendations = evaluate(facts)
    return {
        "sdk_initialized": True,
        "client_initialized": not client.closed,
        # A key refused locally (fail_safe) was still given: the report should say
        # "present" and let the auth reason explain the refusal.
        "has_api_key": bool(config.api_key or config.api_key_error),
        "has_auth_token": facts.auth.has_token,
        "active_traces": len(client.traces),
        "exporter_healthy": exporter_healthy(facts),
        "export_stats": facts.stats,
        "auth": {name: getattr(facts.auth, name) for name in _AUTH_FIELDS},
        "receiver": dict(facts.receiver),
        "config": config.public(),
        "instrumentation": {name: dict(lib) for name, lib in facts.instrumentation.items()},
        "storage": client.storage_status(),
        "issues": issues,
        "recommendations": recommendations,
    }
