"""Offline storage through the real SDK: batches that could not be delivered are stored by
one process and sent by the next one (or by ``agentops flush``), against LocalBackend on a
real port. Each program runs in its own interpreter, as users' programs do."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from agentops.export.storage import OfflineStore
from agentops.testing import Faults, LocalBackend
from tests.conftest import SLACK, Program, clean_env, free_port, run_python
from tests.test_lifecycle import WAITING_AT_EXIT
from tests.test_sdk_e2e import env_for

SPANS = 20

SPANS_THEN_EXIT = """
    import sys, time, agentops
    from opentelemetry import trace
    agentops.init(auto_start_session=False)
    tracer = trace.get_tracer("t")
    for n in range({spans}):
        with tracer.start_as_current_span(f"{tag}-{{n}}"):
            pass
    print("END", time.time(), flush=True)
"""


def spans_then_exit(tag: str = "first", spans: int = SPANS) -> str:
    return SPANS_THEN_EXIT.format(tag=tag, spans=spans)


def storage_env(backend: LocalBackend, directory, **extra: str) -> dict[str, str]:
    """The backend's settings with offline storage on, in ``directory``."""
    env = env_for(backend, AGENTOPS_OFFLINE_STORAGE="true",
                  AGENTOPS_STORAGE_DIRECTORY=str(directory))
    env.update(extra)
    return env


def stored(env: dict[str, str]) -> dict:
    """What the store in ``env``'s directory holds for its key and exporter endpoint."""
    return OfflineStore(env["AGENTOPS_STORAGE_DIRECTORY"], api_key=env["AGENTOPS_API_KEY"],
                        endpoint=env["AGENTOPS_EXPORTER_ENDPOINT"]).status(fresh=True)


def names(backend: LocalBackend) -> list[str]:
    return [span["name"] for span in backend.spans]


def flush_now(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``agentops flush`` in its own process."""
    return subprocess.run([sys.executable, "-m", "agentops", "flush", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def down_then_up(tmp_path):
    """A backend on a port that first refuses every connection (``down``), then answers
    (``up()`` starts LocalBackend on that same port: same endpoint, same key)."""
    port = free_port()
    backend = LocalBackend(port=port)
    started: list[LocalBackend] = []

    def up() -> LocalBackend:
        started.append(LocalBackend(port=port, api_key=backend.api_key).start())
        return started[-1]

    # The settings of a backend that is not running: every connection to it is refused.
    backend.start()
    env = storage_env(backend, tmp_path / "store")
    backend.stop()
    yield env, up
    for running in started:
        running.stop()


RETRY_BUDGET = 10.0
"""shutdown_timeout for an exit that must not retry: it must not wait it out. Half of it is
the margin for a loaded machine."""


def test_exit_with_the_receiver_refusing_connections_stores_every_span_at_once(tmp_path):
    """The receiver refuses connections when a short script exits: every span is stored,
    and the exit does not wait out its budget retrying (10 s here)."""
    with LocalBackend() as backend:
        closed = f"http://127.0.0.1:{free_port()}/v1/traces"
        env = storage_env(backend, tmp_path, AGENTOPS_EXPORTER_ENDPOINT=closed,
                          AGENTOPS_SHUTDOWN_TIMEOUT=str(RETRY_BUDGET))
        run = run_python(spans_then_exit(), env=env)
    assert run.returncode == 0, run.stderr
    # Storing takes one attempt and one SQLite transaction; retrying would take the budget.
    assert run.exit_seconds() < RETRY_BUDGET / 2, run.stderr
    assert stored(env)["pending_spans"] == SPANS
    assert f"{SPANS} of {SPANS} spans not sent yet (connection_error: {SPANS}) and saved to " \
           f"offline storage in {tmp_path}" in run.stderr
    assert "agentops flush" in run.stderr
    assert "not delivered" not in run.stderr  # stored spans are not losses


def test_what_a_run_stored_while_the_backend_was_down_the_next_run_sends(down_then_up):
    env, up = down_then_up
    first = run_python(spans_then_exit(), env=env)
    assert first.returncode == 0, first.stderr
    assert stored(env)["pending_spans"] == SPANS, first.stderr
    assert "not_authenticated" in first.stderr  # no token: the backend was down

    backend = up()
    second = run_python("""
        import json, time, agentops
        from opentelemetry import trace
        agentops.init(auto_start_session=False)
        deadline = time.monotonic() + 20
        while (agentops.diagnose_session()["export_stats"]["spans_replayed"] < 20
               and time.monotonic() < deadline):
            time.sleep(0.05)
        with trace.get_tracer("t").start_as_current_span("second"):
            pass
        agentops.shutdown()
        print(json.dumps(agentops.diagnose_session()))
    """, env=env)
    assert second.returncode == 0, second.stderr
    report = second.last_json()
    assert report["export_stats"]["spans_replayed"] == SPANS
    assert report["export_stats"]["spans_exported"] == 1
    assert report["storage"]["pending_spans"] == 0
    assert sorted(names(backend)) == sorted([f"first-{n}" for n in range(SPANS)] + ["second"])
    assert stored(env)["pending_batches"] == 0


def test_agentops_flush_sends_the_store_now_and_exits_0(down_then_up):
    env, up = down_then_up
    assert run_python(spans_then_exit(), env=env).returncode == 0
    backend = up()
    flush = flush_now(env)
    assert flush.returncode == 0, flush.stdout + flush.stderr
    assert f"{SPANS} spans" in flush.stdout
    assert sorted(names(backend)) == sorted(f"first-{n}" for n in range(SPANS))
    assert stored(env)["pending_batches"] == 0
    again = flush_now(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing stored for this API key and exporter endpoint" in again.stdout
    assert len(backend.spans) == SPANS  # nothing sent twice


def test_agentops_flush_with_the_backend_still_down_exits_1_with_the_cause(down_then_up):
    env, _ = down_then_up
    assert run_python(spans_then_exit(), env=env).returncode == 0
    flush = flush_now(env)
    assert flush.returncode == 1
    assert "connection_error" in flush.stdout + flush.stderr
    assert stored(env)["pending_spans"] == SPANS  # kept for a later attempt


def test_agentops_flush_with_a_rejected_key_exits_1_and_keeps_the_store(down_then_up):
    env, up = down_then_up
    assert run_python(spans_then_exit(), env=env).returncode == 0
    backend = up()
    backend.accepted_keys = []
    flush = flush_now(env)
    assert flush.returncode == 1
    assert "invalid_key" in flush.stdout + flush.stderr
    assert stored(env)["pending_spans"] == SPANS
    assert backend.spans == []


def test_another_key_or_endpoint_does_not_send_what_was_stored(down_then_up, tmp_path):
    env, up = down_then_up
    assert run_python(spans_then_exit(), env=env).returncode == 0
    backend = up()
    other = LocalBackend().start()
    try:
        run = run_python(spans_then_exit("other", 1),
                         env=storage_env(other, env["AGENTOPS_STORAGE_DIRECTORY"]))
        assert run.returncode == 0, run.stderr
        assert other.wait_for_spans(1, timeout=5)
        assert names(other) == ["other-0"]
    finally:
        other.stop()
    assert backend.spans == []
    assert stored(env)["pending_spans"] == SPANS


@pytest.mark.parametrize("status, cause", [(400, "client_error"), (413, "too_large")])
def test_definitive_failures_are_not_stored(tmp_path, status, cause):
    with LocalBackend(faults=Faults(otlp_status=status)) as backend:
        env = storage_env(backend, tmp_path)
        run = run_python(spans_then_exit(spans=1), env=env)
    assert run.returncode == 0, run.stderr
    assert f"{cause}: 1" in run.stderr
    assert "offline storage" not in run.stderr
    assert stored(env)["pending_batches"] == 0


def test_a_rejected_key_stores_nothing(tmp_path):
    with LocalBackend() as backend:
        backend.accepted_keys = []
        env = storage_env(backend, tmp_path)
        run = run_python(spans_then_exit(spans=3), env=env)
    assert run.returncode == 0, run.stderr
    assert "not_authenticated: 3" in run.stderr
    assert stored(env)["pending_batches"] == 0


def test_sigterm_with_the_receiver_down_stores_the_spans_and_ends_as_killed(tmp_path):
    with LocalBackend() as backend:
        closed = f"http://127.0.0.1:{free_port()}/v1/traces"
        env = storage_env(backend, tmp_path, AGENTOPS_EXPORTER_ENDPOINT=closed)
        program = Program("""
            import time, agentops
            from opentelemetry import trace
            agentops.init(auto_start_session=False, max_wait_time=60_000)
            tracer = trace.get_tracer("t")
            for n in range(20):
                with tracer.start_as_current_span(f"span-{n}"):
                    pass
            print("READY", flush=True)
            time.sleep(60)
        """, env)
        program.wait_for("READY")
        time.sleep(0.5)
        seconds, _, err = program.signal_and_wait(signal.SIGTERM)
    assert program.proc.returncode == -signal.SIGTERM
    assert seconds < 2.0 + 0.5 + SLACK, err  # shutdown_timeout + the 0.5 s + margin
    assert stored(env)["pending_spans"] == 20
    assert "SIGTERM: 20 of 20 spans not sent yet" in err


def test_fork_pool_workers_store_their_spans_and_a_flush_sends_them_all(down_then_up):
    env, up = down_then_up
    run = run_python("""
        import multiprocessing, agentops
        from opentelemetry import trace

        def task(n):
            with trace.get_tracer("t").start_as_current_span(f"worker-{n}"):
                pass
            return n

        if __name__ == "__main__":
            agentops.init(auto_start_session=False)
            with multiprocessing.get_context("fork").Pool(2) as pool:
                assert pool.map(task, range(8)) == list(range(8))
    """, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert stored(env)["pending_spans"] == 8, run.stderr
    backend = up()
    flush = flush_now(env)
    assert flush.returncode == 0, flush.stdout + flush.stderr
    assert sorted(names(backend)) == sorted(f"worker-{n}" for n in range(8))


def test_two_processes_replaying_at_once_send_each_stored_span_once(down_then_up):
    env, up = down_then_up
    # Ten batches stored: a flush per two spans, each failing to connect.
    first = run_python("""
        import agentops
        from opentelemetry import trace
        agentops.init(auto_start_session=False, auth_timeout=0.5)
        tracer = trace.get_tracer("t")
        for n in range(20):
            with tracer.start_as_current_span(f"first-{n}"):
                pass
            if n % 2:
                agentops.flush(5)
    """, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert stored(env) | {"bytes": 0, "oldest_at": None} == {
        "enabled": True, "directory": env["AGENTOPS_STORAGE_DIRECTORY"], "pending_batches": 10,
        "pending_spans": 20, "bytes": 0, "oldest_at": None}

    backend = up()
    replay = textwrap.dedent("""
        import time, agentops
        agentops.init(auto_start_session=False)
        deadline = time.monotonic() + 20
        while agentops.diagnose_session()["storage"]["pending_batches"] and time.monotonic() < deadline:
            time.sleep(0.05)
        print(agentops.diagnose_session()["export_stats"]["spans_replayed"])
    """)
    both = [subprocess.Popen([sys.executable, "-c", replay], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    replayed = []
    for proc in both:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        replayed.append(int(out.split()[-1]))
    assert sum(replayed) == 20
    assert sorted(names(backend)) == sorted(f"first-{n}" for n in range(20))  # each once


def test_diagnosis_and_doctor_show_the_store(down_then_up):
    env, _ = down_then_up
    assert run_python(spans_then_exit(), env=env).returncode == 0
    run = run_python("""
        import json, agentops
        agentops.init(auto_start_session=False)
        print(json.dumps(agentops.diagnose_session()))
    """, env=env)
    report = run.last_json()
    assert report["storage"]["enabled"] is True
    assert report["storage"]["pending_spans"] == SPANS
    assert report["storage"]["directory"] == env["AGENTOPS_STORAGE_DIRECTORY"]
    codes = {finding["code"]: finding for finding in report["findings"]}
    assert "storage.pending" in codes, codes
    doctor = subprocess.run([sys.executable, "-m", "agentops", "doctor", "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    facts = json.loads(doctor.stdout)
    assert facts["storage"]["pending_spans"] == SPANS
    text = subprocess.run([sys.executable, "-m", "agentops", "doctor"], env=env,
                          capture_output=True, text=True, timeout=60).stdout
    assert "Offline storage" in text and f"{SPANS} spans" in text


def test_storage_off_keeps_nothing_on_disk(tmp_path):
    with LocalBackend() as backend:
        closed = f"http://127.0.0.1:{free_port()}/v1/traces"
        env = storage_env(backend, tmp_path / "store", AGENTOPS_EXPORTER_ENDPOINT=closed,
                          AGENTOPS_OFFLINE_STORAGE="false")
        run = run_python(spans_then_exit(spans=3), env=env)
    assert run.returncode == 0, run.stderr
    assert "connection_error: 3" in run.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG cache directory")
def test_default_storage_directory_is_the_user_cache_directory(tmp_path):
    env = clean_env(XDG_CACHE_HOME=str(tmp_path))
    env.pop("AGENTOPS_STORAGE_DIRECTORY")
    env.pop("AGENTOPS_OFFLINE_STORAGE")  # the default: on
    run = run_python("""
        import json, agentops
        agentops.init(api_key="11111111-2222-3333-4444-555555555555",
                      auto_start_session=False, endpoint="http://127.0.0.1:9")
        print(json.dumps(agentops.diagnose_session()["storage"]))
    """, env=env)
    assert run.last_json()["directory"] == str(tmp_path / "agentops")


def test_agentops_flush_on_an_unreadable_store_moves_it_aside_says_so_and_exits_1(tmp_path):
    """A database SQLite cannot read: its batches cannot be sent (exit 1, cause named,
    where the file went); the store works again at once (the next flush exits 0)."""
    with LocalBackend() as backend:
        env = storage_env(backend, tmp_path)
        (tmp_path / "offline-spans.sqlite3").write_bytes(b"not a database" * 200)
        flush = flush_now(env)
        assert flush.returncode == 1, flush.stdout + flush.stderr
        assert "corrupt: the unreadable database (file is not a database) was moved aside " \
               f"to {tmp_path}/offline-spans.sqlite3.corrupt-" in flush.stdout, flush.stdout
        assert flush_now(env).returncode == 0
        assert run_python(spans_then_exit(spans=2), env=env).returncode == 0
        assert backend.wait_for_spans(2, timeout=5)


def test_agentops_flush_with_the_receiver_failing_keeps_the_batch_for_later(down_then_up):
    env, up = down_then_up
    assert run_python(spans_then_exit(), env=env).returncode == 0
    backend = up()
    backend.faults = Faults(otlp_status=503)
    flush = flush_now(env, "--timeout", "3")
    assert flush.returncode == 1
    assert "server_error" in flush.stdout, flush.stdout + flush.stderr
    assert stored(env)["pending_spans"] == SPANS  # handed back, not dropped
    backend.set_faults(otlp_status=None)
    assert flush_now(env).returncode == 0
    assert len(backend.spans) == SPANS


def test_a_stored_batch_the_receiver_refuses_for_good_is_removed_and_counted(down_then_up):
    """Three batches refused for good: removed, counted, and warned about once."""
    env, up = down_then_up
    for tag in ("a", "b", "c"):
        assert run_python(spans_then_exit(tag), env=env).returncode == 0
    backend = up()
    backend.faults = Faults(otlp_status=400)
    flush = flush_now(env)
    assert flush.returncode == 1
    assert f"{3 * SPANS} spans removed without delivery (client_error)" in flush.stdout, \
        flush.stdout
    assert flush.stderr.count("refused for good") == 1, flush.stderr
    assert f"(client_error: {3 * SPANS}); e.g. HTTP 400" in flush.stderr, flush.stderr
    assert stored(env)["pending_batches"] == 0


def test_a_receiver_failing_briefly_at_exit_is_retried_not_stored(tmp_path):
    """Storage does not replace the exit's retries: 503, 503, then 200 delivers."""
    with LocalBackend() as backend:
        backend.faults = Faults(otlp_statuses=(503, 503))
        env = storage_env(backend, tmp_path)
        run = run_python(spans_then_exit(), env=env)
        assert run.returncode == 0, run.stderr
        assert backend.wait_for_spans(SPANS, timeout=5)
    assert "offline storage" not in run.stderr
    assert stored(env)["pending_batches"] == 0


def test_a_receiver_that_never_answers_at_exit_ends_in_budget_with_every_span_stored(tmp_path):
    with LocalBackend(faults=Faults(otlp_hang=True)) as backend:
        env = storage_env(backend, tmp_path)
        run = run_python(spans_then_exit(), env=env)
    assert run.returncode == 0, run.stderr
    # shutdown_timeout, the 0.5 s the exit may take beyond it, and the margin
    assert run.exit_seconds() < 2.0 + 0.5 + SLACK, run.stderr
    assert stored(env)["pending_spans"] == SPANS
    assert f"{SPANS} of {SPANS} spans not sent yet (timeout: {SPANS})" in run.stderr


@pytest.mark.parametrize("status", [401, 403])
def test_a_receiver_rejecting_the_token_during_replay_keeps_the_store(down_then_up, status):
    """A 401/403 says the receiver refuses this process's token, not these batches: they
    stay stored (every one of them) and are sent once the receiver accepts again."""
    env, up = down_then_up
    for tag in ("first", "second"):
        assert run_python(spans_then_exit(tag, 3), env=env).returncode == 0
    assert stored(env)["pending_batches"] == 2
    backend = up()
    backend.faults = Faults(otlp_status=status)
    flush = flush_now(env, "--timeout", "10")
    assert flush.returncode == 1
    assert "auth_rejected" in flush.stdout, flush.stdout + flush.stderr
    assert "removed without delivery" not in flush.stdout, flush.stdout
    assert stored(env)["pending_spans"] == 6
    backend.set_faults(otlp_status=None)
    flush = flush_now(env)
    assert flush.returncode == 0, flush.stdout + flush.stderr
    assert sorted(names(backend)) == sorted(f"{tag}-{n}" for tag in ("first", "second")
                                            for n in range(3))


def test_the_exit_line_says_why_offline_storage_did_not_keep_the_spans(tmp_path):
    """storage_directory names a file: the spans cannot be stored, and the exit line (all a
    short script's user sees) says why, not only "not delivered"."""
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    with LocalBackend() as backend:
        closed = f"http://127.0.0.1:{free_port()}/v1/traces"
        env = storage_env(backend, not_a_directory, AGENTOPS_EXPORTER_ENDPOINT=closed)
        run = run_python(spans_then_exit(spans=4), env=env)
    assert run.returncode == 0, run.stderr
    assert "4 of 4 spans not delivered (connection_error: 4)" in run.stderr
    line = next((line for line in run.stderr.splitlines()
                 if f"offline storage in {not_a_directory} could not keep them" in line), None)
    assert line is not None, run.stderr
    assert f"{not_a_directory} is not a directory" in line, line


@pytest.mark.parametrize("bound", ["storage_full", "expired"])
def test_the_exit_line_says_what_the_store_dropped_to_respect_its_bounds(tmp_path, bound):
    """Storing this run's spans removed older stored spans (the store was full, or they
    were too old): the exit line says so rather than only "saved"."""
    with LocalBackend() as backend:
        closed = f"http://127.0.0.1:{free_port()}/v1/traces"
        env = storage_env(backend, tmp_path, AGENTOPS_EXPORTER_ENDPOINT=closed)
        # Another key's batch (the bounds are the whole store's): this run's replay leaves
        # it alone, so only this run's own put removes it.
        earlier = OfflineStore(tmp_path, api_key=str(uuid.uuid4()), endpoint=closed)
        if bound == "storage_full":  # 10 bytes short of the 50 MB bound
            assert earlier.put(b"\0" * (earlier.max_bytes - 10), 7).stored
        else:
            assert earlier.put(b"\0" * 10, 7).stored
            with contextlib.closing(sqlite3.connect(earlier.path)) as db, db:
                db.execute("UPDATE batches SET stored_at = stored_at - ?",
                           (earlier.max_age + 60,))
        run = run_python(spans_then_exit(spans=4), env=env)
    assert run.returncode == 0, run.stderr
    assert "4 of 4 spans not sent yet (connection_error: 4) and saved" in run.stderr
    assert (f"7 stored spans removed from offline storage in {tmp_path} without delivery "
            f"({bound}: 7)") in run.stderr, run.stderr
    assert stored(env)["pending_spans"] == 4


@pytest.mark.parametrize("setting, value, bound", [
    ("AGENTOPS_STORAGE_MAX_MB", "1", "storage_full"),
    ("AGENTOPS_STORAGE_MAX_AGE_HOURS", "1", "expired"),
])
def test_the_storage_bounds_are_settings(tmp_path, setting, value, bound):
    """A batch the default bounds keep (1 MiB stored, 2 hours old) is removed under a
    1 MiB or 1 hour bound, and counted."""
    with LocalBackend() as backend:
        closed = f"http://127.0.0.1:{free_port()}/v1/traces"
        env = storage_env(backend, tmp_path, AGENTOPS_EXPORTER_ENDPOINT=closed,
                          **{setting: value})
        earlier = OfflineStore(tmp_path, api_key=str(uuid.uuid4()), endpoint=closed)
        assert earlier.put(b"\0" * (1024 * 1024 - 10), 7).stored
        with contextlib.closing(sqlite3.connect(earlier.path)) as db, db:
            db.execute("UPDATE batches SET stored_at = stored_at - ?", (2 * 3600,))
        run = run_python(spans_then_exit(spans=4), env=env)
    assert run.returncode == 0, run.stderr
    assert (f"7 stored spans removed from offline storage in {tmp_path} without delivery "
            f"({bound}: 7)") in run.stderr, run.stderr
    assert stored(env)["pending_spans"] == 4


def test_doctor_and_the_diagnosis_say_when_the_storage_directory_cannot_be_written(tmp_path):
    """Before any batch fails: `agentops doctor` answers "can this setup keep what it cannot
    send", so a storage_directory that names a file is reported, with what to change."""
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    with LocalBackend() as backend:
        env = storage_env(backend, not_a_directory / "agentops")
        doctor = subprocess.run([sys.executable, "-m", "agentops", "doctor", "--json"],
                                env=env, capture_output=True, text=True, timeout=60)
        facts = json.loads(doctor.stdout)["storage"]
        assert f"{not_a_directory} is not a directory" in facts["write_error"], facts
        text = subprocess.run([sys.executable, "-m", "agentops", "doctor"], env=env,
                              capture_output=True, text=True, timeout=60).stdout
        assert f"cannot be written: {not_a_directory} is not a directory" in text, text
        run = run_python("""
            import json, agentops
            agentops.init(auto_start_session=False)
            print(json.dumps(agentops.diagnose_session()))
        """, env=env)
    codes = {finding["code"] for finding in run.last_json()["findings"]}
    assert "storage.unusable" in codes, run.stdout


def test_ctrl_c_during_agentops_flush_ends_without_a_traceback_and_hands_the_batch_back(
        down_then_up):
    """Ctrl-C while `agentops flush` waits for the receiver: a short message, exit status
    130, and the batch it was sending is claimable at once by the next flush (not leased
    to a process that is gone)."""
    env, up = down_then_up
    assert run_python(spans_then_exit(), env=env).returncode == 0
    backend = up()
    backend.faults = Faults(otlp_hang=True)
    flush = subprocess.Popen([sys.executable, "-m", "agentops", "flush"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    database = OfflineStore(env["AGENTOPS_STORAGE_DIRECTORY"], api_key=env["AGENTOPS_API_KEY"],
                            endpoint=env["AGENTOPS_EXPORTER_ENDPOINT"]).path
    deadline = time.monotonic() + 20
    leased = False
    while not leased and time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(database)) as db:
            leased = db.execute("SELECT COUNT(*) FROM leases WHERE lease_until > ?",
                                (time.time(),)).fetchone()[0] > 0
        time.sleep(0.05)
    assert leased, "the flush never claimed the stored batch"
    flush.send_signal(signal.SIGINT)
    out, err = flush.communicate(timeout=30)
    assert flush.returncode == 130, out + err
    assert "Traceback" not in out + err, out + err
    assert "interrupted" in out + err and f"{SPANS} spans" in out + err, out + err
    backend.set_faults(otlp_hang=False)
    again = flush_now(env, "--timeout", "10")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(set(names(backend))) == sorted(f"first-{n}" for n in range(SPANS))


def test_agentops_flush_says_when_another_process_holds_the_stored_batches(down_then_up):
    env, up = down_then_up
    assert run_python(spans_then_exit(), env=env).returncode == 0
    up()
    other_process = OfflineStore(env["AGENTOPS_STORAGE_DIRECTORY"],
                                 api_key=env["AGENTOPS_API_KEY"],
                                 endpoint=env["AGENTOPS_EXPORTER_ENDPOINT"])
    assert other_process.claim().batch is not None
    flush = flush_now(env, "--timeout", "10")
    assert flush.returncode == 1
    assert "None" not in flush.stdout, flush.stdout
    assert f"{SPANS} spans (1 batch) still stored: another process is sending them" \
        in flush.stdout, flush.stdout


def test_agentops_flush_with_a_malformed_key_says_what_is_wrong_with_it(tmp_path):
    """A key given but not a UUID is not "no API key": the message says what to change."""
    env = clean_env(AGENTOPS_OFFLINE_STORAGE="true", AGENTOPS_STORAGE_DIRECTORY=str(tmp_path))
    flush = flush_now(env, "--api-key", "not-a-uuid")
    assert flush.returncode == 1
    assert "needs an API key" not in flush.stdout, flush.stdout
    assert "api_key is not a valid AgentOps API key: expected a UUID" in flush.stdout, \
        flush.stdout


def test_ctrl_c_during_the_exit_wait_stores_every_span_and_prints_the_exit_line(tmp_path):
    """Ctrl-C while the exit waits on a receiver that never answers: sending stops at once,
    and what was not delivered (the batch in flight and the queue) is saved, within the
    storage reserve, instead of counted lost."""
    with LocalBackend(faults=Faults(otlp_hang=True)) as backend:
        env = storage_env(backend, tmp_path, AGENTOPS_SHUTDOWN_TIMEOUT="10")
        program = Program(WAITING_AT_EXIT, env)
        program.wait_for("READY")
        time.sleep(0.5)
        seconds, _, err = program.signal_and_wait(signal.SIGINT)
    assert seconds < 0.5 + SLACK, err  # the storage reserve (0.3 s) and the margin
    assert "Traceback" not in err, err
    assert stored(env)["pending_spans"] == 21, err
    assert "interrupted: 21 of 21 spans not sent yet (timeout: 21) and saved to offline " \
           "storage" in err, err


SENDING_BEFORE_EXIT = """
    import time, agentops
    from opentelemetry import trace
    agentops.init(auto_start_session=False, max_wait_time=100)
    tracer = trace.get_tracer("t")
    for n in range(20):
        with tracer.start_as_current_span(f"early-{{n}}"):
            pass
    time.sleep({pause})   # exported meanwhile: the batch is in flight when the exit begins
    for n in range({late}):
        with tracer.start_as_current_span(f"late-{{n}}"):
            pass
    print("END", time.time(), flush=True)
"""


@pytest.mark.parametrize("late", [0, 2000])
def test_a_batch_in_flight_when_the_exit_begins_is_stored_with_the_queue_behind_it(
        tmp_path, late):
    """The receiver never answers, and a batch was sent before the exit began (its deadline
    is export_timeout's, later than the exit's): when the exit's time to send runs out, its
    wait is cut short and it is stored, and so is everything queued behind it."""
    with LocalBackend(faults=Faults(otlp_hang=True)) as backend:
        env = storage_env(backend, tmp_path)
        run = run_python(SENDING_BEFORE_EXIT.format(late=late, pause=1.0), env=env)
    assert run.returncode == 0, run.stderr
    assert run.exit_seconds() < 2.0 + 0.5 + SLACK, run.stderr  # shutdown_timeout + 0.5 s
    assert stored(env)["pending_spans"] == 20 + late, run.stderr
    line = next(line for line in run.stderr.splitlines() if "spans not sent yet" in line)
    assert f"{20 + late} of {20 + late} spans not sent yet (" in line, line
    assert "timeout: 20" in line and "and saved to offline storage" in line, line
    assert "not delivered" not in run.stderr, run.stderr


def test_a_batch_waiting_to_retry_a_refused_receiver_is_stored_as_soon_as_the_exit_begins(
        tmp_path):
    """A batch sent before the exit met a refused connection and waits to retry: the exit
    does not wait for its retry, it stores it at once (row 1's 0.5 s holds for it too).
    After 8 s of failures its next retry is most likely seconds away (backoff 4-8 s within
    a long export_timeout), and shutdown_timeout is long."""
    with LocalBackend() as backend:
        closed = f"http://127.0.0.1:{free_port()}/v1/traces"
        env = storage_env(backend, tmp_path, AGENTOPS_EXPORTER_ENDPOINT=closed,
                          AGENTOPS_SHUTDOWN_TIMEOUT="10", AGENTOPS_EXPORT_TIMEOUT="60")
        run = run_python(SENDING_BEFORE_EXIT.format(late=0, pause=8.0), env=env)
    assert run.returncode == 0, run.stderr
    assert run.exit_seconds() < 0.5 + SLACK, run.stderr
    assert stored(env)["pending_spans"] == 20, run.stderr


def test_spans_this_process_stored_then_sent_itself_are_told_as_delivered(tmp_path):
    """The receiver fails (stored), recovers, and this same process sends what it stored:
    the exit line must not send the user to a later run for spans already delivered."""
    with LocalBackend(faults=Faults(otlp_status=503)) as backend:
        env = storage_env(backend, tmp_path, AGENTOPS_EXPORT_TIMEOUT="1")
        program = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
            import json, sys, time, agentops
            from opentelemetry import trace
            agentops.init(auto_start_session=False, wait_for_auth=True)
            tracer = trace.get_tracer("t")
            for n in range(30):
                tracer.start_span(f"first-{n}").end()
            agentops.flush(10)
            print("STORED", agentops.diagnose_session()["export_stats"]["spans_stored"],
                  flush=True)
            sys.stdin.readline()   # the receiver is fixed meanwhile
            tracer.start_span("second").end()
            agentops.flush(10)
            deadline = time.monotonic() + 10
            while (agentops.diagnose_session()["export_stats"]["spans_replayed"] < 30
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            print("STATS", json.dumps(agentops.diagnose_session()["export_stats"]), flush=True)
        """)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        assert program.stdout.readline().split() == ["STORED", "30"]
        backend.faults = Faults()
        out, err = program.communicate("go\n", timeout=60)
        assert program.returncode == 0, err
        assert backend.wait_for_spans(31, timeout=5)
        assert sorted(names(backend)) == sorted([f"first-{n}" for n in range(30)] + ["second"])
    stats = json.loads(out.split("STATS ", 1)[1])
    assert stats["spans_replayed"] == 30 and stats["spans_stored"] == 0, stats
    assert stats["spans_exported"] == 31, stats
    assert "saved to offline storage" not in err, err
    assert stored(env)["pending_spans"] == 0


def test_a_stored_batch_too_large_for_the_receiver_is_split_and_sent_whole(down_then_up):
    """413 at replay: the stored batch is split in the store, as a live batch is, down to
    what the receiver takes; every span arrives once, none is dropped as too_large."""
    env, up = down_then_up
    assert run_python(spans_then_exit("big", 51), env=env).returncode == 0
    assert stored(env)["pending_batches"] == 1
    backend = up()
    backend.faults = Faults(otlp_max_bytes=1500)
    flush = flush_now(env)
    assert flush.returncode == 0, flush.stdout + flush.stderr
    assert "removed without delivery" not in flush.stdout, flush.stdout
    assert sorted(names(backend)) == sorted(f"big-{n}" for n in range(51))
    assert stored(env)["pending_batches"] == 0


def test_agentops_flush_with_a_storage_directory_that_is_a_file_says_so_and_exits_1(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    with LocalBackend() as backend:
        flush = flush_now(storage_env(backend, not_a_directory))
    assert flush.returncode == 1, flush.stdout + flush.stderr
    assert f"Offline storage: in {not_a_directory} cannot be used: {not_a_directory} is not " \
           "a directory" in flush.stdout, flush.stdout


def test_doctor_counts_one_stored_batch_in_the_singular(down_then_up):
    env, _ = down_then_up
    assert run_python(spans_then_exit("one", 1), env=env).returncode == 0
    doctor = subprocess.run([sys.executable, "-m", "agentops", "doctor"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert "  1 span (1 batch, " in doctor.stdout, doctor.stdout
