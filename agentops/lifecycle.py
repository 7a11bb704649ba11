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
   With offline storage, when the network's share ends (or Ctrl-C ends the wait) answers
   still awaited are cut short (``OTLPRequestLoop.cut_short``: their deadline was set
   before the exit began) and the exit worker stores their batches and the queue during the
   reserve; a batch still in flight after it is stored from the exiting thread. Ctrl-C
   during the wait ends it at once; d and e still run, and no traceback from the SDK
   appears at exit (from an explicit ``shutdown()`` the interrupt is re-raised after).
5. **SIGTERM**: when the program has no handler of its own (the disposition is the
   default) and ``handle_sigterm`` is on, ``init`` on the main thread installs one that runs
   step 4 with ``shutdown_timeout``, restores the default disposition and sends SIGTERM
   again, so the process ends as killed by SIGTERM, as it would without the SDK. A second
   SIGTERM during the wait ends the process at once. In a multiprocessing child a watcher
   thread also reads the signal wakeup descriptor: a Pool worker whose main thread began a
   lock wait just after the signal arrived never runs the handler (CPython runs it on the
   main thread only, between bytecodes), so the watcher runs this step for it and then
   interrupts that wait (see ``_SigtermWatch``).

The exit waits at most the budget (``shutdown_timeout``, or the ``timeout`` given).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import signal
import socket
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
        self.pending_signal: int | None = None
        """A SIGTERM that arrived during this thread's own exit: re-sent when it ends."""
        self.sigterm = _SigtermState()
        self.watch: _SigtermWatch | None = None


class _SigtermState:
    """Who runs the exit for the first SIGTERM: the handler on the main thread, or the
    watcher (step 5) when the main thread did not start the handler in time. Read and
    written under ``lock`` by both; the handler uses plain attributes, never an Event,
    since a nested handler call could otherwise wait on a lock its outer call holds."""

    def __init__(self) -> None:
        # Re-entrant: a second SIGTERM can run the handler inside the handler's own block.
        self.lock = threading.RLock()
        self.runner: str | None = None
        """None, "handler" or "watcher"."""
        self.handler_entered = False
        self.end_now = False
        """The watcher's exit for the signal is over: the handler ends the process."""


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
    if "multiprocessing" in sys.modules:
        import multiprocessing

        if multiprocessing.parent_process() is not None:  # a spawned child calling init
            _watch_sigterm()


# -- 2. fork -------------------------------------------------------------------------------

def _after_fork_in_child() -> None:
    _process.lock = threading.RLock()
    _process.pending_signal = None
    _process.sigterm = _SigtermState()
    if _process.watch is not None:  # the parent's: its socket must not hear this child
        _process.watch.disarm()
        _process.watch = None
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

        util.register_after_fork(client, _in_multiprocessing_child)


def _in_multiprocessing_child(_client: Client) -> None:
    """Run by a multiprocessing child as it starts, on its main thread."""
    from multiprocessing import util

    util.Finalize(None, _at_exit, exitpriority=100)
    _watch_sigterm()


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
        try:
            client.end_trace(end_state=end_state)
            worker = _process.worker
            done = worker.submit(client.processor.shutdown) if worker is not None else None
            if done is not None:
                done.wait(max(0.0, budget - reserve))
        except KeyboardInterrupt as interrupt:
            interrupted = interrupt
        if client.store is not None and not (done is not None and done.is_set()):
            _store_the_rest(client, done, reserve)
    except KeyboardInterrupt as interrupt:  # Ctrl-C again, while storing
        interrupted = interrupted or interrupt
    finally:
        if _process.pending_signal is not None:
            reason = signal.Signals(_process.pending_signal).name
        client.finish_exit("interrupted" if interrupted is not None else reason)
        client.exit_done.set()
    if _process.pending_signal is not None:
        _die(_process.pending_signal)
    if interrupted is not None and reraise_interrupt:
        raise interrupted


def _store_the_rest(client: Client, done: threading.Event | None, reserve: float) -> None:
    """The network's share of the exit is over (or Ctrl-C ended it): answers still awaited
    are cut short, so the exit worker stores their batches and the queue behind them, for
    at most ``reserve`` seconds; a batch it could not reach by then is stored from here."""
    client.budget.begin(0.0)
    client.exporter.loop.cut_short()
    if done is not None:
        done.wait(reserve)
    client.exporter.store_in_flight()


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

WATCH_GRACE = 0.1
"""Seconds the main thread has to start the SIGTERM handler once the watcher has seen the
signal arrive, before the watcher runs the exit itself."""
END_WAIT = 1.0
"""Seconds the watcher, its exit over, waits for the main thread to end the process as
killed by SIGTERM before it ends the process itself (exit status 128 + 15)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    state = _process.sigterm
    with state.lock:
        second = state.handler_entered
        state.handler_entered = True
        if state.runner is None:
            state.runner = "handler"
        runner = state.runner
    if second or state.end_now:  # a second SIGTERM, or the watcher's exit is over
        _die(signum)
    try:
        if runner == "handler":
            if not _exit_for_signal(signum, threading.get_ident(), None):
                return  # this thread's own exit was interrupted; it ends the process after
        else:
            # The watcher runs the exit for this signal: the main thread waits for it here
            # rather than going on with the program.
            client = _process.client
            if client is not None:
                client.exit_done.wait(client.config.shutdown_timeout + 0.1)
    except BaseException:  # noqa: BLE001  nothing may keep the process from ending
        pass
    _die(signum)


def _exit_for_signal(signum: int, main_thread: int, seconds: float | None) -> bool:
    """The exit path for ``signum``, on the handler's or the watcher's thread, within
    ``seconds`` (None: ``shutdown_timeout``). False when ``main_thread`` was running its
    own exit (atexit, a multiprocessing finalizer): that exit goes on within its budget and
    ends the process after (``pending_signal``)."""
    client = _process.client
    if client is None:
        return True
    if (client.closed and client.closing_thread == main_thread
            and not client.exit_done.is_set()):
        _process.pending_signal = signum
        return False
    from agentops import exit_state

    exit_state.record_signal(signum)
    exit_state.end_traces(client)
    close(client, seconds, reason="SIGTERM")
    # Another thread's exit may still be running (its budget perhaps not begun yet).
    left = client.budget.remaining()
    client.exit_done.wait(max(0.0, client.config.shutdown_timeout if left is None
                              else left) + 0.1)
    return True


class _SigtermWatch:
    """Sees SIGTERM arrive even when the main thread cannot run the handler.

    CPython runs a Python signal handler on the main thread, between bytecodes. Its C-level
    handler only notes the signal; a main thread blocked in a C call that began just after
    the signal arrived is not woken, and may wait for ever: a Pool worker waiting for its
    task queue's lock, which its pool holds for ever while it terminates the workers, does.
    The C-level handler also writes the signal's number to the wakeup file descriptor
    (``signal.set_wakeup_fd``); this thread reads it. When the handler has not begun
    ``WATCH_GRACE`` seconds later, the thread runs the exit itself, then sends SIGTERM to
    the main thread alone, which interrupts its wait so that the handler runs and ends the
    process as killed by SIGTERM."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.writer.setblocking(False)

    def arm(self) -> bool:
        """On the main thread. False (and nothing changed) when another wakeup descriptor
        is set: it belongs to the program (an event loop's signal handling)."""
        try:
            previous = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):
            self.close()
            return False
        if previous != -1:
            signal.set_wakeup_fd(previous)
            self.close()
            return False
        threading.Thread(target=self._run, name="agentops-sigterm", daemon=True).start()
        return True

    def disarm(self) -> None:
        """In a forked child (on its main thread): the parent's descriptor is the parent's."""
        try:
            previous = signal.set_wakeup_fd(-1)
            if previous != self.writer.fileno():
                signal.set_wakeup_fd(previous)
        except (ValueError, OSError):
            pass
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.writer.close()

    def _run(self) -> None:
        while True:
            try:
                received = self.reader.recv(64)
            except OSError:
                return
            if not received:
                return
            if signal.SIGTERM in received:
                _take_over_if_stuck(signal.SIGTERM, time.monotonic())


def _watch_sigterm() -> None:
    """Arm the watcher in this process (its main thread), when the SDK's handler is the one
    installed. Done in multiprocessing children: their parent ends them with SIGTERM while
    their main thread waits on a lock."""
    if (_process.watch is not None or not _process.sigterm_installed
            or signal.getsignal(signal.SIGTERM) is not _on_sigterm):
        return
    try:
        watch = _SigtermWatch()
    except OSError:
        logger.debug("SIGTERM watcher not armed", exc_info=True)
        return
    if watch.arm():
        _process.watch = watch
    else:
        logger.debug("SIGTERM watcher not armed: the program set a signal wakeup descriptor")


def _take_over_if_stuck(signum: int, seen_at: float) -> None:
    state = _process.sigterm
    deadline = seen_at + WATCH_GRACE
    while time.monotonic() < deadline:
        if state.runner is not None:
            return  # the handler began (or this is a later SIGTERM)
        time.sleep(0.01)
    with state.lock:
        if state.runner is not None:
            return
        if signal.getsignal(signum) is not _on_sigterm:
            return  # the program's own handler replaced the SDK's: the signal is its own
        state.runner = "watcher"
    logger.debug("SIGTERM: the main thread did not start the handler within %ss; "
                 "the exit runs on the watcher's thread", WATCH_GRACE)
    try:
        client = _process.client
        budget = client.config.shutdown_timeout if client is not None else 0.0
        _exit_for_signal(signum, threading.main_thread().ident or 0,
                         max(0.0, budget - (time.monotonic() - seen_at)))
        if client is not None and _process.pending_signal is not None:
            client.exit_done.wait(budget + 0.1)  # the main thread's own exit ends it
    except BaseException:  # noqa: BLE001  nothing may keep the process from ending
        pass
    with state.lock:
        state.end_now = True
    try:
        signal.pthread_kill(threading.main_thread().ident or 0, signum)
        time.sleep(END_WAIT)
    except BaseException:  # noqa: BLE001,S110  the ending below must happen
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: S110  a closed or broken stream must not stop the exit
            pass
    os._exit(128 + signum)


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
