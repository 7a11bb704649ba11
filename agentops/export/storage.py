"""Offline storage: encoded OTLP requests that could not be delivered, kept on disk until a
later process (or ``agentops flush``) sends them.

One SQLite database (standard library ``sqlite3``, WAL journal, busy timeout) in the
storage directory holds every stored batch: its encoded ``ExportTraceServiceRequest``
bytes, its span count, when it was stored, a SHA-256 of the payload, and which
*partition* it belongs to: a fingerprint of the API key (a salted SHA-256, never the key
or a token) and the exporter endpoint (without credentials). A process only sends the
batches of its own partition.

Several processes may use the store at once:

- ``claim`` takes the oldest unclaimed batch inside one write transaction and leases it to
  the caller, so a batch is sent by one process at a time; ``delete`` removes it once the
  receiver accepted it, ``release`` hands it back after a failure. A process killed while
  sending leaves its lease to run out, and the batch becomes claimable again. Leases are
  rows of their own table: SQLite rewrites a whole row, payload included, to change one
  column, and a lease written into a batch of tens of MB would keep the store locked
  longer than a put at exit waits (``exporter.STORE_TIMEOUT_AT_EXIT``). For the same reason
  a claimed payload is read and checked after the write transaction.
- The store is bounded by bytes and by age (50 MB and 48 hours by default). What is removed
  to respect the bounds goes oldest first and is reported, in spans, under the causes
  ``storage_full`` and ``expired`` so the caller can count it.
- A batch whose payload no longer matches its checksum is removed when met (reported as
  ``corrupt``); a database file SQLite cannot read is moved aside and a new one started.
  No storage fault raises into the caller: every operation returns a value and logs.

The directory is created 0700 and the database 0600 (SQLite gives its journal files the
database's mode). Connections are opened per operation, so the store is safe to use
across ``fork``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agentops import vocabulary as v
from agentops.timestamps import iso

logger = logging.getLogger("agentops")

DATABASE_NAME = "offline-spans.sqlite3"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_AGE = 48 * 3600.0
DEFAULT_LEASE = 60.0
"""Seconds a claimed batch stays invisible to other processes; longer than one send."""
BUSY_TIMEOUT = 2.0
"""Seconds an operation waits for another process's write transaction."""
BUSY_RETRY = 0.01
"""Seconds between attempts when SQLite answers busy without waiting (see ``_locked``)."""
STATUS_CACHE = 1.0
"""Seconds a diagnosis may reuse the last count read from disk (it must stay cheap)."""
CORRUPT = "corrupt"
ASIDE_MARK = ".corrupt-"
"""Between the database's name and when (and by which process) an unreadable one was moved
aside: ``offline-spans.sqlite3.corrupt-<unix time>-<pid>``."""

_FINGERPRINT_SALT = b"agentops offline storage v1\x00"

FORK_WAIT = BUSY_TIMEOUT + 1.0
"""Seconds a fork waits for the store operations in progress in this process."""


class _ForkGate:
    """Counts this process's threads inside SQLite. SQLite's own mutexes are not fork-safe:
    a thread inside SQLite when another thread forks leaves the child's SQLite locked for
    ever (a Pool worker storing at exit then never ends). A fork waits until no thread is
    inside (at most ``FORK_WAIT`` seconds) and holds new ones back until it is done; store
    operations otherwise run side by side."""

    def __init__(self) -> None:
        self.after_fork_in_child()

    @contextlib.contextmanager
    def inside(self, timeout: float) -> Iterator[None]:
        with self._cond:
            if not self._cond.wait_for(lambda: not self._forking, max(0.0, timeout)):
                raise sqlite3.OperationalError("database is locked (the process is forking)")
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                self._cond.notify_all()

    def before_fork(self) -> None:
        with self._cond:
            self._forking = True
            self._cond.wait_for(lambda: self._inside == 0, FORK_WAIT)

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        """Also the initial state: in a child, the threads that were inside are gone."""
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._forking = False


_fork_gate = _ForkGate()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_fork_gate.before_fork,
                        after_in_parent=_fork_gate.after_fork_in_parent,
                        after_in_child=_fork_gate.after_fork_in_child)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_fingerprint TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    stored_at REAL NOT NULL,
    spans INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    batch_id INTEGER PRIMARY KEY,
    lease_until REAL NOT NULL,
    lease_owner TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_partition ON batches (key_fingerprint, endpoint, id);
"""


def default_directory() -> str:
    """The user cache directory (``platformdirs``) with an ``agentops`` subfolder."""
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir(appname="agentops", appauthor=False))


def key_fingerprint(api_key: str) -> str:
    """A salted SHA-256 of the API key, 32 hex characters: enough to match stored batches to
    the key that made them, useless for recovering the key."""
    return hashlib.sha256(_FINGERPRINT_SALT + api_key.encode()).hexdigest()[:32]


def endpoint_partition(endpoint: str) -> str:
    """The exporter endpoint without user credentials (they must not reach the disk)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class StoredBatch:
    """A claimed batch: send ``payload``, then ``delete`` or ``release`` it."""

    id: int
    payload: bytes
    spans: int
    stored_at: float
    lease_owner: str


@dataclass
class PutResult:
    stored: bool
    dropped: dict[str, int] = field(default_factory=dict)
    """Spans removed to respect the bounds (or found corrupt), by cause."""
    error: str | None = None
    """Why the batch could not be stored, when it was not."""
    batch_id: int | None = None
    """The stored batch's id (``StoredBatch.id`` once claimed)."""


@dataclass
class ClaimResult:
    batch: StoredBatch | None
    dropped: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def add_spans(counts: dict[str, int], cause: str, spans: int) -> None:
    if spans > 0:
        counts[cause] = counts.get(cause, 0) + spans


class OfflineStore:
    """The stored batches of one partition (API key fingerprint + exporter endpoint)."""

    def __init__(self, directory: str | os.PathLike[str], *, api_key: str, endpoint: str,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_age: float = DEFAULT_MAX_AGE,
                 lease: float = DEFAULT_LEASE) -> None:
        self.directory = Path(directory).expanduser()
        self.path = self.directory / DATABASE_NAME
        self.fingerprint = key_fingerprint(api_key)
        self.endpoint = endpoint_partition(endpoint)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.lease = lease
        self.write_error: str | None = None
        """Why the latest ``put`` failed, None once one succeeds."""
        self.moved_aside: Path | None = None
        """Where this process last moved an unreadable database."""
        self._status: dict[str, Any] | None = None
        self._status_at = 0.0
        self._status_lock = threading.Lock()

    # -- opening -----------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create the directory (0700) and the database file (0600) if missing."""
        problem = self._unwritable()
        if problem is not None:
            raise OSError(problem)
        if not self.directory.is_dir():
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(self.directory, 0o700)
        if not self.path.exists():
            descriptor = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(descriptor)

    def _unwritable(self) -> str | None:
        """Why the store cannot be written here, when the file system says so at once (a
        file in the directory's place, a directory without write permission)."""
        existing = self.directory
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is not a directory"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing} is not writable"
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            return f"{self.path} is not writable"
        return None

    def _open(self, deadline: float) -> sqlite3.Connection:
        """A connection with the schema in place. A file SQLite cannot read is moved aside
        once and a fresh database started."""
        for second_try in (False, True):
            self._prepare()
            connection = sqlite3.connect(self.path, timeout=_left(deadline),
                                         isolation_level=None)
            try:
                if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.executescript(_SCHEMA)
                return connection
            except sqlite3.DatabaseError as error:
                connection.close()
                if second_try or not _is_corrupt(error):
                    raise
                self._move_aside(error)
        raise AssertionError("unreachable")

    def _locked(self, deadline: float) -> sqlite3.Connection:
        """A connection holding the write lock (``BEGIN IMMEDIATE``). SQLite's busy timeout
        covers waiting for another writer, but some steps answer SQLITE_BUSY at once without
        waiting: switching a new database to WAL while another process opens it, or opening
        while another process's last connection is cleaning up its WAL file. Those are
        retried here until ``deadline`` (``time.monotonic()``)."""
        while True:
            connection: sqlite3.Connection | None = None
            try:
                connection = self._open(deadline)
                connection.execute("BEGIN IMMEDIATE")
                return connection
            except sqlite3.OperationalError as error:
                if connection is not None:
                    connection.close()
                if not _is_busy(error) or time.monotonic() + BUSY_RETRY > deadline:
                    raise
                time.sleep(BUSY_RETRY * (0.5 + random.random()))

    @contextlib.contextmanager
    def _transaction(self, timeout: float = BUSY_TIMEOUT,
                     create: bool = True) -> Iterator[sqlite3.Connection | None]:
        """A write transaction, or None when there is no database and ``create`` is false."""
        if not create and not self.path.exists():
            yield None
            return
        deadline = time.monotonic() + timeout
        with _fork_gate.inside(timeout):
            connection = self._locked(deadline)
            try:
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.DatabaseError as error:
                if _is_corrupt(error):
                    connection.close()
                    self._move_aside(error)
                raise
            finally:
                connection.close()

    def _move_aside(self, error: BaseException) -> None:
        aside = self.path.with_name(f"{self.path.name}{ASIDE_MARK}{int(time.time())}-{os.getpid()}")
        logger.warning("Offline storage database %s is unreadable (%s); moved it to %s and "
                       "started a new one", self.path, error, aside)
        for suffix in ("", "-wal", "-shm", "-journal"):
            source = Path(f"{self.path}{suffix}")
            with contextlib.suppress(OSError):
                os.replace(source, Path(f"{aside}{suffix}"))
        self.moved_aside = aside

    def _remove_old_aside(self) -> None:
        """Remove databases moved aside longer than ``max_age`` ago: whatever they held
        has expired. Younger ones stay for whoever wants to look into them."""
        cutoff = time.time() - self.max_age
        with contextlib.suppress(OSError):
            for aside in self.directory.glob(f"{DATABASE_NAME}{ASIDE_MARK}*"):
                with contextlib.suppress(OSError):
                    if aside.stat().st_mtime < cutoff:
                        aside.unlink()

    def repair(self) -> Path | None:
        """Open the database for writing, which moves an unreadable one aside and starts a
        new one; where it was moved, or None when it was readable (or missing)."""
        self.moved_aside = None
        with contextlib.suppress(Exception), self._transaction(create=False):
            pass
        self._changed()
        return self.moved_aside

    # -- operations --------------------------------------------------------------------

    def put(self, payload: bytes, spans: int, *, timeout: float = BUSY_TIMEOUT) -> PutResult:
        """Store one encoded request of ``spans`` spans. Older batches (of any partition)
        are removed first to keep within the bounds; a payload larger than the whole
        store is refused (``error`` says so; the caller's spans stay under their cause)."""
        size = len(payload)
        if size > self.max_bytes:  # never stored, so not dropped from the store: refused
            return PutResult(False, {}, f"a batch of {size} bytes is larger than the whole "
                                        f"store ({self.max_bytes} bytes, storage_max_mb)")
        dropped: dict[str, int] = {}
        try:
            with self._transaction(timeout) as db:
                assert db is not None
                now = time.time()
                self._expire(db, now, dropped)
                used = db.execute("SELECT COALESCE(SUM(size), 0) FROM batches").fetchone()[0]
                while used + size > self.max_bytes:
                    oldest = db.execute("SELECT id, spans, size FROM batches "
                                        "ORDER BY id LIMIT 1").fetchone()
                    if oldest is None:
                        break
                    db.execute("DELETE FROM batches WHERE id = ?", (oldest[0],))
                    db.execute("DELETE FROM leases WHERE batch_id = ?", (oldest[0],))
                    add_spans(dropped, v.STORAGE_FULL, oldest[1])
                    used -= oldest[2]
                batch_id = self._insert(db, payload, spans, now)
        except Exception as error:  # a full disk or a locked store must not break the export
            self.write_error = _describe(error)
            self._changed()
            return PutResult(False, {}, self.write_error)
        self.write_error = None
        self._changed()
        return PutResult(True, dropped, batch_id=batch_id)

    def _insert(self, db: sqlite3.Connection, payload: bytes, spans: int,
                stored_at: float) -> int | None:
        return db.execute("INSERT INTO batches (key_fingerprint, endpoint, stored_at, spans, "
                          "size, sha256, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (self.fingerprint, self.endpoint, stored_at, spans, len(payload),
                           hashlib.sha256(payload).hexdigest(),
                           sqlite3.Binary(payload))).lastrowid

    def claim(self, *, timeout: float = BUSY_TIMEOUT) -> ClaimResult:
        """Lease the oldest batch of this partition that no live lease holds. The lease is
        taken in a short write transaction and the payload read and checked after it: a
        large payload must not keep other processes from storing meanwhile (a put at exit
        waits at most ``exporter.STORE_TIMEOUT_AT_EXIT``)."""
        dropped: dict[str, int] = {}
        self._remove_old_aside()
        try:
            while True:
                with self._transaction(timeout, create=False) as db:
                    if db is None:
                        return ClaimResult(None)
                    now = time.time()
                    self._expire(db, now, dropped)
                    row = db.execute(
                        "SELECT id, spans, stored_at, sha256 FROM batches "
                        "WHERE key_fingerprint = ? AND endpoint = ? AND id NOT IN "
                        "(SELECT batch_id FROM leases WHERE lease_until >= ?) "
                        "ORDER BY stored_at, id LIMIT 1",
                        (self.fingerprint, self.endpoint, now)).fetchone()
                    if row is None:
                        return ClaimResult(None, dropped)
                    batch_id, spans, stored_at, digest = row
                    owner = uuid.uuid4().hex
                    db.execute("INSERT OR REPLACE INTO leases (batch_id, lease_until, "
                               "lease_owner) VALUES (?, ?, ?)", (batch_id, now + self.lease, owner))
                found, payload = self._payload(batch_id, owner, timeout)
                if not found:
                    continue  # removed meanwhile (the size bound, another process)
                if (isinstance(spans, int) and spans >= 0
                        and hashlib.sha256(payload).hexdigest() == digest):
                    return ClaimResult(StoredBatch(batch_id, payload, spans, stored_at, owner),
                                       dropped)
                with self._transaction(timeout, create=False) as db:
                    if db is not None:
                        self._remove_leased(db, batch_id, owner)
                add_spans(dropped, CORRUPT, spans if isinstance(spans, int) else 0)
                logger.warning("Offline storage: removed a corrupt stored batch (%s spans)",
                               spans)
        except Exception as error:
            return ClaimResult(None, dropped, _describe(error))
        finally:
            if dropped:
                self._changed()

    def _payload(self, batch_id: int, owner: str, timeout: float) -> tuple[bool, bytes]:
        """(found, payload) of a batch this caller leased, read without a write lock."""
        with _fork_gate.inside(timeout):
            connection = sqlite3.connect(self.path, timeout=max(0.01, timeout))
            try:
                row = connection.execute(
                    "SELECT payload FROM batches WHERE id = ? AND id IN (SELECT batch_id FROM "
                    "leases WHERE batch_id = ? AND lease_owner = ?)",
                    (batch_id, batch_id, owner)).fetchone()
            finally:
                connection.close()
        if row is None:
            return False, b""
        return True, bytes(row[0]) if row[0] is not None else b""

    def delete(self, batch: StoredBatch, *, timeout: float = BUSY_TIMEOUT) -> bool:
        """Remove a batch the receiver accepted; False if the lease was lost meanwhile."""
        try:
            with self._transaction(timeout, create=False) as db:
                if db is None:
                    return False
                done = self._remove_leased(db, batch.id, batch.lease_owner)
        except Exception as error:
            logger.warning("Offline storage: could not remove a delivered batch: %s",
                           _describe(error))
            return False
        self._changed()
        return done == 1

    def replace(self, batch: StoredBatch, parts: list[tuple[bytes, int]], *,
                timeout: float = BUSY_TIMEOUT) -> bool:
        """Replace a leased batch by ``parts`` (``(payload, spans)``, e.g. its halves), in
        one transaction, keeping its place in the order; False if the lease was lost."""
        try:
            with self._transaction(timeout, create=False) as db:
                if db is None:
                    return False
                row = db.execute("SELECT stored_at FROM batches WHERE id = ?",
                                 (batch.id,)).fetchone()
                if row is None or not self._remove_leased(db, batch.id, batch.lease_owner):
                    return False
                for payload, spans in parts:
                    self._insert(db, payload, spans, stored_at=row[0])
        except Exception as error:
            logger.warning("Offline storage: could not split a stored batch: %s",
                           _describe(error))
            return False
        self._changed()
        return True

    def release(self, batch: StoredBatch, *, timeout: float = BUSY_TIMEOUT) -> None:
        """Hand a batch back for a later attempt (its send failed for a transient cause)."""
        with contextlib.suppress(Exception), self._transaction(timeout, create=False) as db:
            if db is not None:
                db.execute("DELETE FROM leases WHERE batch_id = ? AND lease_owner = ?",
                           (batch.id, batch.lease_owner))

    def discard(self, batch: StoredBatch, *, timeout: float = BUSY_TIMEOUT) -> None:
        """Remove a batch the receiver refused for good (it would never be accepted)."""
        self.delete(batch, timeout=timeout)

    @staticmethod
    def _remove_leased(db: sqlite3.Connection, batch_id: int, owner: str) -> int:
        """Remove a batch if ``owner`` still holds its lease; 1 if removed, else 0."""
        held = db.execute("DELETE FROM leases WHERE batch_id = ? AND lease_owner = ?",
                          (batch_id, owner)).rowcount
        if not held:
            return 0
        return int(db.execute("DELETE FROM batches WHERE id = ?", (batch_id,)).rowcount)

    def _expire(self, db: sqlite3.Connection, now: float, dropped: dict[str, int]) -> None:
        cutoff = now - self.max_age
        batches, spans = db.execute("SELECT COUNT(*), COALESCE(SUM(spans), 0) FROM batches "
                                    "WHERE stored_at < ?", (cutoff,)).fetchone()
        if batches:
            db.execute("DELETE FROM leases WHERE batch_id IN "
                       "(SELECT id FROM batches WHERE stored_at < ?)", (cutoff,))
            db.execute("DELETE FROM batches WHERE stored_at < ?", (cutoff,))
            add_spans(dropped, v.EXPIRED, spans)

    # -- facts -------------------------------------------------------------------------

    def status(self, *, fresh: bool = False) -> dict[str, Any]:
        """``{enabled, directory, pending_batches, pending_spans, bytes, oldest_at}`` for
        this partition, read from disk at most once per ``STATUS_CACHE`` seconds unless
        ``fresh``; ``error`` is added when the store could not be read, ``write_error`` when
        the latest batch could not be stored or the directory cannot be written."""
        with self._status_lock:
            now = time.monotonic()
            if not fresh and self._status is not None and now - self._status_at < STATUS_CACHE:
                return dict(self._status)
        status: dict[str, Any] = {"enabled": True, "directory": str(self.directory),
                                  "pending_batches": 0, "pending_spans": 0, "bytes": 0,
                                  "oldest_at": None}
        if self.path.exists():
            try:
                with _fork_gate.inside(BUSY_TIMEOUT):
                    connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                                 timeout=BUSY_TIMEOUT)
                    try:
                        row = connection.execute(
                            "SELECT COUNT(*), COALESCE(SUM(spans), 0), COALESCE(SUM(size), 0), "
                            "MIN(stored_at) FROM batches WHERE key_fingerprint = ? AND "
                            "endpoint = ?", (self.fingerprint, self.endpoint)).fetchone()
                    finally:
                        connection.close()
                status.update(pending_batches=row[0], pending_spans=row[1], bytes=row[2],
                              oldest_at=iso(row[3]))
            except sqlite3.DatabaseError as error:
                if _is_corrupt(error):
                    status["error"] = f"unreadable database ({error})"
                elif "no such table" not in str(error):
                    status["error"] = _describe(error)
            except Exception as error:
                status["error"] = _describe(error)
        write_error = self.write_error or self._unwritable()
        if write_error:
            status["write_error"] = write_error
        with self._status_lock:
            self._status, self._status_at = status, time.monotonic()
        return dict(status)

    def _changed(self) -> None:
        with self._status_lock:
            self._status = None


def disabled_status(directory: str | None = None) -> dict[str, Any]:
    return {"enabled": False, "directory": directory, "pending_batches": 0, "pending_spans": 0,
            "bytes": 0, "oldest_at": None}


def _is_corrupt(error: sqlite3.DatabaseError) -> bool:
    text = str(error).lower()
    return not isinstance(error, sqlite3.OperationalError) or any(
        marker in text for marker in ("not a database", "malformed", "corrupt"))


def _is_busy(error: sqlite3.OperationalError) -> bool:
    primary = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF  # extended codes too
    return primary in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (typeshed lacks the names)


def _left(deadline: float) -> float:
    return max(0.01, deadline - time.monotonic())


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


