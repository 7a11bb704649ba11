"""A local, AgentOps-compatible backend for tests, demos and offline checks.

    from agentops.testing import LocalBackend

    with LocalBackend() as backend:
        ...  # point the SDK at backend.api_url / backend.otlp_url with backend.api_key
        backend.wait_for_spans(1)
"""

from agentops.testing.backend import (
    APP_PATH,
    AUTH_TOKEN_PATH,
    DEFAULT_TOKEN_TTL,
    HEALTH_PATH,
    MAX_BODY_BYTES,
    MAX_DECOMPRESSED_BYTES,
    MAX_RECORDS,
    OTLP_TRACES_PATH,
    LocalBackend,
)

__all__ = [
    "APP_PATH",
    "AUTH_TOKEN_PATH",
    "DEFAULT_TOKEN_TTL",
    "HEALTH_PATH",
    "MAX_BODY_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_RECORDS",
    "OTLP_TRACES_PATH",
    "LocalBackend",
]
