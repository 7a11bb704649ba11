"""HTTP plumbing for LocalBackend: a threaded HTTP/1.1 server on one port that reads
bodies within a size cap, answers with length-framed bodies on keep-alive connections,
and stops promptly even with idle or held connections open.

What the requests mean is not here: every request goes to an ``App``'s ``handle``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "MAX_BODY_BYTES",
    "App",
    "Handler",
    "RequestError",
    "Server",
    "is_loopback_host",
    "status_phrase",
]

_log = logging.getLogger("agentops.testing")

# A body larger than this is refused before it is read, so a misbehaving client cannot
# make the test process allocate without bound.
MAX_BODY_BYTES = 32 * 1024 * 1024


def status_phrase(status: int) -> str:
    """The reason phrase of an HTTP status ("Service Unavailable"), or "Error"."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def is_loopback_host(host: str) -> bool:
    """Whether binding to host keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RequestError(Exception):
    """A request whose body cannot be read: answer ``status`` with ``message``; when
    ``close`` is set the connection cannot carry another request (part of the body is
    unread)."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class App(Protocol):
    def handle(self, handler: Handler) -> None:
        """Answers one request; ``handler.command`` is its method, ``handler.route`` its
        path without query or trailing slash."""


class Server(ThreadingHTTPServer):
    """Serves ``app`` from a background thread once ``start()`` is called."""

    daemon_threads = True
    # Idle keep-alive connections would otherwise make server_close() wait forever;
    # stop() closes live connections itself.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._closing = False
        self._thread: threading.Thread | None = None
        super().__init__(address, Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the FQDN of the host, which can stall for
        # seconds on machines with slow or missing DNS.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or vanish mid-answer are normal in fault tests.
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def start(self, name: str) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stops accepting, drops every open connection and waits, ``timeout`` seconds in
        all at most, for the serving thread and the handler threads to end. A handler
        held by the app must be released by the app (before or while this runs)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
            connections = list(self._connections.items())
        self.shutdown()
        for conn, _ in connections:
            _drop(conn)  # unblocks handler threads sitting in a read on keep-alive connections
        self.server_close()
        threads = [self._thread] if self._thread is not None else []
        threads += [thread for _, thread in connections]
        for thread in threads:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if thread is not threading.current_thread():
                thread.join(timeout=remaining)

    def register(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections[conn] = threading.current_thread()
            late = self._closing
        if late:
            # Accepted just as stop() took its snapshot; nobody else will close it.
            _drop(conn)

    def unregister(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.pop(conn, None)


def _drop(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Handler(BaseHTTPRequestHandler):
    """One connection's requests; the app answers each through ``send_bytes`` or
    ``send_json`` and reads bodies through ``read_body``."""

    protocol_version = "HTTP/1.1"
    server_version = "AgentOpsLocalBackend/1.0"
    # Bounds how long a thread lingers on a keep-alive connection nobody uses.
    timeout = 300
    server: Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY the second waits
        # for the client's delayed ACK (~40 ms a response).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        _log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802
        self.server.app.handle(self)

    def do_POST(self) -> None:  # noqa: N802
        self.server.app.handle(self)

    @property
    def route(self) -> str:
        """The request's path without query string or trailing slash ("/" at least)."""
        return urlsplit(self.path).path.rstrip("/") or "/"

    # -- request body ---------------------------------------------------------

    def read_body(self) -> bytes:
        """The whole request body (chunked or length-framed), at most MAX_BODY_BYTES;
        raises RequestError, or ConnectionError when the client leaves mid-body."""
        transfer_encoding = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if transfer_encoding and transfer_encoding != "identity":
            if transfer_encoding != "chunked":
                raise RequestError(501, "Unsupported transfer encoding", close=True)
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise RequestError(400, "Invalid Content-Length", close=True) from None
        if length < 0:
            raise RequestError(400, "Invalid Content-Length", close=True)
        if length > MAX_BODY_BYTES:
            # The unread body makes the connection unusable for another request.
            raise RequestError(413, "Request body too large", close=True)
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("client closed the connection mid-body")
        return body

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise RequestError(400, "Malformed chunked body", close=True) from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise RequestError(413, "Request body too large", close=True)
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise ConnectionError("client closed the connection mid-body")
            parts.append(chunk)
            self.rfile.readline(1024)
        while True:
            trailer = self.rfile.readline(8192)
            if trailer in (b"\r\n", b"\n", b""):
                break
        return b"".join(parts)

    def discard_body(self) -> None:
        """Reads and drops the body, so the connection can carry the next request."""
        try:
            self.read_body()
        except RequestError:
            self.close_connection = True

    def send_request_error(self, error: RequestError) -> None:
        """Answers a request whose body could not be read, closing the connection when
        part of the body is left unread."""
        if error.close:
            self.close_connection = True
        self.send_json(error.status, {"error": error.message})

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, or None."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    # -- responses ------------------------------------------------------------

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        # Always framed by length: the client keeps pooled keep-alive connections.
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    def send_dripped(self, status: int, body: bytes, content_type: str, interval: float,
                     stopping: threading.Event) -> None:
        """Sends ``body`` one byte every ``interval`` seconds, until done or ``stopping``
        is set; the connection is closed afterwards."""
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(len(body)):
            if stopping.wait(interval):
                return
            try:
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
            except OSError:
                return
