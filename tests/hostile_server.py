"""A misbehaving HTTP(S) server for reliability tests: it answers every request with one
scripted fault (a body that drips forever, a redirect to itself, a huge or lying body,
silence after the headers, a TLS handshake the client cannot trust).

Raw sockets, so the faults are exactly the bytes written here; bound to 127.0.0.1 on a
free port; daemon threads; every loop ends by itself (``max_seconds``) even if the test
forgets ``stop()``.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = b"x" * 65536
"""Sent over and over for large bodies: the server allocates it once."""


@dataclass
class Connection:
    """What the server saw of one client connection."""

    request_line: str = ""
    bytes_sent: int = 0
    closed_by_client: bool = False
    ended_at: float | None = None


@dataclass
class HostileServer:
    """Answers every request with ``fault(server, connection, socket)``.

    ``fault`` writes whatever it likes; the helpers below cover the cases the tests need.
    """

    fault: Callable[[HostileServer, Connection, socket.socket], None]
    tls_context: ssl.SSLContext | None = None
    max_seconds: float = 30.0
    connections: list[Connection] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None
    _started_at: float = 0.0

    def start(self) -> HostileServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.1)
        self._listener = listener
        self._started_at = time.monotonic()
        threading.Thread(target=self._accept_loop, name="hostile-server", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or time.monotonic() - self._started_at > self.max_seconds

    def wait_for_connections(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len([c for c in self.connections if c.ended_at is not None]) >= count:
                return True
            time.sleep(0.02)
        return False

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self.stopping:
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        connection = Connection()
        self.connections.append(connection)
        try:
            sock.settimeout(2.0)
            if self.tls_context is not None:
                try:
                    sock = self.tls_context.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    connection.closed_by_client = True
                    return
            connection.request_line = _read_request(sock)
            self.fault(self, connection, sock)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            connection.closed_by_client = True
        except (TimeoutError, OSError):
            pass
        finally:
            connection.ended_at = time.monotonic()
            try:
                sock.close()
            except OSError:
                pass


def _read_request(sock: socket.socket) -> str:
    """The request line; headers and a Content-Length body are read and discarded."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return head.split(b"\r\n", 1)[0].decode("latin-1")


def _send(connection: Connection, sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    connection.bytes_sent += len(data)


def _peer_closed(sock: socket.socket) -> bool:
    """True once the client has closed its side (a read returns EOF or fails)."""
    if isinstance(sock, ssl.SSLSocket):  # MSG_PEEK is not available on TLS sockets
        return False
    try:
        sock.settimeout(0.0)
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(2.0)


def drip(interval: float = 0.2, chunked: bool = False) -> Callable:
    """200 whose body never ends: one byte every ``interval`` until the client leaves."""

    def fault(server: HostileServer, connection: Connection, sock: socket.socket) -> None:
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 1000000"
        _send(connection, sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              + framing + b"\r\n\r\n")
        while not server.stopping:
            if _peer_closed(sock):
                connection.closed_by_client = True
                return
            _send(connection, sock, b"1\r\n \r\n" if chunked else b" ")
            time.sleep(interval)

    return fault


def silence_after_headers(server: HostileServer, connection: Connection,
                          sock: socket.socket) -> None:
    """200 headers announcing a body that never comes."""
    _send(connection, sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          b"Content-Length: 100\r\n\r\n")
    while not server.stopping and not _peer_closed(sock):
        time.sleep(0.05)
    connection.closed_by_client = not server.stopping


def truncated_body(server: HostileServer, connection: Connection, sock: socket.socket) -> None:
    """200 announcing 1000 bytes, sending 10, then closing."""
    _send(connection, sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          b"Content-Length: 1000\r\nConnection: close\r\n\r\n{\"token\":")


def redirect_to_itself(server: HostileServer, connection: Connection,
                       sock: socket.socket) -> None:
    path = connection.request_line.split(" ")[1] if " " in connection.request_line else "/"
    _send(connection, sock, b"HTTP/1.1 302 Found\r\nLocation: " + server.url.encode()
          + path.encode() + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def large_body(size: int, chunked: bool = False, encoding: str | None = None,
               body: bytes | None = None) -> Callable:
    """200 with ``size`` bytes of body (or exactly ``body``), sent until the client leaves."""

    def fault(server: HostileServer, connection: Connection, sock: socket.socket) -> None:
        headers = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        if encoding:
            headers += b"Content-Encoding: " + encoding.encode() + b"\r\n"
        total = len(body) if body is not None else size
        headers += b"Transfer-Encoding: chunked\r\n" if chunked else (
            b"Content-Length: " + str(total).encode() + b"\r\n")
        _send(connection, sock, headers + b"\r\n")
        if body is not None:
            _send(connection, sock, body)
            return
        left = size
        while left > 0 and not server.stopping:
            piece = CHUNK[:min(left, len(CHUNK))]
            if chunked:
                _send(connection, sock, f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            else:
                _send(connection, sock, piece)
            left -= len(piece)
        if chunked:
            _send(connection, sock, b"0\r\n\r\n")

    return fault


def answer_ok(server: HostileServer, connection: Connection, sock: socket.socket) -> None:
    _send(connection, sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")


def self_signed_context(directory: Path) -> ssl.SSLContext | None:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1, or None when
    neither the ``cryptography`` package nor the ``openssl`` command can make one."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not _certificate_with_cryptography(cert, key) and not _certificate_with_openssl(cert, key):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _certificate_with_cryptography(cert: Path, key: Path) -> bool:
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return True


def _certificate_with_openssl(cert: Path, key: Path) -> bool:
    try:
        made = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return made.returncode == 0 and cert.exists() and key.exists()
