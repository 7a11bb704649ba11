"""The SDK's HTTP transport (the token API and the request loop): requests' ``HTTPAdapter``
with answers read within each request's deadline.

A socket timeout bounds one read, not a whole answer: a receiver that sends its status line
or headers a byte at a time would hold an export for as long as it likes. Here the status
line and every header line (and chunk-size line) are read with the clock checked before each
socket read, the socket's timeout set to the time left; past the deadline the read raises
``TimeoutError``, which urllib3 and requests report as a read timeout. Bodies are bounded
the same way by their readers (``export.request._read_body``, ``http.read_capped``).

Interim 1xx answers other than ``100 Continue`` (which ``http.client`` skips itself) and
``101 Switching Protocols`` are skipped as HTTP requires (RFC 9110, section 15.2), so that a
``103 Early Hints`` before the final answer is not taken for the answer.

Plugged in through public extension points: ``http.client.HTTPConnection.response_class``,
urllib3's ``ConnectionCls`` and ``PoolManager.pool_classes_by_scheme``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import weakref
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

HEADERS_TIMED_OUT = "the deadline came while the answer's headers were arriving"


def _is_interim(status_line: bytes) -> bool:
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False
    status = int(parts[1])
    return 100 <= status < 200 and status not in (100, 101)


class _DeadlineReader:
    """The response's buffered socket file, whose ``readline`` keeps to a deadline; every
    other method is the file's own."""

    def __init__(self, fp: Any, sock: socket.socket, deadline: float) -> None:
        self._fp = fp
        self._sock = sock
        self._deadline = deadline
        self._status_read = False

    def readline(self, limit: int = -1) -> bytes:
        line = self._readline(limit)
        if not self._status_read:
            self._status_read = True
            while _is_interim(line):
                while self._readline(limit) not in (b"\r\n", b"\n", b""):
                    pass  # the interim answer's header fields
                line = self._readline(limit)
        return line

    def _readline(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while limit < 0 or size < limit:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(HEADERS_TIMED_OUT)
            self._sock.settimeout(left)
            available = self._fp.peek(1)  # at most one socket read, when nothing is buffered
            if not available:
                break
            end = available.find(b"\n")
            wanted = len(available) if end < 0 else end + 1
            if limit >= 0:
                wanted = min(wanted, limit - size)
            chunk = self._fp.read(wanted)  # already buffered: no socket read
            parts.append(chunk)
            size += len(chunk)
            if chunk.endswith(b"\n"):
                break
        return b"".join(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        # urllib3 sets the socket's timeout to the request's read timeout just before the
        # answer is read: the time the loop allows this attempt.
        timeout = sock.gettimeout()
        if timeout is not None:
            self.fp = _DeadlineReader(self.fp, sock, time.monotonic() + timeout)  # type: ignore[assignment]


class Connections:
    """The sockets a session's adapters opened (weakly held), so that ``cut()`` can end
    whatever they are waiting for at once: an exit whose time to send ran out does not
    wait for an answer that was requested before it began (its deadline came from
    ``export_timeout``, not from the exit)."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.cut_at: float | None = None
        """When ``cut()`` last ran (``time.monotonic()``), else None."""

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def cut(self) -> None:
        """Shut every socket down: a read or write blocked on one returns (or fails) now."""
        self.cut_at = time.monotonic()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _WatchedConnection:
    connections: Connections

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        sock = getattr(self, "sock", None)
        if sock is not None:
            self.connections.opened(sock)


def _pool_classes(connections: Connections) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections read answers within the attempt's deadline and are
    known to ``connections``."""
    http_connection = type("_HTTPConnection", (_WatchedConnection, HTTPConnection),
                           {"response_class": _DeadlineResponse, "connections": connections})
    https_connection = type("_HTTPSConnection", (_WatchedConnection, HTTPSConnection),
                            {"response_class": _DeadlineResponse, "connections": connections})
    return {"http": type("_HTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_connection}),
            "https": type("_HTTPSPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": https_connection})}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections read answers within the attempt's deadline."""

    def __init__(self, connections: Connections) -> None:
        self._pool_classes = _pool_classes(connections)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._pool_classes)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(self._pool_classes)
        return manager


def mount(session: Any) -> Connections:
    """Give ``session`` fresh deadline-keeping adapters (also after a fork: pooled sockets
    are shared with the parent, new adapters open new ones); the sockets they open."""
    connections = Connections()
    session.mount("https://", DeadlineAdapter(connections))
    session.mount("http://", DeadlineAdapter(connections))
    return connections
