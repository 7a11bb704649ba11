"""The connectivity test's result (the dict ``test_session_connectivity`` returns, or the
same loaded back from JSON) as a report for a terminal, or as JSON. Rendering only: the
facts are all in the result. Both outputs pass through redaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TextIO

from agentops import terminal
from agentops.helpers.connectivity.records import FAILED, PASSED, SKIPPED
from agentops.redaction import redact, redact_data

_MARKS = {PASSED: terminal.PASS, FAILED: terminal.FAIL, SKIPPED: terminal.SKIP}
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


def _header(results: Mapping[str, Any]) -> list[str]:
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
    return lines


def _step_lines(number: int, step: Mapping[str, Any], fancy: bool, colour: bool) -> list[str]:
    status = step.get("status", SKIPPED)
    mark = _MARKS.get(status, terminal.SKIP).shown(fancy, colour)
    title = f"{number}. {step.get('title') or step.get('name')}"
    duration = _duration(step.get("duration_ms")) if status != SKIPPED else ""
    lines = [f"  {mark} {title:<28} {duration:>9}".rstrip(),
             f"       {_one_line(step.get('detail', ''))}"]
    subs = step.get("substeps") or []
    if subs:
        dot = " \u00b7 " if fancy else " | "
        lines.append("       " + dot.join(_substep(sub) for sub in subs))
    return lines


def render_text(results: Mapping[str, Any], stream: TextIO) -> list[str]:
    """The report's lines for ``stream`` (its colour and encoding decide the marks), not yet
    redacted; raises on a malformed result."""
    colour = terminal.wants_colour(stream)
    fancy = terminal.can_encode(stream, "\u2713\u2717\u2013\u2022\u00b7")
    bullet = "\u2022" if fancy else "*"
    lines = _header(results) + [""]
    for number, step in enumerate(results.get("steps") or [], 1):
        lines += _step_lines(number, step, fancy, colour)
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


def write_text(results: Mapping[str, Any], stream: TextIO) -> None:
    """Write the report to ``stream``, redacted; never raises (a malformed result gets a
    one-line note, a failing stream is ignored)."""
    try:
        lines = render_text(results, stream)
    except Exception as error:  # a malformed result must not break the caller
        lines = [f"AgentOps Connectivity Test: could not render the result "
                 f"({type(error).__name__}: {error})"]
    terminal.write_text(stream, redact("\n".join(lines) + "\n"))


def render_json(results: Mapping[str, Any]) -> str:
    """The result as indented JSON, redacted."""
    return json.dumps(redact_data(dict(results)), indent=2)
