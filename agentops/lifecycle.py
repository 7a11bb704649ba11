"""A process's life with the SDK: the one owner of start, fork, signal, flush, shutdown and
exit. Everything that happens at the edges of a process happens here, in this order.

1. **init** (any thread, several at once): under one process-wide lock. The first call
   imports what the SDK's background threads will need (``preload``), so that a fork at any
   moment never leaves a child whose thread waits forever on an import lock held by a
   parent thread; installs the process hooks once (``atexit``, ``os.register_at_fork``,
   and SIGTERM, below); and builds the client. A later call with the same settings keeps
   the running client. With other settings, the running client's session traces end, the
   new client takes over the span routing, and only then is the old one closed (step 4):
   every span is counted by one of the two, none by neither.
2. **fork**: in the child, locks are new, the client forgets the parent's spans, opens its
   own connections, authenticates again if the parent was still waiting, and gets a new
   exit worker. A multiprocessing child (which ends with ``os._exit``, skipping
   ``atexit``) closes its client from multiprocessing's exit finalizers; the SIGTERM
   handler is inherited, so Pool workers terminated by their pool deliver too.
3. **flush(timeout)**: delivers what is queued now, on a helper thread, waiting at most
   ``timeout``; True when nothing failed.
4. **shutdown / exit** (``shutdown()``, ``atexit``, SIGTERM, a multiprocessing child's
   finalizer) runs ``close(client, seconds)`` once per client:
     a. the client's exit budget (``export.request.ExitBudget``) begins: the request loop
        shortens every deadline to it, re-read before each step, so batches in flight and
        batches still queued end by it. With offline storage its network share ends
        ``STORAGE_RESERVE`` early; batches that failed for a transient cause, and batches
        met after the receiver proved unreachable or the time ran out, are saved (one
        quick SQLite transaction each) instead of sent;
     b. open session traces end (their root spans join the queue);
     c. the exit worker drains the batch processor while the caller waits, at most until
        the budget's end;
     d. the statistics close: a batch still in flight is counted under the last cause it
        met, every other span not delivered as ``shutdown``, and so is every span finished
        afterwards (the span router keeps pointing at the closed client until a new one
        replaces it);
     e. authentication stops, connections close, URL lines still owed are logged, then
        the exit line.
   Ctrl-C during the wait ends it at once; with offline storage the batches still being
   sent are saved first (their sending thread waits on the receiver, so they are saved from
   this one). d and e still run, and no traceback from the SDK appears at exit (from an
   explicit ``shutdown()`` the interrupt is re-raised after).
5. **SIGTERM**: when the program has no handler of its own (the disposition is the
   default) and ``handle_sigterm`` is on, ``init`` on the main thread installs one that runs
   step 4 with ``shutdown_timeout``, restores the default disposition and sends SIGTERM
   again, so the process ends as killed by SIGTERM, as it would without the SDK. A second
   SIGTERM during the wait ends the process at once.

The exit waits at most the budget (``shutdown_timeout``, or the ``timeout`` given).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentops.client import Client
    from agentops.config import Config

logger = logging.getLogger("agentops")

class _ExitWorker:
    """A thread started before it is needed: from Python 3.12 no thread may start while the
    interpreter shuts down, which is when ``atexit`` runs."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], threading.Event]] = \
            queue.SimpleQueue()
        threading.Thread(target=self._run, name="agentops-exit", daemon=True).start()

    def _run(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                job()
            except Exception:
                logger.debug("agentops exit step failed", exc_info=True)
            finally:
                done.set()

    def submit(self, job: Callable[[], Any]) -> threading.Event:
        done = threading.Event()
        self._jobs.put((job, done))
        return done


class _Process:
    """What the SDK holds per process."""

    def __init__(self) -> None:
        # Re-entrant: a signal handler runs on the main thread, possibly while it holds it.
        self.lock = threading.RLock()
        self.client: Client | None = None
        self.hooks_installed = False
        self.worker: _ExitWorker | None = None
        self.sigterm_installed = False
        self.terminating = False
        self.pending_signal: int | None = None
        """A SIGTERM that arrived during this thread's own exit: re-sent when it ends."""


_process = _Process()

STORAGE_RESERVE = 0.3
"""Seconds of the exit budget kept for saving undelivered batches to offline storage."""


def current() -> Client | None:
    return _process.client


def replace_current(client: Client | None) -> Client | None:
    """Make ``client`` the process's client; return the previous one."""
    with _process.lock:
        previous, _process.client = _process.client, client
    return previous


# -- 1. init -------------------------------------------------------------------------------

def start(config: Config, unknown: Any = ()) -> tuple[Client, bool]:
    """The client for ``config``: the running one when its settings are the same, else a
    new one that takes over from it. Returns (client, created). ``unknown`` names the
    keyword arguments init ignored (warned about here, once per call)."""
    from agentops import exit_state
    from agentops.auth import AUTH_FAILED_MESSAGE
    from agentops.client import Client
    from agentops.instrumentation import instrumentation
    from agentops.log import configure_logging
    from agentops.threads import instrument_threading
    from agentops.vocabulary import INVALID_KEY_FORMAT

    with _process.lock:
        configure_logging(config.log_level)
        for name in unknown:
            logger.warning("agentops.init() ignores unknown argument %r", name)
        for name, error in config.errors.items():
            if name == "api_key":  # not a UUID: authentication fails, one warning says so
                logger.warning("%s Reason: %s (%s)", AUTH_FAILED_MESSAGE, INVALID_KEY_FORMAT,
                               error)
            else:
                logger.error("Invalid setting ignored (fail_safe): %s", error)
        _install_hooks(config)
        exit_state.install()
        if config.instrument_threading:
            instrument_threading()
        existing = _process.client
        if existing is not None and not existing.closed and existing.config == config:
            logger.info("agentops.init() called again with the same settings; "
                        "keeping the running client")
            if config.auto_start_session and not existing.traces:
                existing.start_trace(is_init_trace=True)
            return existing, False
        client = Client(config)
        if existing is not None and not existing.closed:
            logger.info("agentops.init() called with new settings; the previous client "
                        "delivers its queue and the new one takes over")
            existing.end_trace(end_state="Indeterminate")
        client.start()  # from here on, spans finished are the new client's
        _process.client = client
        if existing is not None:
            close(existing)
        instrumentation.configure(config.instrument_llm_calls, config.capture_content,
                                  client.provider)
        if config.auto_start_session:
            client.start_trace(is_init_trace=True)
        return client, True


def _install_hooks(config: Config) -> None:
    if not _process.hooks_installed:
        preload()
        atexit.register(_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
        _process.worker = _ExitWorker()
        _process.hooks_installed = True
    if config.handle_sigterm:
        _install_sigterm_handler()
    elif _process.sigterm_installed and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _process.sigterm_installed = False


def preload() -> None:
    """Import now, on the caller's thread, what background threads would otherwise import
    on first use: an import in progress on one thread when another forks leaves the
    child's copy of that module's import lock held for ever."""
    import encodings.idna  # noqa: F401  requests encodes host names with it
    import netrc  # noqa: F401  requests reads ~/.netrc on each request without auth
    import shlex  # noqa: F401  netrc's parser

    import jwt  # noqa: F401  the token's claims are read on the auth thread


def _install_sigterm_handler() -> None:
    if _process.sigterm_installed or not hasattr(signal, "SIGTERM"):
        return
    if threading.current_thread() is not threading.main_thread():
        logger.debug("SIGTERM handler not installed: init was not called on the main thread")
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the program's own handler (or SIG_IGN) is left alone
    signal.signal(signal.SIGTERM, _on_sigterm)
    _process.sigterm_installed = True


# -- 2. fork -------------------------------------------------------------------------------

def _after_fork_in_child() -> None:
    _process.lock = threading.RLock()
    _process.terminating = False
    _process.pending_signal = None
    if not _process.hooks_installed:
        return
    _process.worker = _ExitWorker()
    client = _process.client
    if client is None:
        return
    client.after_fork()
    if "multiprocessing" in sys.modules:
        # A multiprocessing child ends with os._exit, which skips atexit; its exit
        # finalizers do run. They are registered from an after-fork hook because the child
        # clears the finalizers it inherited before running those hooks.
        from multiprocessing import util

        util.register_after_fork(client, _finalize_child_at_exit)


def _finalize_child_at_exit(_client: Client) -> None:
    from multiprocessing import util

    util.Finalize(None, _at_exit, exitpriority=100)


# -- 3. flush ------------------------------------------------------------------------------

def flush(timeout: float | None = None) -> bool:
    """Deliver what is queued now. True when every batch exported during the flush was
    accepted and the flush ended within ``timeout`` seconds (None: as long as the
    exporter's own bounds allow)."""
    client = _process.client
    if client is None:
        return True
    if client.closed:
        return False
    failures_before = client.stats.snapshot()["failed_exports"]
    result: list[bool] = []
    millis = 30_000 if timeout is None else max(1, int(timeout * 1000))

    def run() -> None:
        result.append(bool(client.processor.force_flush(millis)))

    helper = threading.Thread(target=run, name="agentops-flush", daemon=True)
    helper.start()
    helper.join(timeout)
    if not result:
        logger.warning("agentops.flush() did not finish within %ss", f"{timeout:g}")
        return False
    return result[0] and client.stats.snapshot()["failed_exports"] == failures_before


# -- 4. shutdown and exit ------------------------------------------------------------------

def close(client: Client, seconds: float | None = None, end_state: str = "Indeterminate",
          *, reraise_interrupt: bool = False, reason: str | None = None) -> None:
    """Step 4 for one client; runs once per client (later calls return at once).
    ``reason`` (e.g. "SIGTERM") starts the exit line, which is then logged even when
    every span was delivered."""
    if not client.mark_closed():
        return
    budget = client.config.shutdown_timeout if seconds is None else seconds
    # With offline storage, the network's share of the budget ends a little early, so the
    # batches it did not deliver are saved before the wait ends.
    reserve = min(STORAGE_RESERVE, budget / 4) if client.store is not None else 0.0
    client.budget.begin(budget - reserve)
    interrupted: KeyboardInterrupt | None = None
    done: threading.Event | None = None
    try:
        client.end_trace(end_state=end_state)
        worker = _process.worker
        done = worker.submit(client.processor.shutdown) if worker is not None else None
        if done is not None:
            done.wait(max(0.0, budget))
    except KeyboardInterrupt as interrupt:
        interrupted = interrupt
        client.exporter.store_in_flight()
    finally:
        if _process.pending_signal is not None:
            reason = signal.Signals(_process.pending_signal).name
        client.finish_exit("interrupted" if interrupted is not None else reason)
        client.exit_done.set()
    if _process.pending_signal is not None:
        _die(_process.pending_signal)
    if interrupted is not None and reraise_interrupt:
        raise interrupted


def shutdown(timeout: float | None = None) -> None:
    """Close the running client now (see step 4); ``timeout`` seconds, default
    ``shutdown_timeout``."""
    client = _process.client
    if client is not None:
        close(client, timeout, reraise_interrupt=True)


def _at_exit() -> None:
    from agentops import exit_state

    client = _process.client
    if client is None:
        return
    try:
        exit_state.end_traces(client)  # with the end state the program's exit calls for
        close(client)
    except KeyboardInterrupt:  # Ctrl-C again: the accounting is done, leave quietly
        pass


# -- 5. SIGTERM ----------------------------------------------------------------------------

def _on_sigterm(signum: int, frame: Any) -> None:
    if _process.terminating:  # a second SIGTERM: end now
        _die(signum)
    _process.terminating = True
    try:
        client = _process.client
        if client is None:
            return
        if (client.closed and client.closing_thread == threading.get_ident()
                and not client.exit_done.is_set()):
            # The signal interrupted this thread's own exit (atexit, a multiprocessing
            # finalizer): let it finish within its budget; it ends the process after.
            _process.pending_signal = signum
            return
        from agentops import exit_state

        exit_state.record_signal(signum)
        exit_state.end_traces(client)
        close(client, reason="SIGTERM")
        # Another thread's exit may still be running (its budget perhaps not begun yet).
        left = client.budget.remaining()
        client.exit_done.wait(max(0.0, client.config.shutdown_timeout if left is None
                                  else left) + 0.1)
    except BaseException:  # noqa: BLE001  nothing may keep the process from ending
        pass
    _die(signum)


def _die(signum: int) -> None:
    """End as the default disposition would, so the exit status is the program's own."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: S110  a closed or broken stream must not stop the exit
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1.0)  # the signal is delivered at once unless the program blocked it
    os._exit(128 + signum)
