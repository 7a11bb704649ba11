"""Configuration: keyword arguments win over environment variables, which win over defaults.

Every setting is declared once, as a field of ``Config`` (name, type, default, env var,
check, doc); ``SETTINGS`` is derived from those fields, and validation, ``configure`` and
``agentops doctor`` (which shows where each value came from) read from it. ``init``'s
keywords and the README table are checked against it by tests/test_config.py.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from agentops.redaction import (
    redact,
    redact_data,
    redacted_repr,
    register_api_key,
    register_url_credentials,
    url_has_credentials,
)

logger = logging.getLogger("agentops")

DEFAULT_API_ENDPOINT = "https://api.agentops.ai"
DEFAULT_APP_URL = "https://app.agentops.ai"
DEFAULT_EXPORTER_ENDPOINT = "https://otlp.agentops.ai/v1/traces"

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting has a value the SDK cannot use; the message names it and what is expected.
    The message never holds a secret: it is redacted when the error is made.

    ``setting`` is the setting's name and ``source`` where its value came from
    ('argument' or 'env:NAME'), when known.
    """

    setting: str | None = None
    source: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


_last_refused: tuple[str, str, str] | None = None


def last_refused() -> tuple[str, str, str] | None:
    """(setting, source, message) of the last setting that made ``agentops.init`` raise,
    so a later diagnosis can say why the SDK is not initialized; None after a successful
    init."""
    return _last_refused


def remember_refused(error: ConfigError | None) -> None:
    global _last_refused
    _last_refused = None if error is None or error.setting is None else (
        error.setting, error.source or "unknown", str(error))


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {type(value).__name__}")
    return value.strip()


def _api_key(name: str, value: Any) -> str | None:
    if value is None:
        return None
    key = _text(name, value)
    if not key:
        return None
    # Registered before anything can echo it, in the form given as well as the canonical.
    register_api_key(key)
    try:
        # The API expects the canonical form; uuid also accepts braces, urn: and no dashes.
        return str(uuid.UUID(key))
    except ValueError:
        raise ConfigError(
            f"{name} is not a valid AgentOps API key: expected a UUID such as "
            f"'xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx' (got {mask_secret(key)!r}); "
            "copy it again from your project's settings in the AgentOps dashboard"
        ) from None


def _shown_url(url: str) -> str:
    """A refused URL as error messages quote it: whatever precedes an '@' may be a password,
    with or without a scheme."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.rpartition("://")
    return f"{scheme}{sep}***@{rest.rsplit('@', 1)[1]}" if sep else f"***@{url.rsplit('@', 1)[1]}"


def _url(name: str, value: Any) -> str:
    url = _text(name, value).rstrip("/")
    register_url_credentials(url)
    shown = _shown_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise ConfigError(f"{name} is not a valid URL ({error}): {shown!r}") from None
    if url_has_credentials(url):
        # One Authorization header per request, and it carries the AgentOps token: a
        # user:password in the URL could only be dropped silently or sent in clear text.
        raise ConfigError(
            f"{name} must not contain credentials (user:password@), got {shown!r}: "
            "AgentOps authenticates with the API key; remove them from the URL (a proxy "
            "that needs credentials goes in HTTPS_PROXY)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL such as 'https://host[:port]', got {shown!r}")
    try:
        _ = parts.port  # urlsplit checks the port only when asked
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {shown!r}") from None
    return url


MAX_SECONDS = 3600.0
"""Longest timeout accepted: waits beyond what threads can wait must be refused here."""


def _number(value: Any, expected: str, within: Callable[[float], bool]) -> float:
    """``value`` as a float for which ``within`` holds; ``ConfigError(expected)`` otherwise
    (also for a bool, text that is not a number, and nan, which fails every comparison)."""
    if isinstance(value, bool):
        raise ConfigError(expected)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(expected) from None
    if not within(number):
        raise ConfigError(expected)
    return number


def _seconds(name: str, value: Any) -> float:
    return _number(value, f"{name} must be a number of seconds from 0 to {MAX_SECONDS:g}, "
                          f"got {value!r}", lambda n: 0 <= n <= MAX_SECONDS)


def seconds_argument(name: str, value: Any) -> float | None:
    """A timeout given to a function (``flush``, ``shutdown``): None, or seconds checked as
    a setting's are; ``ConfigError`` saying what is accepted otherwise."""
    return None if value is None else _seconds(name, value)


MAX_STORAGE_HOURS = 720.0
"""Longest an offline-stored batch may be kept: 30 days."""


def _hours(name: str, value: Any) -> float:
    return _number(value, f"{name} must be a number of hours above 0 and at most "
                          f"{MAX_STORAGE_HOURS:g}, got {value!r}",
                   lambda n: 0 < n <= MAX_STORAGE_HOURS)


def _count(maximum: int) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        expected = f"{name} must be a whole number from 1 to {maximum}, got {value!r}"
        if isinstance(value, bool):
            raise ConfigError(expected)
        try:
            number = int(value)
            exact = number == float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(expected) from None
        if not exact or not 1 <= number <= maximum:
            raise ConfigError(expected)
        return number

    return parse


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _comma_separated(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _tags(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(tag, str) for tag in value):
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    return list(value)


def _log_level(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) < 10:
            return int(text)  # AGENTOPS_LOG_LEVEL=10, as log_level=10 in code
        level = logging.getLevelName(text.upper())
        if isinstance(level, int):
            return level
    raise ConfigError(f"{name} must be a logging level such as 'INFO' or 'WARNING', got {value!r}")


def _optional_text(name: str, value: Any) -> str | None:
    return None if value is None else _text(name, value) or None


def _directory(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{name} must be a directory path, got {type(value).__name__}")
    text = os.fspath(value).strip()
    if "\0" in text:
        raise ConfigError(f"{name} must be a directory path, got {text!r}")
    return os.path.abspath(os.path.expanduser(text)) if text else None


def mask_secret(secret: str | None) -> str | None:
    """At most the first and last four characters; short secrets are hidden entirely."""
    if not secret:
        return None
    if len(secret) <= 12:
        return "*" * len(secret)
    return f"{secret[:4]}...{secret[-4:]}"


def _as_is(value: Any) -> Any:
    return value


def _setting(default: T, env: str, parse: Callable[[str, Any], T], doc: str, *,
             from_env: Callable[[str], Any] = str, show: Callable[[T], Any] = _as_is,
             secret: bool = False) -> T:
    """Declare a setting as a field of ``Config``: its default, environment variable, check
    (``parse(label, value)`` returns the value to keep or raises ConfigError), documentation,
    how the env var's text becomes what ``parse`` takes (``from_env``), how its value is shown
    in reports (``show``), and whether it stays out of the repr (``secret``).

    Returns a ``dataclasses.Field`` typed as the default, as ``dataclasses.field`` is, so a
    type checker holds the default and the check's result to the field's annotation.
    """
    metadata = {"env": env, "parse": parse, "doc": doc, "from_env": from_env, "show": show}
    if isinstance(default, list):
        # A list default is copied for each Config, never shared.
        return cast(T, field(default_factory=lambda: list(default), repr=not secret,
                             metadata=metadata))
    return cast(T, field(default=default, repr=not secret, metadata=metadata))


@redacted_repr
@dataclass(frozen=True)
class Config:
    """The effective settings, and the one declaration of every setting: each field's name
    is the ``init`` keyword, its annotation the type, and ``_setting(...)`` gives the
    default, the environment variable, the check and the documentation.

    ``SETTINGS`` is derived from these fields and drives ``resolve``, ``configure``'s
    accepted names and ``agentops doctor``. ``init``'s keywords and the README's settings
    table are written out for readers and IDEs; tests/test_config.py checks that both agree
    with this declaration on every setting, type, environment variable and default.
    """

    api_key: str | None = _setting(
        None, "AGENTOPS_API_KEY", _api_key,
        "Project API key (a UUID). Without one, spans stay local and nothing is sent.",
        secret=True)
    endpoint: str = _setting(
        DEFAULT_API_ENDPOINT, "AGENTOPS_API_ENDPOINT", _url,
        "AgentOps API base URL (token exchange).")
    app_url: str = _setting(
        DEFAULT_APP_URL, "AGENTOPS_APP_URL", _url,
        "Dashboard base URL used in session links.")
    exporter_endpoint: str = _setting(
        DEFAULT_EXPORTER_ENDPOINT, "AGENTOPS_EXPORTER_ENDPOINT", _url,
        "OTLP/HTTP traces URL.")
    max_wait_time: int = _setting(
        5000, "AGENTOPS_MAX_WAIT_TIME", _count(3_600_000),
        "Milliseconds between batch exports.")
    max_queue_size: int = _setting(
        2048, "AGENTOPS_MAX_QUEUE_SIZE", _count(10_000_000),
        "Finished spans held for export; beyond it spans are dropped and counted as "
        "`queue_overflow`.")
    default_tags: list[str] = _setting(
        [], "AGENTOPS_DEFAULT_TAGS", _tags,
        "Tags added to every session trace (a list; the env var is comma-separated).",
        from_env=_comma_separated)
    trace_name: str = _setting(
        "session", "AGENTOPS_TRACE_NAME", _text,
        "Name of the session trace started by `init`.")
    auto_start_session: bool = _setting(
        True, "AGENTOPS_AUTO_START_SESSION", _flag,
        "Start a session trace in `init`.")
    log_level: int = _setting(
        logging.INFO, "AGENTOPS_LOG_LEVEL", _log_level,
        "Level of the `agentops` logger.",
        show=logging.getLevelName)
    fail_safe: bool = _setting(
        False, "AGENTOPS_FAIL_SAFE", _flag,
        "Log configuration errors instead of raising (an API key that is not a UUID never "
        "raises: authentication fails with `invalid_key_format`).")
    log_session_replay_url: bool = _setting(
        True, "AGENTOPS_LOG_SESSION_REPLAY_URL", _flag,
        "Log the session URL line with its status marker.")
    instrument_llm_calls: bool = _setting(
        True, "AGENTOPS_INSTRUMENT_LLM_CALLS", _flag,
        "Record LLM calls (openai, anthropic) through their OpenTelemetry instrumentors; "
        "`false` deactivates those the SDK activated.")
    capture_content: bool = _setting(
        True, "AGENTOPS_CAPTURE_CONTENT", _flag,
        "Record prompts and completions on LLM spans (upstream records them by default).")
    instrument_threading: bool = _setting(
        True, "AGENTOPS_INSTRUMENT_THREADING", _flag,
        "Carry the current context into threads and `ThreadPoolExecutor` tasks (with "
        "`opentelemetry-instrumentation-threading`), so their spans stay in the session "
        "trace.")
    wait_for_auth: bool = _setting(
        False, "AGENTOPS_WAIT_FOR_AUTH", _flag,
        "Make `init` wait, at most `auth_timeout`, for the authentication outcome.")
    auth_timeout: float = _setting(
        5.0, "AGENTOPS_AUTH_TIMEOUT", _seconds,
        "Seconds spans are held, and the URL line waits, for authentication.")
    shutdown_timeout: float = _setting(
        2.0, "AGENTOPS_SHUTDOWN_TIMEOUT", _seconds,
        "Seconds allowed at exit to end session traces and deliver what is left.")
    export_timeout: float = _setting(
        10.0, "AGENTOPS_EXPORT_TIMEOUT", _seconds,
        "Seconds one batch export may take, retries included.")
    offline_storage: bool = _setting(
        True, "AGENTOPS_OFFLINE_STORAGE", _flag,
        "Keep batches that failed for a transient cause on disk; a later run (or "
        "`agentops flush`) sends them.")
    storage_directory: str | None = _setting(
        None, "AGENTOPS_STORAGE_DIRECTORY", _directory,
        "Directory of the offline storage; none means the user cache directory's "
        "`agentops` folder (`platformdirs.user_cache_dir`, e.g. `~/.cache/agentops` on "
        "Linux).")
    storage_max_mb: int = _setting(
        50, "AGENTOPS_STORAGE_MAX_MB", _count(100_000),
        "Most megabytes (MiB) the offline storage holds; the oldest batches go first to "
        "keep within it (counted as `storage_full`).")
    storage_max_age_hours: float = _setting(
        48.0, "AGENTOPS_STORAGE_MAX_AGE_HOURS", _hours,
        "Hours a stored batch is kept for a later run; older ones are removed (counted as "
        "`expired`).")
    handle_sigterm: bool = _setting(
        True, "AGENTOPS_HANDLE_SIGTERM", _flag,
        "When the program has no SIGTERM handler of its own, deliver within "
        "`shutdown_timeout` on SIGTERM, then end as killed by it.")

    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Where each value came from: 'argument', 'env:NAME' or 'default'."""
    errors: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Refused settings (name -> message); each holds its default. An API key that is not
    a UUID is always refused this way (authentication then fails with invalid_key_format);
    other settings only under fail_safe."""
    error_sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Where each refused value came from: 'argument' or 'env:NAME'."""

    @property
    def api_key_error(self) -> str | None:
        """Why a given API key was refused under fail_safe; authentication then fails for it."""
        return self.errors.get("api_key")

    @property
    def api_key_masked(self) -> str | None:
        return mask_secret(self.api_key)

    def public(self) -> dict[str, Any]:
        """The effective settings with the API key masked and URLs redacted, for reports and
        support tickets."""
        values = redact_data({setting.name: setting.show(getattr(self, setting.name))
                              for setting in SETTINGS})
        values["api_key"] = self.api_key_masked
        return values

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, *, check_all: bool = False,
                **arguments: Any) -> Config:
        """Build a Config from arguments (None means unset), the environment and defaults.

        Raises ConfigError naming the first bad setting, unless fail_safe is true: then
        each bad setting falls back to its default and is listed in ``errors``. An API key
        that is not a UUID never raises (upstream accepts any string, and test suites pass
        fake keys): it is listed in ``errors`` and authentication fails with
        ``invalid_key_format``, so nothing is sent. ``check_all`` collects every error the
        same way without raising, whatever fail_safe says (for reports such as doctor).
        """
        environ = os.environ if environ is None else environ
        raw: dict[str, tuple[Any, str]] = {}
        for setting in SETTINGS:
            if arguments.get(setting.name) is not None:
                raw[setting.name] = (arguments[setting.name], "argument")
            elif environ.get(setting.env, "").strip():
                raw[setting.name] = (setting.from_env(environ[setting.env]), f"env:{setting.env}")

        fail_safe_raw = raw.get("fail_safe")
        try:
            fail_safe = _flag("fail_safe", fail_safe_raw[0]) if fail_safe_raw else False
        except ConfigError:
            fail_safe = True

        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        errors: dict[str, str] = {}
        error_sources: dict[str, str] = {}
        for setting in SETTINGS:
            if setting.name not in raw:
                sources[setting.name] = "default"  # the field's default applies
                continue
            value, source = raw[setting.name]
            label = setting.name if source == "argument" else f"{setting.name} ({setting.env})"
            try:
                values[setting.name] = setting.parse(label, value)
                sources[setting.name] = source
            except ConfigError as error:
                error.setting, error.source = setting.name, source
                if not (fail_safe or check_all or setting.name == "api_key"):
                    raise
                errors[setting.name] = str(error)
                error_sources[setting.name] = source
                sources[setting.name] = "default"
        values["fail_safe"] = fail_safe
        config = cls(**values, sources=sources, errors=errors, error_sources=error_sources)
        config.warn_about_plain_http()
        return config

    def warn_about_plain_http(self) -> None:
        if not self.api_key:
            return
        for name in ("endpoint", "exporter_endpoint"):
            host = urlsplit(getattr(self, name)).hostname or ""
            if urlsplit(getattr(self, name)).scheme == "http" and not is_loopback(host):
                logger.warning(
                    "%s uses plain http to %s: the API key and token travel unencrypted; "
                    "use https", name, host)


@dataclass(frozen=True)
class Setting:
    """One setting as a field of ``Config`` declares it (see ``_setting``)."""

    name: str
    env: str
    default: Any
    parse: Callable[[str, Any], Any]
    help: str
    from_env: Callable[[str], Any] = str
    """Turns the env var's text into what ``parse`` takes."""
    show: Callable[[Any], Any] = _as_is
    """The value as reports show it (``log_level``: the level's name)."""


def _declared(spec: Field[Any]) -> Setting:
    default = spec.default if spec.default_factory is MISSING else spec.default_factory()
    meta = spec.metadata
    return Setting(spec.name, meta["env"], default, meta["parse"], meta["doc"],
                   meta["from_env"], meta["show"])


SETTINGS: tuple[Setting, ...] = tuple(
    _declared(spec) for spec in fields(Config) if "env" in spec.metadata)
"""Every setting in declaration order, derived from ``Config``'s fields."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

