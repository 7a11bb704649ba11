"""The stable strings support tools key off: authentication states and reasons, and the
causes under which spans that did not reach the backend are counted."""

from __future__ import annotations

# Authentication state.
DISABLED = "disabled"
PENDING = "pending"
AUTHENTICATED = "authenticated"
FAILED = "failed"

# Why authentication failed (several are shared with the export causes below).
INVALID_KEY_FORMAT = "invalid_key_format"
INVALID_KEY = "invalid_key"
SERVER_ERROR = "server_error"
BAD_RESPONSE = "bad_response"
CONNECTION_ERROR = "connection_error"
TIMEOUT = "timeout"
TLS_ERROR = "tls_error"
UNEXPECTED_STATUS = "unexpected_status"
RATE_LIMITED = "rate_limited"
AUTH_REASONS = (INVALID_KEY_FORMAT, INVALID_KEY, SERVER_ERROR, BAD_RESPONSE,
                CONNECTION_ERROR, TIMEOUT, TLS_ERROR, UNEXPECTED_STATUS, RATE_LIMITED)
TRANSIENT_AUTH_REASONS = frozenset({SERVER_ERROR, CONNECTION_ERROR, TIMEOUT, RATE_LIMITED})

# Why spans did not arrive.
NOT_AUTHENTICATED = "not_authenticated"
AUTH_REJECTED = "auth_rejected"
CLIENT_ERROR = "client_error"
QUEUE_OVERFLOW = "queue_overflow"
SHUTDOWN = "shutdown"
INTERNAL_ERROR = "internal_error"
REJECTED_BY_RECEIVER = "rejected_by_receiver"
"""The receiver accepted the request, but its ``partial_success`` rejected these spans."""
TOO_LARGE = "too_large"
"""A single span the receiver refuses with 413 even when sent alone."""
LOSS_CAUSES = (NOT_AUTHENTICATED, AUTH_REJECTED, RATE_LIMITED, SERVER_ERROR, CLIENT_ERROR,
               CONNECTION_ERROR, TIMEOUT, TLS_ERROR, QUEUE_OVERFLOW, SHUTDOWN, INTERNAL_ERROR,
               REJECTED_BY_RECEIVER, UNEXPECTED_STATUS, TOO_LARGE)

# The receiver check: an empty export request sent once the first token is held.
UNCHECKED = "unchecked"
CHECKING = "checking"
ACCEPTING = "accepting"
REJECTING = "rejecting"
UNREACHABLE = "unreachable"
FAILING = "failing"

# Dropped from offline storage to respect its bounds (counted like losses).
STORAGE_FULL = "storage_full"
EXPIRED = "expired"
STORED_EXPORT_CAUSES = frozenset({CONNECTION_ERROR, TIMEOUT, SERVER_ERROR, RATE_LIMITED,
                                  SHUTDOWN})
"""Transient: a later attempt may succeed, so batches that failed so are kept in offline
storage (with ``not_authenticated`` while authentication may still succeed). The definitive
causes (``client_error``, ``too_large``, ``rejected_by_receiver``, ``auth_rejected``,
``unexpected_status``, ``internal_error``) are not: resending would be refused again."""
