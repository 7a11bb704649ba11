"""Spans on their way to export: LLM spans made ready for AgentOps, and counts of spans per
LLM library and per session trace.

The instrumentors emit OpenTelemetry's GenAI names (``gen_ai.usage.input_tokens``,
``gen_ai.provider.name``, ``gen_ai.input.messages``; older OpenLLMetry releases
``llm.usage.total_tokens`` and ``gen_ai.prompt.N.*``), while the AgentOps dashboard reads
upstream agentops' names (``agentops/semconv/span_attributes.py``:
``gen_ai.usage.prompt_tokens``, ``gen_ai.system``, ``gen_ai.prompt.N.content``, ...).
An LLM span is exported with both: upstream's names are added where missing, nothing is
renamed or removed, except prompts and completions when ``capture_content`` is off and
credentials (an instrumentor records ``extra_headers`` as they were passed).

Finished spans are immutable, so a changed span is a new ``ReadableSpan`` built through
its public constructor. Only spans of instrumentation scopes owned by a supported library
are looked at; every other span passes through untouched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentops.config import mask_secret

logger = logging.getLogger("agentops")

# upstream agentops' names (agentops/semconv/span_attributes.py, span_kinds.py)
SPAN_KIND = "agentops.span.kind"
LLM_KIND = "llm"
SYSTEM = "gen_ai.system"
PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
TOTAL_TOKENS = "gen_ai.usage.total_tokens"
STREAMING = "gen_ai.request.streaming"
PROMPT = "gen_ai.prompt"
COMPLETION = "gen_ai.completion"

# OpenTelemetry GenAI names (and OpenLLMetry's older llm.* ones) they are derived from
PROVIDER = "gen_ai.provider.name"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
LEGACY_TOTAL_TOKENS = "llm.usage.total_tokens"
IS_STREAMING = ("gen_ai.is_streaming", "llm.is_streaming", "gen_ai.request.stream")
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"

CONTENT_KEYS = (INPUT_MESSAGES, OUTPUT_MESSAGES, "gen_ai.system_instructions")
CONTENT_PREFIXES = (PROMPT + ".", COMPLETION + ".")
HEADER_KEYS = ("llm.headers", "gen_ai.headers", "gen_ai.request.headers")

PROVIDER_KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY")
_KEY_SHAPE = re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")
"""OpenAI (``sk-``, ``sk-proj-``) and Anthropic (``sk-ant-``) secret keys."""
_SECRET_HEADER = re.compile(
    r"""(['"]?(?:authorization|proxy-authorization|api-key|x-api-key)['"]?\s*[:=]\s*['"]?)"""
    r"""([^'",}]+)""", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(//[^/@:\s]+:)[^@/\s]+@")

MAX_SCOPES = 256


def _secrets_in_environment(environ: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(value for name in PROVIDER_KEY_VARIABLES
                 if len(value := environ.get(name, "").strip()) >= 8)


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with provider keys (by value and by shape), secret header values and URL
    passwords masked."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, mask_secret(secret) or "***")
    text = _KEY_SHAPE.sub(lambda m: mask_secret(m.group(0)) or "***", text)
    text = _SECRET_HEADER.sub(lambda m: m.group(1) + "***", text)
    return _URL_PASSWORD.sub(r"\1***@", text)


def _scrubbed(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, (tuple, list)) and any(isinstance(item, str) for item in value):
        return tuple(scrub(item, secrets) if isinstance(item, str) else item for item in value)
    return value


def _text_of(message: Mapping[str, Any]) -> str:
    """The text parts of a GenAI semconv message (``parts: [{type: text, content}]``)."""
    if isinstance(message.get("content"), str):
        return message["content"]
    parts = message.get("parts") or []
    return "".join(str(part.get("content", "")) for part in parts
                   if isinstance(part, Mapping) and part.get("type") == "text")


def _messages(attributes: dict[str, Any], source: str, prefix: str) -> None:
    if any(key.startswith(prefix + ".") for key in attributes):
        return  # already in upstream's layout
    try:
        messages = json.loads(attributes[source])
    except (KeyError, TypeError, ValueError):
        return
    if not isinstance(messages, list):
        return
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            continue
        if message.get("role"):
            attributes[f"{prefix}.{index}.role"] = str(message["role"])
        attributes[f"{prefix}.{index}.content"] = _text_of(message)
        if message.get("finish_reason"):
            attributes[f"{prefix}.{index}.finish_reason"] = str(message["finish_reason"])


def upstream_attributes(original: Mapping[str, Any], *, capture_content: bool,
                        secrets: Sequence[str] = (), bridge: bool = True) -> dict[str, Any]:
    """The attributes an LLM span is exported with (see the module docstring); with
    ``bridge`` false (spans a library emits by itself) only content and credentials are
    handled, so its token counts are not counted twice by the dashboard."""
    attributes = {key: value for key, value in original.items()
                  if capture_content or not (key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES))}
    if not bridge:
        return {key: _scrubbed(value, secrets) for key, value in attributes.items()}
    attributes.setdefault(SPAN_KIND, LLM_KIND)
    if PROVIDER in attributes:
        attributes.setdefault(SYSTEM, attributes[PROVIDER])
    if INPUT_TOKENS in attributes:
        attributes.setdefault(PROMPT_TOKENS, attributes[INPUT_TOKENS])
    if OUTPUT_TOKENS in attributes:
        attributes.setdefault(COMPLETION_TOKENS, attributes[OUTPUT_TOKENS])
    if TOTAL_TOKENS not in attributes:
        if LEGACY_TOTAL_TOKENS in attributes:
            attributes[TOTAL_TOKENS] = attributes[LEGACY_TOTAL_TOKENS]
        elif isinstance(attributes.get(PROMPT_TOKENS), int) and \
                isinstance(attributes.get(COMPLETION_TOKENS), int):
            attributes[TOTAL_TOKENS] = attributes[PROMPT_TOKENS] + attributes[COMPLETION_TOKENS]
    for key in IS_STREAMING:
        if key in attributes:
            attributes.setdefault(STREAMING, bool(attributes[key]))
            break
    if capture_content:
        _messages(attributes, INPUT_MESSAGES, PROMPT)
        _messages(attributes, OUTPUT_MESSAGES, COMPLETION)
    for key, value in attributes.items():
        attributes[key] = _scrubbed(value, secrets)
    return attributes


def _rebuilt(span: ReadableSpan, attributes: dict[str, Any]) -> ReadableSpan:
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=attributes, events=span.events, links=span.links, kind=span.kind,
        status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope)


class SpanTally:
    """Spans seen on their way to export: per session trace (only traces registered with
    ``open``) and per supported LLM library, split into ``instrumentor`` and ``library``
    (spans the library emits by itself)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.traces: dict[int, int] = {}
        self.libraries: dict[str, dict[str, int]] = {}

    def open(self, trace_id: int) -> None:
        with self._lock:
            self.traces.setdefault(trace_id, 0)

    def close(self, trace_id: int) -> None:
        with self._lock:
            self.traces.pop(trace_id, None)

    def spans_in(self, trace_id: int) -> int:
        """Spans of that session trace seen so far, its root excluded (a root is exported
        only once it has ended)."""
        return self.traces.get(trace_id, 0)

    def add_library(self, library: str, source: str) -> None:
        with self._lock:
            counts = self.libraries.setdefault(library, {"instrumentor": 0, "library": 0})
            counts[source] += 1

    def add_trace_spans(self, counts: Mapping[int, int]) -> None:
        with self._lock:
            for trace_id, count in counts.items():
                if trace_id in self.traces:
                    self.traces[trace_id] += count

    def library_counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: dict(counts) for name, counts in self.libraries.items()}


class LLMSpanExporter(SpanExporter):
    """Wraps the AgentOps exporter: prepares LLM spans (``upstream_attributes``) and counts
    spans in ``tally`` before handing every span on, in the same order.

    ``owners`` maps instrumentation scope prefixes to library names and ``native`` exact
    scope names of libraries that trace themselves; both are read on the first batch, off
    the caller's thread (reading installed distributions takes milliseconds).
    """

    def __init__(self, delegate: SpanExporter, tally: SpanTally, *, capture_content: bool,
                 owners: Callable[[], Mapping[str, str]],
                 native: Mapping[str, str], environ: Mapping[str, str] | None = None) -> None:
        self.delegate = delegate
        self.tally = tally
        self.capture_content = capture_content
        self._owners_source = owners
        self._owners: Mapping[str, str] | None = None
        self._native = dict(native)
        self._scopes: dict[str, tuple[str, str] | None] = {}
        self._secrets = _secrets_in_environment(os.environ if environ is None else environ)

    def _owner(self, scope_name: str) -> tuple[str, str] | None:
        """(library, source) of a scope, cached per scope name."""
        if scope_name in self._scopes:
            return self._scopes[scope_name]
        if self._owners is None:
            try:
                self._owners = dict(self._owners_source())
            except Exception:
                logger.debug("could not read the installed instrumentors", exc_info=True)
                self._owners = {}
        owner: tuple[str, str] | None = None
        if scope_name in self._native:
            owner = (self._native[scope_name], "library")
        else:
            for prefix, library in self._owners.items():
                if scope_name == prefix or scope_name.startswith(prefix + "."):
                    owner = (library, "instrumentor")
                    break
        if len(self._scopes) < MAX_SCOPES:
            self._scopes[scope_name] = owner
        return owner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        prepared: list[ReadableSpan] = []
        per_trace: dict[int, int] = {}
        traces = self.tally.traces
        for span in spans:
            context = span.context
            if context is not None and context.trace_id in traces and span.parent is not None:
                per_trace[context.trace_id] = per_trace.get(context.trace_id, 0) + 1
            scope = span.instrumentation_scope
            owner = self._owner(scope.name) if scope is not None else None
            if owner is None:
                prepared.append(span)
                continue
            self.tally.add_library(*owner)
            attributes = span.attributes or {}
            try:
                prepared.append(_rebuilt(span, upstream_attributes(
                    attributes, capture_content=self.capture_content, secrets=self._secrets,
                    bridge=owner[1] == "instrumentor")))
            except Exception:
                # Still delivered, without the text attributes that could hold a credential.
                logger.debug("could not prepare LLM span %r", span.name, exc_info=True)
                prepared.append(_rebuilt(span, {key: value for key, value in attributes.items()
                                                if isinstance(value, (bool, int, float))}))
        if per_trace:
            self.tally.add_trace_spans(per_trace)
        return self.delegate.export(prepared)

    def shutdown(self) -> None:
        self.delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.delegate.force_flush(timeout_millis)
