"""LocalBackend: an in-process, AgentOps-compatible backend for tests, demos and offline
checks.

It speaks the hosted service's wire contract on one port: the token exchange on
``/v3/auth/token`` (HS256 JWTs) and an OTLP/HTTP trace receiver on ``/v1/traces`` that
verifies them. What it answers can be bent at any time with a ``Faults`` description
(statuses, Retry-After, partial success, delays, hangs, ...), so client code meets
outages without any network access.

This module puts the parts together and routes requests to them:

- ``server``: HTTP plumbing (threads, body framing, prompt stop);
- ``tokens``: token signing and the token endpoint;
- ``receiver``: the OTLP trace receiver, with ``otlp`` decoding its requests;
- ``faults``: the one description of every fault, and how a request meets it;
- ``records``: what the backend saw, read back through the inspection properties.
"""

from __future__ import annotations

import html
import logging
import threading
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentops.testing.faults import ActiveFaults, Faults
from agentops.testing.otlp import SpanRecord
from agentops.testing.receiver import TraceReceiver
from agentops.testing.records import AuthRequestRecord, Journal, OtlpRequestRecord
from agentops.testing.server import Handler, Server
from agentops.testing.tokens import (
    DEFAULT_TOKEN_TTL,
    TokenEndpoint,
    TokenRefused,
    TokenSigner,
    is_api_key,
    normalize_keys,
    ttl_seconds,
)

__all__ = ["APP_PATH", "AUTH_TOKEN_PATH", "HEALTH_PATH", "OTLP_TRACES_PATH", "STOP_TIMEOUT",
           "LocalBackend"]

_log = logging.getLogger("agentops.testing")

AUTH_TOKEN_PATH = "/v3/auth/token"
OTLP_TRACES_PATH = "/v1/traces"
APP_PATH = "/app"
HEALTH_PATH = "/health"

STOP_TIMEOUT = 2.0
"""Seconds ``LocalBackend.stop()`` waits, in all, for its threads to end."""


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
        if api_key is not None and not is_api_key(api_key):
            raise ValueError("api_key must be a UUID string")
        if faults is not None and not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults, got {faults!r}")
        self._host = host
        self._requested_port = int(port)
        self._port: int | None = None
        self._api_key = (api_key or str(uuid.uuid4())).lower()
        # Guards the server only; the parts below guard their own state.
        self._lock = threading.Lock()
        self._server: Server | None = None

        # What reset() returns to.
        self._initial_accepted_keys = (
            normalize_keys(accepted_keys) if accepted_keys is not None
            else frozenset({self._api_key}))
        self._initial_token_ttl = ttl_seconds(token_ttl, name="token_ttl")
        self._initial_faults = faults or Faults()

        self._faults = ActiveFaults(self._initial_faults)
        self._journal = Journal()
        self._signer = TokenSigner(project_id or str(uuid.uuid4()))
        self._tokens = TokenEndpoint(self._signer, self._faults, self._journal,
                                     accepted_keys=self._initial_accepted_keys,
                                     token_ttl=self._initial_token_ttl)
        self._receiver = TraceReceiver(self._signer, self._faults, self._journal)

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> LocalBackend:
        """Starts serving; a restart after stop() reuses the same port so URLs stay valid.
        Raises OSError when the port cannot be bound."""
        with self._lock:
            if self._server is not None:
                return self
            port = self._port if self._port is not None else self._requested_port
            server = Server((self._host, port), self)
            self._faults.start()
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
            self._faults.stop()
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
        return self._signer.project_id

    # -- settings and faults --------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The faults in force; queued statuses not used yet are still in it."""
        return self._faults.current

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults.replace(faults)

    def set_faults(self, **changes: Any) -> Faults:
        """Changes the named fields of ``faults`` (keeping the others) in one step, and
        returns the new description. Raises TypeError for a name ``Faults`` lacks."""
        return self._faults.update(**changes)

    @property
    def accepted_keys(self) -> frozenset[str]:
        return self._tokens.accepted_keys

    @accepted_keys.setter
    def accepted_keys(self, keys: Iterable[str] | None) -> None:
        self._tokens.accepted_keys = (normalize_keys(keys) if keys is not None
                                      else frozenset({self._api_key}))

    @property
    def token_ttl(self) -> float:
        """Seconds an issued token lives; negative issues tokens already expired."""
        return self._tokens.token_ttl

    @token_ttl.setter
    def token_ttl(self, seconds: float) -> None:
        self._tokens.token_ttl = ttl_seconds(seconds, name="token_ttl")

    # -- inspection -----------------------------------------------------------

    @property
    def spans(self) -> list[SpanRecord]:
        """Every span accepted since the last reset(), oldest first (MAX_RECORDS at most)."""
        return self._journal.spans()

    @property
    def span_names(self) -> list[str]:
        return self._journal.span_names()

    def spans_for_trace(self, trace_id: str) -> list[SpanRecord]:
        """The accepted spans of one trace (32 hex digits, any case)."""
        return self._journal.spans(trace_id.lower())

    @property
    def otlp_requests(self) -> list[OtlpRequestRecord]:
        """Export requests that carried a body, in arrival order, whatever their answer."""
        return self._journal.otlp_requests()

    @property
    def receiver_checks(self) -> list[OtlpRequestRecord]:
        """Empty export requests (a client's receiver check), kept apart from
        ``otlp_requests``. Queued OTLP statuses are not used by them (see ``Faults``)."""
        return self._journal.receiver_checks()

    @property
    def auth_requests(self) -> list[AuthRequestRecord]:
        return self._journal.auth_requests()

    @property
    def tokens_issued(self) -> int:
        """Tokens the token endpoint handed out since the last reset()."""
        return self._journal.tokens_issued

    def wait_for_spans(self, n: int, timeout: float = 10) -> bool:
        """Blocks until at least n spans were accepted since the last reset(), at most
        ``timeout`` seconds; returns whether they were."""
        return self._journal.wait_for_spans(n, timeout)

    def wait_for_otlp_requests(self, n: int, timeout: float = 10) -> bool:
        """Blocks until at least n export requests with a body (answered or held) were
        seen, at most ``timeout`` seconds; returns whether they were."""
        return self._journal.wait_for_otlp_requests(n, timeout)

    def reset(self) -> None:
        """Forgets recorded data; faults, accepted_keys and token_ttl return to their
        constructor values. The signing secret is kept, so tokens already issued stay
        valid."""
        self._journal.clear()
        self._tokens.accepted_keys = self._initial_accepted_keys
        self._tokens.token_ttl = self._initial_token_ttl
        self._faults.replace(self._initial_faults)

    # -- tokens ---------------------------------------------------------------

    def issue_token(self, api_key: str | None = None, ttl: float | None = None) -> str:
        """Signs a token as the token endpoint would, without counting it as issued.

        ``ttl`` in seconds (default ``token_ttl``); a negative one yields a token that is
        already expired.
        """
        seconds = self.token_ttl if ttl is None else ttl_seconds(ttl, name="ttl")
        return self._signer.issue(api_key if api_key is not None else self._api_key, seconds)

    def decode_token(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this backend signed, or None if forged or expired."""
        try:
            return self._signer.claims(token, self.faults.token_leeway)
        except TokenRefused:
            return None

    # -- routing --------------------------------------------------------------

    def handle(self, handler: Handler) -> None:
        """Answers one request (called by the server's handler threads)."""
        path, method = handler.route, handler.command
        if method == "POST":
            if path == OTLP_TRACES_PATH:
                self._receiver.receive(handler)
            elif path == AUTH_TOKEN_PATH:
                self._tokens.exchange(handler)
            else:
                handler.discard_body()
                if path == HEALTH_PATH or self._is_app(path):
                    handler.send_json(405, {"error": "Method not allowed"},
                                      headers={"Allow": "GET"})
                else:
                    handler.send_json(404, {"error": "Not found"})
        elif path == AUTH_TOKEN_PATH:
            self._tokens.verify(handler)
        elif self._is_app(path):
            self._send_app_page(handler, path)
        elif path == HEALTH_PATH:
            handler.send_json(200, {"status": "ok"})
        elif path == OTLP_TRACES_PATH:
            handler.send_json(405, {"error": "Method not allowed"}, headers={"Allow": "POST"})
        else:
            handler.send_json(404, {"error": "Not found"})

    @staticmethod
    def _is_app(path: str) -> bool:
        return path == APP_PATH or path.startswith(APP_PATH + "/")

    # -- dashboard ------------------------------------------------------------

    def _send_app_page(self, handler: Handler, path: str) -> None:
        """A page standing in for the dashboard: the spans of the session link's trace,
        or how many spans and traces arrived."""
        query = parse_qs(urlsplit(handler.path).query)
        trace_id = (query.get("trace_id") or [""])[0].strip().lower()
        if trace_id:
            spans = self._journal.spans(trace_id)
            detail = "".join(
                f"<li>{html.escape(s['name'])} <code>{s['span_id']}</code></li>" for s in spans
            )
            content = (
                f"<p>Trace <code>{html.escape(trace_id)}</code>: {len(spans)} span(s)</p>"
                f"<ul>{detail}</ul>"
            )
        else:
            spans_total, traces = self._journal.span_summary()
            content = f"<p>{spans_total} span(s) in {traces} trace(s) received.</p>"
        page = (
            "<!doctype html><html><head><meta charset=\"utf-8\">"
            "<title>AgentOps LocalBackend</title></head><body>"
            f"<h1>AgentOps LocalBackend</h1><p><code>{html.escape(path)}</code></p>{content}"
            "</body></html>"
        )
        handler.send_bytes(200, page.encode("utf-8"), "text/html; charset=utf-8")
