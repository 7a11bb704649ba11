"""Redaction of secrets, by value and by shape: what every exit point passes text through.

What leaves the SDK (log records, ``diagnose_session()``, the report, ``agentops doctor``,
the connectivity test, exception messages, reprs) goes through :func:`redact` or
:func:`redact_data`. It removes:

- every secret this process has registered, in any letter case: the API key (as given and
  in its canonical and dash-less forms), every token the process has held (not only the
  current one), and credentials found in configured URLs (passwords, secret query values);
- anything shaped like a JWT: two or more dot-separated base64url segments whose first
  segment decodes to a JSON object, whatever characters it starts with (a pretty-printed
  header starts ``eyAi`` or ``ewog``, not ``eyJ``);
- URL userinfo (``scheme://user:password@host`` becomes ``scheme://***@host``);
- values of query parameters named like secrets (``api_key``, ``token``, ``key``,
  ``password``, ``secret``, ``authorization``, ...), the value of an ``Authorization``
  header quoted in text, and a credential after ``Bearer``.

Registered secrets are process-wide and never forgotten, so text quoting a token that was
replaced an hour ago is still cleaned. A forked child inherits them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

__all__ = ["redact", "redact_data", "redact_known", "register_api_key", "register_token",
           "register_secret", "register_url_credentials", "url_has_credentials",
           "redacted_repr", "RedactingFilter"]

API_KEY = "<api key>"
TOKEN = "<token>"
SECRET = "***"

MIN_SECRET_LENGTH = 6
"""Shorter values are not registered: replacing every occurrence of a 3-letter string
would garble output while protecting little; patterns still catch them in URLs."""

_B64 = "A-Za-z0-9_-"
MIN_HEADER = 10
"""Characters of the shortest JWT header worth looking for (``{"a":1}`` encodes to 10)."""
_JWT_LIKE = re.compile(rf"(?<![{_B64}])[{_B64}]{{{MIN_HEADER},}}\.[A-Za-z0-9_.-]*")
_JWT_HINT = re.compile(rf"\.(?<=[{_B64}]{{{MIN_HEADER}}}\.)[{_B64}]")
"""A dot after enough base64url characters: a literal first, so the scan is cheap."""
_USERINFO = re.compile(r"://[^/?#\s@'\"<>\\]+@")
_SECRET_NAME = (r"(?:[\w.-]*[_.-])?(?:api_?key|key|token|password|passwd|pwd|secret"
                r"|authorization|credentials?|signature|sig)")
"""Query parameter names whose values are masked: these words, alone or as the last part
of a name (``access_token``, ``x-api-key``, ``client_secret``)."""
_NAME_WORDS = ("key", "token", "pass", "pwd", "secret", "authorization", "credential", "sig")
_QUERY_SECRET = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)[^&#\s'\"<>]+")
_AUTH_HEADER = re.compile(r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?"
                          r"(?:(?:bearer|basic|token|digest)\s+)?)[^\s'\",;&]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{16,}")
MAX_CACHED = 4096
"""Longer texts (whole reports) are redacted without being cached."""


class _Registry:
    """The secrets seen so far, compiled into one case-insensitive pattern."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._labels: dict[str, str] = {}
        self.pattern: re.Pattern[str] | None = None
        self.generation = 0

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (a parent thread, the auth thread say, may have
        held it at the fork) and the pattern rebuilt from every secret recorded so far."""
        self._lock = threading.Lock()
        self._compile()

    def _compile(self) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(self._labels, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) \
            if ordered else None
        self.generation += 1

    def add(self, value: str, label: str) -> None:
        folded = value.casefold()
        if len(value) < MIN_SECRET_LENGTH or self._labels.get(folded) == label:
            return
        with self._lock:
            # A token is also a secret: keep the more specific label once set.
            if folded in self._labels and label == SECRET:
                return
            self._labels[folded] = label
            self._compile()

    def label(self, found: str) -> str:
        return self._labels.get(found.casefold(), SECRET)


_registry = _Registry()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_registry.after_fork)


def register_secret(value: str | None, label: str = SECRET) -> None:
    """Redact ``value`` (any letter case) from everything the SDK outputs from now on."""
    if isinstance(value, str) and value.strip():
        _registry.add(value.strip(), label)


def register_api_key(raw: str | None) -> None:
    """Register a usable API key (a UUID) as given, canonical and without dashes.

    A value that is not a UUID is refused before it is sent anywhere, so no server can
    echo it; its error message shows it masked. It is not registered: any text can be
    passed as a key by mistake, and redacting, say, every "session" would garble output.
    """
    if not isinstance(raw, str) or not raw.strip():
        return
    try:
        parsed = uuid.UUID(raw.strip())
    except ValueError:
        return
    register_secret(raw, API_KEY)
    register_secret(str(parsed), API_KEY)
    register_secret(parsed.hex, API_KEY)


def register_token(token: str | None) -> None:
    """Register a token this process holds (or has held)."""
    register_secret(token, TOKEN)


def url_has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.username is not None or parts.password is not None


def register_url_credentials(url: str | None) -> None:
    """Register the password of a URL's userinfo and its query values named like secrets."""
    if not isinstance(url, str):
        return
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return
    register_secret(parts.password)
    for pair in re.split(r"[&;]", parts.query):
        name, _, value = pair.partition("=")
        if value and re.fullmatch(_SECRET_NAME, name, re.IGNORECASE):
            register_secret(value)


def _jwt_header(segment: str) -> bool:
    """True when ``segment`` is base64url for a JSON object, as every JWT header is."""
    if len(segment) < 3:
        return False
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        text = decoded.decode("utf-8").strip()
    except (binascii.Error, ValueError):
        return False
    if not (text.startswith("{") and text.endswith("}")):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _jwt(match: re.Match[str]) -> str:
    # A dotted run such as "host.eyAi...": the token starts at the first segment that is a
    # JSON header followed by at least one more segment.
    segments = match.group(0).split(".")
    for index, segment in enumerate(segments[:-1]):
        if _jwt_header(segment):
            return ".".join([*segments[:index], TOKEN])
    return match.group(0)


def _known(match: re.Match[str]) -> str:
    return _registry.label(match.group(0))


def _redact(text: str) -> str:
    # Each pattern runs only when the text holds the literal it needs: most texts hold
    # none, and these patterns cost microseconds each on every text they scan.
    pattern = _registry.pattern
    if pattern is not None:
        text = pattern.sub(_known, text)
    if _JWT_HINT.search(text):
        text = _JWT_LIKE.sub(_jwt, text)
    if "@" in text and "://" in text:
        text = _USERINFO.sub(f"://{SECRET}@", text)
    lowered = text.lower()
    if "=" in text and any(name in lowered for name in _NAME_WORDS):
        text = _QUERY_SECRET.sub(rf"\1{SECRET}", text)
    if "authorization" in lowered:
        text = _AUTH_HEADER.sub(rf"\1{SECRET}", text)
    if "bearer" in lowered:
        text = _BEARER.sub(rf"\1{SECRET}", text)
    return text


MIN_TEXT = 6
"""No secret or pattern fits in fewer characters (registered secrets are at least
``MIN_SECRET_LENGTH`` long; ``a://b@`` is the shortest userinfo)."""
MAX_CACHED_TEXTS = 4096

_cache: dict[str, tuple[int, str]] = {}
"""text -> (generation of the registry, redacted text). Diagnoses repeat the same sentences
call after call; a new secret makes every entry stale."""


def redact(text: Any) -> Any:
    """``text`` without secrets; anything that is not a str is returned as is."""
    if not isinstance(text, str) or len(text) < MIN_TEXT:
        return text
    generation = _registry.generation
    entry = _cache.get(text)
    if entry is not None and entry[0] == generation:
        return entry[1]
    clean = _redact(text)
    if len(text) <= MAX_CACHED:
        if len(_cache) >= MAX_CACHED_TEXTS:
            _cache.clear()
        _cache[text] = (generation, clean)
    return clean


def redact_known(text: str) -> str:
    """Only the registered secrets: for log records of other libraries, whose own words
    (URLs, parameters) are theirs to show."""
    pattern = _registry.pattern
    return pattern.sub(_known, text) if pattern is not None and text else text


_PLAIN = frozenset({int, float, bool, type(None)})


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, tuples, strings) with every string value
    redacted; other values are returned unchanged. Keys are kept: they are the SDK's own
    names (settings, causes, fields), never text from outside."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {k: v if type(v) in _PLAIN else redact_data(v) for k, v in value.items()}
    if kind is list:
        return [item if type(item) in _PLAIN else redact_data(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value] if isinstance(value, list) \
            else tuple(redact_data(item) for item in value)
    return value


C = TypeVar("C", bound=type)


def redacted_repr(cls: C) -> C:
    """Class decorator: the class's repr (a dataclass's generated one, say) passed through
    :func:`redact`."""
    original: Callable[[Any], str] = cls.__repr__  # type: ignore[assignment]

    def __repr__(self: Any) -> str:
        return str(redact(original(self)))

    setattr(cls, "__repr__", __repr__)  # noqa: B010  (mypy refuses assigning a method)
    return cls


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, traceback and stack text without secrets. ``known_only``
    limits it to registered secrets (for other libraries' loggers)."""

    def __init__(self, known_only: bool = False) -> None:
        super().__init__()
        self._clean = redact_known if known_only else redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report
            return True
        clean = self._clean(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


SDK_LOGGER = "agentops"
LIBRARY_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")
"""The library under the SDK's requests, which logs request URLs at DEBUG: the secrets the
SDK registered are removed from its records, nothing else of theirs."""


def _install_log_filters() -> None:
    # At import of this module, which every SDK module imports: no record of the SDK's can
    # be logged before its filter is in place. A logger's filters see only the records
    # logged on that very logger, hence each name.
    sdk = logging.getLogger(SDK_LOGGER)
    if not any(isinstance(f, RedactingFilter) for f in sdk.filters):
        sdk.addFilter(RedactingFilter())
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in library.filters):
            library.addFilter(RedactingFilter(known_only=True))


_install_log_filters()
