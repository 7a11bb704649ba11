"""Sending what offline storage holds: the ``Replayer`` a running client starts in the
background, and ``flush_stored`` behind ``agentops flush``.

Stored batches are the encoded OTLP requests the exporter could not deliver; they go out
through the same request loop (``export.request.OTLPRequestLoop``) as live batches, with the
same token, deadline and retry policy, oldest first, one at a time, each deleted once the
receiver accepted it. A transient failure, or the receiver refusing the token (401/403),
hands the batch back to the store and stops the replay (the next attempt starts from it); a
definitive one (the receiver will never accept this batch) removes it and counts its spans
under that cause. A batch the receiver finds too large (413) is split in two in the store,
as a live batch would be, down to single spans; a single span refused so is ``too_large``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentops import vocabulary as v
from agentops.diagnostics.findings import plural
from agentops.export.request import ExitBudget, OTLPRequestLoop
from agentops.export.storage import CORRUPT, OfflineStore, StoredBatch, add_spans

if TYPE_CHECKING:
    from agentops.config import Config

logger = logging.getLogger("agentops")

RETRIED_CAUSES = v.STORED_EXPORT_CAUSES | {v.NOT_AUTHENTICATED, v.AUTH_REJECTED}
"""A stored batch failing so goes back to the store for a later attempt. ``auth_rejected``
too: a 401/403 refuses this process's token (or the receiver's auth is misconfigured), not
the batch, and every other stored batch would meet the same answer; a live batch refused
so is not stored, but a stored one is not thrown away for it."""


@dataclass
class ReplayResult:
    batches: int = 0
    spans: int = 0
    """Accepted by the receiver (and removed from the store)."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Spans removed without delivery, by cause: refused for good (``client_error``, ...),
    ``rejected_by_receiver``, or found ``corrupt``, ``expired`` or over ``storage_full``."""
    stopped_by: tuple[str, str] | None = None
    """(cause, detail) of the transient failure that left the rest for later."""


class Replayer:
    """Sends one partition's stored batches (see the module docstring). ``run`` does it on
    the calling thread; ``start`` on a background thread, one run at a time: the client
    starts it once the first token is held (what earlier runs stored), and the exporter
    again when a batch is accepted after this process stored some (the receiver is back).
    A run stops when the exit begins (``budget.begun``)."""

    def __init__(self, store: OfflineStore, loop: OTLPRequestLoop, budget: ExitBudget,
                 timeout: float, *, on_replayed: Callable[[int, int], None] | None = None,
                 on_dropped: Callable[[dict[str, int]], None] | None = None) -> None:
        self.store = store
        self._loop = loop
        self._budget = budget
        self._timeout = timeout
        self._on_replayed = on_replayed or (lambda batch_id, spans: None)
        self._on_dropped = on_dropped or (lambda dropped: None)
        self._running = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Replay on a background thread unless a run is going or nothing was ever stored."""
        with self._lock:
            if self._running or not self.store.path.exists():
                return
            self._running = True
        threading.Thread(target=self._run_once, name="agentops-replay", daemon=True).start()

    def _run_once(self) -> None:
        try:
            self.run()
        finally:
            with self._lock:
                self._running = False

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._running = False

    def run(self, until: float | None = None) -> ReplayResult:
        """Send stored batches until none is left, one fails for a transient cause, the
        exit begins or ``until`` (monotonic seconds) passes."""
        result = ReplayResult()
        refused: dict[str, str] = {}  # a detail per cause of batches refused for good
        while not self._budget.begun.is_set():
            if until is not None and time.monotonic() >= until:
                result.stopped_by = (v.TIMEOUT, "the time given ran out")
                break
            claim = self.store.claim()
            self._dropped(result, claim.dropped)
            if claim.error is not None:
                result.stopped_by = (v.INTERNAL_ERROR, f"offline storage: {claim.error}")
                break
            batch = claim.batch
            if batch is None:
                break
            deadline = time.monotonic() + self._timeout
            try:
                outcome = self._loop.send(batch.payload,
                                          deadline if until is None else min(deadline, until))
            except BaseException:  # Ctrl-C in `agentops flush`: not leased to a gone process
                self.store.release(batch)
                raise
            if outcome.accepted:
                self.store.delete(batch)
                rejected = min(outcome.rejected_spans, batch.spans)
                result.batches += 1
                result.spans += batch.spans - rejected
                self._on_replayed(batch.id, batch.spans - rejected)
                self._dropped(result, {v.REJECTED_BY_RECEIVER: rejected})
            elif outcome.http_status == 413 and batch.spans > 1 and self._split(batch):
                continue
            elif outcome.cause in RETRIED_CAUSES:
                self.store.release(batch)
                result.stopped_by = (outcome.cause or v.INTERNAL_ERROR, outcome.detail)
                break
            else:
                self.store.discard(batch)
                self._dropped(result, {outcome.cause or v.INTERNAL_ERROR: batch.spans})
                refused[outcome.cause or v.INTERNAL_ERROR] = outcome.detail
        if refused:  # once per run, not once per batch
            logger.warning("Offline storage: stored spans refused for good by the receiver "
                           "were removed (%s); e.g. %s",
                           ", ".join(f"{cause}: {result.dropped.get(cause, 0)}"
                                     for cause in refused), next(iter(refused.values())))
        if result.batches:
            logger.info("Sent %s from offline storage (%s)", plural(result.spans, "span"),
                        self.store.directory)
        return result

    def _split(self, batch: StoredBatch) -> bool:
        """Replace ``batch`` in the store by its two halves; False if it cannot be split."""
        try:
            halves = split_request(batch.payload)
        except Exception:  # a payload the protobuf parser refuses: not splittable
            return False
        return halves is not None and self.store.replace(batch, halves)

    def _dropped(self, result: ReplayResult, dropped: dict[str, int]) -> None:
        dropped = {cause: n for cause, n in dropped.items() if n}
        if dropped:
            for cause, spans in dropped.items():
                add_spans(result.dropped, cause, spans)
            self._on_dropped(dropped)


@dataclass
class FlushReport:
    """What ``agentops flush`` did: ``ok`` when everything stored was accepted."""

    ok: bool
    directory: str | None
    sent_spans: int = 0
    sent_batches: int = 0
    left_spans: int = 0
    left_batches: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    cause: str | None = None
    detail: str | None = None

    def lines(self) -> list[str]:
        """The report as the command prints it."""
        if self.directory is None:
            return [f"Offline storage: {self.detail}"]
        if not (self.sent_batches or self.left_batches or self.dropped or self.cause):
            return [f"Offline storage in {self.directory}: nothing stored for this API key "
                    "and exporter endpoint"]
        lines = [f"Offline storage in {self.directory}: sent {plural(self.sent_spans, 'span')} "
                 f"({_batches(self.sent_batches)})"]
        for cause, spans in sorted(self.dropped.items()):
            lines.append(f"  {spans} spans removed without delivery ({cause})")
        if self.left_batches:
            # No cause: nothing failed, the batches left were leased to another sender.
            why = (f"{self.cause}: {self.detail}" if self.cause else
                   "another process is sending them (if it ended first, they can be sent "
                   "again once its lease runs out)")
            lines.append(f"  {plural(self.left_spans, 'span')} ({_batches(self.left_batches)}) still "
                         f"stored: {why}")
        elif self.cause:
            lines.append(f"  {self.cause}: {self.detail}")
        return lines


def _batches(count: int) -> str:
    return plural(count, "batch", "batches")


def split_request(payload: bytes) -> list[tuple[bytes, int]] | None:
    """An encoded ``ExportTraceServiceRequest`` as two requests of half its spans each, with
    their resource and scope: ``[(payload, spans), (payload, spans)]``; None for fewer than
    two spans. Raises ``google.protobuf.message.DecodeError`` for a payload that does not
    decode."""
    request = ExportTraceServiceRequest.FromString(payload)
    located = [(r, s, span) for r, resource_spans in enumerate(request.resource_spans)
               for s, scope_spans in enumerate(resource_spans.scope_spans)
               for span in scope_spans.spans]
    if len(located) < 2:
        return None
    half = len(located) // 2
    return [(_subset(request, part).SerializeToString(), len(part))
            for part in (located[:half], located[half:])]


def _subset(request: ExportTraceServiceRequest,
            located: list[tuple[int, int, Any]]) -> ExportTraceServiceRequest:
    subset = ExportTraceServiceRequest()
    resources: dict[int, Any] = {}
    scopes: dict[tuple[int, int], Any] = {}
    for r, s, span in located:
        if r not in resources:
            source = request.resource_spans[r]
            resources[r] = subset.resource_spans.add(resource=source.resource,
                                                     schema_url=source.schema_url)
        if (r, s) not in scopes:
            source = request.resource_spans[r].scope_spans[s]
            scopes[r, s] = resources[r].scope_spans.add(scope=source.scope,
                                                       schema_url=source.schema_url)
        scopes[r, s].spans.append(span)
    return subset


def flush_stored(config: Config, timeout: float) -> FlushReport:
    """Send what offline storage holds for ``config``'s API key and exporter endpoint, within
    ``timeout`` seconds (authentication included). Never raises for a backend fault."""
    from agentops.api import AgentOpsAPI
    from agentops.auth import AuthTracker
    from agentops.client import Client
    from agentops.http import close_session

    store = Client.open_store(config)
    if store is None:
        why = ("is off (offline_storage = false)" if not config.offline_storage
               else f"not sent: {config.api_key_error}" if config.api_key_error
               else "needs an API key: set AGENTOPS_API_KEY or pass --api-key")
        return FlushReport(ok=not config.offline_storage, directory=None, detail=why)
    before = store.status(fresh=True)
    if "write_error" in before:  # nothing could be removed once sent: it would go again
        return FlushReport(ok=False, directory=None,
                           detail=f"in {store.directory} cannot be used: {before['write_error']}")
    if "error" in before:
        aside = store.repair()
        if aside is None:
            return FlushReport(ok=False, directory=str(store.directory),
                               cause=v.INTERNAL_ERROR, detail=before["error"])
        # What the unreadable database held cannot be sent: a failure, said with where it is.
        return FlushReport(ok=False, directory=str(store.directory), cause=CORRUPT,
                           detail=f"the {before['error']} was moved aside to {aside} and a new "
                                  "one started; its batches cannot be sent")
    if not before["pending_batches"]:
        return FlushReport(ok=True, directory=str(store.directory))
    until = time.monotonic() + timeout
    api = AgentOpsAPI(config.endpoint)
    tracker = AuthTracker(api, config.api_key, auth_timeout=min(config.auth_timeout, timeout),
                          key_error=config.api_key_error)
    tracker.start()
    budget = ExitBudget()
    loop = OTLPRequestLoop(config.exporter_endpoint, tracker, budget)
    try:
        # The first answer decides: a command reports a failing token endpoint at once
        # rather than retrying it in the background as a program would.
        tracker.wait(max(0.0, until - time.monotonic()))
        if tracker.current_token() is None:
            auth = tracker.snapshot()
            result = ReplayResult(stopped_by=(v.NOT_AUTHENTICATED,
                                              f"authentication failed: {auth.reason}"
                                              f"{f' ({auth.detail})' if auth.detail else ''}"))
        else:
            result = Replayer(store, loop, budget, config.export_timeout).run(until)
    finally:
        tracker.close()
        loop.close()
        close_session(api.session)
    after = store.status(fresh=True)
    cause, detail = result.stopped_by or (None, None)
    return FlushReport(ok=not after["pending_batches"] and not result.dropped,
                       directory=str(store.directory), sent_spans=result.spans,
                       sent_batches=result.batches, left_spans=after["pending_spans"],
                       left_batches=after["pending_batches"], dropped=result.dropped,
                       cause=cause, detail=detail)
