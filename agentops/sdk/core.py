"""``from agentops.sdk.core import TraceContext``: upstream's import path."""

from agentops.tracing import TraceContext

__all__ = ["TraceContext"]
