"""The connectivity test's table of steps: :data:`STEPS` names them in the order they run
and says what each needs from the steps before it; :func:`run_steps` walks it, and
:func:`explain` turns what the steps found into the diagnosis rules' findings.

A step whose requirement is not met, or that would need the network after the time limit
ran out, is skipped with the reason why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from agentops import vocabulary as v
from agentops.auth import AuthSnapshot
from agentops.diagnostics import WARNING, Facts, Finding, find
from agentops.helpers.connectivity.probe import ms_since
from agentops.helpers.connectivity.records import FAILED, SKIPPED, StepResult
from agentops.helpers.connectivity.span_export import export_test_span
from agentops.helpers.connectivity.steps import (
    API_REACHABLE,
    CONFIGURATION,
    OTLP_REACHABLE,
    SPAN_EXPORT,
    TOKEN_EXCHANGE,
    TOKEN_VERIFIED,
    Context,
    check_api_reachable,
    check_configuration,
    check_otlp_reachable,
    exchange_token,
    verify_token,
)


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
                  receiver=ctx.receiver or {}, token_check=ctx.token_check, environ=ctx.environ)
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


__all__ = ["Requirement", "Step", "STEPS", "TITLES", "run_step", "run_steps", "explain"]
