"""The connectivity test: can this machine deliver session data to AgentOps with this key
and these endpoints? Six steps, each timed and explained; the first failure names its
cause from the vocabulary and what to change.

It never touches the running session: it builds its own API client, auth tracker,
exporter, statistics and tracer provider, and never calls ``agentops.init`` or sets the
global tracer provider. It finishes within ``timeout`` seconds even against a server that
never answers: every network operation gets only the time that is left.

``test_session_connectivity`` collects the facts into a plain, JSON-serialisable dict;
``print_connectivity_test_results`` renders them. The steps themselves are a table in
:mod:`agentops.helpers.connectivity.table`; the rendering is in
:mod:`agentops.helpers.connectivity.render`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from agentops.config import Config
from agentops.diagnostics import ERROR, Finding
from agentops.helpers.connectivity import render
from agentops.helpers.connectivity.probe import Deadline, ms_since
from agentops.helpers.connectivity.records import FAILED, PASSED, SKIPPED
from agentops.helpers.connectivity.steps import Context
from agentops.helpers.connectivity.table import STEPS, TITLES, explain, run_steps
from agentops.redaction import redact_data
from agentops.timestamps import iso

__all__ = ["test_session_connectivity", "print_connectivity_test_results", "resolve_settings",
           "PASSED", "FAILED", "SKIPPED", "TITLES"]


def resolve_settings(environ: Mapping[str, str] | None = None,
                     **arguments: Any) -> tuple[Config, dict[str, str]]:
    """The Config ``agentops.init(**arguments)`` would use, and every setting it would refuse
    ({name: message}) instead of stopping at the first ``ConfigError``.

    A refused setting holds its default in the returned Config, as under fail_safe.
    """
    config = Config.resolve(environ, check_all=True, **arguments)
    return config, dict(config.errors)


def test_session_connectivity(api_key: str | None = None, timeout: float = 15,
                              endpoint: str | None = None, exporter_endpoint: str | None = None,
                              *, app_url: str | None = None,
                              environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check, step by step, that session data can reach AgentOps; never raises.

    Unset arguments come from AGENTOPS_* environment variables, then the defaults, as in
    ``agentops.init``; ``environ`` replaces the process environment as the place the
    settings and the diagnosis rules read variables from (its proxy and TLS variables are
    still those of the process: HTTP requests read those themselves). ``timeout`` is in seconds, for the whole test; anything but a positive
    number gives a result whose finding ``connectivity.invalid_timeout`` says so.

    The result, JSON-serialisable: ``test_passed`` (bool); ``steps``, one dict per step
    that ran or was skipped, in table order (``StepResult.as_dict()``: ``name``, ``title``,
    ``status`` passed/failed/skipped, ``duration_ms``, ``detail``, ``reason`` (a vocabulary
    cause) when it failed with one, ``substeps`` for the reachability steps, and the step's
    facts such as ``http_status``); ``findings``, ``issues`` and ``recommendations`` (from
    the diagnosis rules); ``session_url`` (the test span's dashboard link once the receiver
    acknowledged it, else None); ``timeout``; ``started_at`` (ISO 8601 UTC);
    ``duration_ms``; ``config`` (the public settings), ``sources``, ``config_errors`` and
    ``endpoints`` (``api``, ``otlp``, ``app``). The API key appears masked, the token
    never: every string of the result is redacted.
    """
    return redact_data(_collect(api_key, timeout, endpoint, exporter_endpoint, app_url,
                                os.environ if environ is None else environ))


# Its name starts with "test_": keep pytest from collecting it where tests import it.
test_session_connectivity.__test__ = False  # type: ignore[attr-defined]


def _collect(api_key: str | None, timeout: float, endpoint: str | None,
             exporter_endpoint: str | None, app_url: str | None,
             environ: Mapping[str, str]) -> dict[str, Any]:
    began = time.time()
    started = time.monotonic()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 < timeout < math.inf:
        results = _empty(began, None)  # NaN or infinity would make the result invalid JSON
        _add(results, Finding(
            "connectivity.invalid_timeout", ERROR, {"timeout": repr(timeout)},
            f"The connectivity test did not run: timeout must be a positive number of "
            f"seconds, got {timeout!r}",
            "Pass timeout as a positive number of seconds (the default is 15)"))
        return results
    try:
        deadline = Deadline(float(timeout))
        config, problems = resolve_settings(environ, api_key=api_key, endpoint=endpoint,
                                            exporter_endpoint=exporter_endpoint, app_url=app_url)
    except Exception as error:  # a diagnosis tool reports, never raises
        results = _empty(began, timeout)
        _add(results, _internal_failure(f"The connectivity test could not start: "
                                        f"{type(error).__name__}: {error}"))
        return results
    results = _empty(began, timeout)
    results.update({
        "config": config.public(),
        "sources": dict(config.sources),
        "config_errors": dict(problems),
        "endpoints": {"api": config.endpoint, "otlp": config.exporter_endpoint,
                      "app": config.app_url},
    })
    ctx = Context(config, problems, deadline, resolve_ms=ms_since(started), environ=environ)
    completed = False
    try:
        run_steps(ctx)
        for finding in explain(ctx):
            _add(results, finding)
        completed = True
    except Exception as error:
        _add(results, _internal_failure(f"The connectivity test itself failed: "
                                        f"{type(error).__name__}: {error}"))
    results["steps"] = [result.as_dict() for result in ctx.results]
    results["session_url"] = ctx.session_url
    results["test_passed"] = completed and len(ctx.results) == len(STEPS) and all(
        result.ok for result in ctx.results)
    results["duration_ms"] = deadline.elapsed_ms()
    if results["test_passed"]:
        results["recommendations"].append(
            "Connectivity is healthy: if a session still shows no data, call "
            "agentops.print_session_status() in that program")
    results["recommendations"] = list(dict.fromkeys(results["recommendations"]))
    return results


def _empty(began: float, timeout: float | None) -> dict[str, Any]:
    return {"test_passed": False, "steps": [], "findings": [], "issues": [],
            "recommendations": [], "session_url": None, "timeout": timeout,
            "started_at": iso(began)}


def _internal_failure(issue: str) -> Finding:
    return Finding("connectivity.internal_error", ERROR, {}, issue,
                   "An internal error in the SDK: please report it with this output")


def _add(results: dict[str, Any], finding: Finding) -> None:
    results["findings"].append(finding.as_dict())
    results["issues"].append(finding.issue)
    results["recommendations"].append(finding.recommendation)


def print_connectivity_test_results(results: Mapping[str, Any], file: TextIO | None = None) -> None:
    """Print the connectivity test's result to ``file`` (default stdout), redacted. Never
    raises."""
    stream = file if file is not None else sys.stdout
    if stream is None:  # pythonw and some service hosts have no stdout
        return
    render.write_text(results, stream)
