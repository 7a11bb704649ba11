"""Client: owns the authentication tracker and the delivery pipeline of one configuration,
and its session traces. When and in which order it starts, forks and closes is decided by
``agentops.lifecycle``; the client only offers the steps."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentops import log, sampling, semconv, transport
from agentops import vocabulary as v
from agentops.api import AgentOpsAPI
from agentops.auth import AuthTracker
from agentops.config import Config
from agentops.export.exporter import InstrumentedSpanExporter
from agentops.export.loss_log import (
    LossLog,
    exit_summary,
    storage_dropped_summary,
    stored_summary,
)
from agentops.export.processor import AccountingSpanProcessor
from agentops.export.receiver import ReceiverStatus
from agentops.export.request import ExitBudget
from agentops.export.stats import ExportStats
from agentops.helpers.dashboard import EMOJI, session_url, url_line
from agentops.http import close_session, endpoint_label
from agentops.instrumentation import SUPPORTED, scope_owners
from agentops.lifecycle import current, replace_current
from agentops.llm_spans import LLMSpanExporter, SpanTally
from agentops.timestamps import seconds_since
from agentops.tracing import (
    EndState,
    TraceContext,
    install_router,
    resolve_end_state,
    samples_every_span,
    session_attributes,
)

if TYPE_CHECKING:
    from agentops.export.storage import OfflineStore

logger = logging.getLogger("agentops")

MAX_EXPORT_BATCH_SIZE = 512


def storage_status(config: Config, store: OfflineStore | None,
                   fresh: bool = False) -> dict[str, Any]:
    """``{enabled, directory, pending_batches, pending_spans, bytes, oldest_at}`` of
    ``store`` (``Client.open_store(config)``); ``directory`` is None when storage is off,
    and ``enabled`` false too without an API key."""
    from agentops.export.storage import default_directory, disabled_status

    if store is None:
        return disabled_status(config.storage_directory or default_directory()
                               if config.offline_storage else None)
    return store.status(fresh=fresh)


class Client:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.api = AgentOpsAPI(config.endpoint) if config.api_key else None
        self.tracker = AuthTracker(self.api, config.api_key, auth_timeout=config.auth_timeout,
                                   key_error=config.api_key_error)
        self.stats = ExportStats()
        self.loss_log = LossLog()
        self.budget = ExitBudget()
        self.receiver = ReceiverStatus(endpoint_label(config.exporter_endpoint))
        self.store = self.open_store(config)
        self.exporter = InstrumentedSpanExporter(
            config.exporter_endpoint, self.tracker, self.stats, self.loss_log,
            timeout=config.export_timeout, budget=self.budget, receiver=self.receiver,
            store=self.store)
        self.tracker.on_first_token.append(self._check_receiver)
        if self.exporter.replayer is not None:
            self.tracker.on_first_token.append(self.exporter.replayer.start)
        self.tally = SpanTally()
        self.llm_exporter = LLMSpanExporter(
            self.exporter, self.tally, capture_content=config.capture_content,
            owners=scope_owners,
            native={lib.native_scope: lib.name for lib in SUPPORTED if lib.native_scope})
        batch = BatchSpanProcessor(
            self.llm_exporter, max_queue_size=config.max_queue_size,
            schedule_delay_millis=config.max_wait_time,
            max_export_batch_size=min(MAX_EXPORT_BATCH_SIZE, config.max_queue_size))
        self.router, self.provider = install_router()
        self.processor = AccountingSpanProcessor(batch, self.stats, config.max_queue_size,
                                                 check_sampled=not samples_every_span(),
                                                 loss_log=self.loss_log)
        self.traces: list[TraceContext] = []
        self._unannounced: list[TraceContext] = []
        self.closed = False
        self.closing_thread: int | None = None
        self.exit_done = threading.Event()
        # Re-entrant: the SIGTERM handler closes the client on the main thread, which the
        # signal may have interrupted while it held this lock.
        self._lock = threading.RLock()
        self.tracer = self.provider.get_tracer("agentops")

    @staticmethod
    def open_store(config: Config) -> OfflineStore | None:
        """The offline store of ``config``'s API key and exporter endpoint, or None when
        storage is off. It needs a key: without one nothing is ever sent, nothing stored.
        Imported here, at init on the caller's thread, not at ``import agentops`` (start-up
        cost) nor on an export thread (fork safety, see ``lifecycle.preload``)."""
        from agentops.export.storage import OfflineStore, default_directory

        if not config.offline_storage or not config.api_key:
            return None
        return OfflineStore(config.storage_directory or default_directory(),
                            api_key=config.api_key, endpoint=config.exporter_endpoint,
                            max_bytes=config.storage_max_mb * 1024 * 1024,
                            max_age=config.storage_max_age_hours * 3600,
                            lease=max(60.0, 2 * config.export_timeout + 10))

    def storage_status(self) -> dict[str, Any]:
        """``{enabled, directory, pending_batches, pending_spans, bytes, oldest_at}``."""
        return storage_status(self.config, self.store)

    def _check_receiver(self) -> None:
        """Runs on the authentication thread once the first token is held."""
        self.receiver.check(self.exporter.loop, time.monotonic() + self.config.export_timeout)

    @property
    def initialized(self) -> bool:
        """Upstream's flag: True until this client is shut down."""
        return not self.closed

    def init(self, **kwargs: Any) -> Any:
        """``agentops.init(**kwargs)``, for code written against upstream's client."""
        import agentops

        return agentops.init(**kwargs)

    def configure(self, **kwargs: Any) -> None:
        """``agentops.configure(**kwargs)``: settings for the next ``init``."""
        import agentops

        agentops.configure(**kwargs)

    def start(self) -> None:
        """Begin authenticating and take over the process's span routing."""
        self.tracker.start()
        self.router.target = self.processor

    # -- session traces ----------------------------------------------------------------

    def start_trace(self, trace_name: str | None = None,
                    tags: list[str] | dict[str, Any] | None = None, *, attach: bool = True,
                    is_init_trace: bool = False) -> TraceContext:
        """Start a session trace: a new root span named ``{trace_name}.session`` (its own
        trace id and URL whatever span is current), made current unless ``attach`` is false.

        ``tags``: a list of strings (added to ``default_tags`` under ``agentops.tags``) or a
        dict whose items become attributes of the root span, as upstream does. Raises
        TypeError for any other type.
        """
        name = trace_name or self.config.trace_name
        attributes = session_attributes(name, tags, self.config.default_tags)
        # An empty context: the session trace is a root whatever span is current.
        span = self.tracer.start_span(semconv.span_name(name, semconv.SpanKind.SESSION),
                                      context=Context(), attributes=attributes)
        url = session_url(self.config.app_url, span.get_span_context().trace_id)
        trace_context = TraceContext(span, name, url, on_end=self._trace_ended, attach=attach,
                                     is_init_trace=is_init_trace)
        self.tally.open(span.get_span_context().trace_id)
        with self._lock:
            self.traces.append(trace_context)
        if self.config.log_session_replay_url:
            self._announce(trace_context)
        return trace_context

    def _trace_ended(self, trace_context: TraceContext) -> None:
        with self._lock:
            if trace_context in self.traces:
                self.traces.remove(trace_context)
        self.tally.close(trace_context.span.get_span_context().trace_id)

    def end_trace(self, trace_context: TraceContext | None = None,
                  end_state: EndState = "Success") -> None:
        """End one session trace, or every open one when ``trace_context`` is None.
        ``end_state``: see ``agentops.tracing.resolve_end_state`` (TypeError when invalid)."""
        resolve_end_state(end_state)  # refuse a bad end state before ending anything
        targets = [trace_context] if trace_context is not None else list(self.traces)
        for target in targets:
            target.end(end_state)

    def _announce(self, trace_context: TraceContext) -> None:
        """Log the URL line once the auth outcome is known, never green before a token is
        held; waiting happens off the caller's thread."""
        with self._lock:
            self._unannounced.append(trace_context)
        if self.tracker.settled and (not self.tracker.has_token or self.receiver.state
                                     not in (v.UNCHECKED, v.CHECKING)):
            self._log_url(trace_context)
            return

        def wait_then_log() -> None:
            until = time.monotonic() + self.config.auth_timeout
            if self.tracker.wait_settled(self.config.auth_timeout) == v.AUTHENTICATED:
                self.receiver.wait(until - time.monotonic())
            self.tracker.warn_timeout()
            self._log_url(trace_context)

        # In the caller's context: where output goes can depend on it (a Jupyter kernel
        # sends a thread's output to the cell whose context the thread runs in).
        threading.Thread(target=contextvars.copy_context().run, args=(wait_then_log,),
                         name="agentops-url", daemon=True).start()

    def _log_url(self, trace_context: TraceContext, program_ended: bool = False) -> None:
        """Log the line once: by its waiter, or at exit if the program ends first. Logged
        under the lock, so the exit path waits for a waiter caught mid-line (a daemon thread
        would otherwise be stopped between taking the line and writing it)."""
        with self._lock:
            if trace_context not in self._unannounced:
                return
            logger.info(self.url_line(trace_context, program_ended))
            self._unannounced.remove(trace_context)

    def url_line(self, trace_context: TraceContext, program_ended: bool = False) -> str:
        """The session's URL line with the facts as they are now: the auth outcome (or how
        long it has been pending), the receiver check, and whether the sampler records this
        trace."""
        auth = self.tracker.snapshot()
        receiver = self.receiver.snapshot()
        waited = None
        # How long the unanswered step has waited, not the longest it could have.
        pending_since = (auth.since if auth.state == v.PENDING
                         else receiver["checking_since"] if auth.state == v.AUTHENTICATED
                         else None)
        since = seconds_since(pending_since, time.time())
        if since is not None:
            waited = max(0.0, since)
        recording = sampling.describe(self.provider, [trace_context.span])
        return url_line(trace_context.url, trace_context.name, auth, receiver,
                        self.config.auth_timeout,
                        unicode=log.can_show(EMOJI), colour=log.wants_colour(),
                        waited=waited, program_ended=program_ended,
                        not_recorded=sampling.why_not_recorded(recording),
                        sampled=sampling.partly_recorded(recording))

    # -- exit steps (their order is agentops.lifecycle's) ----------------------------------

    def shutdown(self, timeout: float | None = None, end_state: str = "Indeterminate") -> None:
        """End open traces and deliver what is queued within ``timeout`` seconds (default
        ``shutdown_timeout``); spans still unsent then are counted as ``shutdown``."""
        from agentops import lifecycle

        lifecycle.close(self, timeout, end_state, reraise_interrupt=True)

    def mark_closed(self) -> bool:
        """True for the one caller that closes this client; ``closing_thread`` names its
        thread before ``closed`` is set, so a signal handler interrupting that thread at any
        point knows whether the exit it interrupted already began."""
        with self._lock:
            if self.closed:
                return False
            self.closing_thread = threading.get_ident()
            self.closed = True
        self.loss_log.exiting = True  # from here on the exit line tells what is lost
        return True

    def finish_exit(self, reason: str | None = None) -> None:
        """The last exit steps: count what was not delivered, stop authenticating, log the
        URL lines still owed and the exit line. Spans finished later are still counted
        (as ``shutdown``): the router keeps this client until another replaces it."""
        self.stats.close(v.SHUTDOWN)
        self.tracker.close()
        self.exporter.shutdown()
        if self.api is not None:
            close_session(self.api.session)
        for trace_context in list(self._unannounced):
            self._log_url(trace_context, program_ended=True)
        self._log_exit_summary(reason)

    def _log_exit_summary(self, reason: str | None) -> None:
        """The exit line: what was not delivered; after a signal or an interrupt, also
        when everything was (the user then wonders whether anything was lost)."""
        snapshot = self.stats.snapshot()
        auth = self.tracker.snapshot()
        prefix = f"{reason}: " if reason else ""
        directory = self.store.directory if self.store is not None else None
        saved = stored_summary(snapshot["spans_made"], snapshot["stored_by_cause"], directory)
        if saved:
            logger.warning(prefix + saved)
        dropped = storage_dropped_summary(snapshot["stored_spans_dropped"], directory)
        if dropped:
            logger.warning(prefix + dropped)
        line = exit_summary(snapshot["spans_made"], snapshot["failures_by_cause"],
                            auth.reason if auth.state == v.FAILED else None,
                            (directory, self.store.write_error)
                            if self.store is not None and self.store.write_error else None)
        if line:
            level = logging.INFO if self.tracker.state == v.DISABLED else logging.WARNING
            logger.log(level, prefix + line)
        elif reason and not saved and not snapshot["spans_made"]:
            logger.info("%s: no spans were made, nothing to deliver", reason)
        elif reason and not saved:
            logger.info("%s: all %d spans delivered before exit", reason,
                        snapshot["spans_exported"])

    def after_fork(self) -> None:
        """In a forked child: this client now describes the child's own spans."""
        self._lock = threading.RLock()
        self.exit_done = threading.Event()
        self.closing_thread = None
        if self.closed:
            self.exit_done.set()  # the parent was closing it: nothing left to close here
        self.traces = []
        self._unannounced = []
        self.stats.after_fork()
        self.loss_log.after_fork()
        self.receiver.after_fork()
        self.exporter.after_fork()
        if self.api is not None:
            transport.mount(self.api.session)
        self.tracker.after_fork()


__all__ = ["Client", "current", "replace_current"]
