"""The HTTP session handed to ``OTLPSpanExporter(session=...)``: the public seam through
which every export request passes, retries included.

It adds the current bearer token, measures each request, remembers what the receiver
answered (for the exporter to name the cause of a failure), refreshes a rejected token
once, and keeps requests inside the exit budget.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests

from agentops.api import error_text
from agentops.auth import AuthTracker
from agentops.export.stats import ExportStats

MAX_ERROR_BODY = 4096


class ExitBudgetExhausted(requests.exceptions.RequestException):
    """Raised instead of sending once the exit budget has run out."""


class ExitBudget:
    """The time left to deliver spans at exit; unlimited until ``begin`` is called."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    def begin(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    @property
    def exhausted(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0


@dataclass
class Attempt:
    """What happened to the HTTP requests of one batch export."""

    status: int | None = None
    error: BaseException | None = None
    error_body: str | None = None
    refreshed: bool = False
    retry_after: float | None = None
    """Seconds the receiver asked to wait (429 Retry-After)."""
    exporter_message: str | None = None
    """What OpenTelemetry's exporter logged while failing, e.g. before any request."""


_current = threading.local()


def current_attempt() -> Attempt | None:
    return getattr(_current, "attempt", None)


def set_current_attempt(attempt: Attempt | None) -> None:
    _current.attempt = attempt


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delay-seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


class ExportSession(requests.Session):
    def __init__(self, tracker: AuthTracker, stats: ExportStats, budget: ExitBudget) -> None:
        super().__init__()
        self._tracker = tracker
        self._stats = stats
        self._budget = budget

    def send(self, request: requests.PreparedRequest, **kwargs):
        attempt = current_attempt() or Attempt()
        token = self._tracker.current_token()
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        response = self._timed_send(request, attempt, kwargs)
        if response.status_code == 401 and token is not None and not attempt.refreshed:
            attempt.refreshed = True
            fresh = self._tracker.refresh(token)
            if fresh is not None and fresh != token:
                response.close()
                request = request.copy()
                request.headers["Authorization"] = f"Bearer {fresh}"
                response = self._timed_send(request, attempt, kwargs)
        return response

    def _timed_send(self, request: requests.PreparedRequest, attempt: Attempt,
                    kwargs: dict) -> requests.Response:
        remaining = self._budget.remaining()
        if remaining is not None:
            if remaining <= 0:
                attempt.error = ExitBudgetExhausted("the exit budget ran out before sending")
                raise attempt.error
            timeout = kwargs.get("timeout")
            if isinstance(timeout, (int, float)) or timeout is None:
                kwargs["timeout"] = remaining if timeout is None else min(timeout, remaining)
        started = time.monotonic()
        try:
            response = super().send(request, **kwargs)
        except Exception as error:
            self._stats.http_response(None, time.monotonic() - started)
            attempt.error, attempt.status = error, None
            raise
        self._stats.http_response(response.status_code, time.monotonic() - started)
        attempt.status, attempt.error = response.status_code, None
        if response.status_code == 429:
            attempt.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if response.status_code >= 400:
            # OpenTelemetry does not stream, so the body is already in memory.
            attempt.error_body = error_text(response.content[:MAX_ERROR_BODY])
        return response
