"""InstrumentedSpanExporter: a ``SpanExporter`` that encodes each batch with OpenTelemetry's
public encoder, sends it through the SDK's request loop, and accounts for every span.

A batch made while authentication is pending is held (never sent without a token) until a
token is held, authentication fails for good, or ``auth_timeout`` runs out; without a token
nothing is sent and the spans are counted as ``not_authenticated``. Each batch has one
deadline, ``export_timeout`` from when it is sent, shortened by the exit budget. A 413
splits the batch in halves, re-sent within the same deadline, down to single spans; a
single span refused with 413 is ``too_large``. Spans a receiver rejects through
``partial_success`` are ``rejected_by_receiver``. Every loss is counted under its cause and
reported once per cause by the LossLog.

With offline storage (``store``), a batch that failed for a transient cause
(``vocabulary.STORED_EXPORT_CAUSES``, or no token while authentication may still succeed)
is saved instead, counted as stored under that cause; at exit a receiver refusing
connections is not retried, and a batch met after the exit budget ran out is saved without
an attempt. ``replayer`` (``export.replay``) sends what is stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentops import vocabulary as v
from agentops.auth import AuthTracker
from agentops.export.loss_log import LossLog
from agentops.export.receiver import ReceiverStatus
from agentops.export.request import ExitBudget, OTLPRequestLoop, Outcome
from agentops.export.stats import Batch, ExportStats

if TYPE_CHECKING:
    from agentops.export.replay import Replayer
    from agentops.export.storage import OfflineStore


class Result(NamedTuple):
    """What became of some spans of a batch."""

    cause: str | None
    """None when delivered; else why not (a ``vocabulary`` cause)."""
    spans: int
    detail: str | None = None
    stored: bool = False
    """Saved to offline storage after failing for ``cause``: kept, not lost."""


STORE_AT_ONCE = frozenset({v.CONNECTION_ERROR})
"""At exit with offline storage, these failures are stored without a retry."""
STORE_TIMEOUT_AT_EXIT = 0.5
"""Seconds a batch waits at exit for another process's write to the store."""


def _by_cause(results: list[Result], stored: bool) -> list[tuple[str, int, str]]:
    """Spans summed per cause, each with its latest detail (a split batch meets a cause
    once per part): the stored ones, or the lost ones."""
    merged: dict[str, tuple[int, str]] = {}
    for result in results:
        if result.cause is not None and result.stored == stored and result.spans:
            count = merged.get(result.cause, (0, ""))[0] + result.spans
            merged[result.cause] = (count, result.detail or "")
    return [(cause, count, detail) for cause, (count, detail) in merged.items()]


def _encode(spans: list[ReadableSpan]) -> bytes | str:
    """The encoded export request, or why the encoder refused the spans."""
    try:
        return encode_spans(spans).SerializeToString()
    except Exception as error:  # a span the encoder cannot represent
        return f"failed to encode the batch: {type(error).__name__}: {error}"[:300]


class InstrumentedSpanExporter(SpanExporter):
    def __init__(self, endpoint: str, tracker: AuthTracker, stats: ExportStats,
                 loss_log: LossLog, *, timeout: float, budget: ExitBudget,
                 receiver: ReceiverStatus | None = None,
                 store: OfflineStore | None = None) -> None:
        self.endpoint = endpoint
        self._tracker = tracker
        self._stats = stats
        self._loss_log = loss_log
        self._budget = budget
        self._timeout = timeout
        self.receiver = receiver or ReceiverStatus()
        self.store = store
        self.loop = OTLPRequestLoop(endpoint, tracker, budget, on_response=stats.http_response)
        self.replayer: Replayer | None = None
        if store is not None:
            from agentops.export.replay import Replayer  # with the store: not at import

            self.replayer = Replayer(store, self.loop, budget, timeout,
                                     on_replayed=self._replayed,
                                     on_dropped=stats.stored_spans_dropped)
        self._stored_since_replay = False
        self._stored_here: dict[int, tuple[str, int]] = {}
        """Batches this process stored and has not seen sent: id -> (cause, spans)."""
        self._in_flight: dict[int, tuple[Batch, Sequence[ReadableSpan]]] = {}
        self._fate = threading.Lock()
        """Held while a batch in flight is stored or counted, by its export or by
        ``store_in_flight``, so that only one of them does it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        batch = self._stats.batch_started(len(spans))
        self._in_flight[id(batch)] = (batch, spans)
        try:
            results = self._deliver(list(spans), batch)
        except Exception as error:  # never let an accounting fault escape into OpenTelemetry
            results = [Result(v.INTERNAL_ERROR, len(spans),
                              f"{type(error).__name__}: {error}"[:300])]
        finally:
            self._in_flight.pop(id(batch), None)
        with self._fate:
            if batch.taken_over:
                return SpanExportResult.FAILURE
            return self._account(batch, results)

    def _account(self, batch: Batch, results: list[Result]) -> SpanExportResult:
        losses = _by_cause(results, stored=False)
        stored = _by_cause(results, stored=True)
        exported = sum(result.spans for result in results if result.cause is None)
        self._stats.batch_finished(batch, exported, losses, stored)
        for cause, count, detail in losses:
            self._loss_log.record(cause, count, detail)
        return SpanExportResult.FAILURE if losses or stored else SpanExportResult.SUCCESS

    def store_in_flight(self) -> None:
        """The exit's time to send is over (or Ctrl-C ended its wait) and batches are still
        being sent, their thread stuck where the exit could not reach it: save them from
        this thread, each under the last cause it met. Delivery becomes at-least-once for
        them: if the receiver accepts one in the same moment, a later process sends it
        again."""
        if self.store is None:
            return
        for batch, spans in list(self._in_flight.values()):
            # Bounded: the batch's own thread may be stuck where this one must not follow.
            if not self._fate.acquire(timeout=STORE_TIMEOUT_AT_EXIT):
                continue
            try:
                if batch.taken_over or id(batch) not in self._in_flight:
                    continue
                batch.taken_over = True
            finally:
                self._fate.release()
            if batch.cause is None:  # still waiting for a token
                cause, detail = v.NOT_AUTHENTICATED, self._no_token_detail()
            else:
                cause, detail = batch.cause, batch.detail or batch.cause
            payload = _encode(list(spans))
            results = ([Result(v.INTERNAL_ERROR, len(spans), payload)]
                       if isinstance(payload, str) else self._put(payload, len(spans), cause,
                                                                  f"{detail} (saved by the exit)"))
            self._account(batch, results)

    def _deliver(self, spans: list[ReadableSpan], batch: Batch) -> list[Result]:
        deadline = self._budget.limit(self._tracker.auth_deadline)
        if self.store is not None and self._exiting and self._tracker.state == v.FAILED:
            deadline = time.monotonic()  # the token endpoint is failing: store, do not wait
        if self._tracker.wait_for_token(deadline) is None:
            detail = self._no_token_detail()
            if self.store is not None and self._auth_may_recover():
                payload = _encode(spans)
                if isinstance(payload, bytes):  # else the spans stay not_authenticated
                    return self._store(payload, len(spans), v.NOT_AUTHENTICATED, detail, batch)
            return [Result(v.NOT_AUTHENTICATED, len(spans), detail)]
        return self._send(spans, time.monotonic() + self._timeout, batch)

    def _send(self, spans: list[ReadableSpan], until: float, batch: Batch) -> list[Result]:
        payload = _encode(spans)
        if isinstance(payload, str):
            return [Result(v.INTERNAL_ERROR, len(spans), payload)]
        if self.store is not None and self._exiting:
            left = self._budget.remaining()
            if left is not None and left <= 0:
                return self._store(payload, len(spans), v.SHUTDOWN,
                                   "not sent: the exit budget ran out first", batch)
            if self.receiver.state == v.UNREACHABLE:
                # Not worth the exit's time: the receiver could not be reached just before.
                return self._store(payload, len(spans), v.CONNECTION_ERROR,
                                   f"not sent at exit: {self.receiver.detail or self.loop.where}",
                                   batch)
        self._stats.batch_progress(batch, v.TIMEOUT, f"no answer from {self.loop.where} "
                                   "before the exit budget ran out")
        # At exit with offline storage, a receiver refusing connections is not waited for,
        # also by a batch already waiting to retry when the exit begins: the batch is
        # stored at once. Other transient failures are retried while the exit's network
        # share lasts.
        outcome = self.loop.send(payload, until, final=self._stored_at_once,
                                 progress=lambda cause, detail: self._stats.batch_progress(
                                     batch, cause, detail))
        self.receiver.observe(outcome)
        if outcome.accepted:
            if self._stored_since_replay and self.replayer is not None:
                # The receiver is back: what this process stored goes out now.
                self._stored_since_replay = False
                self.replayer.start()
            return self._accepted(spans, outcome)
        if outcome.http_status == 413:
            if len(spans) == 1:
                span = spans[0]
                return [Result(v.TOO_LARGE, 1, f"span {span.name!r} is {len(payload)} bytes "
                                               f"encoded, refused even alone ({outcome.detail})")]
            half = len(spans) // 2
            return self._send(spans[:half], until, batch) + self._send(spans[half:], until, batch)
        cause = outcome.cause or v.INTERNAL_ERROR  # not accepted: the loop named a cause
        self._stats.batch_progress(batch, cause, outcome.detail)
        if self.store is not None and cause in v.STORED_EXPORT_CAUSES:
            return self._store(payload, len(spans), cause, outcome.detail, batch)
        return [Result(cause, len(spans), outcome.detail)]

    def _store(self, payload: bytes, spans: int, cause: str, detail: str,
               batch: Batch) -> list[Result]:
        """Save the encoded request for a later process; if the store refuses, the spans
        stay lost under ``cause``. Nothing is saved for a batch ``store_in_flight`` took."""
        with self._fate:
            if batch.taken_over:
                return [Result(cause, spans, detail, stored=True)]  # not counted: see export
            return self._put(payload, spans, cause, detail)

    def _put(self, payload: bytes, spans: int, cause: str, detail: str) -> list[Result]:
        assert self.store is not None
        result = (self.store.put(payload, spans, timeout=STORE_TIMEOUT_AT_EXIT) if self._exiting
                  else self.store.put(payload, spans))
        if result.dropped:
            self._stats.stored_spans_dropped(result.dropped)
        if result.stored:
            self._stored_since_replay = True
            if result.batch_id is not None:
                self._stored_here[result.batch_id] = (cause, spans)
            self._loss_log.stored(cause, spans, detail, self.store.directory)
            return [Result(cause, spans, detail, stored=True)]
        return [Result(cause, spans, f"{detail}; offline storage refused it: {result.error}")]

    def _stored_at_once(self) -> frozenset[str]:
        return STORE_AT_ONCE if self.store is not None and self._exiting else frozenset()

    @property
    def _exiting(self) -> bool:
        return self._budget.deadline is not None

    def _auth_may_recover(self) -> bool:
        """Authentication is still pending or failed for a transient reason: a later run
        with the same key may get a token and send what is stored."""
        auth = self._tracker.snapshot()
        return auth.state == v.PENDING or (auth.state == v.FAILED and auth.retrying)

    def _accepted(self, spans: list[ReadableSpan], outcome: Outcome) -> list[Result]:
        rejected = min(outcome.rejected_spans, len(spans))
        if not rejected:
            return [Result(None, len(spans))]
        detail = (f"{rejected} of {len(spans)} spans rejected by {self.loop.where} "
                  f"(partial_success): {outcome.rejected_message or 'no message given'}")
        return [Result(None, len(spans) - rejected),
                Result(v.REJECTED_BY_RECEIVER, rejected, detail)]

    def _no_token_detail(self) -> str:
        auth = self._tracker.snapshot()
        if auth.state == v.DISABLED:
            return "no API key: spans kept local"
        if auth.state == v.PENDING:
            return f"authentication still pending after {self._tracker.auth_timeout:g}s"
        return f"no token: authentication failed ({auth.reason})"

    def _replayed(self, batch_id: int, spans: int) -> None:
        """A stored batch was delivered; when this process stored it, its spans count as
        delivered from now on, not stored (the exit line must not send the user to a
        later run for them)."""
        here = self._stored_here.pop(batch_id, None)
        self._stats.stored_spans_replayed(spans, here[0] if here is not None else None)

    def after_fork(self) -> None:
        """In a forked child: the parent's batches in flight, and those it stored, are the
        parent's; pooled sockets are shared with the parent, new adapters open new ones."""
        self._in_flight = {}
        self._stored_here = {}
        self._fate = threading.Lock()
        self.loop.after_fork()
        if self.replayer is not None:
            self.replayer.after_fork()

    def shutdown(self) -> None:
        """Closes the HTTP connections; the batch processor and the exit path may both call it."""
        self.loop.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
