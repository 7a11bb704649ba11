"""The stable strings support tools key off: authentication states and reasons, and the
causes under which spans that did not reach the backend are counted."""

from __future__ import annotations

# Authentication state.
DISABLED = "disabled"
PENDING = "pending"
AUTHENTICATED = "authenticated"
FAILED = "failed"
AUTH_STATES = (DISABLED, PENDING, AUTHENTICATED, FAILED)

# Why authentication failed (several are shared with the export causes below).
INVALID_KEY_FORMAT = "invalid_key_format"
INVALID_KEY = "invalid_key"
SERVER_ERROR = "server_error"
BAD_RESPONSE = "bad_response"
CONNECTION_ERROR = "connection_error"
TIMEOUT = "timeout"
TLS_ERROR = "tls_error"
UNEXPECTED_STATUS = "unexpected_status"
AUTH_REASONS = (INVALID_KEY_FORMAT, INVALID_KEY, SERVER_ERROR, BAD_RESPONSE,
                CONNECTION_ERROR, TIMEOUT, TLS_ERROR, UNEXPECTED_STATUS)
TRANSIENT_AUTH_REASONS = frozenset({SERVER_ERROR, CONNECTION_ERROR, TIMEOUT})

# Why spans did not arrive.
NOT_AUTHENTICATED = "not_authenticated"
AUTH_REJECTED = "auth_rejected"
RATE_LIMITED = "rate_limited"
CLIENT_ERROR = "client_error"
QUEUE_OVERFLOW = "queue_overflow"
SHUTDOWN = "shutdown"
INTERNAL_ERROR = "internal_error"
LOSS_CAUSES = (NOT_AUTHENTICATED, AUTH_REJECTED, RATE_LIMITED, SERVER_ERROR, CLIENT_ERROR,
               CONNECTION_ERROR, TIMEOUT, TLS_ERROR, QUEUE_OVERFLOW, SHUTDOWN, INTERNAL_ERROR)
