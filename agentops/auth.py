"""AuthTracker: exchanges the API key for a JWT off the caller's thread and knows, at any
moment, the authentication state, why it failed and since when.

State and reason use the vocabulary in ``agentops.vocabulary``. Transient failures are
retried with capped, jittered backoff; definitive ones are not. The token is refreshed
when it is about to expire or when the receiver rejects it, one request however many
exporters ask at once.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from agentops import vocabulary as v
from agentops.api import AgentOpsAPI, TokenOutcome
from agentops.config import Config
from agentops.redaction import redacted_repr, register_token
from agentops.timestamps import iso

logger = logging.getLogger("agentops")

REQUEST_TIMEOUT = 10.0
REFRESH_MARGIN = 60.0
"""Seconds before ``exp`` at which a held token is replaced (half its lifetime for tokens
that live less than two minutes, so a short-lived token is not replaced on every use)."""
RETRY_CAP = 30.0
MAX_RETRY_AFTER = 300.0
"""Longest ``Retry-After`` from the token endpoint that is honoured as asked."""
REFRESH_COOLDOWN = 5.0
"""After a failed refresh, callers with the same stale token reuse the outcome this long."""

AUTH_FAILED = "Authentication failed - invalid API key or network issue"
NOT_REACHING = "Session data will not reach backend"
AUTH_FAILED_MESSAGE = f"{AUTH_FAILED}. {NOT_REACHING}."


@redacted_repr
@dataclass(frozen=True)
class AuthSnapshot:
    """The facts a diagnosis needs; never the token."""

    state: str
    reason: str | None
    http_status: int | None
    detail: str | None
    attempts: int
    since: str | None
    authenticated_at: str | None
    token_expires_at: str | None
    project_id: str | None
    has_token: bool
    retrying: bool
    endpoint: str | None
    request_timeout: float = REQUEST_TIMEOUT
    token_project_id: str | None = None
    """The token's own ``project_id`` claim (``project_id`` is the response body's)."""
    clock_skew_s: float | None = None
    last_refresh_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuthTracker:
    def __init__(self, api: AgentOpsAPI | None, api_key: str | None, *,
                 auth_timeout: float = Config.auth_timeout, request_timeout: float | None = None,
                 key_error: str | None = None) -> None:
        self._api = api
        self._api_key = api_key
        self.auth_timeout = auth_timeout
        self.request_timeout = REQUEST_TIMEOUT if request_timeout is None else request_timeout
        self._cond = threading.Condition()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._token: str | None = None
        self._expires_at: float | None = None
        self._refresh_at: float | None = None
        self._failed_refresh: tuple[str, float] | None = None
        self.project_id: str | None = None
        self.token_project_id: str | None = None
        self.state = v.DISABLED if not api_key else v.PENDING
        self.reason: str | None = None
        self.http_status: int | None = None
        self.detail: str | None = "no API key: spans stay local" if not api_key else None
        self.attempts = 0
        self.retrying = False
        self.authenticated_at: float | None = None
        self.since = time.time()
        self._started_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self.on_first_token: list[Callable[[], None]] = []
        """Called on the authentication thread once the first token is held."""
        self.clock_skew: float | None = None
        """Seconds a freshly issued token looked past its refresh time by the local clock
        (its ``exp`` is then not used to schedule refreshes); None when consistent."""
        self.last_refresh_error: str | None = None
        if key_error:
            self.state, self.reason, self.detail = v.FAILED, v.INVALID_KEY_FORMAT, key_error

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Begin the token exchange in the background (no-op without a usable key)."""
        if self.state != v.PENDING or self._api is None:
            return
        self._started_at = time.monotonic()
        # In the caller's context, so its warnings appear where init's output does (the
        # cell that called init, in a Jupyter kernel).
        self._thread = threading.Thread(target=contextvars.copy_context().run,
                                        args=(self._run,), name="agentops-auth", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def after_fork(self) -> None:
        """In a forked child: fresh locks (a parent thread may have held them) and, if the
        exchange was still running in the parent, run it again here."""
        self._cond = threading.Condition()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.state == v.PENDING or (self.state == v.FAILED and self.retrying):
            self.state = v.PENDING
            self.start()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            outcome = self._api.fetch_token(self._api_key, self.request_timeout)  # type: ignore[union-attr, arg-type]
            transient = self._apply(outcome)
            if outcome.ok:
                for callback in self.on_first_token:
                    callback()
                return
            if not transient:
                return
            failures += 1
            delay = min(RETRY_CAP, 0.5 * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
            if outcome.retry_after is not None:
                delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
            self._stop.wait(delay)

    def _apply(self, outcome: TokenOutcome) -> bool:
        """Record an outcome; True when it was a transient failure worth retrying."""
        with self._cond:
            self.attempts += 1
            self.http_status = outcome.http_status
            self.detail = outcome.detail
            if outcome.ok:
                recovered = self.state == v.FAILED
                # Every token ever held stays registered: text quoting an old one is
                # cleaned as well as text quoting the current one.
                register_token(outcome.token)
                self._token = outcome.token
                self._expires_at = outcome.expires_at
                self._refresh_at = self._schedule_refresh(outcome.expires_at)
                self.last_refresh_error = None
                self.project_id = outcome.project_id or self.project_id
                self.token_project_id = outcome.token_project_id
                self._set_state(v.AUTHENTICATED, None)
                self.authenticated_at = time.time()
                self.retrying = False
                self._cond.notify_all()
                if recovered:
                    logger.warning("Authenticated after %d attempts; session data is being sent "
                                   "to the backend again.", self.attempts)
                return False
            transient = outcome.reason in v.TRANSIENT_AUTH_REASONS
            self.retrying = transient
            if self._token is not None and not self._token_expired():
                # A failed refresh keeps a token the receiver still accepts.
                self.last_refresh_error = f"{outcome.reason}: {outcome.detail}"
            else:
                self._token = None
            if self._token is None:
                self._set_state(v.FAILED, outcome.reason)
            kept = self._token is not None
            self._cond.notify_all()
        self._warn_failure(outcome, transient, kept)
        return transient

    def _schedule_refresh(self, expires_at: float | None) -> float | None:
        """When to replace a new token: ``REFRESH_MARGIN`` before ``exp`` (half its lifetime
        if shorter). None when ``exp`` is unknown, or when by the local clock the token is due
        already: a clock ahead of the issuer's would otherwise refresh on every export, so
        such a token is replaced only when the receiver rejects it."""
        if expires_at is None:
            self.clock_skew = None
            return None
        now = time.time()
        lifetime = expires_at - now
        if lifetime <= 0:
            self.clock_skew = -lifetime
            return None
        self.clock_skew = None
        return expires_at - min(REFRESH_MARGIN, lifetime / 2)

    def _token_expired(self) -> bool:
        if self._expires_at is None or self.clock_skew is not None:
            return False  # unknown: the receiver decides
        return time.time() >= self._expires_at

    def _set_state(self, state: str, reason: str | None) -> None:
        if state != self.state or reason != self.reason:
            self.since = time.time()
        self.state, self.reason = state, reason

    def _warn_failure(self, outcome: TokenOutcome, transient: bool, kept: bool) -> None:
        """Once per reason. Only a failure that leaves no token and will not be retried says
        that data will not reach the backend."""
        if outcome.reason in self._warned:
            return
        self._warned.add(outcome.reason or "")
        status = f"HTTP {outcome.http_status}" if outcome.http_status else "no HTTP response"
        if kept:
            logger.warning("Token refresh failed (%s, %s: %s); the current token is kept "
                           "until it expires", outcome.reason, status, outcome.detail)
        elif transient:
            logger.warning("%s. Reason: %s (%s: %s); retrying in the background, spans are "
                           "held up to auth_timeout %gs", AUTH_FAILED, outcome.reason, status,
                           outcome.detail, self.auth_timeout)
        else:
            logger.warning("%s Reason: %s (%s: %s)", AUTH_FAILED_MESSAGE, outcome.reason,
                           status, outcome.detail)

    # -- waiting -----------------------------------------------------------------------

    @property
    def auth_deadline(self) -> float:
        """monotonic time until which spans are held for a token."""
        return self._started_at + self.auth_timeout

    def _settled(self) -> bool:
        return self._token is not None or self.state == v.DISABLED or (
            self.state == v.FAILED and not self.retrying)

    @property
    def settled(self) -> bool:
        """A token is held, or authentication is disabled or failed for good."""
        with self._cond:
            return self._settled()

    def wait_settled(self, timeout: float) -> str:
        """Wait at most ``timeout`` seconds for a settled outcome (transient failures are
        retried meanwhile); return the state."""
        with self._cond:
            self._cond.wait_for(self._settled, max(0.0, timeout))
            return self.state

    def wait(self, timeout: float | None = None) -> str:
        """Wait at most ``timeout`` seconds for the first outcome; return the state."""
        with self._cond:
            self._cond.wait_for(lambda: self.state != v.PENDING, timeout)
            return self.state

    def wait_for_token(self, deadline: float | None = None) -> str | None:
        """The token, waiting until ``deadline`` (monotonic; default the auth deadline) while
        authentication may still succeed. Logs the timeout warning once when it runs out."""
        deadline = self.auth_deadline if deadline is None else deadline
        with self._cond:
            settled = self._cond.wait_for(self._settled, max(0.0, deadline - time.monotonic()))
        if not settled and time.monotonic() >= self.auth_deadline:
            # A wait cut short by the exit is not a timeout: the URL line and the exit
            # line say how long authentication had been pending.
            self.warn_timeout()
        return self.current_token()

    def warn_timeout(self) -> None:
        if "auth_timeout" not in self._warned and self.state == v.PENDING:
            self._warned.add("auth_timeout")
            waited = time.monotonic() - self._started_at
            logger.warning("Authentication timeout after %ss. Session data may not reach backend",
                           f"{waited:.1f}")

    # -- the token ---------------------------------------------------------------------

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def current_token(self, timeout: float | None = None) -> str | None:
        """The token to send now, refreshed first (within ``timeout`` seconds) when it is
        close to ``exp``."""
        token, refresh_at = self._token, self._refresh_at
        if token is not None and refresh_at is not None and time.time() >= refresh_at:
            return self.refresh(token, timeout)
        return token

    def refresh(self, stale: str, timeout: float | None = None) -> str | None:
        """Replace ``stale`` with a new token within ``timeout`` seconds (default the request
        timeout); concurrent callers share one request. A failed refresh keeps ``stale``
        while it has not expired."""
        limit = self.request_timeout if timeout is None else min(timeout, self.request_timeout)
        if limit <= 0 or not self._refresh_lock.acquire(timeout=limit):
            return self._token
        try:
            if self._token is not stale:
                return self._token
            if self._failed_refresh and self._failed_refresh[0] is stale and (
                    time.monotonic() - self._failed_refresh[1] < REFRESH_COOLDOWN):
                return self._token
            if self._api is None or not self._api_key:
                return self._token
            outcome = self._api.fetch_token(self._api_key, limit)
            self._apply(outcome)
            if not outcome.ok:
                self._failed_refresh = (stale, time.monotonic())
            return self._token
        finally:
            self._refresh_lock.release()

    def snapshot(self) -> AuthSnapshot:
        with self._cond:
            return AuthSnapshot(
                state=self.state, reason=self.reason, http_status=self.http_status,
                detail=self.detail, attempts=self.attempts, since=iso(self.since),
                authenticated_at=iso(self.authenticated_at),
                token_expires_at=iso(self._expires_at), project_id=self.project_id,
                has_token=self._token is not None, retrying=self.retrying,
                endpoint=self._api.token_url if self._api else None,
                request_timeout=self.request_timeout,
                clock_skew_s=None if self.clock_skew is None else round(self.clock_skew, 1),
                last_refresh_error=self.last_refresh_error,
                token_project_id=self.token_project_id)
