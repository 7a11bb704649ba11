"""Reaching one endpoint as the SDK's requests would: DNS, TCP, TLS (https without a proxy)
and one HTTP GET, each given only what is left of one :class:`Deadline`.

Behind a proxy the SDK never connects to the host itself: DNS and TCP then check the proxy,
and TLS to the host is left to the HTTP request through the tunnel.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from agentops import vocabulary as v
from agentops.helpers.connectivity.records import FAILED, PASSED, Substep
from agentops.http import endpoint_label, exception_cause, host_port, mask_url_credentials

GRACE = 0.25
"""Seconds a guarded call may overrun its own timeout before it is abandoned."""

T = TypeVar("T")


class OutOfTime(Exception):
    """A guarded call did not finish within its time."""


class Deadline:
    """``seconds`` from now (monotonic clock)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.end - time.monotonic())

    def elapsed_ms(self) -> float:
        return round(1000 * (self.seconds - self.remaining()), 1)


def within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``'s result, or :class:`OutOfTime` once ``seconds`` (plus :data:`GRACE`) have
    passed; ``call``'s own exception is raised here.

    Socket and requests timeouts bound each read, not a whole call; a DNS lookup has no
    timeout at all. The call runs on a daemon thread that is abandoned when it overruns.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # handed to the caller's thread
            box["error"] = error

    worker = threading.Thread(target=run, name="agentops-connectivity", daemon=True)
    worker.start()
    worker.join(seconds + GRACE)
    if worker.is_alive():
        raise OutOfTime
    if "error" in box:
        raise box["error"]
    return box["value"]


def ms_since(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.monotonic()`` reading), to 0.1 ms."""
    return round(1000 * (time.monotonic() - started), 1)


@dataclass
class Reachability:
    """What :func:`probe` found: the ``substeps`` run, in order, and either the
    ``http_status`` the endpoint answered (any answer counts as reachable) or the
    ``reason`` (a vocabulary cause) and ``detail`` of the sub-step that failed.

    ``endpoint`` is ``host:port``; ``proxy`` the proxy URL used, credentials masked.
    """

    url: str
    endpoint: str
    proxy: str | None = None
    substeps: list[Substep] = field(default_factory=list)
    http_status: int | None = None
    reason: str | None = None
    detail: str = ""

    @property
    def reachable(self) -> bool:
        return self.http_status is not None


class _Failure(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class _Target:
    """Where the probe connects, and the state its sub-steps hand on."""

    url: str
    host: str
    connect_host: str
    connect_port: int
    proxy: str | None
    verify: Any
    deadline: Deadline
    addresses: list[Any] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    http_status: int | None = None

    @property
    def via_proxy(self) -> str:
        return "proxy " if self.proxy else ""

    @property
    def label(self) -> str:
        return f"{self.via_proxy}{self.connect_host}:{self.connect_port}"


def _requests_settings(url: str) -> tuple[str | None, Any]:
    """(proxy URL, verify) exactly as a requests.Session would use them for ``url``."""
    with requests.Session() as session:
        merged = session.merge_environment_settings(url, {}, None, None, None)
    proxy = requests.utils.select_proxy(url, merged["proxies"])
    return proxy, merged["verify"]


def _tls_context(verify: Any) -> ssl.SSLContext:
    # The same trust store requests verifies against (certifi or REQUESTS_CA_BUNDLE), so this
    # sub-step fails exactly when the SDK's requests would.
    if verify is True:
        bundle = requests.utils.extract_zipped_paths(requests.utils.DEFAULT_CA_BUNDLE_PATH)
        return ssl.create_default_context(cafile=bundle)
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


def _socket_failure(error: BaseException, what: str, seconds: float) -> _Failure:
    if isinstance(error, (OutOfTime, socket.timeout, TimeoutError)):
        return _Failure(v.TIMEOUT, f"{what} did not finish within {seconds:.1f}s")
    if isinstance(error, ssl.SSLCertVerificationError):
        return _Failure(v.TLS_ERROR, f"{what} failed: {error.verify_message or error}")
    if isinstance(error, ssl.SSLError):
        return _Failure(v.TLS_ERROR, f"{what} failed: {error.reason or error}")
    if isinstance(error, OSError):  # socket.gaierror (DNS) included
        return _Failure(v.CONNECTION_ERROR, f"{what} failed: {error.strerror or error}")
    return _Failure(v.INTERNAL_ERROR, f"{what} failed: {type(error).__name__}: {error}")


def _dns(target: _Target) -> str:
    budget = target.deadline.remaining()
    what = f"DNS lookup of {target.via_proxy}{target.connect_host}"
    try:
        found = within(budget, lambda: socket.getaddrinfo(
            target.connect_host, target.connect_port, type=socket.SOCK_STREAM))
    except BaseException as error:
        raise _socket_failure(error, what, budget) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise _Failure(v.CONNECTION_ERROR, f"{what} returned no address")
    target.addresses.extend(found)
    return ", ".join(addresses[:3])


def _tcp(target: _Target) -> str:
    failure: _Failure | None = None
    for family, kind, proto, _, address in target.addresses:
        budget = target.deadline.remaining()
        if budget <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(budget)
        try:
            sock.connect(address)
        except OSError as error:
            sock.close()
            failure = _socket_failure(error, f"TCP connect to {target.label} ({address[0]})",
                                      budget)
            continue
        target.sockets.append(sock)
        return f"connected to {address[0]} port {target.connect_port}"
    raise failure or _Failure(v.TIMEOUT, f"no time left to connect to {target.label}")


def _tls(target: _Target) -> str:
    budget = target.deadline.remaining()
    sock = target.sockets[0]
    sock.settimeout(budget)
    try:
        wrapped = _tls_context(target.verify).wrap_socket(sock, server_hostname=target.host)
    except BaseException as error:
        raise _socket_failure(error, f"TLS handshake with {target.host}", budget) from None
    try:
        return wrapped.version() or "TLS"
    finally:
        wrapped.close()


def _http(target: _Target) -> str:
    budget = target.deadline.remaining()

    def get() -> int:
        with requests.Session() as session:
            response = session.get(target.url, timeout=budget, allow_redirects=False,
                                   stream=True)
            response.close()
            return response.status_code

    try:
        target.http_status = within(budget, get)
    except OutOfTime:
        raise _Failure(v.TIMEOUT, f"no HTTP answer from {endpoint_label(target.url)} "
                                  f"within {budget:.1f}s") from None
    except Exception as error:
        raise _Failure(*exception_cause(error, target.url)) from None
    return f"HTTP {target.http_status}"


def probe(url: str, deadline: Deadline) -> Reachability:
    """DNS, TCP, TLS (https, no proxy) and one HTTP GET to ``url``, stopping at the first
    sub-step that fails; never raises for a network fault."""
    host, port = host_port(url)
    proxy, verify = _requests_settings(url)
    connect_host, connect_port = host, port
    if proxy:
        connect_host, connect_port = host_port(proxy if "://" in proxy else f"http://{proxy}")
    found = Reachability(url=url, endpoint=endpoint_label(url),
                         proxy=mask_url_credentials(proxy) if proxy else None)
    target = _Target(url, host, connect_host, connect_port, proxy, verify, deadline)
    stages: list[tuple[str, Callable[[_Target], str]]] = [("dns", _dns), ("tcp", _tcp)]
    if urlsplit(url).scheme == "https" and not proxy:
        stages.append(("tls", _tls))
    stages.append(("http", _http))
    try:
        for name, stage in stages:
            began = time.monotonic()
            try:
                detail = stage(target)
            except _Failure as failure:
                found.substeps.append(Substep(name, FAILED, ms_since(began), failure.detail))
                found.reason, found.detail = failure.reason, failure.detail
                return found
            found.substeps.append(Substep(name, PASSED, ms_since(began), detail))
    finally:
        for open_socket in target.sockets:
            open_socket.close()
    found.http_status = target.http_status
    return found
