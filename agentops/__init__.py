"""AgentOps client SDK: OpenTelemetry spans delivered to AgentOps, and a true account of
what was not.

The public API: ``init``, ``configure``, ``start_trace``, ``end_trace``,
``update_trace_metadata``, ``flush``, ``shutdown``, ``get_client``, ``diagnose_session``, ``print_session_status``,
the decorators (``trace``, ``agent``, ``task``, ``operation``, ``workflow``, ``tool``,
``guardrail``, ``track_endpoint``), ``TraceState`` with ``SUCCESS``/``ERROR``/``UNSET``, and
upstream agentops 0.3's names as deprecated shims (``agentops.legacy``). The names and their
behaviour follow upstream agentops 0.4, so programs written for it run unchanged.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any, TextIO

from opentelemetry import trace as _otel_trace

from agentops import lifecycle, semconv
from agentops.client import Client, current
from agentops.config import SETTINGS, Config, ConfigError, remember_refused, seconds_argument
from agentops.enums import ERROR, SUCCESS, UNSET, TraceState
from agentops.tracing import CurrentSession, EndState, TraceContext

if TYPE_CHECKING:
    from agentops.decorators import (  # noqa: F401
        agent,
        guardrail,
        operation,
        session,
        task,
        tool,
        trace,
        track_endpoint,
        workflow,
    )
    from agentops.legacy import (  # noqa: F401
        ActionEvent,
        ErrorEvent,
        LLMEvent,
        Session,
        ToolEvent,
        end_all_sessions,
        end_session,
        record,
        start_session,
        track_agent,
        track_tool,
    )

_DECORATORS = ("trace", "session", "agent", "task", "operation", "workflow", "tool",
               "guardrail", "track_endpoint")
_LEGACY = ("start_session", "end_session", "end_all_sessions", "record", "Session",
           "ActionEvent", "ToolEvent", "ErrorEvent", "LLMEvent", "track_agent", "track_tool")


def __getattr__(name: str) -> Any:
    # The decorators (with wrapt) and the legacy shims load on first use: a program that
    # uses neither does not pay for them at import.
    if name in _DECORATORS:
        from agentops import decorators

        return getattr(decorators, name)
    if name in _LEGACY:
        from agentops import legacy

        return getattr(legacy, name)
    raise AttributeError(f"module 'agentops' has no attribute {name!r}")

__version__ = "0.1.0"
__all__ = [
    "init", "configure", "start_trace", "end_trace", "update_trace_metadata", "flush",
    "shutdown", "get_client",
    "diagnose_session", "print_session_status", "Client", "Config", "ConfigError",
    "TraceContext", "TraceState", "SUCCESS", "ERROR", "UNSET",
    "trace", "session", "agent", "task", "operation", "workflow", "tool", "guardrail",
    "track_endpoint",
    "start_session", "end_session", "end_all_sessions", "record", "Session", "ActionEvent",
    "ToolEvent", "ErrorEvent", "LLMEvent", "track_agent", "track_tool",
]

logger = logging.getLogger("agentops")

UPSTREAM_NO_OP_ARGUMENTS = ("auto_init", "skip_auto_end_session", "env_data_opt_out")
"""Accepted from upstream's ``init``/``configure`` and ignored: this SDK has no import-time
init, ends sessions only when told or at exit, and collects no environment data."""

_configured: dict[str, Any] = {}
_configured_lock = threading.Lock()


def init(api_key: str | None = None, endpoint: str | None = None, app_url: str | None = None,
         max_wait_time: int | None = None, max_queue_size: int | None = None,
         tags: list[str] | None = None, default_tags: list[str] | None = None,
         trace_name: str | None = None, instrument_llm_calls: bool | None = None,
         auto_start_session: bool | None = None, auto_init: bool | None = None,
         skip_auto_end_session: bool | None = None, env_data_opt_out: bool | None = None,
         log_level: str | int | None = None, fail_safe: bool | None = None,
         log_session_replay_url: bool | None = None, exporter_endpoint: str | None = None,
         wait_for_auth: bool | None = None, auth_timeout: float | None = None,
         shutdown_timeout: float | None = None, export_timeout: float | None = None,
         capture_content: bool | None = None, offline_storage: bool | None = None,
         storage_directory: str | None = None, handle_sigterm: bool | None = None,
         instrument_threading: bool | None = None, storage_max_mb: int | None = None,
         storage_max_age_hours: float | None = None, **kwargs: Any) -> Session | None:
    """Configure the SDK, start authenticating in the background and, unless
    ``auto_start_session`` is false, start a session trace.

    Returns, as upstream agentops 0.4 does, a legacy ``Session`` wrapping the session trace
    it started (``end_session()``, ``record()``, ``create_agent()``), or None when
    ``auto_start_session`` is false; the client itself is ``get_client()``.

    Takes upstream's arguments: ``tags`` is the deprecated name of ``default_tags`` (both
    are merged); ``auto_init``, ``skip_auto_end_session`` and ``env_data_opt_out`` are
    accepted and do nothing here. Settings given to ``configure()`` earlier apply unless
    given again here.

    Returns without waiting for the network unless ``wait_for_auth`` is true (then at most
    ``auth_timeout`` seconds). Bad settings raise ``ConfigError`` naming the setting; with
    ``fail_safe`` they are logged and the SDK continues (local-only for a bad API key).
    Calling init again with the same settings keeps the running client; with different
    settings a new client takes over and the previous one delivers its queue within
    ``shutdown_timeout``. Threads calling init at once get one client. The order of a
    process's events (fork, SIGTERM, exit) is described in ``agentops.lifecycle``.

    Each setting's type, default, environment variable and meaning are declared once, on
    ``agentops.Config`` (the README's settings table lists them). The keywords here are
    written out rather than generated from that declaration so that IDEs, type checkers and
    ``help()`` show them, and upstream's keep their positions; None means "not given" (the
    environment variable, then the declared default, applies). tests/test_config.py checks
    that they name every declared setting, with a type that admits the declared one.
    """
    arguments = {name: value for name, value in locals().items()
                 if name not in ("kwargs", "tags", *UPSTREAM_NO_OP_ARGUMENTS)
                 and value is not None}
    if tags is not None:
        from agentops.legacy import warn_deprecated

        warn_deprecated("init(tags=...)", "init(default_tags=...)")
        arguments["default_tags"] = list(dict.fromkeys([*(default_tags or []), *tags]))
    with _configured_lock:
        arguments = {**_configured, **arguments}
    try:
        config = Config.resolve(**arguments)
    except ConfigError as error:
        remember_refused(error)  # a later diagnosis names the setting and its source
        raise
    remember_refused(None)
    try:
        return _init(config, kwargs)
    except Exception:
        if not config.fail_safe:
            raise
        logger.exception("agentops.init() failed; continuing without AgentOps (fail_safe)")
        return None


def _init(config: Config, unknown: dict[str, Any]) -> Session | None:
    client, _created = lifecycle.start(config, unknown)
    if config.wait_for_auth:
        client.tracker.wait(config.auth_timeout)
        client.tracker.warn_timeout()
    return _init_session(client)


def _init_session(client: Client) -> Session | None:
    """The legacy Session of the client's open init trace, also the one ``end_session()``
    ends by default (as upstream)."""
    if not client.config.auto_start_session:
        return None
    init_traces = [t for t in list(client.traces) if t.is_init_trace]
    if not init_traces:
        return None
    from agentops.legacy import Session, set_current_session

    legacy = Session(init_traces[-1])
    set_current_session(legacy)
    return legacy


def _running_or_init() -> Client | None:
    """The running client; before ``init``, one initialised from the environment without
    a session trace of its own (upstream initialises with defaults here too)."""
    client = current()
    if client is not None and not client.closed:
        return client
    logger.warning("AgentOps SDK not initialized; initializing from the environment")
    try:
        init(auto_start_session=False)
    except Exception as error:
        logger.error("agentops.init() failed (%s); nothing will be recorded", error)
        return None
    client = current()
    return client if client is not None and not client.closed else None


CONFIGURE_ARGUMENTS = frozenset({setting.name for setting in SETTINGS} | {"exporter", "processor"}
                                | set(UPSTREAM_NO_OP_ARGUMENTS))


def configure(**kwargs: Any) -> None:
    """Settings for the next ``init()`` (upstream's ``configure``): the same names as
    ``init``. Unknown names are a warning naming them; upstream's ``exporter`` and
    ``processor`` are not supported (add them to your own TracerProvider) and warned
    about. A running client keeps its settings until ``init`` is called again."""
    unknown = sorted(set(kwargs) - CONFIGURE_ARGUMENTS)
    if unknown:
        logger.warning("agentops.configure() ignores unknown arguments: %s", ", ".join(unknown))
    for name in ("exporter", "processor"):
        if name in kwargs:
            logger.warning("agentops.configure(%s=...) is not supported: add your span %s to "
                           "your own OpenTelemetry TracerProvider; AgentOps joins it", name, name)
    settings = {name: value for name, value in kwargs.items()
                if name in CONFIGURE_ARGUMENTS and name not in ("exporter", "processor",
                                                                *UPSTREAM_NO_OP_ARGUMENTS)
                and value is not None}
    Config.resolve(**{**_configured, **settings})  # a bad value is refused now, not at init
    with _configured_lock:
        _configured.update(settings)
    running = current()
    if running is not None and not running.closed and settings:
        logger.info("agentops.configure(): the running client keeps its settings; they apply "
                    "at the next agentops.init()")


class UnstartedClient:
    """What ``get_client()`` returns before ``init``: upstream's client that can ``init``
    and ``configure``. ``initialized`` is False."""

    initialized = False

    def init(self, **kwargs: Any) -> Session | None:
        return init(**kwargs)

    def configure(self, **kwargs: Any) -> None:
        configure(**kwargs)

    @property
    def config(self) -> Config:
        """The settings the next ``init()`` would use without arguments."""
        with _configured_lock:
            return Config.resolve(**_configured, fail_safe=True)

    def __repr__(self) -> str:
        return "UnstartedClient(initialized=False)"


def get_client() -> Client | UnstartedClient:
    """The running (or last) client; before ``init``, an ``UnstartedClient`` whose
    ``init(**kwargs)`` and ``configure(**kwargs)`` work as upstream's."""
    client = current()
    return client if client is not None else UnstartedClient()


def start_trace(trace_name: str = "session",
                tags: list[str] | dict[str, Any] | None = None) -> TraceContext | None:
    """Start a session trace: a new root span ``{trace_name}.session`` with its own trace id
    and URL line, made current (also a context manager: an exception inside ends it as
    "Error"). ``tags``: a list of strings (``agentops.tags``) or a dict of attributes.
    Before ``init``, the SDK is initialised from the environment first (as upstream);
    None if that fails."""
    client = _running_or_init()
    if client is None:
        return None
    return client.start_trace(trace_name, tags)


def flush(timeout: float | None = None) -> bool:
    """Deliver the spans finished so far, now, without shutting down.

    Waits at most ``timeout`` seconds (None: as long as each batch's ``export_timeout``
    allows). Returns True when every batch exported meanwhile was accepted, False when one
    failed (its cause is in ``diagnose_session()``), the time ran out, or the SDK was shut
    down. Before ``init``: True, nothing to deliver. ``ConfigError`` for a timeout that is
    not a number of seconds from 0 to 3600."""
    return lifecycle.flush(seconds_argument("timeout", timeout))


def shutdown(timeout: float | None = None) -> None:
    """End open session traces and deliver what is queued within ``timeout`` seconds
    (default ``shutdown_timeout``), as the exit would; spans still unsent then, and spans
    finished afterwards, are counted as ``shutdown``. Later calls do nothing. ``ConfigError``
    for a timeout that is not a number of seconds from 0 to 3600."""
    lifecycle.shutdown(seconds_argument("timeout", timeout))


def end_trace(trace_context: TraceContext | None = None,
              end_state: EndState = TraceState.SUCCESS) -> None:
    """End one session trace, or every open one when ``trace_context`` is None.

    ``end_state``: a string ("Success", "Error", "Indeterminate", ...), a ``TraceState`` or
    an OpenTelemetry ``StatusCode``; written to ``agentops.session.end_state`` and the
    status of the root span. Another type raises TypeError and ends nothing."""
    client = current()
    if client is not None:
        client.end_trace(trace_context, end_state)
    elif trace_context is not None:
        trace_context.end(end_state)


def update_trace_metadata(metadata: dict[str, Any],
                          prefix: str = semconv.TRACE_METADATA_PREFIX) -> bool:
    """Set ``metadata`` on the current session trace's root span (the open trace the current
    span belongs to, else the latest open one). Returns True if at least one item was set.

    Keys that are upstream conventions (``agent.name`` or ``agent_name``, ``tags``, ...) are
    used as such; others become ``{prefix}.{key}``. Values: str, bool, int, float, or a list
    of those (kept as its JSON text, as upstream); None is skipped; other values are skipped
    with a warning naming the key. Raises TypeError when ``metadata`` is not a dict.
    """
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    span = _metadata_target()
    if span is None:
        logger.warning("update_trace_metadata(): no open session trace; nothing updated")
        return False
    updated = 0
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if not all(isinstance(item, (str, bool, int, float)) for item in value):
                logger.warning("update_trace_metadata(): skipping %r: list items must be "
                               "str, bool, int or float", key)
                continue
            value = json.dumps(list(value))
        elif not isinstance(value, (str, bool, int, float)):
            logger.warning("update_trace_metadata(): skipping %r: %s is not a str, bool, int, "
                           "float or list of them", key, type(value).__name__)
            continue
        span.set_attribute(semconv.CONVENTION_KEYS.get(str(key), f"{prefix}.{key}"), value)
        updated += 1
    return updated > 0


def _metadata_target() -> Any:
    client = current()
    open_traces = [t for t in list(client.traces) if not t.ended] if client is not None else []
    span: Any = _otel_trace.get_current_span()
    if isinstance(span, CurrentSession):
        span = span.live()
    if span.is_recording():
        trace_id = span.get_span_context().trace_id
        for trace_context in open_traces:
            if trace_context.span.get_span_context().trace_id == trace_id:
                return trace_context.span
    return open_traces[-1].span if open_traces else None


def diagnose_session() -> dict[str, Any]:
    """Whether session data is reaching the backend and, if not, why: a JSON-serialisable
    dict with no secret in it. Never raises."""
    from agentops.diagnostics import diagnose

    try:
        return diagnose(current())
    except Exception as error:  # a diagnosis must never break the program it describes
        return {"sdk_initialized": current() is not None, "issues":
                [f"Diagnosis failed: {type(error).__name__}: {error}"], "recommendations": []}


def print_session_status(file: TextIO | None = None) -> None:
    """Print the diagnostic report to ``file`` (default stdout). Never raises."""
    from agentops.report import print_report

    print_report(diagnose_session(), file)
