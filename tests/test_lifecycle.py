"""The edges of a process's life (agentops.lifecycle), each in a real program: SIGTERM,
forks and Pool workers, Ctrl-C during the exit wait, spans after shutdown, re-init while
threads make spans, init from several threads, flush and shutdown.

Time bounds are the documented budget (``shutdown_timeout``) plus the 0.5 s the issue
allows; programs are bounded in spans and time and stop by themselves."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from agentops.testing import Faults
from tests.conftest import SLACK, STARTUP, Program, clean_env, free_port, run_python
from tests.test_sdk_e2e import env_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fork")

SHUTDOWN_TIMEOUT = 2.0
MARGIN = 0.5
"""The issue's bound: every exit within shutdown_timeout + 0.5 s."""


def test_sigterm_half_a_second_after_20_spans_delivers_them_and_ends_as_killed(local_backend):
    program = Program("""
        import time, agentops
        from opentelemetry import trace
        agentops.init(max_wait_time=60_000)   # nothing is exported before the signal
        tracer = trace.get_tracer("app")
        for i in range(20):
            tracer.start_span(f"work-{i}").end()
        print("READY", flush=True)
        time.sleep(60)
    """, env_for(local_backend, AGENTOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)))
    program.wait_for("READY")
    time.sleep(0.5)
    assert local_backend.span_names == []
    seconds, _, stderr = program.signal_and_wait(signal.SIGTERM)
    assert program.proc.returncode == -signal.SIGTERM, stderr  # as without the SDK
    assert seconds <= SHUTDOWN_TIMEOUT + MARGIN
    names = sorted(local_backend.span_names)
    assert names == sorted([f"work-{i}" for i in range(20)] + ["session.session"])
    assert "SIGTERM: all 21 spans delivered before exit" in stderr
    assert "Traceback" not in stderr


def test_sigterm_with_no_spans_made_says_so_rather_than_all_0_delivered(local_backend):
    """A Pool worker that ran no task gets SIGTERM too; its line must read as sense."""
    program = Program("""
        import time, agentops
        agentops.init(auto_start_session=False)
        print("READY", flush=True)
        time.sleep(60)
    """, env_for(local_backend))
    program.wait_for("READY")
    _, _, stderr = program.signal_and_wait(signal.SIGTERM)
    assert program.proc.returncode == -signal.SIGTERM, stderr
    assert "all 0 spans" not in stderr, stderr
    assert "SIGTERM: no spans were made, nothing to deliver" in stderr, stderr


def test_sigterm_with_the_receiver_hanging_ends_within_the_budget_and_says_what_was_lost(
        local_backend):
    local_backend.faults = Faults(otlp_hang=True)
    program = Program("""
        import time, agentops
        from opentelemetry import trace
        agentops.init(max_wait_time=60_000, wait_for_auth=True)
        for i in range(20):
            trace.get_tracer("app").start_span(f"work-{i}").end()
        print("READY", flush=True)
        time.sleep(60)
    """, env_for(local_backend, AGENTOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)))
    program.wait_for("READY")
    seconds, _, stderr = program.signal_and_wait(signal.SIGTERM)
    assert program.proc.returncode == -signal.SIGTERM
    assert seconds <= SHUTDOWN_TIMEOUT + MARGIN, seconds
    assert "SIGTERM: Session data not sent to backend: 21 of 21 spans not delivered" in stderr


def test_a_program_with_its_own_sigterm_handler_is_left_alone(local_backend):
    run = run_python("""
        import os, signal, agentops
        seen = []
        signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
        agentops.init()
        os.kill(os.getpid(), signal.SIGTERM)
        print("HANDLER", seen == [signal.SIGTERM], signal.getsignal(signal.SIGTERM).__name__)
    """, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert "HANDLER True <lambda>" in run.stdout


def test_handle_sigterm_false_keeps_the_default_disposition(local_backend):
    program = Program("""
        import signal, time, agentops
        agentops.init(handle_sigterm=False, max_wait_time=60_000)
        print("READY", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
        time.sleep(60)
    """, env_for(local_backend))
    assert program.wait_for("READY") == "READY True\n"
    seconds, _, stderr = program.signal_and_wait(signal.SIGTERM)
    assert program.proc.returncode == -signal.SIGTERM
    assert "SIGTERM" not in stderr  # no exit path ran


def test_fork_pool_workers_terminated_by_their_pool_deliver_their_spans(local_backend):
    run = run_python("""
        import multiprocessing as mp, agentops
        from opentelemetry import trace

        def task(n):
            trace.get_tracer("worker").start_span(f"task-{n}").end()
            return n

        agentops.init(auto_start_session=False, wait_for_auth=True, max_wait_time=60_000)
        with mp.get_context("fork").Pool(2) as pool:   # __exit__ terminates: SIGTERM
            print("RESULTS", sum(pool.map(task, range(10))))
    """, env=env_for(local_backend, AGENTOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)),
        timeout=60)
    assert run.returncode == 0, run.stderr
    assert "RESULTS 45" in run.stdout
    assert local_backend.wait_for_spans(10, timeout=5)
    assert sorted(local_backend.span_names) == sorted(f"task-{n}" for n in range(10))


# A SIGTERM that arrives while the main thread of a multiprocessing child is between a
# lock's non-blocking check and its blocking wait is noted by CPython's C-level handler
# but does not wake the wait: the Python handler never runs. A Pool worker that waits for
# its task queue's lock, which its pool holds for ever while it terminates the workers,
# then hangs, and its pool's exit with it. The state is made at once by having another
# thread of the child take the signal while the main thread waits on a lock its parent holds.
TAKEN_ELSEWHERE = """
    import json, multiprocessing as mp, signal, sys, threading, time, agentops
    from opentelemetry import trace

    INIT = dict(auto_start_session=False, wait_for_auth=True, max_wait_time=60_000)

    def child(held, start_method):
        if start_method == "spawn":   # a fresh interpreter: the child calls init itself
            agentops.init(**INIT)
        {child_setup}
        trace.get_tracer("worker").start_span("made-before-the-wait").end()
        def take_sigterm_on_this_thread():
            time.sleep(1.0)   # the main thread is waiting on the lock by then
            print("SIGNAL", time.time(), flush=True)
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        threading.Thread(target=take_sigterm_on_this_thread).start()
        held.acquire()
        print("ACQUIRED", flush=True)   # never: the parent holds the lock until the end

    if __name__ == "__main__":
        start_method = sys.argv[1]
        ctx = mp.get_context(start_method)
        held = ctx.Lock()
        if start_method == "fork":   # the child inherits the SDK, its handler included
            agentops.init(**INIT)
        held.acquire()
        worker = ctx.Process(target=child, args=(held, start_method))
        worker.start()
        worker.join({join_timeout})
        ended = time.time()
        hung = worker.exitcode is None
        if hung:   # the program stops by itself whatever happens
            worker.kill(); worker.join()
        print("CHILD", json.dumps({{"hung": hung, "exitcode": worker.exitcode,
                                   "ended": ended}}), flush=True)
"""


def run_taken_elsewhere(tmp_path, start_method: str, env: dict[str, str], *,
                        child_setup: str = "pass", join_timeout: float = 30
                        ) -> subprocess.CompletedProcess[str]:
    """TAKEN_ELSEWHERE as a script file (a spawned child imports its main module)."""
    script = tmp_path / "taken_elsewhere.py"
    script.write_text(textwrap.dedent(TAKEN_ELSEWHERE.format(child_setup=child_setup,
                                                             join_timeout=join_timeout)))
    return subprocess.run([sys.executable, str(script), start_method], capture_output=True,
                          text=True, env=env, timeout=60)


def _child_result(run: subprocess.CompletedProcess[str]) -> tuple[dict, float]:
    """The child's outcome and the seconds from the signal to its end."""
    result = next(json.loads(line.split(" ", 1)[1]) for line in run.stdout.splitlines()
                  if line.startswith("CHILD "))
    signalled = [float(line.split()[1]) for line in run.stdout.splitlines()
                 if line.startswith("SIGNAL ")]
    return result, (result["ended"] - signalled[0]) if signalled else float("nan")


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_multiprocessing_child_whose_main_thread_cannot_run_the_handler_delivers_and_ends(
        local_backend, tmp_path, start_method):
    run = run_taken_elsewhere(tmp_path, start_method, env_for(
        local_backend, AGENTOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT), AGENTOPS_LOG_LEVEL="DEBUG"))
    assert run.returncode == 0, run.stderr
    result, seconds = _child_result(run)
    assert not result["hung"], run.stderr
    # The watcher ran the exit: the main thread never started the handler on its own.
    assert "did not start the handler" in run.stderr, run.stderr
    assert result["exitcode"] == -signal.SIGTERM, run.stderr  # as without the SDK
    assert seconds <= SHUTDOWN_TIMEOUT + MARGIN, seconds
    assert local_backend.wait_for_spans(1, timeout=5)
    assert local_backend.span_names == ["made-before-the-wait"]
    assert "SIGTERM: all 1 spans delivered before exit" in run.stderr
    assert "ACQUIRED" not in run.stdout and "Traceback" not in run.stderr, run.stderr


def test_a_multiprocessing_child_with_its_own_sigterm_handler_is_left_to_it(
        local_backend, tmp_path):
    # The program's handler replaced the SDK's in the child: the SDK neither runs its exit
    # nor ends the child, even though the main thread never runs that handler.
    run = run_taken_elsewhere(
        tmp_path, "fork", env_for(local_backend, AGENTOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)),
        child_setup="signal.signal(signal.SIGTERM, lambda signum, frame: print('OWN'))",
        join_timeout=1.0 + SHUTDOWN_TIMEOUT + MARGIN + SLACK)
    assert run.returncode == 0, run.stderr
    result, _ = _child_result(run)
    assert result["hung"], run.stdout  # still waiting on the lock, as without the SDK
    assert "SIGTERM" not in run.stderr, run.stderr


def test_an_asyncio_program_in_a_multiprocessing_child_keeps_its_signal_handling(local_backend):
    # asyncio's add_signal_handler sets its own wakeup descriptor in place of the SDK's
    # watch; its handlers run, and SIGTERM afterwards still delivers and ends the child.
    run = run_python("""
        import asyncio, multiprocessing as mp, os, signal, time, agentops
        from opentelemetry import trace

        def child(ready):
            async def main():
                got = asyncio.Event()
                asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, got.set)
                os.kill(os.getpid(), signal.SIGUSR1)
                await asyncio.wait_for(got.wait(), 10)
                trace.get_tracer("worker").start_span("after-the-loop-handled-sigusr1").end()
            asyncio.run(main())
            ready.set()
            time.sleep(60)

        agentops.init(auto_start_session=False, wait_for_auth=True, max_wait_time=60_000)
        ctx = mp.get_context("fork")
        ready = ctx.Event()
        process = ctx.Process(target=child, args=(ready,))
        process.start()
        print("READY", ready.wait(30), flush=True)
        process.terminate()
        process.join(30)
        print("CHILD", process.exitcode)
    """, env=env_for(local_backend, AGENTOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)),
        timeout=90)
    assert run.returncode == 0, run.stderr
    assert "READY True" in run.stdout and "CHILD -15" in run.stdout, run.stdout + run.stderr
    assert local_backend.wait_for_spans(1, timeout=5)
    assert local_backend.span_names == ["after-the-loop-handled-sigusr1"]
    assert "SIGTERM: all 1 spans delivered before exit" in run.stderr
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr, run.stderr


def test_a_multiprocessing_child_running_a_pool_of_its_own_outlives_its_workers_sigterm(
        local_backend):
    # The child's workers inherit its signal state; their SIGTERM must be theirs alone.
    run = run_python("""
        import multiprocessing as mp, agentops
        from opentelemetry import trace

        def task(n):
            trace.get_tracer("worker").start_span(f"task-{n}").end()
            return n

        def child():
            for round_ in range(3):
                with mp.get_context("fork").Pool(2) as pool:   # SIGTERM to the workers
                    assert pool.map(task, range(round_ * 4, round_ * 4 + 4))
            trace.get_tracer("child").start_span("child-after-its-pools").end()

        agentops.init(auto_start_session=False, wait_for_auth=True, max_wait_time=60_000)
        process = mp.get_context("fork").Process(target=child)
        process.start()
        process.join(60)
        print("CHILD", process.exitcode)
    """, env=env_for(local_backend, AGENTOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)),
        timeout=90)
    assert run.returncode == 0, run.stderr
    assert "CHILD 0" in run.stdout, run.stdout + run.stderr
    assert local_backend.wait_for_spans(13, timeout=5)
    assert sorted(local_backend.span_names) == sorted(
        [f"task-{n}" for n in range(12)] + ["child-after-its-pools"])


POOL_ROUNDS = 30


def test_fork_pools_terminated_while_their_workers_take_tasks_never_hang_and_deliver(
        local_backend):
    # Each round terminates a pool whose workers are still taking tasks, so that some are
    # entering the task queue's lock wait when SIGTERM comes. A worker that would hang is
    # killed by the program after the budget plus the margin and reported.
    run = run_python(f"""
        import json, multiprocessing as mp, os, signal, threading, agentops
        from opentelemetry import trace
        WORKERS = 4

        def task(n):
            if n < WORKERS * 2:
                trace.get_tracer("worker").start_span(f"r{{round_}}-task-{{n}}").end()
            return n

        agentops.init(auto_start_session=False, wait_for_auth=True, max_wait_time=60_000)
        hung = []
        for round_ in range({POOL_ROUNDS}):
            over = threading.Event()
            def kill_hung_workers(round_=round_, over=over):
                if not over.wait({SHUTDOWN_TIMEOUT + MARGIN + SLACK}):
                    stuck = mp.active_children()
                    hung.append([round_, len(stuck)])
                    for process in stuck:
                        os.kill(process.pid, signal.SIGKILL)
            with mp.get_context("fork").Pool(WORKERS) as pool:
                results = pool.imap_unordered(task, range(100_000), chunksize=1)
                for _ in range(200):
                    next(results)
                # From here the block's exit terminates the workers (SIGTERM).
                threading.Thread(target=kill_hung_workers, daemon=True).start()
            over.set()
        print("HUNG", json.dumps(hung), flush=True)
    """, env=env_for(local_backend, AGENTOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)),
        timeout=POOL_ROUNDS * (SHUTDOWN_TIMEOUT + MARGIN + SLACK + 2) + STARTUP)
    assert run.returncode == 0, run.stderr
    assert "HUNG []" in run.stdout, run.stdout
    expected = sorted(f"r{r}-task-{n}" for r in range(POOL_ROUNDS) for n in range(8))
    local_backend.wait_for_spans(len(expected), timeout=5)
    assert sorted(local_backend.span_names) == expected


ROUNDS = 12


def test_fork_right_after_init_leaves_children_that_authenticate_and_deliver(local_backend):
    # Each round is a fresh process that has not imported the SDK (forked from a parent
    # that never did), calls init and forks a Pool at once, while the auth thread runs.
    # A child stuck on an import lock never delivers, whatever its budget; a generous budget
    # keeps a slow but healthy child on a loaded machine from looking stuck.
    run = run_python(f"""
        import json, os, sys
        delivered = []
        for round_ in range({ROUNDS}):
            pid = os.fork()
            if pid == 0:
                import multiprocessing as mp, agentops
                from opentelemetry import trace
                def task(n):
                    trace.get_tracer("w").start_span(f"r{{round_}}-{{n}}").end()
                    return n
                agentops.init(auto_start_session=False, max_wait_time=60_000)
                pool = mp.get_context("fork").Pool(2)
                pool.map(task, range(4))
                pool.close(); pool.join()
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            delivered.append(os.waitstatus_to_exitcode(status))
        print("ROUNDS", json.dumps(delivered))
    """, env=env_for(local_backend, AGENTOPS_AUTH_TIMEOUT="10", AGENTOPS_SHUTDOWN_TIMEOUT="10"),
        timeout=170)
    assert run.returncode == 0, run.stderr
    assert f"ROUNDS {json.dumps([0] * ROUNDS)}" in run.stdout
    local_backend.wait_for_spans(4 * ROUNDS, timeout=5)
    names = sorted(local_backend.span_names)
    assert names == sorted(f"r{r}-{n}" for r in range(ROUNDS) for n in range(4)), \
        f"missing: {set(f'r{r}-{n}' for r in range(ROUNDS) for n in range(4)) - set(names)}"


def test_background_threads_import_nothing_after_init(local_backend):
    run = run_python("""
        import sys, agentops
        from opentelemetry import trace
        agentops.init(auto_start_session=False, max_wait_time=10)
        before = set(sys.modules)
        agentops.get_client().tracker.wait(10)
        trace.get_tracer("t").start_span("one").end()
        ok = agentops.flush(timeout=10)
        late = sorted(set(sys.modules) - before)
        print("LATE", ok, late)
    """, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert "LATE True []" in run.stdout, run.stdout


WAITING_AT_EXIT = """
    import agentops
    from opentelemetry import trace
    agentops.init(max_wait_time=60_000, wait_for_auth=True)
    for i in range(20):
        trace.get_tracer("app").start_span(f"work-{i}").end()
    print("READY", flush=True)   # the program ends; the exit waits on the receiver
"""
"""20 spans and a session span that the exit sends (to a receiver made to hang)."""


def test_ctrl_c_during_the_exit_wait_counts_every_span_and_prints_the_exit_line(local_backend):
    local_backend.faults = Faults(otlp_hang=True)
    program = Program(WAITING_AT_EXIT, env_for(local_backend, AGENTOPS_SHUTDOWN_TIMEOUT="10"))
    program.wait_for("READY")
    time.sleep(0.5)
    seconds, _, stderr = program.signal_and_wait(signal.SIGINT)
    assert seconds <= MARGIN + 0.5, seconds  # the interrupt ends the wait at once
    assert "Traceback" not in stderr, stderr
    # Every span counted: the batch in flight keeps the cause it met (timeout).
    assert "interrupted: Session data not sent to backend: 21 of 21 spans not delivered " \
           "(timeout: 21)" in stderr


def test_spans_after_shutdown_and_during_the_exit_hook_are_counted_as_shutdown(local_backend):
    run = run_python("""
        import atexit, json, threading, agentops
        from opentelemetry import trace
        tracer = trace.get_tracer("late")
        made = [0]
        stop = threading.Event()
        def report():   # registered before init's hook, so it runs after it
            stop.set(); maker.join(10)
            stats = agentops.diagnose_session()["export_stats"]
            print(json.dumps({"made": made[0], "stats": stats}), flush=True)
        atexit.register(report)
        agentops.init(auto_start_session=False, max_wait_time=50)
        def make():
            while not stop.is_set():
                tracer.start_span("t").end(); made[0] += 1
        maker = threading.Thread(target=make, daemon=True); maker.start()
        for _ in range(200):
            tracer.start_span("m").end(); made[0] += 1
        agentops.shutdown()
        for _ in range(50):
            tracer.start_span("after").end(); made[0] += 1
    """, env=env_for(local_backend), timeout=60)
    assert run.returncode == 0, run.stderr
    result = run.last_json()
    stats = result["stats"]
    # made[0] is incremented after each span ends: the thread may end one more span
    # than it counted when stopped in between.
    assert stats["spans_made"] in (result["made"], result["made"] + 1), result
    assert stats["spans_made"] == stats["spans_exported"] + stats["spans_failed"]
    assert stats["failures_by_cause"].get("shutdown", 0) >= 50


def test_reinit_with_other_settings_while_a_thread_makes_spans_counts_every_span(local_backend):
    other = "11111111-2222-4333-8444-555555555555"
    local_backend.accepted_keys = {local_backend.api_key, other}
    run = run_python(f"""
        import json, threading, time, agentops
        from opentelemetry import trace
        tracer = trace.get_tracer("busy")
        settings = dict(auto_start_session=False, max_wait_time=20, max_queue_size=100_000)
        agentops.init(**settings)
        clients = [agentops.get_client()]
        made = [0]
        stop = threading.Event()
        def make():
            while not stop.is_set():
                tracer.start_span("s").end(); made[0] += 1
                if made[0] % 50 == 0:
                    time.sleep(0.001)   # leave the exporters some of the two cores
        maker = threading.Thread(target=make); maker.start()
        keys = ["{other}", "{local_backend.api_key}"] * 3
        for key in keys:
            time.sleep(0.05)
            agentops.init(api_key=key, **settings)
            clients.append(agentops.get_client())
        stop.set(); maker.join(10)
        agentops.flush(timeout=10)
        snapshots = [c.stats.snapshot() for c in clients]
        print(json.dumps({{"made": made[0],
                          "counted": sum(s["spans_made"] for s in snapshots),
                          "exported": sum(s["spans_exported"] for s in snapshots),
                          "lost": [s["failures_by_cause"] for s in snapshots],
                          "distinct": len(set(map(id, clients)))}}))
    """, env=env_for(local_backend), timeout=90)
    assert run.returncode == 0, run.stderr
    result = run.last_json()
    assert result["distinct"] == 7
    assert result["made"] > 0 and result["counted"] == result["made"], result
    # The receiver is healthy: the handover loses nothing, every span is delivered.
    assert result["exported"] == result["made"] and not any(result["lost"]), result


def test_init_from_two_threads_at_once_makes_one_client_one_exchange_one_url_line(
        local_backend):
    for _ in range(3):
        local_backend.reset()
        run = run_python("""
            import threading, agentops
            barrier = threading.Barrier(2)
            clients = []
            def start():
                barrier.wait()
                agentops.init(wait_for_auth=True)
                clients.append(agentops.get_client())
            threads = [threading.Thread(target=start) for _ in range(2)]
            for t in threads: t.start()
            for t in threads: t.join(30)
            print("SAME", len(clients) == 2 and clients[0] is clients[1])
        """, env=env_for(local_backend))
        assert run.returncode == 0, run.stderr
        assert "SAME True" in run.stdout
        assert len(local_backend.auth_requests) == 1
        url_lines = [line for line in run.stderr.splitlines() if "Session Replay" in line]
        assert len(url_lines) == 1, run.stderr
        assert len(run.stderr.splitlines()) == len(set(run.stderr.splitlines())), run.stderr


def test_flush_returns_true_when_delivered_and_false_when_a_batch_failed(local_backend):
    program = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import agentops
            from opentelemetry import trace
            print("BEFORE_INIT", agentops.flush())
            agentops.init(auto_start_session=False, wait_for_auth=True, max_wait_time=60_000)
            trace.get_tracer("t").start_span("kept").end()
            print("HEALTHY", agentops.flush(timeout=10), flush=True)
            input()
            trace.get_tracer("t").start_span("refused").end()
            print("FAILING", agentops.flush(timeout=10))
            agentops.shutdown()
            print("AFTER_SHUTDOWN", agentops.flush())
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env_for(local_backend))
    assert program.stdout.readline() == "BEFORE_INIT True\n"
    assert program.stdout.readline() == "HEALTHY True\n"
    local_backend.faults = Faults(otlp_status=400)
    out, err = program.communicate("go\n", timeout=60)
    assert program.returncode == 0, err
    assert "FAILING False" in out and "AFTER_SHUTDOWN False" in out


def test_flush_with_a_receiver_that_never_answers_returns_false_within_its_timeout(
        local_backend):
    local_backend.faults = Faults(otlp_hang=True)
    run = run_python("""
        import time, agentops
        from opentelemetry import trace
        agentops.init(auto_start_session=False, wait_for_auth=True, max_wait_time=60_000)
        trace.get_tracer("t").start_span("stuck").end()
        started = time.monotonic()
        result = agentops.flush(timeout=1.0)
        print("FLUSH", result, round(time.monotonic() - started, 2))
        agentops.shutdown(timeout=0.5)
    """, env=env_for(local_backend), timeout=60)
    assert run.returncode == 0, run.stderr
    _, result, seconds = next(line for line in run.stdout.splitlines()
                              if line.startswith("FLUSH")).split()
    assert result == "False" and float(seconds) <= 1.0 + MARGIN


def test_shutdown_with_a_timeout_bounds_the_wait_and_counts_the_rest(local_backend):
    local_backend.faults = Faults(otlp_hang=True)
    run = run_python("""
        import json, time, agentops
        from opentelemetry import trace
        agentops.init(auto_start_session=False, wait_for_auth=True, max_wait_time=60_000)
        for i in range(5):
            trace.get_tracer("t").start_span("stuck").end()
        started = time.monotonic()
        agentops.shutdown(timeout=0.5)
        took = time.monotonic() - started
        agentops.shutdown()   # a second call does nothing
        print(json.dumps({"took": took,
                          "lost": agentops.diagnose_session()["export_stats"]["failures_by_cause"]}))
    """, env=env_for(local_backend), timeout=60)
    assert run.returncode == 0, run.stderr
    result = run.last_json()
    assert result["took"] <= 0.5 + MARGIN
    assert result["lost"] == {"timeout": 5}  # the batch in flight keeps the cause it met


def test_exit_with_the_receiver_refusing_connections_stays_within_the_budget():
    port = free_port()
    run = run_python("""
        import time, agentops
        from opentelemetry import trace
        agentops.init(max_wait_time=60_000)
        for i in range(20):
            trace.get_tracer("t").start_span("s").end()
        print("END", time.time(), flush=True)
    """, env=clean_env(AGENTOPS_API_KEY="11111111-2222-4333-8444-555555555555",
                       AGENTOPS_API_ENDPOINT=f"http://127.0.0.1:{port}",
                       AGENTOPS_EXPORTER_ENDPOINT=f"http://127.0.0.1:{port}/v1/traces",
                       AGENTOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)), timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.exit_seconds() <= SHUTDOWN_TIMEOUT + MARGIN + SLACK
    assert "21 of 21 spans not delivered" in run.stderr
