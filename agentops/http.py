"""HTTP facts shared by the token exchange and the span export: how a failed request is
named in the vocabulary, and bounded reading of a response body."""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
import urllib3

from agentops import vocabulary as v
from agentops.redaction import redact

_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def host_port(url: str) -> tuple[str, int]:
    """The host and port a URL connects to, the scheme's default port when none is given."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def endpoint_label(url: str) -> str:
    """host:port of a URL, the form diagnoses name endpoints in."""
    host, port = host_port(url)
    return f"{host}:{port}"


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
