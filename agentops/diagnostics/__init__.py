"""diagnose_session(): the facts of the running client as a plain dict, with the findings
the rules draw from them. Facts are collected in ``facts``, findings made in ``rules``;
``issues`` and ``recommendations`` are rendered from the findings (``issues[i]`` is
answered by ``recommendations[i]``; with no issue, ``recommendations`` holds one status
line). Terminal rendering lives in ``agentops.report``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from agentops.auth import AuthSnapshot
from agentops.diagnostics.facts import CA_VARIABLES, PROXY_VARIABLES, Facts, collect
from agentops.diagnostics.findings import ERROR, INFO, WARNING, Finding, plural
from agentops.diagnostics.rules import (
    AUTH_FAILURE_RULES,
    CHECK_KEY,
    DASHBOARD_KEY_HINT,
    HEALTHY,
    NO_TOKEN,
    RULES,
    exporter_healthy,
    find,
    no_spans,
    status_line,
)

if TYPE_CHECKING:
    from agentops.client import Client

__all__ = ["diagnose", "collect", "find", "evaluate", "render", "Facts", "Finding",
           "RULES", "AUTH_FAILURE_RULES", "no_spans", "NO_TOKEN", "CHECK_KEY", "HEALTHY", "NOT_INITIALIZED",
           "CALL_INIT", "DASHBOARD_KEY_HINT", "PROXY_VARIABLES", "CA_VARIABLES", "ERROR",
           "WARNING", "INFO", "plural"]

NOT_INITIALIZED = "AgentOps SDK not initialized"
CALL_INIT = "Call agentops.init() to initialize the SDK"

_AUTH_FIELDS = tuple(f.name for f in fields(AuthSnapshot))


def render(findings: list[Finding], facts: Facts | None = None) -> tuple[list[str], list[str]]:
    """(issues, recommendations) from findings, paired by index; one status line when no
    finding is an issue (severity info findings are not issues)."""
    issues = [f.issue for f in findings if f.severity != INFO]
    recommendations = [f.recommendation for f in findings if f.severity != INFO]
    if not issues and facts is not None:
        recommendations.append(status_line(facts))
    return issues, recommendations


def evaluate(facts: Facts) -> tuple[list[str], list[str]]:
    """(issues, recommendations) for ``facts``."""
    return render(find(facts), facts)


def _not_initialized() -> dict[str, Any]:
    from agentops.config import last_refused

    refused = last_refused()
    findings = [Finding("sdk.not_initialized", ERROR, {}, NOT_INITIALIZED, CALL_INIT)]
    if refused is not None:
        name, source, message = refused
        origin = ("passed to agentops.init()" if source == "argument"
                  else f"from {source[4:]}" if source.startswith("env:") else source)
        findings.append(Finding(
            "config.refused_setting", ERROR,
            {"setting": name, "source": source, "message": message},
            f"agentops.init() refused the setting {name} ({origin}) and raised ConfigError: "
            f"{message}",
            f"Fix {name} " + ("where agentops.init() is called" if source == "argument"
                              else f"in the environment variable {source[4:]}"
                              if source.startswith("env:") else "") +
            ", or pass fail_safe=True to run with its default instead"))
    issues, recommendations = render(findings)
    return {
        "sdk_initialized": False, "client_initialized": False, "has_api_key": False,
        "has_auth_token": False, "active_traces": 0, "exporter_healthy": False,
        "export_stats": {}, "auth": {}, "findings": [f.as_dict() for f in findings],
        "issues": issues, "recommendations": recommendations,
    }


def diagnose(client: Client | None) -> dict[str, Any]:
    """The diagnosis as plain data, every string of it (the rules quote details that came
    from servers) passed through the redaction."""
    from agentops.redaction import redact_data

    return redact_data(_diagnose(client))


def _diagnose(client: Client | None) -> dict[str, Any]:
    if client is None:
        return _not_initialized()
    facts = collect(client)
    config = client.config
    findings = find(facts)
    issues, recommendations = render(findings, facts)
    diagnosis = {
        "sdk_initialized": True,
        "client_initialized": not client.closed,
        # A key refused locally was still given: the report should say "present" and let
        # the auth reason explain the refusal.
        "has_api_key": bool(config.api_key or config.api_key_error),
        "has_auth_token": facts.auth.has_token,
        "active_traces": len(client.traces),
        "exporter_healthy": exporter_healthy(facts),
        "export_stats": facts.stats,
        "auth": {name: getattr(facts.auth, name) for name in _AUTH_FIELDS},
        "receiver": dict(facts.receiver),
        "storage": dict(facts.storage),
        "config": config.public(),
        "instrumentation": {name: dict(lib) for name, lib in facts.instrumentation.items()},
        "findings": [f.as_dict() for f in findings],
        "issues": issues,
        "recommendations": recommendations,
    }
    if facts.sampling is not None:
        diagnosis["sampling"] = dict(facts.sampling)
    return diagnosis
