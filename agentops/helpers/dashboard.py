"""The session URL and the status marker that says whether data can reach it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

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


def line_state(auth: AuthSnapshot, receiver: Mapping[str, Any]) -> str:
    """The marker's state: green only once the receiver accepted the token."""
    if auth.state == v.AUTHENTICATED and receiver.get("state") != v.ACCEPTING:
        return v.FAILED
    return auth.state


def status_text(auth: AuthSnapshot, receiver: Mapping[str, Any], auth_timeout: float) -> str:
    if auth.state == v.AUTHENTICATED:
        state = receiver.get("state")
        if state == v.ACCEPTING:
            return "authenticated"
        if state in (v.UNCHECKED, v.CHECKING):
            return (f"authenticated, but the receiver has not answered after "
                    f"{auth_timeout:g}s; data may not reach the backend")
        status = f", HTTP {receiver['http_status']}" if receiver.get("http_status") else ""
        return (f"authenticated, but the receiver is {state}: {receiver.get('cause')}{status}; "
                "data will not reach the backend")
    if auth.state == v.DISABLED:
        return "local only: no API key, data is not sent"
    if auth.state == v.PENDING:
        return (f"authentication not complete after {auth_timeout:g}s; "
                "data may not reach the backend")
    status = f", HTTP {auth.http_status}" if auth.http_status else ""
    return f"auth failed: {auth.reason}{status}; data will not reach the backend"


def url_line(url: str, trace_name: str, auth: AuthSnapshot, receiver: Mapping[str, Any],
             auth_timeout: float, stream: TextIO) -> str:
    """One line: marker, trace name, status and URL; coloured on a TTY. ``receiver`` is
    ``ReceiverStatus.snapshot()``."""
    state = line_state(auth, receiver)
    link = terminal.paint(url, MARKERS[state][2], terminal.wants_colour(stream))
    return (f"{marker(state, stream)} Session Replay for {trace_name} trace "
            f"({status_text(auth, receiver, auth_timeout)}): {link}")
