"""The OTLP/HTTP request loop: POST one encoded ``ExportTraceServiceRequest`` with the
current bearer token, read the answer, retry within one deadline, and return what happened
as an ``Outcome`` value.

Every wait is bounded by the deadline the caller passes (a monotonic time), re-read before
each step so that an exit budget that begins while a batch is in flight shortens it: connect,
send, the status line (socket timeouts set to the time left), the body (streamed, the clock
checked between reads, since a per-read socket timeout does not bound a body that drips),
retry waits, ``Retry-After`` waits and the one token refresh after a 401.

Which answers are retried, and why:

- connection errors and timeouts: the receiver may be restarting or the network blipped;
- 408 (the server gave up waiting for the request), 429 (rate limited), 502, 503, 504
  (a proxy or the collector is temporarily unavailable): the OTLP/HTTP specification lists
  429, 502, 503 and 504 as retryable; 408 says the same request may succeed later;
- 500 and other 5xx: not retried. The receiver failed to process this very payload and the
  specification does not list them as retryable; retrying would repeat the failure and eat
  the deadline of the batches behind it;
- 401: the token is refreshed once (a single request however many exports ask) and the
  request sent again, with the old token if the refresh failed and it has not expired;
  403 and a second 401 are definitive;
- other 4xx, 1xx and 3xx: definitive. Redirects are never followed, so the token is never
  sent to a host the configuration did not name;
- every 2xx is acceptance. Its body is parsed as an ``ExportTraceServiceResponse`` whose
  ``partial_success`` may reject some spans; a body that does not parse, or is cut short,
  is logged at DEBUG and the spans stay accepted.

Waits between retries are jittered exponential backoff (0.5 s, 1 s, 2 s, ... at most
``MAX_BACKOFF``) shrunk to half the time left, never below ``MIN_BACKOFF``, so a short exit
budget still gets several tries and none bunch up at the deadline. ``Retry-After`` lengthens
the wait when it fits in the time left (a value of 0, negative or in the past changes
nothing); when it does not fit, the loop stops and keeps the cause.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import requests
import urllib3
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentops import transport
from agentops import vocabulary as v
from agentops.api import USER_AGENT, error_text
from agentops.auth import AuthTracker
from agentops.http import (
    close_session,
    endpoint_label,
    exception_cause,
    host_label,
    parse_retry_after,
)
from agentops.redaction import redact

logger = logging.getLogger("agentops")

MAX_BODY_BYTES = 64 * 1024
"""Largest part of any answer's body that is read; the rest is discarded unread."""
MAX_BACKOFF = 8.0
MIN_ATTEMPT_TIME = 0.05
"""Seconds below which a new attempt is not started: it could not finish."""
MIN_BACKOFF = 0.1
"""Shortest wait between attempts, so that waits shrunk to the time left never become a
tight loop near the deadline."""
RETRIED_STATUSES = frozenset({408, 429, 502, 503, 504})
RETRIED_CAUSES = frozenset({v.CONNECTION_ERROR, v.TIMEOUT})
CONTENT_TYPE = "application/x-protobuf"


@dataclass(frozen=True)
class Outcome:
    """What one payload met. ``cause`` is None when the receiver accepted the request;
    ``rejected_spans`` of it may still have been refused through ``partial_success``."""

    cause: str | None
    detail: str
    http_status: int | None = None
    attempts: int = 0
    elapsed: float = 0.0
    """Seconds from the first attempt to the outcome."""
    rejected_spans: int = 0
    rejected_message: str | None = None
    retry_after: float | None = None
    cut_short: bool = False
    """The exit ended the wait for the answer (``OTLPRequestLoop.cut_short``): no evidence
    about the receiver."""

    @property
    def accepted(self) -> bool:
        return self.cause is None


def status_cause(status: int) -> str:
    if status in (401, 403):
        return v.AUTH_REJECTED
    if status == 429:
        return v.RATE_LIMITED
    if status == 413:
        return v.TOO_LARGE
    if status >= 500:
        return v.SERVER_ERROR
    if status >= 400:
        return v.CLIENT_ERROR
    return v.UNEXPECTED_STATUS


class ExitBudget:
    """The time left to deliver spans at exit; unlimited until ``begin`` is called."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.begun = threading.Event()

    def begin(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.begun.set()

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def limit(self, deadline: float) -> float:
        """``deadline`` (monotonic), shortened to the exit budget once the exit began."""
        return deadline if self.deadline is None else min(deadline, self.deadline)

    def sleep(self, until: Callable[[], float],
              stop: Callable[[], bool] = lambda: False) -> None:
        """Sleep until ``until()``, re-reading it when the exit begins; once it has begun,
        not at all if ``stop()``."""
        while (remaining := until() - time.monotonic()) > 0:
            if self.begun.is_set():
                if stop():
                    return
                time.sleep(remaining)
            else:
                self.begun.wait(remaining)


class _Answer:
    """One HTTP answer: status, the headers the loop reads, and at most ``MAX_BODY_BYTES``
    of the body. ``timed_out`` when the deadline came while the body was still arriving."""

    def __init__(self, status: int, location: str | None, retry_after: str | None,
                 body: bytes, body_error: str | None, timed_out: bool) -> None:
        self.status = status
        self.location = location
        self.retry_after = retry_after
        self.body = body
        self.body_error = body_error
        self.timed_out = timed_out


def _read_body(response: requests.Response, deadline: Callable[[], float]) -> tuple[bytes, str | None, bool]:
    """(at most MAX_BODY_BYTES of the body, why reading stopped early, deadline reached)."""
    chunks: list[bytes] = []
    size = 0
    # read1 returns whatever has arrived, so a body dripping one byte at a time still
    # reaches the clock check; read(n) would wait for n bytes.
    read = getattr(response.raw, "read1", None) or response.raw.read
    whole = False
    try:
        while size < MAX_BODY_BYTES:
            if time.monotonic() >= deadline():
                return b"".join(chunks), "the deadline came while the body was arriving", True
            chunk = read(min(8192, MAX_BODY_BYTES - size), decode_content=True)
            if not chunk:
                whole = True
                break
            chunks.append(chunk)
            size += len(chunk)
    except urllib3.exceptions.ReadTimeoutError:
        return b"".join(chunks), "the deadline came while the body was arriving", True
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
        return b"".join(chunks), f"{type(error).__name__} while reading the body", False
    finally:
        if whole:
            response.raw.release_conn()  # read to its end: the connection is reused
        else:
            response.close()  # a body left unread: the connection cannot be reused
    return b"".join(chunks), None, False


class OTLPRequestLoop:
    """Sends encoded payloads to one OTLP/HTTP traces endpoint through the SDK's own
    ``requests.Session`` (redirects never followed; no ``OTEL_EXPORTER_OTLP_*`` variable
    read: those configure the program's other exporters).

    ``on_response(status or None, seconds)`` is called after every HTTP request (for the
    latency figures of the diagnosis).
    """

    def __init__(self, endpoint: str, tracker: AuthTracker, budget: ExitBudget,
                 on_response: Callable[[int | None, float], None] | None = None) -> None:
        self.endpoint = endpoint
        self.where = endpoint_label(endpoint)
        self._tracker = tracker
        self._budget = budget
        self._on_response = on_response or (lambda status, seconds: None)
        self.session = requests.Session()
        self._connections = transport.mount(self.session)

    def after_fork(self) -> None:
        """In a forked child: new connections (pooled sockets are shared with the parent)."""
        self._connections = transport.mount(self.session)

    def cut_short(self) -> None:
        """The exit's time to send ran out: end the attempts still waiting on the receiver
        now (their own deadline may be later: it was set before the exit began). They end
        as ``timeout``."""
        self._connections.cut()

    def close(self) -> None:
        close_session(self.session)

    def send(self, payload: bytes, until: float, *, retry: bool = True,
             final: Callable[[], frozenset[str]] = frozenset,
             progress: Callable[[str, str], None] | None = None) -> Outcome:
        """POST ``payload`` until accepted, a definitive answer, or the deadline: ``until``
        (monotonic seconds) or the end of the exit budget, whichever comes first, re-read
        before every step. ``retry=False`` makes one attempt (and the one after a token
        refresh); causes in ``final()`` are not retried, and a wait to retry one ends when
        the exit begins and ``final()`` comes to name its cause. ``progress(cause, detail)``
        hears each failed attempt (so a batch the exit abandons keeps the last real cause it
        met). Never raises for network faults."""
        def deadline() -> float:
            return self._budget.limit(until)

        started = time.monotonic()
        attempts = 0
        refreshed = False
        last: Outcome | None = None
        failures = 0
        while True:
            left = deadline() - time.monotonic()
            if left < MIN_ATTEMPT_TIME:
                return self._out_of_time(last, attempts, started, until)
            token = self._tracker.current_token(timeout=left)
            attempts += 1
            outcome = self._attempt(payload, token, deadline)
            outcome = _with(outcome, attempts=attempts, elapsed=time.monotonic() - started)
            if outcome.accepted:
                return outcome
            if progress is not None:
                progress(outcome.cause or v.INTERNAL_ERROR, outcome.detail)
            if outcome.http_status == 401 and token is not None and not refreshed:
                # Once per payload: a new token (or, when the refresh failed, the same one,
                # which has not expired), then a second 401 is definitive.
                refreshed = True
                self._tracker.refresh(token, timeout=max(0.0, deadline() - time.monotonic()))
                last = outcome
                continue
            if not retry or outcome.cause in final() or not _retryable(outcome):
                return outcome
            last = outcome
            failures += 1
            stop = self._wait_before_retry(outcome, failures, deadline, final)
            if stop is not None:
                return self._out_of_time(last, attempts, started, until, stop or None)
            if outcome.cause in final():  # the exit began during the wait
                return self._out_of_time(last, attempts, started, until, "exit began")

    def _wait_before_retry(self, outcome: Outcome, failures: int,
                           deadline: Callable[[], float],
                           final: Callable[[], frozenset[str]]) -> str | None:
        """Wait before the next attempt. None when the next attempt can start; otherwise why
        it cannot (empty when simply no time is left).

        ``Retry-After`` only lengthens the backoff: a value of 0, negative or in the past
        must not turn retries into a tight loop."""
        left = deadline() - time.monotonic()
        nominal = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        delay = max(MIN_BACKOFF, min(nominal, left / 2))
        if delay + MIN_ATTEMPT_TIME > left:
            return ""  # the deadline itself: _out_of_time names which one
        if outcome.retry_after is not None:
            if outcome.retry_after + MIN_ATTEMPT_TIME > left:
                return (f"Retry-After {outcome.retry_after:g} s does not fit in the "
                        f"{max(0.0, left):.1f} s left")
            delay = max(delay, outcome.retry_after)
        wait_until = time.monotonic() + delay
        self._budget.sleep(lambda: min(wait_until, deadline()),
                           stop=lambda: outcome.cause in final())
        return None

    def _out_of_time(self, last: Outcome | None, attempts: int, started: float,
                     until: float, why: str | None = None) -> Outcome:
        elapsed = time.monotonic() - started
        exit_budget = self._budget.limit(until) < until
        spent = why or ("exit budget spent" if exit_budget else "export_timeout spent")
        if last is None:
            return Outcome(v.SHUTDOWN, f"not sent before the deadline ({spent})",
                           attempts=0, elapsed=elapsed)
        detail = (f"{last.detail} (after {attempts} attempt{'s' if attempts != 1 else ''} "
                  f"over {elapsed:.1f} s, {spent})")
        return _with(last, detail=detail, attempts=attempts, elapsed=elapsed)

    def _attempt(self, payload: bytes, token: str | None,
                 deadline: Callable[[], float]) -> Outcome:
        headers = {"Content-Type": CONTENT_TYPE, "User-Agent": USER_AGENT}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        left = max(MIN_ATTEMPT_TIME, deadline() - time.monotonic())
        sent_at = time.monotonic()
        try:
            response = self.session.post(self.endpoint, data=payload, headers=headers,
                                         timeout=left, allow_redirects=False, stream=True)
        except Exception as error:  # requests raises many types; each maps to a cause
            self._on_response(None, time.monotonic() - sent_at)
            cut_at = self._connections.cut_at
            if cut_at is not None and cut_at >= sent_at:
                return Outcome(v.TIMEOUT, f"no answer from {self.where} before the exit's "
                                          "time to send ran out", cut_short=True)
            cause, detail = exception_cause(error, self.endpoint)
            if cause == v.BAD_RESPONSE:  # an answer that came but does not decode
                cause = v.CONNECTION_ERROR
            return Outcome(cause, detail)
        self._on_response(response.status_code, time.monotonic() - sent_at)
        body, body_error, timed_out = _read_body(response, deadline)
        answer = _Answer(response.status_code, response.headers.get("Location"),
                         response.headers.get("Retry-After"), body, body_error, timed_out)
        return self._judge(answer)

    def _judge(self, answer: _Answer) -> Outcome:
        status = answer.status
        if 200 <= status < 300:
            if answer.timed_out:
                return Outcome(v.TIMEOUT, f"HTTP {status} from {self.where}, but its body was "
                               "still arriving at the deadline", status)
            return self._accepted(answer)
        if 300 <= status < 400 or status < 200:
            where = host_label(answer.location) if answer.location else "no Location"
            return Outcome(v.UNEXPECTED_STATUS,
                           f"HTTP {status} from {self.where} redirecting to {where} "
                           "(not followed: the token is only sent to the configured endpoint)"
                           if 300 <= status < 400 else f"HTTP {status} from {self.where}",
                           status)
        detail = f"HTTP {status} from {self.where}"
        if answer.body:
            detail += f": {error_text(answer.body)}"
        retry_after = parse_retry_after(answer.retry_after) if status in (429, 503) else None
        return Outcome(status_cause(status), detail, status, retry_after=retry_after)

    def _accepted(self, answer: _Answer) -> Outcome:
        detail = f"HTTP {answer.status} from {self.where}"
        if answer.body_error:
            logger.debug("OTLP answer from %s accepted; its body was not read whole (%s)",
                         self.where, answer.body_error)
        if not answer.body:
            return Outcome(None, detail, answer.status)
        response = ExportTraceServiceResponse()
        try:
            response.ParseFromString(answer.body)
        except (DecodeError, ValueError, RuntimeError) as error:
            logger.debug("OTLP answer from %s accepted; its body is not an "
                         "ExportTraceServiceResponse (%s)", self.where, type(error).__name__)
            return Outcome(None, detail, answer.status)
        partial = response.partial_success
        rejected = max(0, int(partial.rejected_spans))
        # The receiver's words: redacted where they enter, before they are cut short.
        message = str(redact(" ".join(partial.error_message.split())))[:300] or None
        return Outcome(None, detail, answer.status, rejected_spans=rejected,
                       rejected_message=message)


def _retryable(outcome: Outcome) -> bool:
    if outcome.http_status is not None:
        return outcome.http_status in RETRIED_STATUSES
    return outcome.cause in RETRIED_CAUSES


def _with(outcome: Outcome, **changes: object) -> Outcome:
    return replace(outcome, **changes)  # type: ignore[arg-type]

