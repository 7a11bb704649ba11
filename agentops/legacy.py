"""The names upstream agentops 0.4 keeps from 0.3 as deprecated shims, with its behaviour.

``start_session``, ``end_session``, ``end_all_sessions``, ``record``, ``ActionEvent``,
``ToolEvent``, ``ErrorEvent``, ``LLMEvent``, ``track_agent``, ``track_tool`` and the
``Session`` object that ``init`` and ``start_session`` return. Each deprecated name emits
one ``DeprecationWarning`` per process, naming what to use instead.

As upstream: events are not sent (LLM calls and decorated functions are traced instead);
``record`` only stamps ``end_timestamp``; ``track_agent`` and ``track_tool`` return the
decorated object unchanged; ``end_session``'s extra keyword arguments are kept on the
session's root span as ``agentops.legacy.<name>``.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from agentops.tracing import EndState, TraceContext

logger = logging.getLogger("agentops")

LEGACY_ATTRIBUTE_PREFIX = "agentops.legacy"

_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_deprecated(name: str, instead: str) -> None:
    """One DeprecationWarning per name and process, pointing at the caller's line."""
    with _warned_lock:
        if name in _warned:
            return
        _warned.add(name)
    # stacklevel 3: past this helper and the shim, to the program's own call
    warnings.warn(f"agentops.{name} is deprecated; use {instead} instead",
                  DeprecationWarning, stacklevel=3)


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


class Session:
    """A legacy session: the session trace it wraps (``trace_context``), with the methods
    0.3-style programs and framework integrations call on it."""

    def __init__(self, trace_context: TraceContext | None) -> None:
        self.trace_context = trace_context

    @property
    def span(self) -> Any:
        return self.trace_context.span if self.trace_context else None

    @property
    def token(self) -> Any:
        return self.trace_context.token if self.trace_context else None

    @property
    def session_url(self) -> str | None:
        return self.trace_context.url if self.trace_context else None

    def create_agent(self, name: str | None = None, agent_id: str | None = None,
                     **kwargs: Any) -> None:
        """Accepted for compatibility; does nothing (as upstream)."""

    def record(self, event: Any = None) -> None:
        """Accepted for compatibility; does nothing (as upstream)."""

    def end_session(self, end_state: EndState = "Success", **kwargs: Any) -> None:
        """Deprecated: ``agentops.end_trace(session.trace_context)``. Ends this session's
        trace; extra keyword arguments are kept as ``agentops.legacy.<name>``."""
        warn_deprecated("Session.end_session()", "agentops.end_trace(session.trace_context)")
        _end(self.trace_context, end_state, kwargs)

    def __repr__(self) -> str:
        return f"Session({self.trace_context!r})"


_current: Session | None = None
_current_lock = threading.Lock()


def set_current_session(session: Session | None) -> None:
    """The session ``end_session()`` without a session ends (the latest started)."""
    global _current
    with _current_lock:
        _current = session


def start_session(tags: list[str] | dict[str, Any] | None = None) -> Session:
    """Deprecated: ``agentops.start_trace()``. Starts a session trace named "session";
    initialises the SDK from the environment first if ``init`` was not called."""
    warn_deprecated("start_session()", "agentops.start_trace()")
    from agentops import _running_or_init

    client = _running_or_init()
    if client is None:
        session = Session(None)
    else:
        session = Session(client.start_trace("session", tags))
    set_current_session(session)
    return session


def _end(trace_context: TraceContext | None, end_state: EndState,
         extra: dict[str, Any]) -> None:
    if trace_context is None:
        logger.warning("end_session() called but no session is active; nothing to end")
        return
    for key, value in extra.items():
        trace_context.span.set_attribute(f"{LEGACY_ATTRIBUTE_PREFIX}.{key}", str(value))
    trace_context.end(end_state)
    with _current_lock:
        global _current
        if _current is not None and _current.trace_context is trace_context:
            _current = None


def end_session(session_or_status: Any = None, **kwargs: Any) -> None:
    """Deprecated: ``agentops.end_trace()``. Ends the given ``Session``, or the latest
    started one; the state comes from a string first argument or ``end_state=``
    (default "Success"); other keyword arguments are kept as ``agentops.legacy.<name>``."""
    warn_deprecated("end_session()", "agentops.end_trace()")
    end_state: EndState = kwargs.pop("end_state", None)
    if end_state is None:
        end_state = session_or_status if isinstance(session_or_status, str) else "Success"
    if isinstance(session_or_status, Session):
        target = session_or_status.trace_context
    else:
        with _current_lock:
            target = _current.trace_context if _current is not None else None
        if target is None:
            from agentops.client import current

            client = current()
            open_traces = list(client.traces) if client is not None else []
            target = open_traces[-1] if open_traces else None
    _end(target, end_state, kwargs)


def end_all_sessions() -> None:
    """Deprecated: ``agentops.end_trace()``. Ends every open session trace as "Success"."""
    warn_deprecated("end_all_sessions()", "agentops.end_trace()")
    from agentops.client import current

    client = current()
    if client is not None:
        client.end_trace(None, "Success")
    set_current_session(None)


def record(event: Any) -> Any:
    """Deprecated (upstream 0.4 traces automatically). Sets the event's ``end_timestamp``
    and returns it; nothing is sent."""
    warn_deprecated("record()", "the decorators (@agentops.tool, @agentops.agent, ...)")
    if event is not None and hasattr(event, "end_timestamp"):
        event.end_timestamp = _iso_now()
    return event


class _LegacyEvent:
    """What ``ActionEvent`` and ``ErrorEvent`` return: the fields 0.3 programs read."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)
        self.init_timestamp = _iso_now()
        self.end_timestamp: str | None = None


def ActionEvent(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 (upstream's name)
    """Deprecated (upstream 0.4 traces automatically); an object with timestamps."""
    warn_deprecated("ActionEvent", "the decorators (@agentops.tool, @agentops.agent, ...)")
    return _LegacyEvent(**kwargs)


def ErrorEvent(*args: Any, **kwargs: Any) -> Any:  # noqa: N802
    """Deprecated (exceptions in decorated functions are recorded); an object with
    timestamps."""
    warn_deprecated("ErrorEvent", "the decorators, which record exceptions")
    return _LegacyEvent(**kwargs)


def ToolEvent(*args: Any, **kwargs: Any) -> None:  # noqa: N802
    """Deprecated (use ``@agentops.tool``); returns None as upstream."""
    warn_deprecated("ToolEvent", "the @agentops.tool decorator")
    return None


def LLMEvent(*args: Any, **kwargs: Any) -> None:  # noqa: N802
    """Deprecated (LLM calls are instrumented); returns None as upstream."""
    warn_deprecated("LLMEvent", "LLM call instrumentation")
    return None


def _unchanged(*args: Any, **kwargs: Any) -> Any:
    if len(args) == 1 and not kwargs and callable(args[0]):
        return args[0]  # used bare: @track_agent

    def decorate(obj: Callable[..., Any]) -> Callable[..., Any]:
        return obj

    return decorate


def track_agent(*args: Any, **kwargs: Any) -> Any:
    """Deprecated: ``@agentops.agent``. Returns the decorated object unchanged (as upstream)."""
    warn_deprecated("track_agent", "the @agentops.agent decorator")
    return _unchanged(*args, **kwargs)


def track_tool(*args: Any, **kwargs: Any) -> Any:
    """Deprecated: ``@agentops.tool``. Returns the decorated object unchanged (as upstream)."""
    warn_deprecated("track_tool", "the @agentops.tool decorator")
    return _unchanged(*args, **kwargs)


__all__ = ["start_session", "end_session", "end_all_sessions", "record", "ActionEvent",
           "ToolEvent", "ErrorEvent", "LLMEvent", "track_agent", "track_tool", "Session",
           "warn_deprecated"]
