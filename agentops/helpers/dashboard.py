"""The session URL and the status marker that says whether data can reach it."""

from __future__ import annotations

from typing import TextIO

from agentops import terminal
from agentops import vocabulary as v
from agentops.auth import AuthSnapshot

# state -> (emoji, ASCII fallback, colour)
MARKERS = {
    v.AUTHENTICATED: ("\U0001f7e2", "[OK]", terminal.GREEN),
    v.DISABLED: ("\U0001f7e1", "[LOCAL]", terminal.YELLOW),
    v.FAILED: ("\U0001f534", "[FAILED]", terminal.RED),
    v.PENDING: ("\U0001f534", "[FAILED]", terminal.RED),
}


def session_url(app_url: str, trace_id: int) -> str:
    return f"{app_url.rstrip('/')}/sessions?trace_id={trace_id:032x}"


def marker(state: str, stream: TextIO) -> str:
    emoji, ascii_marker, _ = MARKERS[state]
    return emoji if terminal.can_encode(stream, emoji) else ascii_marker


def status_text(auth: AuthSnapshot, auth_timeout: float) -> str:
    if auth.state == v.AUTHENTICATED:
        return "authenticated"
    if auth.state == v.DISABLED:
        return "local only: no API key, data is not sent"
    if auth.state == v.PENDING:
        return (f"authentication not complete after {auth_timeout:g}s; "
                "data may not reach the backend")
    status = f", HTTP {auth.http_status}" if auth.http_status else ""
    return f"auth failed: {auth.reason}{status}; data will not reach the backend"


def url_line(url: str, trace_name: str, auth: AuthSnapshot, auth_timeout: float,
             stream: TextIO) -> str:
    """One line: marker, trace name, status and URL; coloured on a TTY."""
    colour = MARKERS[auth.state][2]
    link = terminal.paint(url, colour, terminal.wants_colour(stream))
    return (f"{marker(auth.state, stream)} Session Replay for {trace_name} trace "
            f"({status_text(auth, auth_timeout)}): {link}")
