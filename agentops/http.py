"""HTTP facts shared by the token exchange and the span export: how a failed request is
named in the vocabulary, and bounded reading of a response body."""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
import urllib3

from agentops import vocabulary as v
from agentops.redaction import redact, register_url_credentials

_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def host_port(url: str) -> tuple[str, int]:
    """The host and port a URL connects to, the scheme's default port when none is given."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def endpoint_label(url: str) -> str:
    """host:port of a URL, the form diagnoses name endpoints in; an IPv6 host in brackets
    (``[::1]:9``) so the port stays apart from the address."""
    host, port = host_port(url)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def mask_url_credentials(url: str) -> str:
    """A URL with any user:password replaced by ***, for proxy settings in reports. The
    password is also registered for redaction everywhere else."""
    register_url_credentials(url if "://" in url else f"http://{url}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{sep}{authority}{slash}{path}"


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy requests would use for ``url`` (from the *_PROXY variables, honouring
    NO_PROXY), credentials masked; None when the connection is direct."""
    environ = os.environ if environ is None else environ
    names = ("https_proxy", "http_proxy", "all_proxy", "no_proxy")
    proxies: dict[str, str] = {}
    for name in names:
        value = environ.get(name) or environ.get(name.upper())
        if value:
            proxies[name] = value
    if not proxies:
        return None
    if _bypassed(url, proxies.get("no_proxy") or ""):
        return None
    scheme = urlsplit(url).scheme
    proxy = proxies.get(f"{scheme}_proxy") or proxies.get("all_proxy")
    return mask_url_credentials(proxy) if proxy else None


def _bypassed(url: str, no_proxy: str) -> bool:
    """NO_PROXY as requests reads it: '*', host names (a leading dot or not, matching
    subdomains), host:port, IP addresses and CIDR ranges."""
    host, port = host_port(url)
    host = host.lower()
    for entry in (part.strip().lower() for part in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        try:
            if "/" in entry and ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            pass
        name, _, entry_port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def missing_ca_bundle(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(variable, path) when the CA bundle variable requests reads names no file or
    directory: every HTTPS request then fails before connecting."""
    environ = os.environ if environ is None else environ
    for name in CA_BUNDLE_VARIABLES:  # requests reads them in this order
        path = environ.get(name)
        if path:
            return None if os.path.exists(path) else (name, path)
    return None


def host_label(url: str) -> str:
    """host:port of a URL from a server (a ``Location`` header): never its path, query or
    userinfo, which may carry secrets; "the same host" for a relative reference."""
    try:
        if not urlsplit(url).hostname:
            return "a path on the same host"
        return endpoint_label(url)
    except ValueError:
        return "an invalid URL"


def exception_cause(error: BaseException, url: str | None = None) -> tuple[str, str]:
    """(cause, short detail) for an exception raised by a requests call.

    The detail names the endpoint and the operating system's words, never headers; it is
    redacted here, where the exception's text (which may quote a URL or a server's
    words) enters the SDK.
    """
    cause, detail = _exception_cause(error, url)
    return cause, redact(detail)


def _exception_cause(error: BaseException, url: str | None) -> tuple[str, str]:
    where = f" to {endpoint_label(url)}" if url else ""
    if isinstance(error, requests.exceptions.ProxyError) and url:
        proxy = proxy_for(url)
        if proxy:
            return v.CONNECTION_ERROR, (f"could not connect to the proxy {proxy} (for "
                                        f"{endpoint_label(url)}): {_innermost(error)}")
    if isinstance(error, requests.exceptions.SSLError):
        return v.TLS_ERROR, f"TLS handshake{where} failed: {_innermost(error)}"
    if isinstance(error, requests.exceptions.Timeout):
        kind = "connecting" if isinstance(error, requests.exceptions.ConnectTimeout) else "waiting for a response"
        return v.TIMEOUT, f"timed out {kind}{where}"
    if isinstance(error, requests.exceptions.ConnectionError):
        return v.CONNECTION_ERROR, f"could not connect{where}: {_innermost(error)}"
    if isinstance(error, requests.exceptions.ContentDecodingError):
        return v.BAD_RESPONSE, f"response{where} does not decode as its Content-Encoding"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return v.CONNECTION_ERROR, f"response{where} cut short: {_innermost(error)}"
    if isinstance(error, requests.exceptions.RequestException):
        return v.CONNECTION_ERROR, f"request{where} failed: {_innermost(error)}"
    missing = missing_ca_bundle()
    if isinstance(error, OSError) and missing:
        # requests raises a bare OSError before connecting when the bundle is missing.
        return v.TLS_ERROR, f"CA bundle not found: {missing[0]}={missing[1]} does not exist"
    return v.INTERNAL_ERROR, f"{type(error).__name__}: {error}"


def _innermost(error: BaseException) -> str:
    text = str(error)
    found = _ERRNO_TEXT.findall(text)
    if found:
        return found[-1].strip()
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed by the server"
    # Redacted before it is cut: a cut could leave part of a secret no pattern recognises.
    return str(redact(text))[:160]


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def close_session(session: requests.Session) -> None:
    """Close a session and its pooled sockets now. ``Session.close()`` alone leaves urllib3
    2's pools (and their sockets) to the garbage collector, which reports them as unclosed
    (ResourceWarning under ``python -X dev``)."""
    for adapter in session.adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        pools = getattr(manager, "pools", None)
        if pools is None:
            continue
        for key in list(pools.keys()):
            pool = pools.get(key)
            if pool is not None:
                pool.close()
    session.close()


class BodyTooLarge(Exception):
    pass


def read_capped(response: requests.Response, limit: int, deadline: float) -> bytes:
    """Read a streamed body, refusing more than ``limit`` bytes or reading past ``deadline``
    (time.monotonic()): a body that never ends must not hold the caller or its memory."""
    chunks: list[bytes] = []
    size = 0
    # read1 returns whatever has arrived, so a body dripping one byte at a time still
    # reaches the deadline check; read(n) would wait for n bytes.
    read = getattr(response.raw, "read1", None) or response.raw.read
    try:
        while chunk := read(8192, decode_content=True):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"response body larger than {limit // 1024} KiB")
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise requests.exceptions.ReadTimeout("response body still arriving at the deadline")
    # Reading the raw stream meets urllib3's own exceptions; name them as requests would.
    except urllib3.exceptions.ReadTimeoutError as error:
        raise requests.exceptions.ReadTimeout(str(error)) from error
    except urllib3.exceptions.DecodeError as error:
        raise requests.exceptions.ContentDecodingError(str(error)) from error
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError) as error:
        raise requests.exceptions.ConnectionError(str(error)) from error
    finally:
        response.close()
    return b"".join(chunks)
