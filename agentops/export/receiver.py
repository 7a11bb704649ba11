"""The receiver's state: whether the OTLP receiver accepts this process's token.

Right after the first token is held, one empty ``ExportTraceServiceRequest`` is POSTed
through the request loop (an OpenTelemetry Collector answers it 200 and stores nothing).
Its outcome, and then every batch outcome, is the latest evidence: ``accepting`` once the
receiver took a request, ``rejecting`` on 401/403, ``unreachable`` on connection errors,
timeouts and TLS failures, ``failing`` on any other answer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from agentops import vocabulary as v
from agentops.export.request import OTLPRequestLoop, Outcome
from agentops.timestamps import iso

logger = logging.getLogger("agentops")

_UNREACHABLE_CAUSES = frozenset({v.CONNECTION_ERROR, v.TIMEOUT, v.TLS_ERROR})
_SETTLED = frozenset({v.ACCEPTING, v.REJECTING, v.UNREACHABLE, v.FAILING})


def receiver_state(outcome: Outcome) -> str:
    if outcome.accepted:
        return v.ACCEPTING
    if outcome.cause == v.AUTH_REJECTED:
        return v.REJECTING
    if outcome.cause in _UNREACHABLE_CAUSES:
        return v.UNREACHABLE
    return v.FAILING


class ReceiverStatus:
    def __init__(self, where: str = "the configured endpoint") -> None:
        self.where = where
        """host:port of the receiver, for messages."""
        self._cond = threading.Condition()
        self.state = v.UNCHECKED
        self.cause: str | None = None
        self.http_status: int | None = None
        self.detail: str | None = None
        self.checked_at: float | None = None
        self.checking_since: float | None = None
        """When the receiver check started (``time.time()``), while it has no answer."""
        self.latency_ms: float | None = None
        self.accepted_once = False
        """The receiver took at least one request from this process."""

    def check(self, loop: OTLPRequestLoop, deadline: float) -> None:
        """The receiver check: one empty request, no retry, within ``deadline``."""
        with self._cond:
            self.state = v.CHECKING
            self.checking_since = time.time()
        started = time.monotonic()
        outcome = loop.send(b"", deadline, retry=False)
        self.observe(outcome, latency=time.monotonic() - started)

    def observe(self, outcome: Outcome, latency: float | None = None) -> None:
        """Record the latest evidence; an outcome the exit cut short before any answer
        says nothing about the receiver."""
        if outcome.cause == v.SHUTDOWN or outcome.cut_short:
            return
        with self._cond:
            was = self.state
            self.state = receiver_state(outcome)
            if was in (v.REJECTING, v.UNREACHABLE, v.FAILING) and outcome.accepted:
                logger.info("The OTLP receiver at %s accepted a request after it was %s; "
                            "session data is reaching the backend", self.where, was)
            self.cause = outcome.cause
            self.http_status = outcome.http_status
            self.detail = outcome.detail
            self.checked_at = time.time()
            if latency is not None:
                self.latency_ms = round(1000 * latency, 1)
            self.accepted_once = self.accepted_once or outcome.accepted
            self._cond.notify_all()

    def wait(self, timeout: float) -> str:
        """Wait at most ``timeout`` seconds for a settled state; return the state."""
        with self._cond:
            self._cond.wait_for(lambda: self.state in _SETTLED, max(0.0, timeout))
            return self.state

    def after_fork(self) -> None:
        self._cond = threading.Condition()

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {"state": self.state, "cause": self.cause, "http_status": self.http_status,
                    "detail": self.detail, "checked_at": iso(self.checked_at),
                    "latency_ms": self.latency_ms,
                    "checking_since": iso(self.checking_since)
                    if self.state == v.CHECKING else None}
