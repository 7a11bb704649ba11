"""The connectivity test's shared :class:`Context`, and its steps up to the token: the
configuration, the reachability of each endpoint, the token exchange and its verification.
(The last step, a test span sent through an exporter, is in :mod:`.span_export`; the table
that orders the steps and runs them is in :mod:`.table`.)

A step function takes the shared :class:`Context`, returns a
:class:`~agentops.helpers.connectivity.records.StepResult`, and leaves in the context what
later steps and the diagnosis rules need (the token, the auth and receiver facts).

Nothing here touches the running session: the steps build their own API client and
statistics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agentops import vocabulary as v
from agentops.api import AgentOpsAPI, TokenOutcome
from agentops.auth import AuthSnapshot
from agentops.config import Config
from agentops.export.stats import ExportStats
from agentops.helpers.connectivity.probe import (
    Deadline,
    OutOfTime,
    Reachability,
    ms_since,
    probe,
    within,
)
from agentops.helpers.connectivity.records import StepResult
from agentops.http import endpoint_label
from agentops.timestamps import iso

CONFIGURATION = "configuration"
API_REACHABLE = "api_reachable"
TOKEN_EXCHANGE = "token_exchange"
TOKEN_VERIFIED = "token_verified"
OTLP_REACHABLE = "otlp_reachable"
SPAN_EXPORT = "span_export"

NO_KEY = ("no API key: pass api_key or set AGENTOPS_API_KEY (your project's settings in the "
          "AgentOps dashboard show it)")


@dataclass
class Context:
    """What the steps share: the settings, one deadline for the whole test, and what the
    steps so far found.

    ``problems`` maps each refused setting to its message; ``resolve_ms`` is the time it
    took to resolve the settings (the configuration step's duration); ``environ`` holds
    the variables the settings were read from, which the diagnosis rules read too. ``auth``,
    ``receiver`` (``ReceiverStatus.snapshot()``'s shape) and ``token_check`` are the facts
    the diagnosis rules read afterwards.
    """

    config: Config
    problems: Mapping[str, str]
    deadline: Deadline
    resolve_ms: float = 0.0
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)
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


def failed_auth(reason: str, http_status: int | None, detail: str,
                token_url: str | None) -> AuthSnapshot:
    """The auth facts of a step that failed before a token was held (the diagnosis rules
    read them as a failed authentication)."""
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
        ctx.auth = failed_auth(v.INVALID_KEY_FORMAT, None, config.api_key_error, None)
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
        ctx.auth = failed_auth(result.reason or v.INTERNAL_ERROR, None, result.detail,
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
        ctx.auth = failed_auth(outcome.reason or v.BAD_RESPONSE, outcome.http_status,
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


__all__ = ["API_REACHABLE", "CONFIGURATION", "NO_KEY", "OTLP_REACHABLE", "SPAN_EXPORT",
           "TOKEN_EXCHANGE", "TOKEN_VERIFIED", "Context", "answer_meaning", "check_api_reachable",
           "check_configuration", "check_otlp_reachable", "exchange_token", "failed_auth",
           "verify_token"]
