"""Span names and attribute keys the AgentOps dashboard reads: upstream agentops' conventions.

Facts from the public upstream package (``agentops/semconv/`` and ``agentops/sdk/`` of
``AgentOps-AI/agentops``, release 0.4): every SDK module uses these names instead of
literals, so a span from this SDK looks to the dashboard like one from upstream's.

- A span made by a decorator or a session trace is named ``{name}.{kind}`` (``span_name``),
  e.g. ``nightly-run.session``, ``search.tool``.
- Its kind is the attribute ``agentops.span.kind`` (``SpanKind``), not OpenTelemetry's
  span kind; ``operation.name`` holds the undecorated name.
- Decorator inputs and outputs go under ``agentops.{kind}.input`` / ``.output``
  (``decorator_key``); a session trace opened by ``@trace`` uses the ``entity`` kind there.
- A session trace's end state is ``agentops.session.end_state``, its tags ``agentops.tags``,
  and ``update_trace_metadata`` writes ``trace.metadata.<key>`` unless the key is one of the
  conventions below (as ``agent.name`` or its underscore form ``agent_name``).

The class names mirror upstream's, so ``from agentops.semconv import SpanAttributes`` keeps
working.
"""

from __future__ import annotations

from enum import Enum


class AgentOpsSpanKindValues(Enum):
    WORKFLOW = "workflow"
    SESSION = "session"
    TASK = "task"
    OPERATION = "operation"
    AGENT = "agent"
    TOOL = "tool"
    LLM = "llm"
    CHAIN = "chain"
    TEXT = "text"
    GUARDRAIL = "guardrail"
    HTTP = "http"
    UNKNOWN = "unknown"


class SpanKind:
    """Values of ``agentops.span.kind``."""

    SESSION = "session"
    AGENT = "agent"
    TASK = "task"
    OPERATION = "operation"
    WORKFLOW = "workflow"
    TOOL = "tool"
    GUARDRAIL = "guardrail"
    HTTP = "http"
    LLM = "llm"
    CHAIN = "chain"
    TEXT = "text"
    UNKNOWN = "unknown"


class SpanAttributes:
    """Keys set by the SDK itself (the ``gen_ai.*`` keys of LLM instrumentation live with it)."""

    AGENTOPS_SPAN_KIND = "agentops.span.kind"
    AGENTOPS_ENTITY_NAME = "agentops.entity.name"
    AGENTOPS_ENTITY_INPUT = "agentops.entity.input"
    AGENTOPS_ENTITY_OUTPUT = "agentops.entity.output"
    AGENTOPS_DECORATOR_SPEC = "agentops.{entity_kind}.spec"
    AGENTOPS_DECORATOR_INPUT = "agentops.{entity_kind}.input"
    AGENTOPS_DECORATOR_OUTPUT = "agentops.{entity_kind}.output"
    OPERATION_NAME = "operation.name"
    OPERATION_VERSION = "operation.version"
    AGENTOPS_SESSION_END_STATE = "agentops.session.end_state"
    AGENTOPS_SESSION_END_STATE_REASON = "agentops.session.end_state_reason"
    """Why the session trace ended so (upstream's ``end_state_reason``): "exit status 3",
    "ValueError: ...", "terminated by SIGTERM"."""
    LLM_USAGE_TOOL_COST = "gen_ai.usage.total_cost"
    HTTP_METHOD = "http.method"
    HTTP_URL = "http.url"
    HTTP_ROUTE = "http.route"
    HTTP_STATUS_CODE = "http.status_code"
    HTTP_REQUEST_HEADERS = "http.request.headers"
    HTTP_RESPONSE_HEADERS = "http.response.headers"
    HTTP_REQUEST_BODY = "http.request.body"
    HTTP_RESPONSE_BODY = "http.response.body"
    HTTP_USER_AGENT = "http.user_agent"
    HTTP_REQUEST_ID = "http.request_id"


class CoreAttributes:
    ERROR_TYPE = "error.type"
    ERROR_MESSAGE = "error.message"
    TAGS = "agentops.tags"
    TRACE_ID = "trace.id"
    SPAN_ID = "span.id"
    PARENT_ID = "parent.id"
    GROUP_ID = "group.id"


class AgentAttributes:
    AGENT_ID = "agent.id"
    AGENT_NAME = "agent.name"
    AGENT_ROLE = "agent.role"
    AGENT_TOOLS = "agent.tools"
    AGENT_MODELS = "agent.models"
    AGENT_REASONING = "agent.reasoning"
    TOOLS = "tools"
    HANDOFFS = "handoffs"
    FROM_AGENT = "from_agent"
    TO_AGENT = "to_agent"


class ToolAttributes:
    TOOL_ID = "tool.id"
    TOOL_NAME = "tool.name"
    TOOL_DESCRIPTION = "tool.description"
    TOOL_PARAMETERS = "tool.parameters"
    TOOL_RESULT = "tool.result"
    TOOL_STATUS = "tool.status"


class WorkflowAttributes:
    WORKFLOW_NAME = "workflow.name"
    WORKFLOW_TYPE = "workflow.type"
    WORKFLOW_ID = "workflow.workflow_id"
    WORKFLOW_RUN_ID = "workflow.run_id"
    WORKFLOW_DESCRIPTION = "workflow.description"
    WORKFLOW_INPUT = "workflow.input"
    WORKFLOW_INPUT_TYPE = "workflow.input.type"
    WORKFLOW_OUTPUT = "workflow.output"
    WORKFLOW_OUTPUT_TYPE = "workflow.output.type"
    WORKFLOW_FINAL_OUTPUT = "workflow.final_output"
    WORKFLOW_STEP_TYPE = "workflow.step.type"
    WORKFLOW_STEP_STATUS = "workflow.step.status"
    WORKFLOW_MAX_TURNS = "workflow.max_turns"
    WORKFLOW_DEBUG_MODE = "workflow.debug_mode"
    WORKFLOW_SESSION_ID = "workflow.session_id"
    WORKFLOW_SESSION_NAME = "workflow.session_name"
    WORKFLOW_USER_ID = "workflow.user_id"
    WORKFLOW_APP_ID = "workflow.app_id"


CONNECTIVITY_TEST_KIND = "connectivity_test"
"""This SDK's own kind: the one span the connectivity test exports (not an upstream kind)."""

TRACE_METADATA_PREFIX = "trace.metadata"
"""Default prefix of ``update_trace_metadata`` keys that are not conventions."""

ENTITY = "entity"
"""The kind under which ``@trace`` records a session's input and output (upstream's default)."""


def span_name(name: str, kind: str) -> str:
    """``{name}.{kind}``: how upstream names decorator spans and session traces."""
    return f"{name}.{kind}"


def decorator_key(template: str, kind: str) -> str:
    """Fill a ``agentops.{entity_kind}.*`` template, e.g. ``agentops.tool.input``."""
    return template.format(entity_kind=kind)


def _convention_keys() -> dict[str, str]:
    """Every convention key, reachable by itself and by its underscore form, plus ``tags``.

    Upstream's ``update_trace_metadata`` recognises the same set (``gen_ai.*`` excluded)."""
    keys: dict[str, str] = {}
    for cls in (AgentAttributes, ToolAttributes, WorkflowAttributes, CoreAttributes,
                SpanAttributes):
        for attribute, value in vars(cls).items():
            if attribute.startswith("_") or not isinstance(value, str):
                continue
            if value.startswith("gen_ai."):
                continue
            keys[value] = value
            keys[value.replace(".", "_")] = value
    keys["tags"] = CoreAttributes.TAGS
    return keys


CONVENTION_KEYS: dict[str, str] = _convention_keys()
