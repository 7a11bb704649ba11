"""A local, AgentOps-compatible backend for tests, demos and offline checks.

    from agentops.testing import Faults, LocalBackend

    with LocalBackend(faults=Faults(otlp_statuses=(503,))) as backend:
        ...  # point the SDK at backend.api_url / backend.otlp_url with backend.api_key
        backend.wait_for_spans(1)
"""

from agentops.testing.backend import (
    APP_PATH,
    AUTH_TOKEN_PATH,
    HEALTH_PATH,
    OTLP_TRACES_PATH,
    STOP_TIMEOUT,
    LocalBackend,
)
from agentops.testing.faults import Faults
from agentops.testing.otlp import MAX_DECOMPRESSED_BYTES, SpanRecord
from agentops.testing.records import MAX_RECORDS, AuthRequestRecord, OtlpRequestRecord
from agentops.testing.server import MAX_BODY_BYTES
from agentops.testing.tokens import DEFAULT_TOKEN_TTL

__all__ = [
    "APP_PATH",
    "AUTH_TOKEN_PATH",
    "DEFAULT_TOKEN_TTL",
    "HEALTH_PATH",
    "MAX_BODY_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_RECORDS",
    "OTLP_TRACES_PATH",
    "STOP_TIMEOUT",
    "AuthRequestRecord",
    "Faults",
    "LocalBackend",
    "OtlpRequestRecord",
    "SpanRecord",
]
