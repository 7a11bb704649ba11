"""What a LocalBackend saw: one record per request, the spans it accepted, and waits on
them.

The endpoints append to a ``Journal``; ``LocalBackend``'s inspection properties read it.
Every read hands out copies, so a test cannot change what the backend recorded.
"""

from __future__ import annotations

import collections
import copy
import threading
from collections.abc import Callable, Iterable
from typing import TypedDict, TypeVar

from agentops.testing.otlp import SpanRecord

__all__ = ["MAX_RECORDS", "AuthRequestRecord", "Journal", "OtlpRequestRecord"]

# Long-running standalone instances keep only the most recent records.
MAX_RECORDS = 100_000


class AuthRequestRecord(TypedDict):
    """One request to the token endpoint. ``method`` is "POST" (exchange) or "GET"
    (verification); ``status`` is the answer's, 0 while held by a hang; ``time`` is
    ``time.monotonic()`` seconds at arrival; ``api_key`` is the key sent (POST) or the
    token's (GET), ``api_key_ok`` whether it is a UUID this backend accepts."""

    method: str
    status: int
    time: float
    api_key_ok: bool
    api_key: str | None


class OtlpRequestRecord(TypedDict):
    """One export request. ``status`` is the answer's, 0 while held by a hang;
    ``authorized`` whether it carried a valid token (``token``, or None); ``span_count``
    how many spans it carried (decoded before any fault applies, so refused requests say
    it too); ``bytes`` its body size as sent; ``header_names`` its header names in lower
    case; ``time`` is ``time.monotonic()`` seconds at arrival."""

    status: int
    authorized: bool
    token: str | None
    span_count: int
    bytes: int
    header_names: list[str]
    time: float


_R = TypeVar("_R")


def _copies(records: Iterable[_R]) -> list[_R]:
    # Attribute values may be lists or nested dicts; callers must not reach the originals.
    return [copy.deepcopy(record) for record in records]


class Journal:
    """The records of one backend, oldest first, at most ``MAX_RECORDS`` of each kind;
    the totals waited on count every record since the last ``clear()``, kept or not."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._spans: collections.deque[SpanRecord] = collections.deque(maxlen=MAX_RECORDS)
        self._span_total = 0
        self._otlp_requests: collections.deque[OtlpRequestRecord] = collections.deque(
            maxlen=MAX_RECORDS)
        self._otlp_total = 0
        self._receiver_checks: collections.deque[OtlpRequestRecord] = collections.deque(
            maxlen=MAX_RECORDS)
        self._auth_requests: collections.deque[AuthRequestRecord] = collections.deque(
            maxlen=MAX_RECORDS)
        self._tokens_issued = 0

    # -- written by the endpoints ---------------------------------------------

    def add_auth(self, record: AuthRequestRecord, *, token_issued: bool = False) -> None:
        with self._changed:
            self._auth_requests.append(record)
            if token_issued:
                self._tokens_issued += 1
            self._changed.notify_all()

    def add_otlp(self, record: OtlpRequestRecord, *, check: bool,
                 spans: list[SpanRecord] | None = None) -> None:
        """Records an export request; ``check`` files an empty one (a client's receiver
        check) apart, and ``spans`` are the ones it accepted."""
        with self._changed:
            if check:
                self._receiver_checks.append(record)
            else:
                self._otlp_requests.append(record)
                self._otlp_total += 1
                if spans:
                    self._spans.extend(spans)
                    self._span_total += len(spans)
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()
            self._span_total = 0
            self._otlp_requests.clear()
            self._otlp_total = 0
            self._receiver_checks.clear()
            self._auth_requests.clear()
            self._tokens_issued = 0

    # -- read by the backend's inspection properties --------------------------

    def spans(self, trace_id: str | None = None) -> list[SpanRecord]:
        """Copies of the accepted spans, of one trace (lowercase hex) when it is given."""
        with self._changed:
            return _copies(s for s in self._spans if trace_id is None or s["trace_id"] == trace_id)

    def span_names(self) -> list[str]:
        with self._changed:
            return [span["name"] for span in self._spans]

    def span_summary(self) -> tuple[int, int]:
        """How many spans are kept, and in how many traces."""
        with self._changed:
            return len(self._spans), len({span["trace_id"] for span in self._spans})

    def otlp_requests(self) -> list[OtlpRequestRecord]:
        with self._changed:
            return _copies(self._otlp_requests)

    def receiver_checks(self) -> list[OtlpRequestRecord]:
        with self._changed:
            return _copies(self._receiver_checks)

    def auth_requests(self) -> list[AuthRequestRecord]:
        with self._changed:
            return _copies(self._auth_requests)

    @property
    def tokens_issued(self) -> int:
        with self._changed:
            return self._tokens_issued

    def wait_for_spans(self, n: int, timeout: float) -> bool:
        return self._wait(lambda: self._span_total >= n, timeout)

    def wait_for_otlp_requests(self, n: int, timeout: float) -> bool:
        return self._wait(lambda: self._otlp_total >= n, timeout)

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(done, timeout=timeout)
