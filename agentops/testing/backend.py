"""An in-process, AgentOps-compatible backend for tests, demos and offline checks.

It speaks the same wire contract as the hosted service: the token exchange on
``/v3/auth/token`` and an OTLP/HTTP trace receiver on ``/v1/traces``, both on one
port. Every answer can be bent at runtime (status codes, delays, hangs) so client
code can be exercised against outages without any network access.
"""

from __future__ import annotations

import collections
import copy
import html
import ipaddress
import json
import logging
import math
import re
import secrets
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = [
    "APP_PATH",
    "AUTH_TOKEN_PATH",
    "DEFAULT_TOKEN_TTL",
    "HEALTH_PATH",
    "MAX_BODY_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_RECORDS",
    "OTLP_TRACES_PATH",
    "LocalBackend",
]

_log = logging.getLogger("agentops.testing")

AUTH_TOKEN_PATH = "/v3/auth/token"
OTLP_TRACES_PATH = "/v1/traces"
APP_PATH = "/app"
HEALTH_PATH = "/health"

DEFAULT_TOKEN_TTL: float = 30 * 24 * 3600
# A body larger than this is refused before it is read, so a misbehaving client
# cannot make the test process allocate without bound.
MAX_BODY_BYTES = 32 * 1024 * 1024
# Compressed bodies are capped separately: a small gzip bomb must not get past
# the raw-size limit and balloon in memory.
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
# Long-running standalone instances keep only the most recent records.
MAX_RECORDS = 100_000

_JWT_ALGORITHM = "HS256"
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_HOLD_POLL = 0.25
_AUTH_ERRORS = {
    400: "Invalid API key format",
    401: "Unauthorized",
    403: "Invalid API key",
    500: "Authentication failed",
}
_PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")

_Record = dict[str, Any]


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _check_status(status: Any, *, name: str) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"{name} must be an HTTP status code between 200 and 599, got {status!r}")
    return status


def _check_seconds(value: Any, *, name: str, allow_negative: bool = False) -> float:
    seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds) or (seconds < 0 and not allow_negative):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return seconds


class _Knob:
    """A fault knob: checked when set, read and written under the backend's lock. Setting
    one wakes the handlers held by a hang, so they see the change at once."""

    def __init__(self, check: Callable[..., Any]) -> None:
        self._check = check

    def __set_name__(self, owner: type, name: str) -> None:
        self._name, self._slot = name, f"_{name}"

    def __get__(self, backend: Any, owner: type | None = None) -> Any:
        if backend is None:
            return self
        with backend._lock:
            return getattr(backend, self._slot)

    def __set__(self, backend: Any, value: Any) -> None:
        checked = self._check(value, name=self._name)
        with backend._lock:
            setattr(backend, self._slot, checked)
            backend._changed.notify_all()


def _optional(check: Callable[..., Any]) -> Callable[..., Any]:
    return lambda value, name: None if value is None else check(value, name=name)


def _partial_success(value: Any, name: str) -> tuple[int, str]:
    rejected, message = value
    return int(rejected), str(message)


def _body(body: Any, name: str) -> bytes | None:
    value = body.encode("utf-8") if isinstance(body, str) else body
    if value is not None and not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name} must be bytes, str or None")
    return bytes(value) if value is not None else None


def _normalize_keys(keys: Iterable[str]) -> frozenset:
    if isinstance(keys, str):
        # A bare string would otherwise be accepted as a set of single characters.
        keys = [keys]
    return frozenset(str(k).strip().lower() for k in keys)


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(key_values: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in key_values}


def _spans_from_request(request: ExportTraceServiceRequest) -> list[_Record]:
    spans: list[_Record] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name or None
            for span in scope_spans.spans:
                spans.append(
                    {
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "attributes": _attributes(span.attributes),
                        "status_code": int(span.status.code),
                        "status_message": span.status.message,
                        "events": [{"name": event.name,
                                    "attributes": _attributes(event.attributes)}
                                   for event in span.events],
                        "kind": int(span.kind),
                        "start_time_unix_nano": int(span.start_time_unix_nano),
                        "end_time_unix_nano": int(span.end_time_unix_nano),
                        "scope": scope,
                        # Each span gets its own copy so callers can mutate freely.
                        "resource": dict(resource),
                    }
                )
    return spans


def _copy_records(records: Iterable[_Record]) -> list[_Record]:
    # Attribute values may be lists or nested dicts; callers must not reach the originals.
    return [copy.deepcopy(record) for record in records]


class _BodyError(Exception):
    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections would otherwise make server_close() wait forever;
    # the backend closes live connections itself when it stops.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], backend: LocalBackend, family: int) -> None:
        self.address_family = family
        self.backend = backend
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AgentOpsLocalBackend/1.0"
    # Bounds how long a thread lingers on a keep-alive connection nobody uses.
    timeout = 300
    server: _Server

    # -- connection lifecycle -------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY the second waits
        # for the client's delayed ACK (~40 ms a response).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.backend._register_connection(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.backend._unregister_connection(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        _log.debug("%s - %s", self.address_string(), format % args)

    # -- dispatch -------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        if path == OTLP_TRACES_PATH:
            self.server.backend._handle_otlp(self)
        elif path == AUTH_TOKEN_PATH:
            self.server.backend._handle_auth_post(self)
        else:
            self._discard_body()
            if self._is_known(path):
                self.send_json(405, {"error": "Method not allowed"}, headers={"Allow": "GET"})
            else:
                self.send_json(404, {"error": "Not found"})

    def do_GET(self) -> None:  # noqa: N802
        path = self._path()
        if path == AUTH_TOKEN_PATH:
            self.server.backend._handle_auth_get(self)
        elif path == APP_PATH or path.startswith(APP_PATH + "/"):
            self.server.backend._handle_app(self, path)
        elif path == HEALTH_PATH:
            self.send_json(200, {"status": "ok"})
        elif path == OTLP_TRACES_PATH:
            self.send_json(405, {"error": "Method not allowed"}, headers={"Allow": "POST"})
        else:
            self.send_json(404, {"error": "Not found"})

    def _path(self) -> str:
        path = urlsplit(self.path).path
        return path.rstrip("/") or "/"

    @staticmethod
    def _is_known(path: str) -> bool:
        return path == HEALTH_PATH or path == APP_PATH or path.startswith(APP_PATH + "/")

    # -- request body ---------------------------------------------------------

    def read_body(self) -> bytes:
        """Reads the whole request body, honouring the size cap; raises _BodyError."""
        transfer_encoding = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if transfer_encoding and transfer_encoding != "identity":
            if transfer_encoding != "chunked":
                raise _BodyError(501, "Unsupported transfer encoding", close=True)
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _BodyError(400, "Invalid Content-Length", close=True) from None
        if length < 0:
            raise _BodyError(400, "Invalid Content-Length", close=True)
        if length > MAX_BODY_BYTES:
            # The unread body makes the connection unusable for another request.
            raise _BodyError(413, "Request body too large", close=True)
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
                raise _BodyError(400, "Malformed chunked body", close=True) from None
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(413, "Request body too large", close=True)
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

    def _discard_body(self) -> None:
        try:
            self.read_body()
        except _BodyError:
            self.close_connection = True

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

    def send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_bytes(status, body, "application/json", headers)

    def bearer_token(self) -> str | None:
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()


class LocalBackend:
    """An AgentOps-compatible backend served from a background thread.

    All keyword arguments are also readable and writable as attributes while the
    backend runs; reads and writes are serialized so a test can inject faults
    between two client requests. Inspection properties return copies.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        accepted_keys: Iterable[str] | None = None,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        project_id: str | None = None,
        auth_status: int | None = None,
        auth_body: bytes | str | None = None,
        auth_content_type: str = "application/json",
        auth_delay: float = 0.0,
        auth_hang: bool = False,
        otlp_statuses: Iterable[int] | None = None,
        otlp_status: int | None = None,
        otlp_retry_after: float | None = None,
        otlp_delay: float = 0.0,
        otlp_hang: bool = False,
        otlp_partial_success: tuple[int, str] | None = None,
        otlp_location: str | None = None,
        otlp_max_bytes: int | None = None,
        otlp_drip: float = 0.0,
        auth_retry_after: float | None = None,
        token_leeway: float = 0.0,
    ) -> None:
        if api_key is not None and not _UUID_RE.match(api_key):
            raise ValueError("api_key must be a UUID string")
        self._host = host
        self._requested_port = int(port)
        self._port: int | None = None
        self._api_key = (api_key or str(uuid.uuid4())).lower()
        self._project_id = project_id or str(uuid.uuid4())
        # Per instance, so tokens from one backend are forgeries to any other.
        self._secret = secrets.token_bytes(32)

        # One lock guards knobs, records and connection bookkeeping; the condition
        # on it wakes span waiters and held (hanging) handlers.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()

        self._initial_accepted_keys = (
            _normalize_keys(accepted_keys) if accepted_keys is not None else None
        )
        self._initial_token_ttl = _check_seconds(token_ttl, name="token_ttl", allow_negative=True)
        self._accepted_keys: frozenset = frozenset()
        self._token_ttl = self._initial_token_ttl
        self._reset_knobs()
        self.auth_status = auth_status
        self.auth_body = auth_body
        self.auth_content_type = auth_content_type
        self.auth_delay = auth_delay
        self.auth_hang = auth_hang
        self.otlp_statuses = list(otlp_statuses or ())
        self.otlp_status = otlp_status
        self.otlp_retry_after = otlp_retry_after
        self.otlp_delay = otlp_delay
        self.otlp_hang = otlp_hang
        self.otlp_partial_success = otlp_partial_success
        self.otlp_location = otlp_location
        self.otlp_max_bytes = otlp_max_bytes
        self.otlp_drip = otlp_drip
        self.auth_retry_after = auth_retry_after
        self.token_leeway = token_leeway

        self._spans: collections.deque[_Record] = collections.deque(maxlen=MAX_RECORDS)
        self._span_total = 0
        self._otlp_requests: collections.deque[_Record] = collections.deque(maxlen=MAX_RECORDS)
        self._otlp_total = 0
        self._receiver_checks: collections.deque[_Record] = collections.deque(maxlen=MAX_RECORDS)
        self._auth_requests: collections.deque[_Record] = collections.deque(maxlen=MAX_RECORDS)
        self._tokens_issued = 0

        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> LocalBackend:
        """Starts serving; a restart after stop() reuses the same port so URLs stay valid."""
        with self._lock:
            if self._server is not None:
                return self
            port = self._port if self._port is not None else self._requested_port
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            server = _Server((self._host, port), self, family)
            self._stopping.clear()
            self._server = server
            self._port = int(server.server_address[1])
            self._serve_thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"agentops-local-backend:{self._port}",
                daemon=True,
            )
            self._serve_thread.start()
        _log.debug("LocalBackend listening on %s", self.api_url)
        return self

    def stop(self) -> None:
        """Stops serving and drops open connections, including held ones. Idempotent."""
        with self._lock:
            server, thread = self._server, self._serve_thread
            if server is None:
                return
            self._server = None
            self._serve_thread = None
            self._stopping.set()
            self._changed.notify_all()
            connections = list(self._connections.items())
        server.shutdown()
        for conn, _ in connections:
            # Unblocks handler threads sitting in a read on keep-alive connections.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if thread is not None:
            thread.join(timeout=2)
        deadline = time.monotonic() + 1.0
        for _, handler_thread in connections:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if handler_thread is not threading.current_thread():
                handler_thread.join(timeout=remaining)
        _log.debug("LocalBackend on port %s stopped", self._port)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._server is not None

    def __enter__(self) -> LocalBackend:
        return self.start()

    def __exit__(
        self,
        exc_type: type | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalBackend {self._host}:{self._port or self._requested_port} {state}>"

    def _register_connection(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections[conn] = threading.current_thread()
            late = self._stopping.is_set()
        if late:
            # Accepted just as stop() took its snapshot; nobody else will close it.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _unregister_connection(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.pop(conn, None)

    # -- addresses ------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port; before the first start() it is the requested one."""
        return self._port if self._port is not None else self._requested_port

    def _base_url(self) -> str:
        if self._port is None and self._requested_port == 0:
            raise RuntimeError("LocalBackend has no port yet; call start() first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self._base_url()

    @property
    def otlp_url(self) -> str:
        return self._base_url() + OTLP_TRACES_PATH

    @property
    def app_url(self) -> str:
        return self._base_url() + APP_PATH

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def project_id(self) -> str:
        return self._project_id

    # -- knobs ----------------------------------------------------------------

    def _reset_knobs(self) -> None:
        with self._lock:
            self._accepted_keys = (
                self._initial_accepted_keys
                if self._initial_accepted_keys is not None
                else frozenset({self._api_key})
            )
            self._token_ttl = self._initial_token_ttl
            self._auth_status: int | None = None
            self._auth_body: bytes | None = None
            self._auth_content_type = "application/json"
            self._auth_delay = 0.0
            self._auth_hang = False
            self._otlp_statuses: collections.deque[int] = collections.deque()
            self._otlp_status: int | None = None
            self._otlp_retry_after: float | None = None
            self._otlp_delay = 0.0
            self._otlp_hang = False
            self._otlp_partial_success: tuple[int, str] | None = None
            self._otlp_location: str | None = None
            self._otlp_max_bytes: int | None = None
            self._otlp_drip = 0.0
            self._auth_retry_after: float | None = None
            self._auth_statuses: collections.deque[int] = collections.deque()
            self._token_leeway = 0.0
            self._changed.notify_all()

    @property
    def accepted_keys(self) -> frozenset:
        with self._lock:
            return self._accepted_keys

    @accepted_keys.setter
    def accepted_keys(self, keys: Iterable[str] | None) -> None:
        normalized = _normalize_keys(keys) if keys is not None else frozenset({self._api_key})
        with self._lock:
            self._accepted_keys = normalized

    token_ttl = _Knob(lambda value, name: _check_seconds(value, name=name, allow_negative=True))
    auth_status = _Knob(_optional(_check_status))
    auth_body = _Knob(_body)
    auth_content_type = _Knob(lambda value, name: str(value))
    auth_delay = _Knob(_check_seconds)
    auth_hang = _Knob(lambda value, name: bool(value))
    otlp_status = _Knob(_optional(_check_status))
    otlp_retry_after = _Knob(_optional(_check_seconds))
    otlp_delay = _Knob(_check_seconds)
    otlp_hang = _Knob(lambda value, name: bool(value))
    otlp_partial_success = _Knob(_optional(_partial_success))
    """(rejected spans, error message) in the ExportTraceServiceResponse of a 200."""
    otlp_location = _Knob(_optional(lambda value, name: str(value)))
    """Location header sent with a forced 3xx status."""
    otlp_max_bytes = _Knob(_optional(lambda value, name: int(value)))
    """Requests with a larger body are answered 413, as a size-limited receiver does."""
    otlp_drip = _Knob(_check_seconds)
    """Seconds between the bytes of a 200's body (a receiver that drips its answer)."""
    auth_retry_after = _Knob(_optional(_check_seconds))
    """Retry-After sent with a 429 or 503 from the token endpoint."""
    token_leeway = _Knob(_check_seconds)
    """Seconds past ``exp`` the receiver still accepts a token (a receiver whose clock is
    behind the client's)."""

    def queue_auth_statuses(self, *statuses: int) -> None:
        """Statuses the next token requests answer, one each, before the usual answer."""
        values = [_check_status(s, name="auth status") for s in statuses]
        with self._lock:
            self._auth_statuses.extend(values)

    @property
    def otlp_statuses(self) -> list[int]:
        """Statuses still queued; each OTLP request consumes the first one."""
        with self._lock:
            return list(self._otlp_statuses)

    @otlp_statuses.setter
    def otlp_statuses(self, statuses: Iterable[int]) -> None:
        values = [_check_status(s, name="otlp_statuses entry") for s in statuses]
        with self._lock:
            self._otlp_statuses = collections.deque(values)

    def queue_otlp_statuses(self, *statuses: int) -> None:
        """Appends statuses that the next OTLP requests answer, one each, in order."""
        values = [_check_status(s, name="otlp status") for s in statuses]
        with self._lock:
            self._otlp_statuses.extend(values)

    # -- inspection -----------------------------------------------------------

    @property
    def spans(self) -> list[_Record]:
        with self._lock:
            return _copy_records(self._spans)

    @property
    def span_names(self) -> list[str]:
        with self._lock:
            return [span["name"] for span in self._spans]

    def spans_for_trace(self, trace_id: str) -> list[_Record]:
        wanted = trace_id.lower()
        with self._lock:
            return _copy_records(s for s in self._spans if s["trace_id"] == wanted)

    @property
    def otlp_requests(self) -> list[_Record]:
        with self._lock:
            return _copy_records(self._otlp_requests)

    @property
    def receiver_checks(self) -> list[_Record]:
        """Empty export requests (a client's receiver check). They are kept apart from
        ``otlp_requests`` and answered by the persistent knobs only: queued statuses script
        what requests carrying spans meet."""
        with self._lock:
            return _copy_records(self._receiver_checks)

    @property
    def auth_requests(self) -> list[_Record]:
        with self._lock:
            return _copy_records(self._auth_requests)

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._tokens_issued

    def wait_for_spans(self, n: int, timeout: float = 10) -> bool:
        """Blocks until at least n spans were accepted since the last reset()."""
        with self._changed:
            return self._changed.wait_for(lambda: self._span_total >= n, timeout=timeout)

    def wait_for_otlp_requests(self, n: int, timeout: float = 10) -> bool:
        """Blocks until at least n OTLP requests (answered or held) were seen."""
        with self._changed:
            return self._changed.wait_for(lambda: self._otlp_total >= n, timeout=timeout)

    def reset(self) -> None:
        """Forgets recorded data and clears fault knobs.

        accepted_keys and token_ttl return to their constructor values; the
        signing secret is kept, so tokens already issued stay valid.
        """
        with self._lock:
            self._spans.clear()
            self._span_total = 0
            self._otlp_requests.clear()
            self._otlp_total = 0
            self._receiver_checks.clear()
            self._auth_requests.clear()
            self._tokens_issued = 0
            self._reset_knobs()

    # -- tokens ---------------------------------------------------------------

    def issue_token(self, api_key: str | None = None, ttl: float | None = None) -> str:
        """Signs a token as the token endpoint would, without counting it as issued.

        A negative ttl yields a token that is already expired.
        """
        key = api_key if api_key is not None else self._api_key
        if ttl is None:
            seconds = self.token_ttl
        else:
            seconds = _check_seconds(ttl, name="ttl", allow_negative=True)
        now = time.time()
        claims = {
            "project_id": self._project_id,
            "api_key": key,
            "project_prem_status": "free",
            "iat": int(now),
            # Rounded up: exp is whole seconds and must never undercut the ttl.
            "exp": int(math.ceil(now + seconds)),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=_JWT_ALGORITHM)

    def decode_token(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this backend signed, or None if forged or expired."""
        try:
            return self._verify(token)
        except jwt.PyJWTError:
            return None

    def _verify(self, token: str) -> dict[str, Any]:
        return jwt.decode(
            token,
            self._secret,
            algorithms=[_JWT_ALGORITHM],
            options={"require": ["exp"]},
            leeway=self.token_leeway,
        )

    def _token_error(self, token: str | None) -> str | None:
        if token is None:
            return "Missing bearer token"
        try:
            self._verify(token)
        except jwt.ExpiredSignatureError:
            return "Token expired"
        except jwt.PyJWTError:
            return "Invalid token"
        return None

    # -- request handling -----------------------------------------------------

    def _hold(self, knob: str) -> None:
        """Blocks a handler while the hang knob is on; the caller then drops the request."""
        with self._changed:
            while getattr(self, "_" + knob) and not self._stopping.is_set():
                self._changed.wait(_HOLD_POLL)

    def _stall(self, handler: _Handler, hang: bool, delay: float, knob: str,
               record: Callable[[], None]) -> bool:
        """Apply a hang or delay knob; True when the request must go unanswered (a hung
        request is recorded on arrival and its connection dropped when released)."""
        if hang:
            record()
            self._hold(knob)
        else:
            self._pause(delay)
            if not self._stopping.is_set():
                return False
        handler.close_connection = True
        return True

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _handle_auth_post(self, handler: _Handler) -> None:
        received = time.monotonic()
        record: _Record = {
            "method": "POST",
            "status": 0,
            "time": received,
            "api_key_ok": False,
            "api_key": None,
        }
        try:
            body = handler.read_body()
        except _BodyError as err:
            if err.close:
                handler.close_connection = True
            record["status"] = err.status
            self._record_auth(record)
            handler.send_json(err.status, {"error": err.message})
            return

        api_key: str | None = None
        try:
            payload = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("api_key"), str):
            api_key = payload["api_key"]
        key_format_ok = api_key is not None and bool(_UUID_RE.match(api_key))
        with self._lock:
            accepted = self._accepted_keys
            key_ok = key_format_ok and api_key is not None and api_key.lower() in accepted
            hang = self._auth_hang
            delay = self._auth_delay
        record["api_key"] = api_key
        record["api_key_ok"] = key_ok

        if self._stall(handler, hang, delay, "auth_hang", lambda: self._record_auth(record)):
            return

        with self._lock:
            forced_status = (self._auth_statuses.popleft() if self._auth_statuses
                             else self._auth_status)
            forced_body = self._auth_body
            forced_type = self._auth_content_type
            retry_after = self._auth_retry_after
        if forced_body is not None or (forced_status is not None and forced_status != 200):
            status = forced_status if forced_status is not None else 200
            record["status"] = status
            self._record_auth(record)
            headers = ({"Retry-After": f"{retry_after:g}"}
                       if retry_after is not None and status in (429, 503) else {})
            if forced_body is not None:
                handler.send_bytes(status, forced_body, forced_type, headers)
            else:
                message = _AUTH_ERRORS.get(status, _status_phrase(status))
                handler.send_json(status, {"error": message}, headers)
            return

        if not key_format_ok:
            status, answer = 400, {"error": _AUTH_ERRORS[400]}
        elif not key_ok:
            status, answer = 403, {"error": _AUTH_ERRORS[403]}
        else:
            token = self.issue_token(api_key)
            status = 200
            answer = {
                "token": token,
                "project_id": self._project_id,
                "project_prem_status": "free",
            }
            with self._lock:
                self._tokens_issued += 1
        record["status"] = status
        self._record_auth(record)
        handler.send_json(status, answer)

    def _handle_auth_get(self, handler: _Handler) -> None:
        record: _Record = {
            "method": "GET",
            "status": 0,
            "time": time.monotonic(),
            "api_key_ok": False,
            "api_key": None,
        }
        token = handler.bearer_token()
        error = self._token_error(token)
        if error is not None:
            record["status"] = 401
            self._record_auth(record)
            handler.send_json(401, {"error": error})
            return
        claims = self._verify(token)  # type: ignore[arg-type]
        answer = dict(claims)
        answer["expires_at"] = datetime.fromtimestamp(claims["exp"], tz=timezone.utc).isoformat()
        record.update(status=200, api_key_ok=True, api_key=claims.get("api_key"))
        self._record_auth(record)
        handler.send_json(200, answer)

    def _record_auth(self, record: _Record) -> None:
        with self._changed:
            self._auth_requests.append(record)
            self._changed.notify_all()

    def _handle_otlp(self, handler: _Handler) -> None:
        token = handler.bearer_token()
        record: _Record = {
            "status": 0,
            "authorized": False,
            "token": token,
            "span_count": 0,
            "time": time.monotonic(),
            "bytes": 0,
        }
        try:
            raw = handler.read_body()
        except _BodyError as err:
            if err.close:
                handler.close_connection = True
            record["status"] = err.status
            self._record_otlp(record)
            handler.send_json(err.status, {"error": err.message})
            return
        record["bytes"] = len(raw)
        record["header_names"] = sorted({name.lower() for name in handler.headers.keys()})
        if not raw:
            record["check"] = True
        record["authorized"] = token is not None and self._token_error(token) is None

        # Decoded before any fault is applied so even refused requests report what
        # they carried, which is what retry tests compare.
        spans: list[_Record] | None = None
        problem: tuple[int, str] | None = None
        content_type = (handler.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type and content_type not in _PROTOBUF_TYPES:
            problem = (415, f"Unsupported content type {content_type!r}")
        else:
            try:
                body = self._decompress(raw, handler.headers.get("Content-Encoding"))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                spans = _spans_from_request(message)
                record["span_count"] = len(spans)
            except _BodyError as err:
                problem = (err.status, err.message)
            except (DecodeError, ValueError, RuntimeError) as err:
                problem = (400, f"Malformed OTLP protobuf: {err}")

        with self._lock:
            hang = self._otlp_hang
            delay = self._otlp_delay
        if self._stall(handler, hang, delay, "otlp_hang", lambda: self._record_otlp(record)):
            return

        with self._lock:
            if self._otlp_statuses and raw:
                forced: int | None = self._otlp_statuses.popleft()
            else:
                forced = self._otlp_status
            retry_after = self._otlp_retry_after
            location = self._otlp_location
            max_bytes = self._otlp_max_bytes
            partial = self._otlp_partial_success
            drip = self._otlp_drip
        if forced is None and max_bytes is not None and len(raw) > max_bytes:
            forced = 413
        if forced is not None and forced != 200:
            record["status"] = forced
            self._record_otlp(record)
            headers: dict[str, str] = {}
            if forced == 429 and retry_after is not None:
                headers["Retry-After"] = f"{retry_after:g}"
            if 300 <= forced < 400 and location is not None:
                headers["Location"] = location
            if forced >= 400:
                handler.send_json(forced, {"error": _status_phrase(forced)}, headers)
            else:
                handler.send_bytes(forced, b"", "application/x-protobuf", headers)
            return

        if not record["authorized"]:
            record["status"] = 401
            self._record_otlp(record)
            handler.send_json(401, {"error": self._token_error(token)})
            return
        if problem is not None or spans is None:
            status, message_text = problem or (400, "Malformed OTLP protobuf")
            record["status"] = status
            self._record_otlp(record)
            handler.send_json(status, {"error": message_text})
            return

        answer = ExportTraceServiceResponse()
        if partial is not None and spans:
            answer.partial_success.rejected_spans = min(partial[0], len(spans))
            answer.partial_success.error_message = partial[1]
            accepted_spans = spans[answer.partial_success.rejected_spans:]
        else:
            accepted_spans = spans
        record["status"] = 200
        self._record_otlp(record, accepted_spans)
        if drip > 0:
            answer.partial_success.error_message = "." * 200  # a body worth dripping
            self._drip(handler, answer.SerializeToString(), drip)
            return
        handler.send_bytes(200, answer.SerializeToString(), "application/x-protobuf")

    def _drip(self, handler: _Handler, body: bytes, interval: float) -> None:
        """A 200 whose body arrives one byte every ``interval`` seconds."""
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for i in range(len(body)):
            if self._stopping.wait(interval):
                return
            try:
                handler.wfile.write(body[i:i + 1])
                handler.wfile.flush()
            except OSError:
                return

    def _record_otlp(self, record: _Record, spans: list[_Record] | None = None) -> None:
        with self._changed:
            if record.pop("check", False):
                self._receiver_checks.append(record)
                self._changed.notify_all()
                return
            self._otlp_requests.append(record)
            self._otlp_total += 1
            if spans:
                self._spans.extend(spans)
                self._span_total += len(spans)
            self._changed.notify_all()

    @staticmethod
    def _decompress(body: bytes, encoding: str | None) -> bytes:
        name = (encoding or "identity").strip().lower()
        if name in ("", "identity"):
            return body
        if name in ("gzip", "x-gzip"):
            candidates = [16 + zlib.MAX_WBITS]
        elif name == "deflate":
            # "deflate" is zlib-wrapped by the standard, but raw streams are common.
            candidates = [zlib.MAX_WBITS, -zlib.MAX_WBITS]
        else:
            raise _BodyError(415, f"Unsupported content encoding {name!r}")
        last_error: zlib.error | None = None
        for wbits in candidates:
            try:
                return _inflate(body, wbits)
            except zlib.error as err:
                last_error = err
        raise _BodyError(400, f"Body does not decompress as {name}: {last_error}")

    def _handle_app(self, handler: _Handler, path: str) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        trace_id = (query.get("trace_id") or [""])[0].strip().lower()
        if trace_id:
            spans = self.spans_for_trace(trace_id)
            detail = "".join(
                f"<li>{html.escape(s['name'])} <code>{s['span_id']}</code></li>" for s in spans
            )
            content = (
                f"<p>Trace <code>{html.escape(trace_id)}</code>: {len(spans)} span(s)</p>"
                f"<ul>{detail}</ul>"
            )
        else:
            with self._lock:
                total = len(self._spans)
                traces = len({s["trace_id"] for s in self._spans})
            content = f"<p>{total} span(s) in {traces} trace(s) received.</p>"
        page = (
            "<!doctype html><html><head><meta charset=\"utf-8\">"
            "<title>AgentOps LocalBackend</title></head><body>"
            f"<h1>AgentOps LocalBackend</h1><p><code>{html.escape(path)}</code></p>{content}"
            "</body></html>"
        )
        handler.send_bytes(200, page.encode("utf-8"), "text/html; charset=utf-8")


def _inflate(body: bytes, wbits: int) -> bytes:
    out: list[bytes] = []
    size = 0
    data = body
    while True:
        decompressor = zlib.decompressobj(wbits)
        chunk = decompressor.decompress(data, MAX_DECOMPRESSED_BYTES - size + 1)
        size += len(chunk)
        if size > MAX_DECOMPRESSED_BYTES or decompressor.unconsumed_tail:
            raise _BodyError(413, "Decompressed body too large")
        out.append(chunk)
        if not decompressor.eof:
            raise zlib.error("truncated stream")
        data = decompressor.unused_data
        # gzip allows several concatenated members; other formats end here.
        if not data or wbits != 16 + zlib.MAX_WBITS:
            break
    return b"".join(out)


def is_loopback_host(host: str) -> bool:
    """Whether binding to host keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
