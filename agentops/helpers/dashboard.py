"""The session URL and the status marker that says whether data can reach it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

from agentops import terminal
from agentops import vocabulary as v
from agentops.auth import AuthSnapshot

NOT_RECORDED = "not_recorded"
SAMPLED = "sampled"

# line state -> its marker; the URL is painted in the marker's colour.
MARKERS = {
    v.AUTHENTICATED: terminal.Mark("\U0001f7e2", "[OK]", terminal.GREEN),
    v.DISABLED: terminal.Mark("\U0001f7e1", "[LOCAL]", terminal.YELLOW),
    v.FAILED: terminal.Mark("\U0001f534", "[FAILED]", terminal.RED),
    v.PENDING: terminal.Mark("\U0001f534", "[FAILED]", terminal.RED),
    NOT_RECORDED: terminal.Mark("\U0001f534", "[NOT RECORDED]", terminal.RED),
    SAMPLED: terminal.Mark("\U0001f7e1", "[SAMPLED]", terminal.YELLOW),
}
EMOJI = "".join(mark.symbol for mark in MARKERS.values())


def session_url(app_url: str, trace_id: int) -> str:
    return f"{app_url.rstrip('/')}/sessions?trace_id={trace_id:032x}"


def marker(state: str, stream: TextIO | None = None, *, unicode: bool | None = None) -> str:
    mark = MARKERS[state]
    if unicode is None:
        unicode = stream is not None and terminal.can_encode(stream, mark.symbol)
    return mark.shown(unicode)


def line_state(auth: AuthSnapshot, receiver: Mapping[str, Any]) -> str:
    """The marker's state: green only once the receiver accepted the token."""
    if auth.state == v.AUTHENTICATED and receiver.get("state") != v.ACCEPTING:
        return v.FAILED
    return auth.state


def _waited(seconds: float, auth_timeout: float, program_ended: bool) -> str:
    why = "the program ended" if program_ended else f"auth_timeout {auth_timeout:g} s"
    return f"after {seconds:.1f} s ({why})"


def status_text(auth: AuthSnapshot, receiver: Mapping[str, Any], auth_timeout: float, *,
                waited: float | None = None, program_ended: bool = False) -> str:
    """The auth outcome and the receiver check in words. While something is still
    unanswered: the time actually waited (``waited`` seconds since authentication
    started; ``auth_timeout`` when unknown) and why waiting stopped."""
    seconds = auth_timeout if waited is None else waited
    if auth.state == v.AUTHENTICATED:
        state = receiver.get("state")
        if state == v.ACCEPTING:
            return "authenticated"
        if state in (v.UNCHECKED, v.CHECKING):
            return (f"authenticated, but the receiver has not answered "
                    f"{_waited(seconds, auth_timeout, program_ended)}; "
                    "data may not reach the backend")
        status = f", HTTP {receiver['http_status']}" if receiver.get("http_status") else ""
        return (f"authenticated, but the receiver is {state}: {receiver.get('cause')}{status}; "
                "data will not reach the backend")
    if auth.state == v.DISABLED:
        return "local only: no API key, data is not sent"
    if auth.state == v.PENDING:
        return (f"authentication not complete {_waited(seconds, auth_timeout, program_ended)}; "
                "data may not reach the backend")
    status = f", HTTP {auth.http_status}" if auth.http_status else ""
    return f"auth failed: {auth.reason}{status}; data will not reach the backend"


def url_line(url: str, trace_name: str, auth: AuthSnapshot, receiver: Mapping[str, Any],
             auth_timeout: float, stream: TextIO | None = None, *,
             unicode: bool | None = None, colour: bool | None = None,
             waited: float | None = None, program_ended: bool = False,
             not_recorded: str | None = None, sampled: str | None = None) -> str:
    """One line: marker, trace name, status and URL. ``receiver`` is
    ``ReceiverStatus.snapshot()``.

    ``not_recorded`` (why the session trace is not recorded: a sampler or
    OTEL_SDK_DISABLED) wins over everything else: nothing of it can reach the dashboard.
    ``sampled`` (a sampler keeps only part of the traces) turns a green line yellow.
    ``unicode``/``colour`` default to what ``stream`` can show (colour only on a TTY).
    """
    status = status_text(auth, receiver, auth_timeout, waited=waited,
                         program_ended=program_ended)
    state = line_state(auth, receiver)
    if not_recorded:
        state, status = NOT_RECORDED, f"{not_recorded}; {status}"
    elif sampled and state == v.AUTHENTICATED:
        state, status = SAMPLED, f"{status}; {sampled}"
    if colour is None:
        colour = stream is not None and terminal.wants_colour(stream)
    link = MARKERS[state].paint(url, colour)
    return (f"{marker(state, stream, unicode=unicode)} Session Replay for {trace_name} trace "
            f"({status}): {link}")
