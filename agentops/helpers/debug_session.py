"""The connectivity test: can this machine deliver session data to AgentOps with this key
and these endpoints? Six steps, each timed and explained; the first failure names its
cause from the vocabulary and what to change.

It never touches the running session: it builds its own API client, auth tracker,
exporter, statistics and tracer provider, and never calls ``agentops.init`` or sets the
global tracer provider. It finishes within ``timeout`` seconds even against a server that
never answers: every network operation gets only the time that is left.

``test_session_connectivity`` collects the facts into a plain, JSON-serialisable dict;
``print_connectivity_test_results`` renders them.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO, TypeVar
from urllib.parse import urlsplit

import requests
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from agentops import terminal
from agentops import vocabulary as v
from agentops.api import AgentOpsAPI, TokenOutcome
from agentops.auth import AuthSnapshot, AuthTracker, iso
from agentops.config import Config
from agentops.diagnostics import ERROR, WARNING, Facts, Finding, find
from agentops.export.exporter import InstrumentedSpanExporter
from agentops.export.loss_log import LossLog
from agentops.export.request import ExitBudget
from agentops.export.stats import ExportStats
from agentops.helpers.dashboard import session_url
from agentops.http import endpoint_label, exception_cause, host_port, mask_url_credentials
from agentops.redaction import redact, redact_data
from agentops.semconv import CONNECTIVITY_TEST_KIND, SpanAttributes

__all__ = ["test_session_connectivity", "print_connectivity_test_results", "resolve_settings"]

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

CONFIGURATION = "configuration"
API_REACHABLE = "api_reachable"
TOKEN_EXCHANGE = "token_exchange"
TOKEN_VERIFIED = "token_verified"
OTLP_REACHABLE = "otlp_reachable"
SPAN_EXPORT = "span_export"

TITLES = {
    CONFIGURATION: "Configuration",
    API_REACHABLE: "API endpoint reachable",
    TOKEN_EXCHANGE: "Token exchange",
    TOKEN_VERIFIED: "Token verified",
    OTLP_REACHABLE: "OTLP endpoint reachable",
    SPAN_EXPORT: "Test span exported",
}

TEST_SPAN_NAME = "agentops.connectivity_test"
GRACE = 0.25
"""Seconds a guarded call may overrun its own timeout before it is abandoned."""

NO_KEY = ("no API key: pass api_key or set AGENTOPS_API_KEY (your project's settings in the "
          "AgentOps dashboard show it)")

T = TypeVar("T")


class _OutOfTime(Exception):
    pass


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


def _within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``'s result, or _OutOfTime once ``seconds`` (plus a grace) have passed.

    Socket and requests timeouts bound each read, not a whole call; a DNS lookup has no
    timeout at all. The call runs on a daemon thread that is abandoned when it overruns.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # handed to the caller's thread
            box["error"] = error

    worker = threading.Thread(target=run, name="agentops-connectivity", daemon=True)
    worker.start()
    worker.join(seconds + GRACE)
    if worker.is_alive():
        raise _OutOfTime
    if "error" in box:
        raise box["error"]
    return box["value"]


def _ms(started: float) -> float:
    return round(1000 * (time.monotonic() - started), 1)


# -- configuration ---------------------------------------------------------------------


def resolve_settings(environ: Mapping[str, str] | None = None,
                     **arguments: Any) -> tuple[Config, dict[str, str]]:
    """The Config ``agentops.init(**arguments)`` would use, and every setting it would refuse
    ({name: message}) instead of stopping at the first ``ConfigError``.

    A refused setting holds its default in the returned Config, as under fail_safe.
    """
    config = Config.resolve(environ, check_all=True, **arguments)
    return config, dict(config.errors)


def _configuration_step(config: Config, problems: dict[str, str]) -> dict[str, Any]:
    facts = {
        "api_key": config.api_key_masked,
        "api_key_source": config.sources.get("api_key"),
        "endpoint": config.endpoint,
        "exporter_endpoint": config.exporter_endpoint,
        "app_url": config.app_url,
        "errors": dict(problems),
    }
    if problems or not config.api_key:
        detail = "; ".join(problems.values()) or NO_KEY
        return _step(CONFIGURATION, FAILED, 0.0, detail, **facts)
    detail = f"API key {config.api_key_masked} ({config.sources.get('api_key')}); endpoints valid"
    return _step(CONFIGURATION, PASSED, 0.0, detail, **facts)


# -- reachability ----------------------------------------------------------------------


def _requests_settings(url: str) -> tuple[str | None, Any]:
    """(proxy URL, verify) exactly as a requests.Session would use them for ``url``."""
    with requests.Session() as session:
        merged = session.merge_environment_settings(url, {}, None, None, None)
    proxy = requests.utils.select_proxy(url, merged["proxies"])
    return proxy, merged["verify"]


def _tls_context(verify: Any) -> ssl.SSLContext:
    # The same trust store requests verifies against (certifi or REQUESTS_CA_BUNDLE), so this
    # sub-step fails exactly when the SDK's requests would.
    if verify is True:
        bundle = requests.utils.extract_zipped_paths(requests.utils.DEFAULT_CA_BUNDLE_PATH)
        return ssl.create_default_context(cafile=bundle)
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


class _ProbeFailure(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _socket_failure(error: BaseException, what: str, seconds: float) -> _ProbeFailure:
    if isinstance(error, (_OutOfTime, socket.timeout, TimeoutError)):
        return _ProbeFailure(v.TIMEOUT, f"{what} did not finish within {seconds:.1f}s")
    if isinstance(error, ssl.SSLCertVerificationError):
        return _ProbeFailure(v.TLS_ERROR, f"{what} failed: {error.verify_message or error}")
    if isinstance(error, ssl.SSLError):
        return _ProbeFailure(v.TLS_ERROR, f"{what} failed: {error.reason or error}")
    if isinstance(error, socket.gaierror):
        return _ProbeFailure(v.CONNECTION_ERROR, f"{what} failed: {error.strerror or error}")
    if isinstance(error, OSError):
        return _ProbeFailure(v.CONNECTION_ERROR, f"{what} failed: {error.strerror or error}")
    return _ProbeFailure(v.INTERNAL_ERROR, f"{what} failed: {type(error).__name__}: {error}")


def _dns(host: str, port: int, what: str, deadline: _Deadline) -> tuple[list[Any], str]:
    budget = deadline.remaining()
    try:
        infos = _within(budget, lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except BaseException as error:
        raise _socket_failure(error, f"DNS lookup of {what}{host}", budget) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise _ProbeFailure(v.CONNECTION_ERROR, f"DNS lookup of {what}{host} returned no address")
    return infos, ", ".join(addresses[:3])


def _tcp(infos: list[Any], label: str, deadline: _Deadline) -> tuple[socket.socket, str]:
    failure: _ProbeFailure | None = None
    for family, kind, proto, _, address in infos:
        budget = deadline.remaining()
        if budget <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(budget)
        try:
            sock.connect(address)
            return sock, str(address[0])
        except OSError as error:
            sock.close()
            failure = _socket_failure(error, f"TCP connect to {label} ({address[0]})", budget)
    raise failure or _ProbeFailure(v.TIMEOUT, f"no time left to connect to {label}")


def _tls(sock: socket.socket, host: str, verify: Any, deadline: _Deadline) -> str:
    budget = deadline.remaining()
    sock.settimeout(budget)
    try:
        wrapped = _tls_context(verify).wrap_socket(sock, server_hostname=host)
    except BaseException as error:
        raise _socket_failure(error, f"TLS handshake with {host}", budget) from None
    try:
        return wrapped.version() or "TLS"
    finally:
        wrapped.close()


def _http(url: str, deadline: _Deadline) -> int:
    budget = deadline.remaining()

    def get() -> int:
        with requests.Session() as session:
            response = session.get(url, timeout=budget, allow_redirects=False, stream=True)
            response.close()
            return response.status_code

    try:
        return _within(budget, get)
    except _OutOfTime:
        raise _ProbeFailure(v.TIMEOUT, f"no HTTP answer from {endpoint_label(url)} "
                                       f"within {budget:.1f}s") from None
    except Exception as error:
        raise _ProbeFailure(*exception_cause(error, url)) from None


def _answer_meaning(status: int) -> str:
    """Why an HTTP answer to the probe's GET is a pass: the endpoints serve POST, so an
    error status to a GET is what a working server says."""
    if status in (404, 405):
        return (f"is reachable; the path answers {status} to GET, as expected (the next "
                "steps send the real POST requests)")
    if status in (401, 403):
        return f"is reachable; it answers {status} to a GET without a token, as expected"
    return f"is reachable (HTTP {status})"


def _probe(name: str, url: str, deadline: _Deadline) -> dict[str, Any]:
    """DNS, TCP, TLS (https) and one HTTP request to ``url``; any HTTP answer is a pass,
    and the step's detail says what the status means (``http_status`` holds it).

    Behind a proxy the SDK never connects to the host itself: DNS and TCP then check the
    proxy, and TLS to the host is left to the HTTP request through the tunnel.
    """
    started = time.monotonic()
    parts = urlsplit(url)
    host, port = host_port(url)
    proxy, verify = _requests_settings(url)
    facts: dict[str, Any] = {"url": url, "endpoint": endpoint_label(url), "substeps": []}
    connect_host, connect_port = host, port
    if proxy:
        connect_host, connect_port = host_port(proxy if "://" in proxy else f"http://{proxy}")
        facts["proxy"] = mask_url_credentials(proxy)
    substeps: list[dict[str, Any]] = facts["substeps"]
    what = "proxy " if proxy else ""
    label = f"{what}{connect_host}:{connect_port}"

    def sub(kind: str, run: Callable[[], str]) -> None:
        began = time.monotonic()
        try:
            detail = run()
        except _ProbeFailure as failure:
            substeps.append({"name": kind, "status": FAILED, "duration_ms": _ms(began),
                             "detail": failure.detail})
            raise
        substeps.append({"name": kind, "status": PASSED, "duration_ms": _ms(began),
                         "detail": detail})

    sock: list[socket.socket] = []
    answered: list[int] = []
    try:
        infos: list[Any] = []

        def dns() -> str:
            found, addresses = _dns(connect_host, connect_port, what, deadline)
            infos.extend(found)
            return addresses

        def tcp() -> str:
            connected, address = _tcp(infos, label, deadline)
            sock.append(connected)
            return f"connected to {address} port {connect_port}"

        def http() -> str:
            answered.append(_http(url, deadline))
            return f"HTTP {answered[0]}"

        sub("dns", dns)
        sub("tcp", tcp)
        if parts.scheme == "https" and not proxy:
            sub("tls", lambda: _tls(sock[0], host, verify, deadline))
        sub("http", http)
    except _ProbeFailure as failure:
        return _step(name, FAILED, _ms(started), failure.detail, reason=failure.reason, **facts)
    finally:
        for open_socket in sock:
            open_socket.close()
    via = f" via proxy {facts['proxy']}" if proxy else ""
    status = answered[0]
    return _step(name, PASSED, _ms(started),
                 f"{facts['endpoint']}{via} {_answer_meaning(status)}",
                 http_status=status, **facts)


# -- authentication --------------------------------------------------------------------


def _guarded_token_call(call: Callable[[float], TokenOutcome], url: str,
                        deadline: _Deadline) -> TokenOutcome:
    budget = deadline.remaining()
    try:
        return _within(budget, lambda: call(budget))
    except _OutOfTime:
        return TokenOutcome(v.TIMEOUT, None, f"no answer from {endpoint_label(url)} "
                                             f"within {budget:.1f}s")


def _token_step(name: str, outcome: TokenOutcome, started: float) -> dict[str, Any]:
    facts: dict[str, Any] = {"http_status": outcome.http_status}
    if outcome.ok or outcome.reason is None:
        facts["project_id"] = outcome.project_id
        expires = outcome.expires_at
        if expires is None and isinstance(outcome.payload.get("expires_at"), str):
            facts["token_expires_at"] = outcome.payload["expires_at"]
        else:
            facts["token_expires_at"] = iso(expires)
        detail = f"{outcome.detail} (HTTP {outcome.http_status})"
        if facts["project_id"]:
            detail += f" for project {facts['project_id']}"
        return _step(name, PASSED, _ms(started), detail, **facts)
    status = f"HTTP {outcome.http_status}" if outcome.http_status else "no HTTP response"
    return _step(name, FAILED, _ms(started), f"{outcome.reason} ({status}): {outcome.detail}",
                 reason=outcome.reason, **facts)


# -- span export -----------------------------------------------------------------------


class _UnloggedLossLog(LossLog):
    """The test reports its span's fate itself; its loss is not the user's session data."""

    def record(self, cause: str, spans: int, detail: str) -> None:
        return None


def _export_step(config: Config, deadline: _Deadline,
                 stats: ExportStats) -> tuple[dict[str, Any], str | None]:
    """One span through a tracker, exporter and provider of its own: the SDK's code path,
    none of the running session's state."""
    started = time.monotonic()
    api = AgentOpsAPI(config.endpoint)
    budget = deadline.remaining()
    tracker = AuthTracker(api, config.api_key, auth_timeout=budget, request_timeout=budget)
    provider = TracerProvider(resource=Resource.create({"service.name": "agentops-connectivity-test"}),
                              shutdown_on_exit=False)
    exporter: InstrumentedSpanExporter | None = None
    facts: dict[str, Any] = {"endpoint": endpoint_label(config.exporter_endpoint)}
    try:
        tracker.start()
        state = tracker.wait(deadline.remaining())
        if state != v.AUTHENTICATED:
            auth = tracker.snapshot()
            why = (f"{auth.reason}: {auth.detail}" if auth.reason
                   else "the token exchange did not finish within the time limit")
            return _step(SPAN_EXPORT, FAILED, _ms(started),
                         f"not sent: the exporter got no token ({why})",
                         reason=v.NOT_AUTHENTICATED, **facts), None
        exporter = InstrumentedSpanExporter(
            config.exporter_endpoint, tracker, stats, _UnloggedLossLog(),
            timeout=max(0.05, deadline.remaining()), budget=ExitBudget())
        # An empty context: the test span must start a trace of its own, never join a
        # session trace that is current in the caller's code.
        span = provider.get_tracer("agentops.connectivity").start_span(
            TEST_SPAN_NAME, context=Context(),
            attributes={SpanAttributes.AGENTOPS_SPAN_KIND: CONNECTIVITY_TEST_KIND})
        span.end()
        if not isinstance(span, ReadableSpan):  # the SDK's tracer makes SDK spans
            raise TypeError(f"unexpected span type {type(span).__name__}")
        trace_id = span.get_span_context().trace_id
        facts.update(trace_id=f"{trace_id:032x}", span_id=f"{span.get_span_context().span_id:016x}")
        sender = exporter
        try:
            result = _within(deadline.remaining(), lambda: sender.export([span]))
        except _OutOfTime:
            result = None
        snapshot = stats.snapshot()
        facts.update(http_status=snapshot["last_http_status"], http_requests=snapshot["http_requests"])
        if result is SpanExportResult.SUCCESS:
            return _step(SPAN_EXPORT, PASSED, _ms(started),
                         f"1 span acknowledged by {facts['endpoint']} "
                         f"(HTTP {snapshot['last_http_status']})", **facts), \
                session_url(config.app_url, trace_id)
        if result is None:
            return _step(SPAN_EXPORT, FAILED, _ms(started),
                         f"no answer from {facts['endpoint']} within the time limit",
                         reason=v.TIMEOUT, **facts), None
        cause = snapshot["last_error_cause"] or v.INTERNAL_ERROR
        return _step(SPAN_EXPORT, FAILED, _ms(started), f"{cause}: {snapshot['last_error']}",
                     reason=cause, **facts), None
    finally:
        tracker.close()
        if exporter is not None:
            exporter.shutdown()
        provider.shutdown()


# -- the test --------------------------------------------------------------------------


def _step(name: str, status: str, duration_ms: float, detail: str, **facts: Any) -> dict[str, Any]:
    return {"name": name, "title": TITLES[name], "status": status, "duration_ms": duration_ms,
            "detail": detail, **facts}


def _skipped(name: str, why: str) -> dict[str, Any]:
    return _step(name, SKIPPED, 0.0, f"not run: {why}")


def test_session_connectivity(api_key: str | None = None, timeout: float = 15,
                              endpoint: str | None = None, exporter_endpoint: str | None = None,
                              *, app_url: str | None = None) -> dict[str, Any]:
    """Check, step by step, that session data can reach AgentOps; never raises.

    Unset arguments come from AGENTOPS_* environment variables, then the defaults, as in
    ``agentops.init``. The result holds ``test_passed``, ``steps`` (name, status, duration_ms,
    detail and the facts of each step), ``issues``, ``recommendations`` and ``session_url``
    (the test span's dashboard link once the receiver acknowledged it). The API key appears
    masked, the token never: every string of the result is redacted.
    """
    return redact_data(_test_session_connectivity(api_key, timeout, endpoint, exporter_endpoint,
                                                  app_url))


def _test_session_connectivity(api_key: str | None, timeout: float, endpoint: str | None,
                               exporter_endpoint: str | None, app_url: str | None) -> dict[str, Any]:
    began = time.time()
    started = time.monotonic()
    try:
        deadline = _Deadline(float(timeout))
        config, problems = resolve_settings(api_key=api_key, endpoint=endpoint,
                                            exporter_endpoint=exporter_endpoint, app_url=app_url)
    except Exception as error:  # a diagnosis tool reports, never raises
        return _broken(began, timeout, f"{type(error).__name__}: {error}")
    results: dict[str, Any] = {
        "test_passed": False,
        "steps": [],
        "findings": [],
        "issues": [],
        "recommendations": [],
        "session_url": None,
        "timeout": timeout,
        "started_at": iso(began),
        "config": config.public(),
        "sources": dict(config.sources),
        "config_errors": dict(problems),
        "endpoints": {"api": config.endpoint, "otlp": config.exporter_endpoint,
                      "app": config.app_url},
    }
    resolve_ms = _ms(started)
    completed = False
    try:
        _run(results, config, problems, deadline, resolve_ms)
        completed = True
    except Exception as error:
        _add(results, _internal_failure(f"The connectivity test itself failed: "
                                        f"{type(error).__name__}: {error}"))
    steps = results["steps"]
    results["test_passed"] = completed and len(steps) == len(TITLES) and all(
        s["status"] == PASSED for s in steps)
    results["duration_ms"] = round(1000 * (deadline.seconds - deadline.remaining()), 1)
    if results["test_passed"]:
        results["recommendations"].append(
            "Connectivity is healthy: if a session still shows no data, call "
            "agentops.print_session_status() in that program")
    results["recommendations"] = list(dict.fromkeys(results["recommendations"]))
    return results


# Its name starts with "test_": keep pytest from collecting it where tests import it.
test_session_connectivity.__test__ = False  # type: ignore[attr-defined]


def _broken(began: float, timeout: float, why: str) -> dict[str, Any]:
    results: dict[str, Any] = {"test_passed": False, "steps": [], "findings": [], "issues": [],
                               "recommendations": [], "session_url": None, "timeout": timeout,
                               "started_at": iso(began)}
    _add(results, _internal_failure(f"The connectivity test could not start: {why}"))
    return results


def _internal_failure(issue: str) -> Finding:
    return Finding("connectivity.internal_error", ERROR, {}, issue,
                   "An internal error in the SDK: please report it with this output")


def _add(results: dict[str, Any], finding: Finding) -> None:
    results["findings"].append(finding.as_dict())
    results["issues"].append(finding.issue)
    results["recommendations"].append(finding.recommendation)


def _failed_auth(reason: str, http_status: int | None, detail: str,
                 token_url: str | None) -> AuthSnapshot:
    return AuthSnapshot(state=v.FAILED, reason=reason, http_status=http_status, detail=detail,
                        attempts=1, since=iso(time.time()), authenticated_at=None,
                        token_expires_at=None, project_id=None, has_token=False,
                        retrying=False, endpoint=token_url)


def _run(results: dict[str, Any], config: Config, problems: dict[str, str],
         deadline: _Deadline, resolve_ms: float) -> None:
    """Run the steps, then let the diagnosis rules explain what failed: the facts each
    step found become the same Facts a running session's diagnosis is made of."""
    steps: list[dict[str, Any]] = results["steps"]
    timed_out_before: list[str] = []
    api = AgentOpsAPI(config.endpoint)
    auth: AuthSnapshot | None = None
    receiver: dict[str, Any] | None = None
    token_check: dict[str, Any] | None = None
    stats = ExportStats()

    def out_of_time(name: str) -> bool:
        if deadline.remaining() > 0:
            return False
        steps.append(_skipped(name, f"the {deadline.seconds:g}s time limit ran out "
                                    "during earlier steps"))
        timed_out_before.append(name)
        return True

    step = _configuration_step(config, problems)
    step["duration_ms"] = resolve_ms
    steps.append(step)
    if config.api_key_error:
        auth = _failed_auth(v.INVALID_KEY_FORMAT, None, config.api_key_error, None)

    # API reachable
    api_ok = False
    if "endpoint" in problems:
        steps.append(_skipped(API_REACHABLE, "endpoint was refused (see step 1)"))
    elif not out_of_time(API_REACHABLE):
        step = _probe(API_REACHABLE, config.endpoint, deadline)
        steps.append(step)
        api_ok = step["status"] == PASSED
        if not api_ok and auth is None:
            auth = _failed_auth(step["reason"], None, step["detail"], api.token_url)

    # Token exchange
    token: str | None = None
    if not config.api_key:
        steps.append(_skipped(TOKEN_EXCHANGE, "no usable API key"))
    elif not api_ok:
        steps.append(_skipped(TOKEN_EXCHANGE, "the API endpoint is not reachable"))
    elif not out_of_time(TOKEN_EXCHANGE):
        started = time.monotonic()
        key = config.api_key
        outcome = _guarded_token_call(lambda budget: api.fetch_token(key, budget),
                                      api.token_url, deadline)
        step = _token_step(TOKEN_EXCHANGE, outcome, started)
        steps.append(step)
        token = outcome.token
        if not outcome.ok:
            auth = _failed_auth(outcome.reason or v.BAD_RESPONSE, outcome.http_status,
                                outcome.detail, api.token_url)
        else:
            auth = AuthSnapshot(
                state=v.AUTHENTICATED, reason=None, http_status=outcome.http_status,
                detail=outcome.detail, attempts=1, since=iso(time.time()),
                authenticated_at=iso(time.time()), token_expires_at=iso(outcome.expires_at),
                project_id=outcome.project_id, has_token=True, retrying=False,
                endpoint=api.token_url, token_project_id=outcome.token_project_id)

    # Token verified
    verified = False
    if token is None:
        steps.append(_skipped(TOKEN_VERIFIED, "no token (the token exchange did not succeed)"))
    elif not out_of_time(TOKEN_VERIFIED):
        started = time.monotonic()
        held = token
        outcome = _guarded_token_call(lambda budget: api.verify_token(held, budget),
                                      api.token_url, deadline)
        step = _token_step(TOKEN_VERIFIED, outcome, started)
        steps.append(step)
        verified = outcome.reason is None
        if not verified:
            token_check = {"reason": outcome.reason, "http_status": outcome.http_status,
                           "detail": outcome.detail}

    # OTLP endpoint reachable
    otlp_ok = False
    if "exporter_endpoint" in problems:
        steps.append(_skipped(OTLP_REACHABLE, "exporter_endpoint was refused (see step 1)"))
    elif not out_of_time(OTLP_REACHABLE):
        step = _probe(OTLP_REACHABLE, config.exporter_endpoint, deadline)
        steps.append(step)
        otlp_ok = step["status"] == PASSED
        if not otlp_ok:
            reachable = step["reason"] in (v.CONNECTION_ERROR, v.TIMEOUT, v.TLS_ERROR)
            receiver = {"state": v.UNREACHABLE if reachable else v.FAILING,
                        "cause": step["reason"], "http_status": None,
                        "detail": step["detail"], "checked_at": iso(time.time()),
                        "latency_ms": step["duration_ms"]}

    # Test span exported
    if not verified:
        steps.append(_skipped(SPAN_EXPORT, "no verified token"))
    elif not otlp_ok:
        steps.append(_skipped(SPAN_EXPORT, "the OTLP endpoint is not reachable"))
    elif not out_of_time(SPAN_EXPORT):
        step, url = _export_step(config, deadline, stats)
        steps.append(step)
        results["session_url"] = url
        if step["status"] != PASSED and step.get("reason") == v.TIMEOUT and \
                not stats.snapshot()["failures_by_cause"]:
            stats.batch_finished(stats.batch_started(1), 0, [(v.TIMEOUT, 1, step["detail"])])

    if auth is None:  # no key: the no-API-key finding
        auth = AuthSnapshot(state=v.DISABLED, reason=None, http_status=None,
                            detail="no API key", attempts=0, since=None,
                            authenticated_at=None, token_expires_at=None, project_id=None,
                            has_token=False, retrying=False, endpoint=None)
    facts = Facts(auth=auth, stats=stats.snapshot(), config=config, receiver=receiver or {},
                  token_check=token_check, environ=os.environ)
    for finding in find(facts):
        _add(results, finding)

    if timed_out_before and not any(s["status"] == FAILED for s in steps):
        _add(results, Finding(
            "connectivity.out_of_time", WARNING,
            {"timeout": deadline.seconds, "step": timed_out_before[0]},
            f"The connectivity test ran out of time ({deadline.seconds:g}s) before "
            f"{TITLES[timed_out_before[0]].lower()}",
            "Run the test again with a longer timeout"))


# -- rendering -------------------------------------------------------------------------

# The same marks and ASCII fallbacks as print_session_status()'s report.
_MARKS = {PASSED: ("\u2713", "[OK]", terminal.GREEN), FAILED: ("\u2717", "[NO]", terminal.RED),
          SKIPPED: ("\u2013", "[--]", terminal.YELLOW)}
_RULE = "=" * 60


def _duration(ms: Any) -> str:
    if not isinstance(ms, (int, float)):
        return ""
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _substep(sub: Mapping[str, Any]) -> str:
    text = f"{str(sub.get('name', '')).upper()} {_duration(sub.get('duration_ms'))}"
    if sub.get("status") != PASSED:
        return f"{text} FAILED"
    if sub.get("name") in ("dns", "tls") and sub.get("detail"):
        return f"{text} ({sub['detail']})"
    return text


def render_connectivity_results(results: Mapping[str, Any], stream: TextIO) -> list[str]:
    """The report's lines for ``stream`` (its colour and encoding decide the marks)."""
    colour = terminal.wants_colour(stream)
    fancy = terminal.can_encode(stream, "\u2713\u2717\u2013\u2022\u00b7")
    bullet = "\u2022" if fancy else "*"
    lines = [_RULE, "AgentOps Connectivity Test", _RULE]
    endpoints = results.get("endpoints") or {}
    config = results.get("config") or {}
    if endpoints:
        lines.append(f"API endpoint:   {endpoints.get('api')}")
        lines.append(f"OTLP endpoint:  {endpoints.get('otlp')}")
    if "api_key" in config:
        steps = results.get("steps") or [{}]
        refused = "api_key" in (steps[0].get("errors") or {})
        shown = "(refused: see step 1)" if refused else config.get("api_key") or "(none)"
        lines.append(f"API key:        {shown}")
    lines.append("")
    for number, step in enumerate(results.get("steps") or [], 1):
        status = step.get("status", SKIPPED)
        symbol, ascii_mark, tint = _MARKS.get(status, _MARKS[SKIPPED])
        mark = terminal.paint(symbol if fancy else ascii_mark, tint, colour)
        title = f"{number}. {step.get('title') or step.get('name')}"
        duration = _duration(step.get("duration_ms")) if status != SKIPPED else ""
        lines.append(f"  {mark} {title:<28} {duration:>9}".rstrip())
        lines.append(f"       {_one_line(step.get('detail', ''))}")
        subs = step.get("substeps") or []
        if subs:
            dot = " \u00b7 " if fancy else " | "
            lines.append("       " + dot.join(_substep(sub) for sub in subs))
    passed = bool(results.get("test_passed"))
    verdict = terminal.paint("PASSED" if passed else "FAILED",
                             terminal.GREEN if passed else terminal.RED, colour)
    total = _duration(results.get("duration_ms"))
    lines += ["", f"Result: {verdict}" + (f" in {total}" if total else "")]
    if results.get("session_url"):
        lines.append(f"Test span in the dashboard: {results['session_url']}")
    if results.get("issues"):
        lines += ["", "Issues Found:"]
        lines += [f"  {bullet} {_one_line(issue)}" for issue in results["issues"]]
    if results.get("recommendations"):
        lines += ["", "Recommendations:"]
        lines += [f"  {bullet} {_one_line(tip)}" for tip in results["recommendations"]]
    lines.append(_RULE)
    return lines


def print_connectivity_test_results(results: Mapping[str, Any], file: TextIO | None = None) -> None:
    """Print the connectivity test's result to ``file`` (default stdout). Never raises."""
    stream = file if file is not None else sys.stdout
    if stream is None:  # pythonw and some service hosts have no stdout
        return
    try:
        lines = render_connectivity_results(results, stream)
    except Exception as error:  # a malformed result must not break the caller
        lines = [f"AgentOps Connectivity Test: could not render the result "
                 f"({type(error).__name__}: {error})"]
    terminal.write_text(stream, redact("\n".join(lines) + "\n"))
