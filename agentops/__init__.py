"""AgentOps client SDK: OpenTelemetry spans delivered to AgentOps, and a true account of
what was not.

The public API: ``init``, ``start_trace``, ``end_trace``, ``get_client``,
``diagnose_session`` and ``print_session_status``.
"""

from __future__ import annotations

import logging
from typing import Any, TextIO

from agentops.client import Client, current, replace_current
from agentops.config import Config, ConfigError
from agentops.log import configure_logging
from agentops.tracing import TraceContext

__version__ = "0.1.0"
__all__ = ["init", "start_trace", "end_trace", "get_client", "diagnose_session",
           "print_session_status", "Client", "Config", "ConfigError", "TraceContext"]

logger = logging.getLogger("agentops")


def init(api_key: str | None = None, endpoint: str | None = None, app_url: str | None = None,
         exporter_endpoint: str | None = None, max_wait_time: int | None = None,
         max_queue_size: int | None = None, default_tags: list[str] | None = None,
         trace_name: str | None = None, auto_start_session: bool | None = None,
         log_level: str | int | None = None, fail_safe: bool | None = None,
         log_session_replay_url: bool | None = None, instrument_llm_calls: bool | None = None,
         wait_for_auth: bool | None = None, auth_timeout: float | None = None,
         shutdown_timeout: float | None = None, export_timeout: float | None = None,
         **kwargs: Any) -> Client | None:
    """Configure the SDK, start authenticating in the background and, unless
    ``auto_start_session`` is false, start a session trace.

    Returns without waiting for the network unless ``wait_for_auth`` is true (then at most
    ``auth_timeout`` seconds). Bad settings raise ``ConfigError`` naming the setting; with
    ``fail_safe`` they are logged and the SDK continues (local-only for a bad API key).
    Calling init again with the same settings keeps the running client; with different
    settings the running client is shut down (its queue delivered within
    ``shutdown_timeout``) and replaced.
    """
    arguments = {name: value for name, value in locals().items()
                 if name != "kwargs" and value is not None}
    config = Config.resolve(**arguments)
    try:
        return _init(config, kwargs)
    except Exception:
        if not config.fail_safe:
            raise
        logger.exception("agentops.init() failed; continuing without AgentOps (fail_safe)")
        return None


def _init(config: Config, unknown: dict[str, Any]) -> Client:
    configure_logging(config.log_level)
    for name in unknown:
        logger.warning("agentops.init() ignores unknown argument %r", name)
    for error in config.errors.values():
        logger.error("Invalid setting ignored (fail_safe): %s", error)
    existing = current()
    if existing is not None and not existing.closed and existing.config == config:
        logger.info("agentops.init() called again with the same settings; "
                    "keeping the running client")
        if config.auto_start_session and not existing.traces:
            existing.start_trace()
        return existing
    if existing is not None:
        logger.info("agentops.init() called with new settings; "
                    "shutting down the previous client first")
        existing.shutdown()
    client = Client(config)
    client.start()
    replace_current(client)
    if config.auto_start_session:
        client.start_trace()
    if config.wait_for_auth:
        client.tracker.wait(config.auth_timeout)
        client.tracker.warn_timeout()
    return client


def get_client() -> Client | None:
    """The running client, or None before ``init``."""
    return current()


def start_trace(trace_name: str = "session", tags: list[str] | None = None) -> TraceContext | None:
    """Start a session trace (also a context manager). Before ``init``: a warning, None."""
    client = current()
    if client is None or client.closed:
        logger.warning("agentops.start_trace() called before agentops.init(); nothing recorded")
        return None
    return client.start_trace(trace_name, tags)


def end_trace(trace_context: TraceContext | None = None, end_state: str = "Success") -> None:
    """End one session trace, or every open one when ``trace_context`` is None."""
    client = current()
    if client is not None:
        client.end_trace(trace_context, end_state)


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
