"""The connectivity test's steps: one small function each, and :data:`STEPS`, the ordered
table that names them and says what each needs from the steps before it.

A step function takes the shared :class:`Context`, returns a
:class:`~agentops.helpers.connectivity.records.StepResult`, and leaves in the context what
later steps and the diagnosis rules need (the token, the auth and receiver facts).
:func:`run_steps` walks the table: a step whose requirement is not met, or that would need
the network after the time limit ran out, is skipped with the reason why.

Nothing here touches the running session: the steps build their own API client, auth
tracker, exporter, statistics and tracer provider.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.context import Context as OTelContext
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext

from agentops import vocabulary as v
from agentops.api import AgentOpsAPI, TokenOutcome
from agentops.auth import AuthSnapshot, AuthTracker
from agentops.config import Config
from agentops.diagnostics import WARNING, Facts, Finding, find
from agentops.export.exporter import InstrumentedSpanExporter
from agentops.export.loss_log import LossLog
from agentops.export.request import ExitBudget
from agentops.export.stats import ExportStats
from agentops.helpers.connectivity.probe import (
    Deadline,
    OutOfTime,
    Reachability,
    ms_since,
    probe,
    within,
)
from agentops.helpers.connectivity.records import FAILED, PASSED, SKIPPED, StepResult
from agentops.helpers.dashboard import session_url
from agentops.http import endpoint_label
from agentops.semconv import CONNECTIVITY_TEST_KIND, SpanAttributes
from agentops.timestamps import iso

CONFIGURATION = "configuration"
API_REACHABLE = "api_reachable"
TOKEN_EXCHANGE = "token_exchange"
TOKEN_VERIFIED = "token_verified"
OTLP_REACHABLE = "otlp_reachable"
SPAN_EXPORT = "span_export"

TEST_SPAN_NAME = "agentops.connectivity_test"

NO_KEY = ("no API key: pass api_key or set AGENTOPS_API_KEY (your project's settings in the "
          "AgentOps dashboard show it)")


@dataclass
class Context:
    """What the steps share: the settings, one deadline for the whole test, and what the
    steps so far found.

    ``problems`` maps each refused setting to its message; ``resolve_ms`` is the time it
    took to resolve the settings (the configuration step's duration). ``auth``,
    ``receiver`` (``ReceiverStatus.snapshot()``'s shape) and ``token_check`` are the facts
    the diagnosis rules read afterwards.
    """

    config: Config
    problems: Mapping[str, str]
    deadline: Deadline
    resolve_ms: float = 0.0
    stats: ExportStats = field(default_factory=ExportStats)
    results: list[StepResult] = field(default_factory=list)
    auth: AuthSnapshot | None = None
    token: str | None = field(default=None, repr=False)
    receiver: dict[str, Any] | None = None
    token_check: dict[str, Any] | None = None
    session_url: str | None = None
    out_of_time: list[str] = field(default_factory=list)
    """Names of the steps skipped because the time limit ran out."""
    api: AgentOpsAPI = field(init=False)
    """The token API at ``config.endpoint``."""

    def __post_init__(self) -> None:
        self.api = AgentOpsAPI(self.config.endpoint)

    def result(self, name: str) -> StepResult | None:
        """The result of the step ``name``, if it has run (or was skipped)."""
        return next((result for result in self.results if result.name == name), None)

    def passed(self, name: str) -> bool:
        found = self.result(name)
        return found is not None and found.ok


def _failed_auth(reason: str, http_status: int | None, detail: str,
                 token_url: str | None) -> AuthSnapshot:
    return AuthSnapshot(state=v.FAILED, reason=reason, http_status=http_status, detail=detail,
                        attempts=1, since=iso(time.time()), authenticated_at=None,
                        token_expires_at=None, project_id=None, has_token=False,
                        retrying=False, endpoint=token_url)


# -- configuration ---------------------------------------------------------------------


def check_configuration(ctx: Context) -> StepResult:
    """Every setting accepted, and an API key present."""
    config = ctx.config
    facts = {"api_key": config.api_key_masked, "api_key_source": config.sources.get("api_key"),
             "endpoint": config.endpoint, "exporter_endpoint": config.exporter_endpoint,
             "app_url": config.app_url, "errors": dict(ctx.problems)}
    if config.api_key_error:
        ctx.auth = _failed_auth(v.INVALID_KEY_FORMAT, None, config.api_key_error, None)
    if ctx.problems or not config.api_key:
        result = StepResult.failed(None, "; ".join(ctx.problems.values()) or NO_KEY, **facts)
    else:
        result = StepResult.passed(f"API key {config.api_key_masked} "
                                   f"({config.sources.get('api_key')}); endpoints valid", **facts)
    return replace(result, duration_ms=ctx.resolve_ms)


# -- reachability ----------------------------------------------------------------------


def answer_meaning(status: int) -> str:
    """Why an HTTP answer to the probe's GET is a pass: the endpoints serve POST, so an
    error status to a GET is what a working server says."""
    if status in (404, 405):
        return (f"is reachable; the path answers {status} to GET, as expected (the next "
                "steps send the real POST requests)")
    if status in (401, 403):
        return f"is reachable; it answers {status} to a GET without a token, as expected"
    return f"is reachable (HTTP {status})"


def _reachability_result(found: Reachability) -> StepResult:
    facts: dict[str, Any] = {"url": found.url, "endpoint": found.endpoint}
    if found.proxy:
        facts["proxy"] = found.proxy
    if found.http_status is None:
        result = StepResult.failed(found.reason, found.detail, **facts)
    else:
        via = f" via proxy {found.proxy}" if found.proxy else ""
        result = StepResult.passed(f"{found.endpoint}{via} {answer_meaning(found.http_status)}",
                                   http_status=found.http_status, **facts)
    return replace(result, substeps=tuple(found.substeps))


def check_api_reachable(ctx: Context) -> StepResult:
    """DNS, TCP, TLS and HTTP to the API base URL."""
    result = _reachability_result(probe(ctx.config.endpoint, ctx.deadline))
    if not result.ok and ctx.auth is None:
        ctx.auth = _failed_auth(result.reason or v.INTERNAL_ERROR, None, result.detail,
                                ctx.api.token_url)
    return result


def check_otlp_reachable(ctx: Context) -> StepResult:
    """DNS, TCP, TLS and HTTP to the OTLP traces URL."""
    started = time.monotonic()
    result = _reachability_result(probe(ctx.config.exporter_endpoint, ctx.deadline))
    if not result.ok:
        unreachable = result.reason in (v.CONNECTION_ERROR, v.TIMEOUT, v.TLS_ERROR)
        ctx.receiver = {"state": v.UNREACHABLE if unreachable else v.FAILING,
                        "cause": result.reason, "http_status": None, "detail": result.detail,
                        "checked_at": iso(time.time()), "latency_ms": ms_since(started)}
    return result


# -- authentication --------------------------------------------------------------------


def _token_call(ctx: Context, call: Callable[[float], TokenOutcome]) -> TokenOutcome:
    budget = ctx.deadline.remaining()
    try:
        return within(budget, lambda: call(budget))
    except OutOfTime:
        return TokenOutcome(v.TIMEOUT, None, f"no answer from {endpoint_label(ctx.api.token_url)} "
                                             f"within {budget:.1f}s")


def _token_result(outcome: TokenOutcome) -> StepResult:
    if outcome.ok or outcome.reason is None:
        expires = outcome.expires_at
        if expires is None and isinstance(outcome.payload.get("expires_at"), str):
            expires_at = outcome.payload["expires_at"]
        else:
            expires_at = iso(expires)
        detail = f"{outcome.detail} (HTTP {outcome.http_status})"
        if outcome.project_id:
            detail += f" for project {outcome.project_id}"
        return StepResult.passed(detail, http_status=outcome.http_status,
                                 project_id=outcome.project_id, token_expires_at=expires_at)
    status = f"HTTP {outcome.http_status}" if outcome.http_status else "no HTTP response"
    return StepResult.failed(outcome.reason, f"{outcome.reason} ({status}): {outcome.detail}",
                             http_status=outcome.http_status)


def exchange_token(ctx: Context) -> StepResult:
    """``POST /v3/auth/token`` with the API key."""
    key = ctx.config.api_key or ""  # the table runs this step only with a key
    outcome = _token_call(ctx, lambda budget: ctx.api.fetch_token(key, budget))
    ctx.token = outcome.token
    if outcome.ok:
        now = iso(time.time())
        ctx.auth = AuthSnapshot(
            state=v.AUTHENTICATED, reason=None, http_status=outcome.http_status,
            detail=outcome.detail, attempts=1, since=now, authenticated_at=now,
            token_expires_at=iso(outcome.expires_at), project_id=outcome.project_id,
            has_token=True, retrying=False, endpoint=ctx.api.token_url,
            token_project_id=outcome.token_project_id)
    else:
        ctx.auth = _failed_auth(outcome.reason or v.BAD_RESPONSE, outcome.http_status,
                                outcome.detail, ctx.api.token_url)
    return _token_result(outcome)


def verify_token(ctx: Context) -> StepResult:
    """``GET /v3/auth/token`` with the token just issued: the API accepts its own token."""
    held = ctx.token or ""
    outcome = _token_call(ctx, lambda budget: ctx.api.verify_token(held, budget))
    if outcome.reason is not None:
        ctx.token_check = {"reason": outcome.reason, "http_status": outcome.http_status,
                           "detail": outcome.detail}
    return _token_result(outcome)


# -- span export -----------------------------------------------------------------------


class _UnloggedLossLog(LossLog):
    """The test reports its span's fate itself; its loss is not the user's session data."""

    def record(self, cause: str, spans: int, detail: str) -> None:
        return None


def _test_span(provider: TracerProvider) -> tuple[ReadableSpan, SpanContext]:
    """The test span, ended, and its span context."""
    # An empty context: the test span must start a trace of its own, never join a session
    # trace that is current in the caller's code.
    span = provider.get_tracer("agentops.connectivity").start_span(
        TEST_SPAN_NAME, context=OTelContext(),
        attributes={SpanAttributes.AGENTOPS_SPAN_KIND: CONNECTIVITY_TEST_KIND})
    span.end()
    if not isinstance(span, ReadableSpan):  # the SDK's tracer makes SDK spans
        raise TypeError(f"unexpected span type {type(span).__name__}")
    return span, span.get_span_context()


def _send(ctx: Context, tracker: AuthTracker, provider: TracerProvider,
          endpoint: str) -> StepResult:
    exporter = InstrumentedSpanExporter(
        ctx.config.exporter_endpoint, tracker, ctx.stats, _UnloggedLossLog(),
        timeout=max(0.05, ctx.deadline.remaining()), budget=ExitBudget())
    try:
        span, span_context = _test_span(provider)
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
    """One span through an auth tracker, exporter and provider of the test's own: the SDK's
    code path, none of the running session's state."""
    endpoint = endpoint_label(ctx.config.exporter_endpoint)
    budget = ctx.deadline.remaining()
    tracker = AuthTracker(ctx.api, ctx.config.api_key, auth_timeout=budget,
                          request_timeout=budget)
    provider = TracerProvider(
        resource=Resource.create({"service.name": "agentops-connectivity-test"}),
        shutdown_on_exit=False)
    try:
        tracker.start()
        if tracker.wait(ctx.deadline.remaining()) != v.AUTHENTICATED:
            auth = tracker.snapshot()
            why = (f"{auth.reason}: {auth.detail}" if auth.reason
                   else "the token exchange did not finish within the time limit")
            return StepResult.failed(v.NOT_AUTHENTICATED,
                                     f"not sent: the exporter got no token ({why})",
                                     endpoint=endpoint)
        result = _send(ctx, tracker, provider, endpoint)
    finally:
        tracker.close()
        provider.shutdown()
    if result.reason == v.TIMEOUT and not ctx.stats.snapshot()["failures_by_cause"]:
        # Abandoned mid-request: count the span so the diagnosis rules see the timeout.
        ctx.stats.batch_finished(ctx.stats.batch_started(1), 0, [(v.TIMEOUT, 1, result.detail)])
    return result


# -- the table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """A step runs only when ``met(context)``; otherwise it is skipped ("not run:
    ``otherwise``"). A requirement on an earlier step (``after``, its name) that was itself
    skipped says so instead: that step found nothing, good or bad."""

    met: Callable[[Context], bool]
    otherwise: str
    after: str | None = None

    def unmet(self, ctx: Context) -> str | None:
        """Why the step cannot run, or None when this requirement is met."""
        if self.met(ctx):
            return None
        earlier = ctx.result(self.after) if self.after else None
        if earlier is not None and earlier.status == SKIPPED:
            return f'needs "{earlier.title}", which did not run'
        return self.otherwise


@dataclass(frozen=True)
class Step:
    """One row of the table: ``run`` makes the result; ``requires`` are checked in order;
    a step that ``uses_network`` is skipped once the time limit has run out."""

    name: str
    title: str
    run: Callable[[Context], StepResult]
    requires: tuple[Requirement, ...] = ()
    uses_network: bool = True


def _after(name: str, otherwise: str) -> Requirement:
    return Requirement(lambda ctx: ctx.passed(name), otherwise, after=name)


def _accepted(setting: str) -> Requirement:
    return Requirement(lambda ctx: setting not in ctx.problems,
                       f"{setting} was refused (see step 1)")


STEPS: tuple[Step, ...] = (
    Step(CONFIGURATION, "Configuration", check_configuration, uses_network=False),
    Step(API_REACHABLE, "API endpoint reachable", check_api_reachable, (
        _accepted("endpoint"),)),
    Step(TOKEN_EXCHANGE, "Token exchange", exchange_token, (
        Requirement(lambda ctx: bool(ctx.config.api_key), "no usable API key"),
        _after(API_REACHABLE, "the API endpoint is not reachable"))),
    Step(TOKEN_VERIFIED, "Token verified", verify_token, (
        Requirement(lambda ctx: ctx.token is not None,
                    "no token (the token exchange did not succeed)", after=TOKEN_EXCHANGE),)),
    Step(OTLP_REACHABLE, "OTLP endpoint reachable", check_otlp_reachable, (
        _accepted("exporter_endpoint"),)),
    Step(SPAN_EXPORT, "Test span exported", export_test_span, (
        _after(TOKEN_VERIFIED, "no verified token"),
        _after(OTLP_REACHABLE, "the OTLP endpoint is not reachable"))),
)
"""The steps in the order they run."""

TITLES: dict[str, str] = {step.name: step.title for step in STEPS}


def run_step(step: Step, ctx: Context) -> StepResult:
    """``step``'s result, or why it was skipped; its name, title and duration filled in."""
    unmet = next(filter(None, (need.unmet(ctx) for need in step.requires)), None)
    if unmet is not None:
        result = StepResult.skipped(unmet)
    elif step.uses_network and ctx.deadline.remaining() <= 0:
        ctx.out_of_time.append(step.name)
        result = StepResult.skipped(f"the {ctx.deadline.seconds:g}s time limit ran out "
                                    "during earlier steps")
    else:
        started = time.monotonic()
        result = step.run(ctx)
        if result.duration_ms is None:
            result = replace(result, duration_ms=ms_since(started))
    return replace(result, name=step.name, title=step.title)


def run_steps(ctx: Context, steps: tuple[Step, ...] = STEPS) -> None:
    """Run ``steps`` in order, appending each result to ``ctx.results``."""
    for step in steps:
        ctx.results.append(run_step(step, ctx))


def explain(ctx: Context) -> list[Finding]:
    """The diagnosis rules' findings on what the steps found: the same Facts a running
    session's diagnosis is made of, so both explain a failure with the same words."""
    # No step authenticated: without a key, the no-API-key finding; with one, the token
    # exchange never ran (pending with no start time, which no rule calls a failure).
    auth = ctx.auth or AuthSnapshot(
        state=v.PENDING if ctx.config.api_key else v.DISABLED, reason=None, http_status=None,
        detail=None if ctx.config.api_key else "no API key", attempts=0, since=None,
        authenticated_at=None, token_expires_at=None, project_id=None, has_token=False,
        retrying=False, endpoint=None)
    facts = Facts(auth=auth, stats=ctx.stats.snapshot(), config=ctx.config,
                  receiver=ctx.receiver or {}, token_check=ctx.token_check, environ=os.environ)
    findings = list(find(facts))
    if ctx.out_of_time and not any(result.status == FAILED for result in ctx.results):
        first = ctx.out_of_time[0]
        number = [step.name for step in STEPS].index(first) + 1
        findings.append(Finding(
            "connectivity.out_of_time", WARNING,
            {"timeout": ctx.deadline.seconds, "step": first},
            f"The connectivity test ran out of time ({ctx.deadline.seconds:g}s) before "
            f"step {number} ({TITLES[first]})",
            "Run the test again with a longer timeout"))
    return findings


__all__ = ["Context", "Requirement", "Step", "STEPS", "TITLES", "run_step", "run_steps",
           "explain", "answer_meaning", "PASSED", "FAILED", "SKIPPED"]
