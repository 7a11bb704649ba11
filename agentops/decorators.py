"""Upstream agentops 0.4's decorators: ``@trace`` (``@session``), ``@agent``, ``@task``
(``@operation``), ``@workflow``, ``@tool``, ``@guardrail``, ``@track_endpoint``.

Each works with and without arguments (``@tool``, ``@tool(name="search", cost=0.01)``) on
functions, methods, classes, generators, coroutines and async generators. A call makes a
span named ``{name}.{kind}`` with ``agentops.span.kind``, ``operation.name`` and the
arguments and return value under ``agentops.{kind}.input`` / ``.output`` (JSON, at most
``MAX_CONTENT_CHARS`` characters, never raising: ``agentops.helpers.serialization``).
``@trace`` and ``@track_endpoint`` open a session trace instead, through the same client
code as ``agentops.start_trace`` (a new root and its URL line). An exception ends the span
with status ERROR (a session trace as "Error") and is re-raised. Every span goes through
the SDK's tracer provider, so it is counted and delivered like any other.

Before ``agentops.init`` a decorated callable runs as if undecorated.

Where this differs from upstream, on purpose: a generator's span starts at its first
iteration and is current only while the generator body runs (upstream leaves it current
in the caller after the first ``next``); a decorated class's span covers its constructor
(upstream keeps it open and current until the instance is garbage collected), and an
``async with`` block on an instance gets a span of its own.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from agentops import semconv
from agentops.client import Client, current
from agentops.helpers.serialization import attribute_value, safe_serialize
from agentops.semconv import CoreAttributes, SpanAttributes, SpanKind
from agentops.tracing import ERROR, SUCCESS, TraceContext

logger = logging.getLogger("agentops")

__all__ = ["agent", "task", "operation", "workflow", "trace", "session", "tool", "guardrail",
           "track_endpoint", "create_entity_decorator"]


@dataclass(frozen=True)
class _Options:
    kind: str
    name: str | None
    version: Any
    tags: list[str] | dict[str, Any] | None
    cost: Any
    spec: str | None
    capture_request: bool
    capture_response: bool


def _running_client() -> Client | None:
    client = current()
    return client if client is not None and not client.closed else None


class _Scope:
    """One decorated call: a span, or for ``@trace`` a session trace, and its context."""

    def __init__(self, client: Client, options: _Options, name: str,
                 parent: otel_context.Context | None = None, attach: bool = True,
                 io_kind: str | None = None) -> None:
        self.options = options
        self.io_kind = io_kind or (semconv.ENTITY if options.kind == SpanKind.SESSION
                                   else options.kind)
        self.trace: TraceContext | None = None
        self.token: object | None = None
        if options.kind == SpanKind.SESSION:
            self.trace = client.start_trace(name, options.tags, attach=attach)
            self.span: otel_trace.Span = self.trace.span
            self.context = self.trace.context
            if options.version is not None:
                self.span.set_attribute(SpanAttributes.OPERATION_VERSION,
                                        attribute_value(options.version))
            return
        attributes: dict[str, Any] = {SpanAttributes.AGENTOPS_SPAN_KIND: options.kind,
                                      SpanAttributes.OPERATION_NAME: name}
        if options.version is not None:
            attributes[SpanAttributes.OPERATION_VERSION] = attribute_value(options.version)
        if isinstance(options.tags, dict):
            attributes.update({str(k): attribute_value(v) for k, v in options.tags.items()
                               if v is not None})
        elif options.tags:
            attributes[CoreAttributes.TAGS] = [str(tag) for tag in options.tags]
        if options.kind == SpanKind.TOOL and options.cost is not None:
            attributes[SpanAttributes.LLM_USAGE_TOOL_COST] = attribute_value(options.cost)
        if options.kind == SpanKind.GUARDRAIL and options.spec in ("input", "output"):
            attributes[semconv.decorator_key(SpanAttributes.AGENTOPS_DECORATOR_SPEC,
                                             options.kind)] = options.spec
        self.span = client.tracer.start_span(semconv.span_name(name, options.kind),
                                             context=parent, attributes=attributes)
        self.context = otel_trace.set_span_in_context(self.span, parent)
        if attach:
            self.token = otel_context.attach(self.context)

    def record_input(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.span.set_attribute(
            semconv.decorator_key(SpanAttributes.AGENTOPS_DECORATOR_INPUT, self.io_kind),
            safe_serialize({"args": args, "kwargs": kwargs}))

    def record_output(self, result: Any) -> None:
        self.span.set_attribute(
            semconv.decorator_key(SpanAttributes.AGENTOPS_DECORATOR_OUTPUT, self.io_kind),
            safe_serialize(result))

    def finish(self, error: BaseException | None = None) -> None:
        description = f"{type(error).__name__}: {error}" if error is not None else None
        if error is not None and isinstance(error, Exception):
            self.span.record_exception(error)
        if self.trace is not None:
            self.trace.end(ERROR if error is not None else SUCCESS, description)
            return
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, description))
        if self.token is not None:
            token, self.token = self.token, None
            otel_context.detach(token)  # type: ignore[arg-type]
        self.span.end()


def _call(client: Client, options: _Options, name: str, func: Callable[..., Any],
          args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    scope = _Scope(client, options, name)
    scope.record_input(args, kwargs)
    try:
        result = func(*args, **kwargs)
    except BaseException as error:
        scope.finish(error)
        raise
    scope.record_output(result)
    scope.finish()
    return result


async def _acall(client: Client, options: _Options, name: str, func: Callable[..., Any],
                 args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # Opened inside the coroutine: its context belongs to the task that awaits it.
    scope = _Scope(client, options, name)
    scope.record_input(args, kwargs)
    try:
        result = await func(*args, **kwargs)
    except BaseException as error:
        scope.finish(error)
        raise
    scope.record_output(result)
    scope.finish()
    return result


def _generator(client: Client, options: _Options, name: str, func: Callable[..., Any],
               args: tuple[Any, ...], kwargs: dict[str, Any]) -> Generator[Any, Any, Any]:
    """Runs the generator body, and only it, with the span current; the caller's context
    is never left pointing at the span between items."""
    parent = otel_context.get_current()
    scope: _Scope | None = None
    inner: Generator[Any, Any, Any] | None = None
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            if scope is None:
                scope = _Scope(client, options, name, parent=parent, attach=False)
                scope.record_input(args, kwargs)
            token = otel_context.attach(scope.context)
            try:
                if inner is None:
                    inner = func(*args, **kwargs)
                if to_throw is not None:
                    error, to_throw = to_throw, None
                    item = inner.throw(error)
                else:
                    item = inner.send(to_send)
            finally:
                otel_context.detach(token)
            try:
                to_send = yield item
            except GeneratorExit:
                token = otel_context.attach(scope.context)
                try:
                    inner.close()
                finally:
                    otel_context.detach(token)
                scope.finish()
                raise
            except BaseException as error:  # thrown in by the caller: pass it to the body
                to_throw = error
    except StopIteration as stop:
        if scope is not None:
            scope.finish()
        return stop.value
    except GeneratorExit:
        raise
    except BaseException as error:
        if scope is not None:
            scope.finish(error)
        raise


async def _async_generator(client: Client, options: _Options, name: str,
                           func: Callable[..., Any], args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> AsyncGenerator[Any, Any]:
    """As ``_generator``, for async generators."""
    parent = otel_context.get_current()
    scope: _Scope | None = None
    inner: AsyncGenerator[Any, Any] | None = None
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            if scope is None:
                scope = _Scope(client, options, name, parent=parent, attach=False)
                scope.record_input(args, kwargs)
            token = otel_context.attach(scope.context)
            try:
                if inner is None:
                    inner = func(*args, **kwargs)
                if to_throw is not None:
                    error, to_throw = to_throw, None
                    item = await inner.athrow(error)
                else:
                    item = await inner.asend(to_send)
            finally:
                otel_context.detach(token)
            try:
                to_send = yield item
            except GeneratorExit:
                token = otel_context.attach(scope.context)
                try:
                    await inner.aclose()
                finally:
                    otel_context.detach(token)
                scope.finish()
                raise
            except BaseException as error:
                to_throw = error
    except StopAsyncIteration:
        if scope is not None:
            scope.finish()
    except GeneratorExit:
        raise
    except BaseException as error:
        if scope is not None:
            scope.finish(error)
        raise


# -- @track_endpoint -------------------------------------------------------------------


def _flask_request() -> dict[str, Any]:
    """The current Flask request, when the program runs one (Flask is never imported here)."""
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_request_context():
        return {}
    request = flask.request
    return {"method": request.method, "url": request.url, "headers": dict(request.headers),
            "args": dict(request.args), "json": request.get_json(silent=True)}


def _response_data(result: Any) -> dict[str, Any]:
    flask = sys.modules.get("flask")
    if flask is not None and isinstance(result, flask.Response):
        return {"status_code": result.status_code, "headers": dict(result.headers),
                "data": result.get_data(as_text=True)}
    return {"status_code": 200, "data": None if result is None else safe_serialize(result)}


def _http_span(client: Client, options: _Options, name: str, method: str,
               data: dict[str, Any], output: bool) -> None:
    span_options = _Options(SpanKind.HTTP, None, options.version, None, None, None, True, True)
    scope = _Scope(client, span_options, f"{name}.{method.lower()}", io_kind=semconv.ENTITY)
    scope.span.set_attribute(SpanAttributes.HTTP_METHOD, method)
    try:
        if data.get("method"):
            scope.span.set_attribute(SpanAttributes.HTTP_METHOD, data["method"])
        if data.get("url"):
            scope.span.set_attribute(SpanAttributes.HTTP_URL, data["url"])
        if data.get("status_code"):
            scope.span.set_attribute(SpanAttributes.HTTP_STATUS_CODE, data["status_code"])
        if output:
            scope.record_output(data)
        elif data:
            scope.record_input((data,), {})
    finally:
        scope.finish()


def _endpoint(client: Client, options: _Options, name: str, func: Callable[..., Any],
              args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    session = _Scope(client, _session_options(options), name)
    try:
        if options.capture_request:
            _http_span(client, options, name, "REQUEST", _flask_request(), output=False)
        result = func(*args, **kwargs)
        if options.capture_response:
            _http_span(client, options, name, "RESPONSE", _response_data(result), output=True)
    except BaseException as error:
        session.finish(error)
        raise
    session.finish()
    return result


async def _aendpoint(client: Client, options: _Options, name: str, func: Callable[..., Any],
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    session = _Scope(client, _session_options(options), name)
    try:
        if options.capture_request:
            _http_span(client, options, name, "REQUEST", _flask_request(), output=False)
        result = await func(*args, **kwargs)
        if options.capture_response:
            _http_span(client, options, name, "RESPONSE", _response_data(result), output=True)
    except BaseException as error:
        session.finish(error)
        raise
    session.finish()
    return result


def _session_options(options: _Options) -> _Options:
    return _Options(SpanKind.SESSION, options.name, options.version, options.tags, None, None,
                    options.capture_request, options.capture_response)


# -- the decorator factory -------------------------------------------------------------


def _wrap_function(wrapped: Callable[..., Any], options: _Options) -> Callable[..., Any]:
    function = wrapped.__func__ if isinstance(wrapped, (classmethod, staticmethod)) else wrapped
    is_async_generator = inspect.isasyncgenfunction(function)
    is_generator = inspect.isgeneratorfunction(function)
    is_coroutine = inspect.iscoroutinefunction(function)
    endpoint = options.kind == SpanKind.HTTP

    @wrapt.decorator
    def wrapper(func: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        client = _running_client()
        if client is None:
            return func(*args, **kwargs)
        name = options.name or func.__name__
        if endpoint and (is_generator or is_async_generator):
            logger.warning("@track_endpoint on generator %r is not supported; it runs "
                           "untraced (use @trace)", name)
            return func(*args, **kwargs)
        if is_async_generator:
            return _async_generator(client, options, name, func, args, kwargs)
        if is_generator:
            return _generator(client, options, name, func, args, kwargs)
        if is_coroutine:
            return (_aendpoint if endpoint else _acall)(client, options, name, func, args, kwargs)
        return (_endpoint if endpoint else _call)(client, options, name, func, args, kwargs)

    return wrapper(wrapped)


def _wrap_class(cls: type, options: _Options) -> type:
    name = options.name or cls.__name__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        client = _running_client()
        if client is None:
            super(wrapped_class, self).__init__(*args, **kwargs)  # type: ignore[arg-type]
            return
        scope = _Scope(client, options, name, io_kind=semconv.ENTITY)
        scope.record_input(args, kwargs)
        try:
            super(wrapped_class, self).__init__(*args, **kwargs)  # type: ignore[arg-type]
        except BaseException as error:
            scope.finish(error)
            raise
        scope.finish()

    async def __aenter__(self: Any) -> Any:
        client = _running_client()
        base = getattr(super(wrapped_class, self), "__aenter__", None)
        if client is not None:
            self._agentops_scope = _Scope(client, options, name, io_kind=semconv.ENTITY)
        return await base() if base is not None else self

    async def __aexit__(self: Any, exc_type: Any, exc: Any, tb: Any) -> Any:
        base = getattr(super(wrapped_class, self), "__aexit__", None)
        try:
            return await base(exc_type, exc, tb) if base is not None else None
        finally:
            scope = self.__dict__.pop("_agentops_scope", None)
            if scope is not None:
                scope.record_output(self)
                scope.finish(exc)

    namespace = {"__init__": functools.wraps(cls.__init__)(__init__),  # type: ignore[misc]
                 "__aenter__": __aenter__, "__aexit__": __aexit__,
                 "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                 "__doc__": cls.__doc__}
    wrapped_class: type = type(cls)(cls.__name__, (cls,), namespace)
    return wrapped_class


def create_entity_decorator(kind: str) -> Callable[..., Any]:
    """A decorator opening spans of ``kind`` (a ``SpanKind`` value); see the module doc.

    Keyword arguments: ``name`` (default: the function's or class's name), ``version``
    (``operation.version``), ``tags`` (list -> ``agentops.tags``; dict -> attributes),
    ``cost`` (tools: ``gen_ai.usage.total_cost``), ``spec`` (guardrails: "input" or
    "output"), ``capture_request`` / ``capture_response`` (``@track_endpoint``).
    """

    def decorator(wrapped: Any = None, *, name: str | None = None, version: Any = None,
                  tags: list[str] | dict[str, Any] | None = None, cost: Any = None,
                  spec: str | None = None, capture_request: bool = True,
                  capture_response: bool = True) -> Any:
        if tags is not None and not isinstance(tags, (list, tuple, set, frozenset, dict)):
            # refused where the decorator is written, not in every call of the function
            raise TypeError(f"@{kind}(tags=...) takes a list of strings or a dict of "
                            f"attribute values, got {type(tags).__name__}")
        options = _Options(kind, name, version, tags, cost, spec, capture_request,
                           capture_response)
        if wrapped is None:
            return functools.partial(decorator, name=name, version=version, tags=tags,
                                     cost=cost, spec=spec, capture_request=capture_request,
                                     capture_response=capture_response)
        if inspect.isclass(wrapped):
            return _wrap_class(wrapped, options)
        if not callable(wrapped) and not isinstance(wrapped, (classmethod, staticmethod)):
            raise TypeError(f"@{kind} decorates a function, method or class; got "
                            f"{type(wrapped).__name__} (pass the name as name=...)")
        return _wrap_function(wrapped, options)

    return decorator


agent = create_entity_decorator(SpanKind.AGENT)
task = create_entity_decorator(SpanKind.TASK)
operation = task
workflow = create_entity_decorator(SpanKind.WORKFLOW)
trace = create_entity_decorator(SpanKind.SESSION)
tool = create_entity_decorator(SpanKind.TOOL)
guardrail = create_entity_decorator(SpanKind.GUARDRAIL)
track_endpoint = create_entity_decorator(SpanKind.HTTP)


def session(*args: Any, **kwargs: Any) -> Any:
    """Deprecated alias of ``@trace`` (warns once)."""
    from agentops.legacy import warn_deprecated

    warn_deprecated("session", "the @agentops.trace decorator")
    return trace(*args, **kwargs)
