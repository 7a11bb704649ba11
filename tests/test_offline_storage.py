"""Offline storage (agentops.export.storage): one SQLite store shared by processes, bounded
by size and age, partitioned by API key fingerprint and exporter endpoint."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from agentops.export.storage import DATABASE_NAME, OfflineStore, key_fingerprint

KEY = "11111111-2222-3333-4444-555555555555"
OTHER_KEY = "99999999-2222-3333-4444-555555555555"
ENDPOINT = "http://127.0.0.1:4318/v1/traces"


def store(directory, **kwargs) -> OfflineStore:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("endpoint", ENDPOINT)
    return OfflineStore(directory, **kwargs)


def test_batches_come_back_oldest_first_and_are_gone_once_deleted(tmp_path):
    s = store(tmp_path / "store")
    for n in range(3):
        assert s.put(f"payload-{n}".encode(), spans=n + 1).stored
    seen = []
    while (batch := s.claim().batch) is not None:
        seen.append((batch.payload, batch.spans))
        assert s.delete(batch)
    assert seen == [(b"payload-0", 1), (b"payload-1", 2), (b"payload-2", 3)]
    assert s.status(fresh=True)["pending_batches"] == 0


def test_a_released_batch_is_claimable_again_and_a_claimed_one_is_not(tmp_path):
    s = store(tmp_path)
    s.put(b"a", 1)
    s.put(b"b", 1)
    first = s.claim().batch
    second = s.claim().batch
    assert (first.payload, second.payload) == (b"a", b"b")
    assert s.claim().batch is None  # both leased
    s.release(first)
    again = s.claim().batch
    assert again.payload == b"a"


def test_a_lease_that_runs_out_makes_the_batch_claimable_again(tmp_path):
    s = store(tmp_path, lease=0.3)
    s.put(b"a", 4)
    first = s.claim().batch
    assert s.claim().batch is None
    time.sleep(0.4)
    retaken = s.claim().batch
    assert retaken.payload == b"a"
    # The first holder's lease is gone: its late delete must not remove the retaken batch.
    assert not s.delete(first)
    assert s.delete(retaken)


def test_status_counts_only_its_own_key_and_endpoint(tmp_path):
    mine = store(tmp_path)
    other_key = store(tmp_path, api_key=OTHER_KEY)
    other_endpoint = store(tmp_path, endpoint="http://127.0.0.1:9999/v1/traces")
    mine.put(b"x" * 10, 5)
    other_key.put(b"y" * 20, 7)
    other_endpoint.put(b"z" * 30, 9)
    status = mine.status(fresh=True)
    assert {k: status[k] for k in ("enabled", "pending_batches", "pending_spans", "bytes")} == \
        {"enabled": True, "pending_batches": 1, "pending_spans": 5, "bytes": 10}
    assert status["directory"] == str(tmp_path)
    assert status["oldest_at"].endswith("+00:00")
    assert mine.claim().batch.payload == b"x" * 10
    assert mine.claim().batch is None  # the others' batches are not ours to send


def test_credentials_in_the_endpoint_do_not_split_or_reach_the_store(tmp_path):
    plain = store(tmp_path, endpoint="https://otlp.example.test/v1/traces")
    with_password = store(tmp_path, endpoint="https://user:hunter2@otlp.example.test/v1/traces/")
    with_password.put(b"p", 1)
    assert plain.claim().batch.payload == b"p"
    raw = (tmp_path / DATABASE_NAME).read_bytes()
    assert b"hunter2" not in raw and b"user:" not in raw


def test_the_key_never_reaches_the_disk(tmp_path):
    s = store(tmp_path)
    s.put(b"payload", 1)
    database = tmp_path / DATABASE_NAME
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert KEY.encode() not in data and KEY.replace("-", "").encode() not in data, path
    rows = sqlite3.connect(database).execute("SELECT key_fingerprint FROM batches").fetchall()
    assert rows == [(key_fingerprint(KEY),)] and KEY not in rows[0][0]


def test_directory_is_0700_and_files_0600(tmp_path):
    directory = tmp_path / "deep" / "agentops"
    s = store(directory)
    s.put(b"payload", 1)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    files = list(directory.iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_the_size_bound_drops_oldest_first_and_reports_spans_as_storage_full(tmp_path):
    s = store(tmp_path, max_bytes=100)
    assert s.put(b"a" * 40, 3).dropped == {}
    assert s.put(b"b" * 40, 5).dropped == {}
    result = s.put(b"c" * 40, 7)  # 120 bytes would exceed 100: the oldest (3 spans) goes
    assert result.stored and result.dropped == {"storage_full": 3}
    assert [s.claim().batch.payload[:1] for _ in range(2)] == [b"b", b"c"]


def test_a_batch_larger_than_the_store_is_refused_not_counted_as_dropped_from_it(tmp_path):
    """Never stored, so not "removed from offline storage": its spans stay lost under the
    cause that kept them from being delivered, with the store's refusal as the detail."""
    s = store(tmp_path, max_bytes=10)
    assert s.put(b"x" * 5, 1).stored
    result = s.put(b"x" * 11, 4)
    assert not result.stored and result.dropped == {}
    assert result.error == "a batch of 11 bytes is larger than the whole store (10 bytes, " \
                           "storage_max_mb)"
    assert s.status(fresh=True)["pending_spans"] == 1  # nothing older removed for it


def test_batches_older_than_the_age_bound_are_dropped_as_expired(tmp_path):
    s = store(tmp_path, max_age=0.2)
    s.put(b"old", 6)
    time.sleep(0.3)
    claim = s.claim()
    assert claim.batch is None and claim.dropped == {"expired": 6}
    assert s.status(fresh=True)["pending_spans"] == 0


def test_a_corrupt_entry_is_skipped_and_removed(tmp_path):
    s = store(tmp_path)
    s.put(b"will be damaged", 2)
    s.put(b"fine", 3)
    database = sqlite3.connect(tmp_path / DATABASE_NAME)
    database.execute("UPDATE batches SET payload = ? WHERE id = 1", (b"will be damagex",))
    database.commit()
    database.close()
    claim = s.claim()
    assert claim.batch.payload == b"fine"
    assert claim.dropped == {"corrupt": 2}
    assert s.status(fresh=True)["pending_batches"] == 1


def test_a_corrupt_database_file_is_moved_aside_and_a_new_one_used(tmp_path, caplog):
    (tmp_path / DATABASE_NAME).write_bytes(b"this is not an SQLite database" * 100)
    s = store(tmp_path)
    assert s.claim().batch is None
    assert s.put(b"fresh", 1).stored
    assert s.claim().batch.payload == b"fresh"
    aside = [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert aside, list(tmp_path.iterdir())
    assert "moved it to" in caplog.text


def test_a_corrupt_database_is_reported_unreadable_and_repair_moves_it_aside(tmp_path):
    (tmp_path / DATABASE_NAME).write_bytes(b"this is not an SQLite database" * 100)
    s = store(tmp_path)
    assert s.status(fresh=True)["error"].startswith("unreadable database (")
    aside = s.repair()
    assert aside is not None and aside.read_bytes().startswith(b"this is not")
    assert "error" not in s.status(fresh=True)
    assert s.repair() is None  # readable now: nothing to move


def test_databases_moved_aside_are_removed_once_older_than_the_age_bound(tmp_path):
    old, young = (tmp_path / f"{DATABASE_NAME}.corrupt-{n}-1" for n in (1, 2))
    for aside in (old, young):
        aside.write_bytes(b"unreadable")
    os.utime(old, (time.time() - 3 * 3600, time.time() - 3 * 3600))
    store(tmp_path, max_age=2 * 3600).claim()
    assert not old.exists()
    assert young.exists()  # kept for whoever wants to look into it


def test_status_of_a_store_never_written_creates_nothing(tmp_path):
    directory = tmp_path / "never"
    status = store(directory).status()
    assert status["pending_batches"] == 0 and status["enabled"] is True
    assert not directory.exists()


def test_an_unwritable_directory_is_an_error_value_not_an_exception(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = store(blocker / "sub").put(b"x", 1)
    assert not result.stored and result.error


# -- several processes ------------------------------------------------------------------

_WORKER = """
import json, sys, time
from agentops.export.storage import OfflineStore
directory, role, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = OfflineStore(directory, api_key="11111111-2222-3333-4444-555555555555",
                 endpoint="http://127.0.0.1:4318/v1/traces")
if role == "put":
    tag = sys.argv[4]
    for n in range(count):
        assert s.put(f"{tag}-{n}".encode(), 1).stored
    print(json.dumps({"put": count}))
elif role == "drain":
    taken = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 1.0:
        claim = s.claim()
        assert claim.error is None, claim.error
        if claim.batch is None:
            time.sleep(0.01)
            continue
        idle_since = time.monotonic()
        taken.append(claim.batch.payload.decode())
        assert s.delete(claim.batch)
    print(json.dumps({"taken": taken}))
elif role == "claim-and-hang":
    batch = s.claim().batch
    print(json.dumps({"claimed": batch.payload.decode()}), flush=True)
    time.sleep(60)
"""


def _worker(directory, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(_WORKER), str(directory),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_two_processes_in_turn_the_second_receives_what_the_first_stored(tmp_path):
    assert _result(_worker(tmp_path, "put", "20", "first")) == {"put": 20}
    taken = _result(_worker(tmp_path, "drain", "0"))["taken"]
    assert taken == [f"first-{n}" for n in range(20)]  # oldest first, each once
    assert store(tmp_path).status(fresh=True)["pending_batches"] == 0


def test_two_processes_at_once_store_everything_and_send_each_batch_once(tmp_path):
    writers = [_worker(tmp_path, "put", "60", tag) for tag in ("a", "b")]
    readers = [_worker(tmp_path, "drain", "0") for _ in range(2)]
    for writer in writers:
        assert _result(writer) == {"put": 60}
    taken = [_result(reader)["taken"] for reader in readers]
    everything = taken[0] + taken[1]
    assert sorted(everything) == sorted(f"{tag}-{n}" for tag in "ab" for n in range(60))
    assert len(set(everything)) == len(everything) == 120  # no batch sent twice
    for one in taken:  # each reader still met each writer's batches oldest first
        for tag in "ab":
            mine = [int(p.split("-")[1]) for p in one if p.startswith(tag)]
            assert mine == sorted(mine)


def test_a_process_killed_while_holding_a_batch_leaves_it_for_later(tmp_path):
    s = store(tmp_path, lease=1.0)
    s.put(b"held", 2)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_WORKER.replace("OfflineStore(directory,",
                                                               "OfflineStore(directory, lease=1.0,")),
         str(tmp_path), "claim-and-hang", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(holder.stdout.readline()) == {"claimed": "held"}
        assert s.claim().batch is None  # leased by the live holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    time.sleep(1.1)
    assert s.claim().batch.payload == b"held"


@pytest.mark.parametrize("journal", ["wal"])
def test_the_store_uses_the_wal_journal(tmp_path, journal):
    store(tmp_path).put(b"x", 1)
    mode = sqlite3.connect(tmp_path / DATABASE_NAME).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == journal


def test_claiming_a_large_batch_does_not_keep_other_processes_from_storing(tmp_path):
    """A put at exit waits at most 0.5 s for the store: the claim of a large stored batch
    (tens of MB, read and checksummed) must not hold the write lock meanwhile, or the
    exiting process loses its spans with "database is locked"."""
    import threading

    s = store(tmp_path)
    assert s.put(b"\1" * (45 * 1024 * 1024), 100).stored
    claimed: list = []
    claimer = threading.Thread(target=lambda: claimed.append(s.claim()))
    other_process = store(tmp_path)
    puts = []
    claimer.start()
    while claimer.is_alive():
        puts.append(other_process.put(b"exit batch", 1, timeout=0.1))
    claimer.join()
    assert claimed[0].batch is not None and claimed[0].batch.spans == 100
    assert len(puts) >= 2, "the claim was over at once: the test proves nothing"
    assert [put.error for put in puts if not put.stored] == []


_AT_ONCE = """
import json, multiprocessing, sys, tempfile
from agentops.export.exporter import STORE_TIMEOUT_AT_EXIT
from agentops.export.storage import OfflineStore

def put(directory, start, results):
    s = OfflineStore(directory, api_key="11111111-2222-3333-4444-555555555555",
                     endpoint="http://127.0.0.1:4318/v1/traces")
    start.wait()
    results.put(s.put(b"exit batch", 1, timeout=STORE_TIMEOUT_AT_EXIT).error)

if __name__ == "__main__":
    fork = multiprocessing.get_context("fork")
    errors = []
    for _ in range(int(sys.argv[1])):
        directory = tempfile.mkdtemp(dir=sys.argv[2])
        start, results = fork.Barrier(3), fork.Queue()
        workers = [fork.Process(target=put, args=(directory, start, results)) for _ in range(3)]
        for worker in workers:
            worker.start()
        errors += [results.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(30)
        stored = OfflineStore(directory, api_key="11111111-2222-3333-4444-555555555555",
                              endpoint="http://127.0.0.1:4318/v1/traces").status(fresh=True)
        errors += [f"{stored['pending_batches']} of 3 stored"] if stored["pending_batches"] != 3 else []
    print(json.dumps([error for error in errors if error]))
"""


def test_processes_storing_into_a_new_store_at_the_same_moment_all_succeed(tmp_path):
    """Pool workers terminated together store at exit together, each waiting at most
    STORE_TIMEOUT_AT_EXIT. SQLite answers some of their steps (switching a new database to
    WAL, opening while another process's last connection cleans up) with SQLITE_BUSY at
    once, without its busy timeout: about 1 put in 20 failed with "database is locked"."""
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(_AT_ONCE), "40", str(tmp_path)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_a_stored_request_splits_into_two_halves_keeping_resources_and_scopes():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from agentops.export.replay import split_request

    request = ExportTraceServiceRequest()
    for service, scopes in (("a", ("x", "y")), ("b", ("z",))):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name").value.string_value = service
        for scope in scopes:
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = scope
            for n in range(2):
                scope_spans.spans.add(name=f"{service}-{scope}-{n}")
    halves = split_request(request.SerializeToString())
    assert [spans for _, spans in halves] == [3, 3]
    seen = []
    for payload, _ in halves:
        for resource_spans in ExportTraceServiceRequest.FromString(payload).resource_spans:
            service = resource_spans.resource.attributes[0].value.string_value
            for scope_spans in resource_spans.scope_spans:
                seen += [(service, scope_spans.scope.name, span.name)
                         for span in scope_spans.spans]
    assert seen == [(name[0], name[2], name) for name in
                    ("a-x-0", "a-x-1", "a-y-0", "a-y-1", "b-z-0", "b-z-1")]
    single = ExportTraceServiceRequest()
    single.resource_spans.add().scope_spans.add().spans.add(name="alone")
    assert split_request(single.SerializeToString()) is None


_FORK_WHILE_STORING = """
import os, signal, sys, threading, time
from agentops.export.storage import OfflineStore

store = OfflineStore(sys.argv[1], api_key="11111111-2222-3333-4444-555555555555",
                     endpoint="http://127.0.0.1:4318/v1/traces")
stop = threading.Event()

def churn():   # the exporter and a diagnosis, always inside the store
    while not stop.is_set():
        store.put(b"x" * 3000, 1)
        claim = store.claim()
        if claim.batch is not None:
            store.delete(claim.batch)
        store.status(fresh=True)

for _ in range(2):
    threading.Thread(target=churn, daemon=True).start()
hung = failed = 0
for _ in range(int(sys.argv[2])):
    pid = os.fork()
    if pid == 0:   # a Pool worker storing at exit
        os._exit(0 if store.put(b"child", 1, timeout=0.5).stored else 1)
    deadline = time.monotonic() + 5
    while not os.waitpid(pid, os.WNOHANG)[0] and time.monotonic() < deadline:
        time.sleep(0.005)
    if time.monotonic() >= deadline:
        hung += 1
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
stop.set()
print("HUNG", hung)
"""


def test_children_forked_while_other_threads_are_inside_the_store_can_store(tmp_path):
    """SQLite's own mutexes are not fork-safe: a child forked while a parent thread was
    inside SQLite waited for ever in its first store call (a Pool worker that never ends).
    Before the fork hook, this program hung (its children and itself) within 300 forks."""
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(_FORK_WHILE_STORING),
                          str(tmp_path), "150"], capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr
    assert "HUNG 0" in run.stdout, run.stdout + run.stderr
    assert "unreadable" not in run.stderr, run.stderr
