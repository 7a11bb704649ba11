"""``from agentops.sdk.decorators import agent, tool, ...``: upstream's import path for the
decorators defined in ``agentops.decorators``."""

from agentops.decorators import (
    agent,
    create_entity_decorator,
    guardrail,
    operation,
    session,
    task,
    tool,
    trace,
    track_endpoint,
    workflow,
)

__all__ = ["agent", "task", "workflow", "trace", "session", "operation", "tool", "guardrail",
           "track_endpoint", "create_entity_decorator"]
