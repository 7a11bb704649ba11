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
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.environment_variables import OTEL_TRACES_SAMPLER
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler
from opentelemetry.trace import Status, StatusCode

from agentops.helpers.serialization import attribute_value, safe_serialize
from agentops.semconv import CoreAttributes, SpanAttributes, SpanKind
from agentops.timestamps import iso

if TYPE_CHECKING:
    from agentops.enums import TraceState

logger = logging.getLogger("agentops")

SUCCESS_STATES = ("success", "succeeded", "ok")
UNDECIDED_STATES = ("indeterminate", "unset", "unknown")
"""End states that say neither success nor failure: the root span's status stays UNSET."""


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
        self.ours = False
        self.was_global = False
        self.overrides_before = 0
        """Refused overrides seen before AgentOps installed its processor: not after init."""


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
            _installed.ours = True
            if isinstance(current, trace.ProxyTracerProvider):
                trace.set_tracer_provider(ours)
            else:
                logger.warning("The global tracer provider is a %s, not an OpenTelemetry SDK "
                               "TracerProvider: only spans made with AgentOps' tracer are "
                               "exported", type(current).__name__)
            _installed.samples_every_span = sampler is ALWAYS_ON
        _installed.router, _installed.provider = router, provider
        _installed.overrides_before = _override_watch.count
        _installed.was_global = trace.get_tracer_provider() is provider
        return router, provider


class _OverrideWatch(logging.Filter):
    """Notices OpenTelemetry refusing a second global tracer provider. Its warning is the
    only public trace of the attempt; the record passes on unchanged."""

    MESSAGE = "Overriding of current TracerProvider is not allowed"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.last_at: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self.MESSAGE:
            self.count += 1
            self.last_at = time.time()
        return True


_override_watch = _OverrideWatch()
logging.getLogger("opentelemetry.trace").addFilter(_override_watch)


def provider_is_ours(provider: object) -> bool:
    """True when ``provider`` is the TracerProvider this SDK created (not the program's)."""
    return provider is not None and provider is _installed.provider and _installed.ours


def provider_facts(provider: trace.TracerProvider) -> dict[str, object]:
    """{replaced, global_provider, override_refused, override_refused_at}: whether the
    global tracer provider is still the one AgentOps' span processor is installed in, and
    how often the program tried to set another one after init."""
    current = trace.get_tracer_provider()
    return {
        "replaced": _installed.was_global and current is not provider,
        "global_provider": type(current).__name__,
        "override_refused": _override_watch.count - _installed.overrides_before,
        "override_refused_at": iso(_override_watch.last_at)
        if _override_watch.count > _installed.overrides_before else None,
    }


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


SUCCESS = "Success"
ERROR = "Error"
INDETERMINATE = "Indeterminate"
"""End states written to ``agentops.session.end_state`` for enum inputs (upstream's words)."""

EndState = Union[str, "TraceState", StatusCode, None]

_STATE_OF_CODE = {StatusCode.OK: SUCCESS, StatusCode.ERROR: ERROR, StatusCode.UNSET: INDETERMINATE}


def resolve_end_state(end_state: EndState) -> tuple[str, StatusCode]:
    """The ``agentops.session.end_state`` text and the span status for an end state.

    Accepts a string (``"Success"`` and its synonyms end with status OK, ``"Indeterminate"``
    and its synonyms leave it UNSET, any other text ends with ERROR and that text as
    description), upstream's ``TraceState``, an OpenTelemetry
    ``StatusCode`` (OK -> "Success", ERROR -> "Error", UNSET -> "Indeterminate"), or None
    (Success). Anything else raises TypeError before the trace is touched.
    """
    from agentops.enums import TraceState

    if end_state is None:
        return SUCCESS, StatusCode.OK
    if isinstance(end_state, TraceState):
        end_state = end_state.to_status_code()
    if isinstance(end_state, StatusCode):
        return _STATE_OF_CODE[end_state], end_state
    if isinstance(end_state, str):
        word = end_state.strip().lower()
        if word in SUCCESS_STATES:
            return end_state, StatusCode.OK
        if word in UNDECIDED_STATES:
            return end_state, StatusCode.UNSET
        return end_state, StatusCode.ERROR
    raise TypeError("end_state must be a string such as 'Success', an agentops.TraceState or an "
                    f"opentelemetry StatusCode, got {type(end_state).__name__}")


def session_attributes(name: str, tags: list[str] | dict[str, Any] | None,
                       default_tags: list[str]) -> dict[str, Any]:
    """The root span's attributes: kind ``session``, ``operation.name``, ``agentops.tags``
    (``default_tags`` then list ``tags``), and the items of dict ``tags`` as attributes of
    their own (values OpenTelemetry cannot hold are serialised)."""
    attributes: dict[str, Any] = {SpanAttributes.AGENTOPS_SPAN_KIND: SpanKind.SESSION,
                                  SpanAttributes.OPERATION_NAME: name}
    listed = list(default_tags)
    if isinstance(tags, Mapping):
        for key, value in tags.items():
            if value is not None:
                attributes[str(key)] = attribute_value(value)
    elif isinstance(tags, (list, tuple, set, frozenset)):
        listed += [tag if isinstance(tag, str) else safe_serialize(tag) for tag in tags]
    elif tags is not None:
        raise TypeError("tags must be a list of strings or a dict of attribute values, got "
                        f"{type(tags).__name__}: {safe_serialize(tags, 80)}")
    if listed:
        attributes[CoreAttributes.TAGS] = list(dict.fromkeys(listed))
    return attributes


class CurrentSession(trace.Span):
    """What ``start_trace`` makes the current span: the session trace's root span while the
    trace is open, and once it has ended, whatever was current before it (resolved the same
    way, so a chain of ended session traces is skipped).

    Why not the span itself: a context attached with ``context.attach`` can only be detached
    on the thread (and in the asyncio task) that attached it, and only in reverse order. A
    session trace ended on another thread, or before a trace started after it, would stay
    the current span of that context and adopt every later span as its child. Through this
    indirection the context never resolves to an ended session trace, whatever the order or
    thread of ``end_trace``.
    """

    def __init__(self, owner: TraceContext, previous: trace.Span) -> None:
        self._owner = owner
        self._previous = previous

    def live(self) -> trace.Span:
        """The span this stands for now."""
        if not self._owner.ended:
            return self._owner.span
        previous = self._previous
        while isinstance(previous, CurrentSession) and previous._owner.ended:
            previous = previous._previous
        self._previous = previous  # ended traces never reopen: skip them from now on
        return previous.live() if isinstance(previous, CurrentSession) else previous

    def get_span_context(self) -> trace.SpanContext:
        return self.live().get_span_context()

    def is_recording(self) -> bool:
        return self.live().is_recording()

    def set_attribute(self, key: str, value: Any) -> None:
        self.live().set_attribute(key, value)

    def set_attributes(self, attributes: Any) -> None:
        self.live().set_attributes(attributes)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        self.live().add_event(name, attributes, timestamp)

    def update_name(self, name: str) -> None:
        self.live().update_name(name)

    def set_status(self, status: Any, description: str | None = None) -> None:
        self.live().set_status(status, description)

    def record_exception(self, exception: BaseException, attributes: Any = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        self.live().record_exception(exception, attributes, timestamp, escaped)

    def end(self, end_time: int | None = None) -> None:
        self.live().end(end_time)

    def __getattr__(self, name: str) -> Any:
        # name, attributes, parent... of the SDK span, for code that reads them
        return getattr(self.live(), name)

    def __repr__(self) -> str:
        return f"CurrentSession({self._owner!r})"


def _task_id() -> int | None:
    asyncio = sys.modules.get("asyncio")  # not imported: no task can be running
    if asyncio is None:
        return None
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop
        return None
    return id(task) if task is not None else None


class TraceContext:
    """A session trace: its root span (a new trace, whatever span is current), the dashboard
    URL, and, unless started with ``attach=False``, the context made current by
    ``start_trace``. A context manager: an exception inside ends it as "Error" with the
    exception's type and message as the status description.

    ``span`` is the root span, ``token`` the context token (None when not attached),
    ``trace_id`` 32 lowercase hex digits, ``end_state`` the text written at the end.
    """

    def __init__(self, span: trace.Span, name: str, url: str,
                 on_end: Callable[[TraceContext], None], attach: bool = True,
                 is_init_trace: bool = False) -> None:
        self.span = span
        self.name = name
        self.url = url
        self.trace_id = f"{span.get_span_context().trace_id:032x}"
        self.started_at = time.time()
        self.ended = False
        self.end_state: str | None = None
        self.is_init_trace = is_init_trace
        self._on_end = on_end
        self._lock = threading.Lock()
        self.current = CurrentSession(self, trace.get_current_span())
        self.context = trace.set_span_in_context(self.current)
        self.token: object | None = None
        if attach:
            self._attached_in = (threading.get_ident(), _task_id())
            self.token = otel_context.attach(self.context)

    def end(self, end_state: EndState = SUCCESS, description: str | None = None) -> None:
        """End the trace once (later calls do nothing); see ``resolve_end_state``."""
        state, code = resolve_end_state(end_state)
        with self._lock:
            if self.ended:
                return
            self.ended = True
            self.end_state = state
        self.span.set_attribute(SpanAttributes.AGENTOPS_SESSION_END_STATE, state)
        if code is StatusCode.ERROR:
            self.span.set_status(Status(code, description or state))
        elif code is StatusCode.OK:
            self.span.set_status(Status(code))
        self.span.end()
        self._detach_if_current()
        self._on_end(self)

    def _detach_if_current(self) -> None:
        """Restore the context that was current before this trace, when that is possible:
        here, in the thread and task that attached it, while it is still the current one.
        Elsewhere ``CurrentSession`` already resolves past this ended trace."""
        if self.token is None or otel_context.get_current() is not self.context:
            return
        if (threading.get_ident(), _task_id()) != self._attached_in:
            return
        token, self.token = self.token, None
        otel_context.detach(token)  # type: ignore[arg-type]

    def __enter__(self) -> TraceContext:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.span.record_exception(exc)
            self.end(ERROR, f"{type(exc).__name__}: {exc}")
        else:
            self.end(SUCCESS)

    def __repr__(self) -> str:
        return f"TraceContext(name={self.name!r}, trace_id={self.trace_id}, ended={self.ended})"
