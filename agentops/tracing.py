"""The tracing pipeline: the tracer provider our spans go through, the processor chain that
delivers them, and session traces (``TraceContext``).

One ``SpanRouter`` is installed per process, in our provider (made global when no other
is set) or in the SDK ``TracerProvider`` the user already installed. A processor cannot
be removed from a provider through public API, so re-``init`` swaps what the router
forwards to instead of adding a second exporter.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.environment_variables import OTEL_TRACES_SAMPLER
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler
from opentelemetry.trace import Status, StatusCode

logger = logging.getLogger("agentops")

SUCCESS_STATES = ("success", "succeeded", "ok")


class SpanRouter(SpanProcessor):
    """Forwards to the current client's processor, or nowhere before init."""

    def __init__(self) -> None:
        self._target: SpanProcessor | None = None

    @property
    def target(self) -> SpanProcessor | None:
        return self._target

    @target.setter
    def target(self, processor: SpanProcessor | None) -> None:
        self._target = processor
        # The provider calls on_end for every span: binding the target's own method here
        # keeps the router's frame off that path.
        self.on_end = processor.on_end if processor is not None else _ignore  # type: ignore[method-assign]

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # The batch processor behind the target ignores span starts: skip the calls.
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pass  # replaced per instance by the target's on_end

    def shutdown(self) -> None:
        # The provider's own shutdown (at exit, by the user) must not outrun the client's
        # bounded exit; the client shuts its processor down itself.
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self._target
        return target.force_flush(timeout_millis) if target is not None else True


def _ignore(span: ReadableSpan) -> None:
    pass


class _Installation:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.router: SpanRouter | None = None
        self.provider: trace.TracerProvider | None = None
        self.samples_every_span = False


_installed = _Installation()


def install_router() -> tuple[SpanRouter, trace.TracerProvider]:
    """Install the process's SpanRouter once and return it with the provider it serves."""
    with _installed.lock:
        if _installed.router is not None and _installed.provider is not None:
            return _installed.router, _installed.provider
        router = SpanRouter()
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            current.add_span_processor(router)
            provider: trace.TracerProvider = current
            logger.info("An OpenTelemetry TracerProvider is already set; AgentOps added its "
                        "span processor to it instead of replacing it")
        else:
            sampler = _sampler()
            ours = TracerProvider(resource=Resource.create({"service.name": "agentops"}),
                                  sampler=sampler, shutdown_on_exit=False)
            ours.add_span_processor(router)
            provider = ours
            if isinstance(current, trace.ProxyTracerProvider):
                trace.set_tracer_provider(ours)
            else:
                logger.warning("The global tracer provider is a %s, not an OpenTelemetry SDK "
                               "TracerProvider: only spans made with AgentOps' tracer are "
                               "exported", type(current).__name__)
            _installed.samples_every_span = sampler is ALWAYS_ON
        _installed.router, _installed.provider = router, provider
        return router, provider


def samples_every_span() -> bool:
    """True when the installed provider is ours with no sampler chosen: every span that
    ends is sampled, so processors need not check."""
    return _installed.samples_every_span


def _sampler() -> Sampler | None:
    """Every span is recorded unless the user chose a sampler (OTEL_TRACES_SAMPLER).

    The default parent-based sampler would drop spans under an unsampled parent without a
    word, and costs a parent lookup per span under the session trace.
    """
    return None if os.environ.get(OTEL_TRACES_SAMPLER) else ALWAYS_ON


class TraceContext:
    """A session trace: its root span, the dashboard URL, and the context made current by
    ``start_trace``. A context manager: an exception inside ends it with an error status."""

    def __init__(self, span: trace.Span, name: str, url: str,
                 on_end: Callable[[TraceContext], None]) -> None:
        self.span = span
        self.name = name
        self.url = url
        self.trace_id = f"{span.get_span_context().trace_id:032x}"
        self.started_at = time.time()
        self.ended = False
        self._on_end = on_end
        self._token = otel_context.attach(trace.set_span_in_context(span))
        self._lock = threading.Lock()

    def end(self, end_state: str = "Success") -> None:
        with self._lock:
            if self.ended:
                return
            self.ended = True
        self.span.set_attribute("agentops.end_state", end_state)
        if end_state.lower() in SUCCESS_STATES:
            self.span.set_status(Status(StatusCode.OK))
        else:
            self.span.set_status(Status(StatusCode.ERROR, end_state))
        self.span.end()
        # Detaching is only valid where the context was attached: on the same thread,
        # while this trace's span is still the current one.
        if trace.get_current_span() is self.span:
            otel_context.detach(self._token)
        self._on_end(self)

    def __enter__(self) -> TraceContext:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.span.record_exception(exc)
            self.end(f"Error: {exc_type.__name__ if exc_type else 'exception'}")
        else:
            self.end("Success")

    def __repr__(self) -> str:
        return f"TraceContext(name={self.name!r}, trace_id={self.trace_id}, ended={self.ended})"
