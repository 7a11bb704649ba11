"""LocalBackend: an in-process, AgentOps-compatible backend for tests, demos and offline
checks.

It speaks the hosted service's wire contract on one port: the token exchange on
``/v3/auth/token`` (HS256 JWTs) and an OTLP/HTTP trace receiver on ``/v1/traces`` that
verifies them. What it answers can be bent at any time with a ``Faults`` description
(statuses, Retry-After, partial success, delays, hangs, ...), so client code meets
outages without any network access. The HTTP plumbing is in ``server``, the OTLP
decoding in ``otlp``, the faults in ``faults``.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import html
import json
import logging
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, TypedDict, TypeVar
from urllib.parse import parse_qs, urlsplit

import jwt
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from agentops.testing.faults import Faults
from agentops.testing.otlp import PayloadError, SpanRecord, decode_traces_request
from agentops.testing.server import (
    Handler,
    RequestError,
    Server,
    status_phrase,
)

__all__ = [
    "APP_PATH",
    "AUTH_TOKEN_PATH",
    "DEFAULT_TOKEN_TTL",
    "HEALTH_PATH",
    "MAX_RECORDS",
    "OTLP_TRACES_PATH",
    "STOP_TIMEOUT",
    "AuthRequestRecord",
    "LocalBackend",
    "OtlpRequestRecord",
]

_log = logging.getLogger("agentops.testing")

AUTH_TOKEN_PATH = "/v3/auth/token"
OTLP_TRACES_PATH = "/v1/traces"
APP_PATH = "/app"
HEALTH_PATH = "/health"

DEFAULT_TOKEN_TTL: float = 30 * 24 * 3600
# Long-running standalone instances keep only the most recent records.
MAX_RECORDS = 100_000
STOP_TIMEOUT = 2.0
"""Seconds ``LocalBackend.stop()`` waits, in all, for its threads to end."""

_JWT_ALGORITHM = "HS256"
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# A held handler also rechecks this often, should a wake-up be missed.
_HOLD_POLL = 0.25
# The hosted token API's error bodies, by status.
_AUTH_ERRORS = {
    400: "Invalid API key format",
    401: "Unauthorized",
    403: "Invalid API key",
    500: "Authentication failed",
}


class AuthRequestRecord(TypedDict):
    """One request to the token endpoint. ``method`` is "POST" (exchange) or "GET"
    (verification); ``status`` is the answer's, 0 while held by a hang; ``time`` is
    ``time.monotonic()`` seconds at arrival; ``api_key`` is the key sent (POST) or the
    token's (GET), ``api_key_ok`` whether it is a UUID this backend accepts."""

    method: str
    status: int
    time: float
    api_key_ok: bool
    api_key: str | None


class OtlpRequestRecord(TypedDict):
    """One export request. ``status`` is the answer's, 0 while held by a hang;
    ``authorized`` whether it carried a valid token (``token``, or None); ``span_count``
    how many spans it carried (decoded before any fault applies, so refused requests say
    it too); ``bytes`` its body size as sent; ``header_names`` its header names in lower
    case; ``time`` is ``time.monotonic()`` seconds at arrival."""

    status: int
    authorized: bool
    token: str | None
    span_count: int
    bytes: int
    header_names: list[str]
    time: float


_R = TypeVar("_R")


def _copies(records: Iterable[_R]) -> list[_R]:
    # Attribute values may be lists or nested dicts; callers must not reach the originals.
    return [copy.deepcopy(record) for record in records]


def _seconds(value: Any, *, name: str) -> float:
    seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return seconds


def _normalize_keys(keys: Iterable[str]) -> frozenset[str]:
    if isinstance(keys, str):
        # A bare string would otherwise be accepted as a set of single characters.
        keys = [keys]
    return frozenset(str(k).strip().lower() for k in keys)


class LocalBackend:
    """An AgentOps-compatible backend served from a background thread.

    ``faults`` says how it misbehaves (none by default); ``backend.faults = Faults(...)``
    replaces that description while it runs and ``backend.set_faults(name=value, ...)``
    changes the named faults only, both at once for every request that arrives after.
    ``accepted_keys`` (API keys, UUIDs; default: ``api_key`` only) and ``token_ttl``
    (seconds; negative issues expired tokens) can be changed as attributes too.
    Inspection properties return copies.
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
        faults: Faults | None = None,
    ) -> None:
        if api_key is not None and not _UUID_RE.match(api_key):
            raise ValueError("api_key must be a UUID string")
        if faults is not None and not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults, got {faults!r}")
        self._host = host
        self._requested_port = int(port)
        self._port: int | None = None
        self._api_key = (api_key or str(uuid.uuid4())).lower()
        self._project_id = project_id or str(uuid.uuid4())
        # Per instance, so tokens from one backend are forgeries to any other.
        self._secret = secrets.token_bytes(32)

        # One lock guards settings, faults and records; the condition on it wakes span
        # waiters and held (hanging) handlers.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()

        self._initial_accepted_keys = (
            _normalize_keys(accepted_keys)
            if accepted_keys is not None
            else frozenset({self._api_key})
        )
        self._initial_token_ttl = _seconds(token_ttl, name="token_ttl")
        self._initial_faults = faults or Faults()
        self._accepted_keys = self._initial_accepted_keys
        self._token_ttl = self._initial_token_ttl
        self._faults = self._initial_faults

        self._spans: collections.deque[SpanRecord] = collections.deque(maxlen=MAX_RECORDS)
        self._span_total = 0
        self._otlp_requests: collections.deque[OtlpRequestRecord] = collections.deque(
            maxlen=MAX_RECORDS)
        self._otlp_total = 0
        self._receiver_checks: collections.deque[OtlpRequestRecord] = collections.deque(
            maxlen=MAX_RECORDS)
        self._auth_requests: collections.deque[AuthRequestRecord] = collections.deque(
            maxlen=MAX_RECORDS)
        self._tokens_issued = 0

        self._server: Server | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> LocalBackend:
        """Starts serving; a restart after stop() reuses the same port so URLs stay valid.
        Raises OSError when the port cannot be bound."""
        with self._lock:
            if self._server is not None:
                return self
            port = self._port if self._port is not None else self._requested_port
            server = Server((self._host, port), self)
            self._stopping.clear()
            self._server = server
            self._port = server.port
            server.start(name=f"agentops-local-backend:{self._port}")
        _log.debug("LocalBackend listening on %s", self.api_url)
        return self

    def stop(self) -> None:
        """Stops serving, releases held requests and drops open connections; waits at
        most ``STOP_TIMEOUT`` seconds in all for its threads. Idempotent."""
        with self._lock:
            server = self._server
            if server is None:
                return
            self._server = None
            self._stopping.set()
            self._changed.notify_all()
        server.stop(timeout=STOP_TIMEOUT)
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
        """The token API's base URL (``AGENTOPS_API_ENDPOINT``), ``http://host:port``."""
        return self._base_url()

    @property
    def otlp_url(self) -> str:
        """The trace receiver's URL (``AGENTOPS_EXPORTER_ENDPOINT``)."""
        return self._base_url() + OTLP_TRACES_PATH

    @property
    def app_url(self) -> str:
        """The dashboard's base URL (``AGENTOPS_APP_URL``): a page listing received spans."""
        return self._base_url() + APP_PATH

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def project_id(self) -> str:
        return self._project_id

    # -- settings and faults --------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The faults in force; queued statuses not used yet are still in it."""
        with self._lock:
            return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        if not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults, got {faults!r}")
        with self._lock:
            self._faults = faults
            # Held handlers recheck their hang at once.
            self._changed.notify_all()

    def set_faults(self, **changes: Any) -> Faults:
        """Changes the named fields of ``faults`` (keeping the others) in one step, and
        returns the new description. Raises TypeError for a name ``Faults`` lacks."""
        with self._lock:
            self.faults = dataclasses.replace(self._faults, **changes)
            return self._faults

    @property
    def accepted_keys(self) -> frozenset[str]:
        with self._lock:
            return self._accepted_keys

    @accepted_keys.setter
    def accepted_keys(self, keys: Iterable[str] | None) -> None:
        normalized = _normalize_keys(keys) if keys is not None else frozenset({self._api_key})
        with self._lock:
            self._accepted_keys = normalized

    @property
    def token_ttl(self) -> float:
        """Seconds an issued token lives; negative issues tokens already expired."""
        with self._lock:
            return self._token_ttl

    @token_ttl.setter
    def token_ttl(self, seconds: float) -> None:
        checked = _seconds(seconds, name="token_ttl")
        with self._lock:
            self._token_ttl = checked

    # -- inspection -----------------------------------------------------------

    @property
    def spans(self) -> list[SpanRecord]:
        """Every span accepted since the last reset(), oldest first (MAX_RECORDS at most)."""
        with self._lock:
            return _copies(self._spans)

    @property
    def span_names(self) -> list[str]:
        with self._lock:
            return [span["name"] for span in self._spans]

    def spans_for_trace(self, trace_id: str) -> list[SpanRecord]:
        """The accepted spans of one trace (32 hex digits, any case)."""
        wanted = trace_id.lower()
        with self._lock:
            return _copies(s for s in self._spans if s["trace_id"] == wanted)

    @property
    def otlp_requests(self) -> list[OtlpRequestRecord]:
        """Export requests that carried a body, in arrival order, whatever their answer."""
        with self._lock:
            return _copies(self._otlp_requests)

    @property
    def receiver_checks(self) -> list[OtlpRequestRecord]:
        """Empty export requests (a client's receiver check), kept apart from
        ``otlp_requests``. Queued OTLP statuses are not used by them (see ``Faults``)."""
        with self._lock:
            return _copies(self._receiver_checks)

    @property
    def auth_requests(self) -> list[AuthRequestRecord]:
        with self._lock:
            return _copies(self._auth_requests)

    @property
    def tokens_issued(self) -> int:
        """Tokens the token endpoint handed out since the last reset()."""
        with self._lock:
            return self._tokens_issued

    def wait_for_spans(self, n: int, timeout: float = 10) -> bool:
        """Blocks until at least n spans were accepted since the last reset(), at most
        ``timeout`` seconds; returns whether they were."""
        with self._changed:
            return self._changed.wait_for(lambda: self._span_total >= n, timeout=timeout)

    def wait_for_otlp_requests(self, n: int, timeout: float = 10) -> bool:
        """Blocks until at least n export requests with a body (answered or held) were
        seen, at most ``timeout`` seconds; returns whether they were."""
        with self._changed:
            return self._changed.wait_for(lambda: self._otlp_total >= n, timeout=timeout)

    def reset(self) -> None:
        """Forgets recorded data; faults, accepted_keys and token_ttl return to their
        constructor values. The signing secret is kept, so tokens already issued stay
        valid."""
        with self._lock:
            self._spans.clear()
            self._span_total = 0
            self._otlp_requests.clear()
            self._otlp_total = 0
            self._receiver_checks.clear()
            self._auth_requests.clear()
            self._tokens_issued = 0
            self._accepted_keys = self._initial_accepted_keys
            self._token_ttl = self._initial_token_ttl
            self.faults = self._initial_faults

    # -- tokens ---------------------------------------------------------------

    def issue_token(self, api_key: str | None = None, ttl: float | None = None) -> str:
        """Signs a token as the token endpoint would, without counting it as issued.

        ``ttl`` in seconds (default ``token_ttl``); a negative one yields a token that is
        already expired.
        """
        key = api_key if api_key is not None else self._api_key
        seconds = self.token_ttl if ttl is None else _seconds(ttl, name="ttl")
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
            leeway=self.faults.token_leeway,
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

    # -- routing --------------------------------------------------------------

    def handle(self, handler: Handler) -> None:
        """Answers one request (called by the server's handler threads)."""
        path, method = handler.route, handler.command
        if method == "POST":
            if path == OTLP_TRACES_PATH:
                self._handle_otlp(handler)
            elif path == AUTH_TOKEN_PATH:
                self._handle_auth_post(handler)
            else:
                handler.discard_body()
                if path == HEALTH_PATH or self._is_app(path):
                    handler.send_json(405, {"error": "Method not allowed"},
                                      headers={"Allow": "GET"})
                else:
                    handler.send_json(404, {"error": "Not found"})
        elif path == AUTH_TOKEN_PATH:
            self._handle_auth_get(handler)
        elif self._is_app(path):
            self._handle_app(handler, path)
        elif path == HEALTH_PATH:
            handler.send_json(200, {"status": "ok"})
        elif path == OTLP_TRACES_PATH:
            handler.send_json(405, {"error": "Method not allowed"}, headers={"Allow": "POST"})
        else:
            handler.send_json(404, {"error": "Not found"})

    @staticmethod
    def _is_app(path: str) -> bool:
        return path == APP_PATH or path.startswith(APP_PATH + "/")

    # -- holding and delaying -------------------------------------------------

    def _hold(self, hang: str) -> None:
        """Blocks a handler while the named hang is in force and the backend runs."""
        with self._changed:
            while getattr(self._faults, hang) and not self._stopping.is_set():
                self._changed.wait(_HOLD_POLL)

    def _stalled(self, handler: Handler, faults: Faults, hang: str, delay: float,
                 record: Callable[[], None]) -> bool:
        """Applies a hang or a delay; True when the request must go unanswered (a hung
        request is recorded on arrival and its connection dropped when released)."""
        if getattr(faults, hang):
            record()
            self._hold(hang)
        else:
            if delay > 0:
                self._stopping.wait(delay)
            if not self._stopping.is_set():
                return False
        handler.close_connection = True
        return True

    # -- token endpoint -------------------------------------------------------

    def _handle_auth_post(self, handler: Handler) -> None:
        record: AuthRequestRecord = {
            "method": "POST",
            "status": 0,
            "time": time.monotonic(),
            "api_key_ok": False,
            "api_key": None,
        }
        try:
            body = handler.read_body()
        except RequestError as err:
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
            key_ok = key_format_ok and api_key is not None and (
                api_key.lower() in self._accepted_keys)
            faults = self._faults
        record["api_key"] = api_key
        record["api_key_ok"] = key_ok

        if self._stalled(handler, faults, "auth_hang", faults.auth_delay,
                         lambda: self._record_auth(record)):
            return

        with self._lock:
            faults = self._faults
            if faults.auth_statuses:
                forced: int | None = faults.auth_statuses[0]
                self._faults = dataclasses.replace(faults,
                                                   auth_statuses=faults.auth_statuses[1:])
            else:
                forced = faults.auth_status
        forced_body = faults.auth_body.encode() if isinstance(faults.auth_body, str) else (
            faults.auth_body)
        if forced_body is not None or (forced is not None and forced != 200):
            status = forced if forced is not None else 200
            record["status"] = status
            self._record_auth(record)
            retry_after = faults.auth_retry_after
            headers = ({"Retry-After": f"{retry_after:g}"}
                       if retry_after is not None and status in (429, 503) else {})
            if forced_body is not None:
                handler.send_bytes(status, forced_body, faults.auth_content_type, headers)
            else:
                message = _AUTH_ERRORS.get(status, status_phrase(status))
                handler.send_json(status, {"error": message}, headers)
            return

        answer: dict[str, Any]
        if not key_format_ok:
            status, answer = 400, {"error": _AUTH_ERRORS[400]}
        elif not key_ok:
            status, answer = 403, {"error": _AUTH_ERRORS[403]}
        else:
            status = 200
            answer = {
                "token": self.issue_token(api_key),
                "project_id": self._project_id,
                "project_prem_status": "free",
            }
            with self._lock:
                self._tokens_issued += 1
        record["status"] = status
        self._record_auth(record)
        handler.send_json(status, answer)

    def _handle_auth_get(self, handler: Handler) -> None:
        record: AuthRequestRecord = {
            "method": "GET",
            "status": 0,
            "time": time.monotonic(),
            "api_key_ok": False,
            "api_key": None,
        }
        token = handler.bearer_token()
        error = self._token_error(token)
        if token is None or error is not None:
            record["status"] = 401
            self._record_auth(record)
            handler.send_json(401, {"error": error})
            return
        claims = self._verify(token)
        answer = dict(claims)
        answer["expires_at"] = datetime.fromtimestamp(claims["exp"], tz=timezone.utc).isoformat()
        record["status"], record["api_key_ok"] = 200, True
        record["api_key"] = claims.get("api_key")
        self._record_auth(record)
        handler.send_json(200, answer)

    def _record_auth(self, record: AuthRequestRecord) -> None:
        with self._changed:
            self._auth_requests.append(record)
            self._changed.notify_all()

    # -- OTLP receiver --------------------------------------------------------

    def _handle_otlp(self, handler: Handler) -> None:
        token = handler.bearer_token()
        record: OtlpRequestRecord = {
            "status": 0,
            "authorized": False,
            "token": token,
            "span_count": 0,
            "bytes": 0,
            "header_names": sorted({name.lower() for name in handler.headers.keys()}),
            "time": time.monotonic(),
        }
        try:
            raw = handler.read_body()
        except RequestError as err:
            if err.close:
                handler.close_connection = True
            record["status"] = err.status
            self._record_otlp(record, check=False)
            handler.send_json(err.status, {"error": err.message})
            return
        check = not raw
        record["bytes"] = len(raw)
        record["authorized"] = token is not None and self._token_error(token) is None

        # Decoded before any fault applies, so even refused requests say what they
        # carried, which is what retry tests compare.
        spans: list[SpanRecord] = []
        problem: PayloadError | None = None
        try:
            spans = decode_traces_request(raw, handler.headers.get("Content-Type"),
                                          handler.headers.get("Content-Encoding"))
            record["span_count"] = len(spans)
        except PayloadError as err:
            problem = err

        faults = self.faults
        if self._stalled(handler, faults, "otlp_hang", faults.otlp_delay,
                         lambda: self._record_otlp(record, check=check)):
            return

        with self._lock:
            faults = self._faults
            if faults.otlp_statuses and raw:
                forced: int | None = faults.otlp_statuses[0]
                self._faults = dataclasses.replace(faults,
                                                   otlp_statuses=faults.otlp_statuses[1:])
            else:
                forced = faults.otlp_status
        if forced is None and faults.otlp_max_bytes is not None and (
                len(raw) > faults.otlp_max_bytes):
            forced = 413
        if forced is not None and forced != 200:
            record["status"] = forced
            self._record_otlp(record, check=check)
            headers: dict[str, str] = {}
            if forced == 429 and faults.otlp_retry_after is not None:
                headers["Retry-After"] = f"{faults.otlp_retry_after:g}"
            if 300 <= forced < 400 and faults.otlp_location is not None:
                headers["Location"] = faults.otlp_location
            if forced >= 400:
                handler.send_json(forced, {"error": status_phrase(forced)}, headers)
            else:
                handler.send_bytes(forced, b"", "application/x-protobuf", headers)
            return

        if not record["authorized"]:
            record["status"] = 401
            self._record_otlp(record, check=check)
            handler.send_json(401, {"error": self._token_error(token)})
            return
        if problem is not None:
            record["status"] = problem.status
            self._record_otlp(record, check=check)
            handler.send_json(problem.status, {"error": problem.message})
            return

        answer = ExportTraceServiceResponse()
        accepted = spans
        if faults.otlp_partial_success is not None and spans:
            rejected, message = faults.otlp_partial_success
            answer.partial_success.rejected_spans = min(rejected, len(spans))
            answer.partial_success.error_message = message
            accepted = spans[answer.partial_success.rejected_spans:]
        record["status"] = 200
        self._record_otlp(record, check=check, spans=accepted)
        if faults.otlp_drip > 0:
            answer.partial_success.error_message = "." * 200  # a body worth dripping
            handler.send_dripped(200, answer.SerializeToString(), "application/x-protobuf",
                                 faults.otlp_drip, self._stopping)
            return
        handler.send_bytes(200, answer.SerializeToString(), "application/x-protobuf")

    def _record_otlp(self, record: OtlpRequestRecord, *, check: bool,
                     spans: list[SpanRecord] | None = None) -> None:
        with self._changed:
            if check:
                self._receiver_checks.append(record)
            else:
                self._otlp_requests.append(record)
                self._otlp_total += 1
                if spans:
                    self._spans.extend(spans)
                    self._span_total += len(spans)
            self._changed.notify_all()

    # -- dashboard ------------------------------------------------------------

    def _handle_app(self, handler: Handler, path: str) -> None:
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
