"""How the program is ending, for the end state of session traces still open at exit.

- it runs to its end, or ``sys.exit(0)``/``sys.exit(None)``: ``Success``;
- an uncaught exception: ``Error``, with the exception recorded on the session span;
- ``sys.exit(n)`` with n != 0 (or a message): ``Error``, "exit status n";
- a signal (SIGTERM): ``Indeterminate``, "terminated by SIGTERM".

Python tells an ``atexit`` function none of this, so the SDK watches for it: it wraps
``sys.excepthook`` and ``sys.exit`` (each calls the previous one unchanged). A program that
replaces ``sys.excepthook`` after ``init`` hides its uncaught exceptions from the SDK: the
end state is then ``Indeterminate``, "exit cause unknown". A bare ``raise SystemExit(n)``
(not through ``sys.exit``) is not seen.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

SUCCESS, ERROR, INDETERMINATE = "Success", "Error", "Indeterminate"


@dataclass(frozen=True)
class ExitState:
    end_state: str
    """Success, Error or Indeterminate (upstream's end states)."""
    reason: str | None = None
    """Why, in words: "exit status 3", "ValueError: boom", "terminated by SIGTERM"."""
    exception: BaseException | None = None


class _Watch:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.exception: BaseException | None = None
        self.exit_code: Any = None
        self.exit_called = False
        self.signal: int | None = None
        self.hook: Any = None


_watch = _Watch()


def _excepthook(kind: type[BaseException], value: BaseException,
                tb: TracebackType | None) -> None:
    _watch.exception = value
    _previous_excepthook(kind, value, tb)


_previous_excepthook = sys.excepthook
_previous_exit = sys.exit


def _exit(status: Any = None) -> Any:
    if threading.current_thread() is threading.main_thread():
        _watch.exit_called, _watch.exit_code = True, status
    return _previous_exit(status)


def install() -> None:
    """Watch for how the program ends (idempotent; from any thread)."""
    global _previous_excepthook, _previous_exit
    with _watch.lock:
        if _watch.installed:
            return
        _watch.installed = True
        _previous_excepthook, _previous_exit = sys.excepthook, sys.exit
        sys.excepthook = _excepthook
        sys.exit = _exit
        _watch.hook = _excepthook


def record_signal(signum: int) -> None:
    """The process is ending because of signal ``signum`` (called by the signal handler)."""
    _watch.signal = signum


def at_exit() -> ExitState:
    """The end state for session traces still open now that the program is exiting."""
    if _watch.signal is not None:
        try:
            name = signal.Signals(_watch.signal).name
        except ValueError:
            name = f"signal {_watch.signal}"
        return ExitState(INDETERMINATE, f"terminated by {name}")
    if _watch.exception is not None:
        error = _watch.exception
        message = str(error)
        return ExitState(ERROR, f"{type(error).__name__}: {message}" if message
                         else type(error).__name__, error)
    if _watch.exit_called and _watch.exit_code not in (None, 0):
        code = _watch.exit_code
        return ExitState(ERROR, f"exit status {code}" if isinstance(code, int)
                         else f"exit status 1 ({code})")
    if _watch.installed and sys.excepthook is not _watch.hook:
        return ExitState(INDETERMINATE, "exit cause unknown: sys.excepthook was replaced "
                                        "after agentops.init()")
    return ExitState(SUCCESS)


def end_traces(client: Any) -> None:
    """End the client's open session traces with the state the exit calls for: the
    exception recorded on each span, the reason as ``agentops.session.end_state_reason``.
    Never raises: the exit goes on whatever happens here."""
    try:
        from agentops.semconv import SpanAttributes

        state = at_exit()
        for trace_context in list(client.traces):
            if state.exception is not None:
                trace_context.span.record_exception(state.exception)
            if state.reason:
                trace_context.span.set_attribute(
                    SpanAttributes.AGENTOPS_SESSION_END_STATE_REASON, state.reason)
            trace_context.end(state.end_state, state.reason)
    except Exception:
        logging.getLogger("agentops").debug("ending session traces at exit failed",
                                            exc_info=True)
