"""print_session_status(): a diagnosis rendered for a terminal.

The layout up to the Export Statistics block is the one support documentation shows,
character for character. After the four documented statistics come the lines that say
where spans went and why authentication failed, then the issues and the recommendations.
With no issue, "Issues Found:" is still printed, followed by "  None", so every report has
the same sections in the same order.

Colour (green marks, red marks) only on a TTY without NO_COLOR. Where the stream cannot
encode the marks (a cp1252 or ASCII console), all of them switch to ASCII together, so a
report never mixes the two styles.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import IO, Any, TextIO, cast

from agentops import terminal
from agentops.redaction import redact

logger = logging.getLogger("agentops")

RULE = "=" * 50
TITLE = "AgentOps Session Diagnostic Report"

MARKS = (terminal.PASS, terminal.FAIL, terminal.BULLET)

STATUS_LINES = (
    ("sdk_initialized", "SDK Initialized"),
    ("client_initialized", "Client Initialized"),
    ("has_api_key", "API Key Present"),
    ("has_auth_token", "Authenticated"),
    ("exporter_healthy", "Exporter Healthy"),
)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _lines(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return [] if value is None else [str(value)]


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _extra_statistics(stats: Mapping[str, Any]) -> list[str]:
    lines = []
    if "spans_made" in stats:
        lines.append(f"  Spans: {_number(stats.get('spans_made'))} made, "
                     f"{_number(stats.get('spans_exported'))} exported, "
                     f"{_number(stats.get('spans_failed'))} not sent, "
                     f"{_number(stats.get('spans_pending'))} pending")
    by_cause = _mapping(stats.get("failures_by_cause"))
    if by_cause:
        causes = ", ".join(f"{cause} {count}" for cause, count in by_cause.items())
        lines.append(f"  Not Sent By Cause: {causes}")
    if stats.get("last_error"):
        cause = f"{stats['last_error_cause']}: " if stats.get("last_error_cause") else ""
        when = f" (at {stats['last_error_at']})" if stats.get("last_error_at") else ""
        lines.append(f"  Last Error: {cause}{stats['last_error']}{when}")
    return lines


def _authentication(auth: Mapping[str, Any]) -> list[str]:
    if not auth.get("state"):
        return []
    state = str(auth["state"])
    facts = [str(auth["reason"])] if auth.get("reason") else []
    if auth.get("http_status"):
        facts.append(f"HTTP {auth['http_status']}")
    if auth.get("retrying"):
        facts.append("retrying")
    lines = ["", "Authentication:",
             f"  State: {state}" + (f" ({', '.join(facts)})" if facts else "")]
    if auth.get("detail"):
        lines.append(f"  Detail: {auth['detail']}")
    if auth.get("attempts"):
        since = f", since {auth['since']}" if auth.get("since") else ""
        lines.append(f"  Attempts: {auth['attempts']}{since}")
    if auth.get("token_expires_at"):
        lines.append(f"  Token Expires: {auth['token_expires_at']}")
    return lines


def render_report(diagnosis: Mapping[str, Any], *, colour: bool, unicode: bool) -> str:
    """The report as text (ending with a newline); tolerant of missing or odd values."""
    diagnosis = _mapping(diagnosis)
    bullet = terminal.BULLET.shown(unicode)
    lines = [RULE, TITLE, RULE, "", "Status:"]
    for key, label in STATUS_LINES:
        value = bool(diagnosis.get(key, False))
        mark = (terminal.PASS if value else terminal.FAIL).shown(unicode, colour)
        lines.append(f"  {mark} {label}: {value}")

    stats = _mapping(diagnosis.get("export_stats"))
    rate = stats.get("success_rate")
    finished = _number(stats.get("successful_exports")) + _number(stats.get("failed_exports"))
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and finished:
        rate_text = f"{float(rate):.1f}%"
    else:
        rate_text = "n/a (nothing sent yet)"
    lines += [
        "", f"Active Traces: {_number(diagnosis.get('active_traces'))}",
        "", "Export Statistics:",
        f"  Total Attempts: {_number(stats.get('total_attempts'))}",
        f"  Successful: {_number(stats.get('successful_exports'))}",
        f"  Failed: {_number(stats.get('failed_exports'))}",
        f"  Success Rate: {rate_text}",
    ]
    lines += _extra_statistics(stats)
    lines += _authentication(_mapping(diagnosis.get("auth")))

    issues = _lines(diagnosis.get("issues"))
    lines += ["", "Issues Found:"]
    lines += [f"  {bullet} {issue}" for issue in issues] or ["  None"]
    lines += ["", "Recommendations:"]
    lines += [f"  {bullet} {advice}" for advice in _lines(diagnosis.get("recommendations"))]
    lines.append(RULE)
    return "\n".join(lines) + "\n"


def print_report(diagnosis: Mapping[str, Any], file: IO[str] | None = None,
                 colour: bool | None = None) -> None:
    """Write the report to ``file`` (default: ``sys.stdout`` at call time). Never raises:
    a closed stream, a failing write or an unencodable character costs the report, not
    the program."""
    stream = cast(TextIO, sys.stdout if file is None else file)
    if stream is None:  # pythonw and some service hosts have no stdout
        return
    try:
        unicode = terminal.can_encode(stream, "".join(mark.symbol for mark in MARKS))
        text = redact(render_report(diagnosis, colour=terminal.wants_colour(stream, colour),
                                    unicode=unicode))
    except Exception:
        logger.debug("could not render the session report", exc_info=True)
        return
    if not terminal.write_text(stream, text):
        logger.debug("could not print the session report")
