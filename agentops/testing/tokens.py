"""The backend's tokens and its token endpoint, ``/v3/auth/token``.

``TokenSigner`` signs and verifies HS256 JWTs (PyJWT) with a secret of its own, so tokens
of one backend are forgeries to any other. ``TokenEndpoint`` answers as the hosted token
API does: ``POST`` exchanges an API key for a token (400 for a key that is not a UUID,
403 for one no project has), ``GET`` verifies a bearer token; faults bend both answers.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import jwt

from agentops.testing.faults import ActiveFaults, Faults
from agentops.testing.records import AuthRequestRecord, Journal
from agentops.testing.server import Handler, RequestError, status_phrase

__all__ = ["DEFAULT_TOKEN_TTL", "TokenEndpoint", "TokenRefused", "TokenSigner", "is_api_key",
           "normalize_keys", "ttl_seconds"]

DEFAULT_TOKEN_TTL: float = 30 * 24 * 3600

_JWT_ALGORITHM = "HS256"
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# The hosted token API's error bodies, by status.
_AUTH_ERRORS = {
    400: "Invalid API key format",
    401: "Unauthorized",
    403: "Invalid API key",
    500: "Authentication failed",
}


def is_api_key(text: str) -> bool:
    """Whether ``text`` has the shape of an API key (a UUID, any case)."""
    return bool(_UUID_RE.match(text))


def ttl_seconds(value: Any, *, name: str) -> float:
    """``value`` as a token lifetime in seconds: any finite number, negative for tokens
    already expired; raises ValueError naming ``name`` otherwise."""
    seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return seconds


class TokenRefused(Exception):
    """A token the backend does not accept; ``message`` is what its 401 says."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenSigner:
    """Issues the tokens of one project and tells whether a token is one of them."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self._secret = secrets.token_bytes(32)

    def issue(self, api_key: str, ttl: float) -> str:
        """A token for ``api_key`` that expires ``ttl`` seconds from now, with the hosted
        API's claims (``project_id``, ``api_key``, ``project_prem_status``, ``exp``)."""
        now = time.time()
        claims = {
            "project_id": self.project_id,
            "api_key": api_key,
            "project_prem_status": "free",
            "iat": int(now),
            # Rounded up: exp is whole seconds and must never undercut the ttl.
            "exp": int(math.ceil(now + ttl)),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=_JWT_ALGORITHM)

    def claims(self, token: str | None, leeway: float) -> dict[str, Any]:
        """The claims of a token this signer issued; raises ``TokenRefused`` for a missing
        or forged one, or one that expired more than ``leeway`` seconds ago."""
        if token is None:
            raise TokenRefused("Missing bearer token")
        try:
            return jwt.decode(token, self._secret, algorithms=[_JWT_ALGORITHM],
                              options={"require": ["exp"]}, leeway=leeway)
        except jwt.ExpiredSignatureError:
            raise TokenRefused("Token expired") from None
        except jwt.PyJWTError:
            raise TokenRefused("Invalid token") from None

    def refusal(self, token: str | None, leeway: float) -> str | None:
        """Why a receiver refuses ``token`` (the message of its 401), or None."""
        try:
            self.claims(token, leeway)
        except TokenRefused as refused:
            return refused.message
        return None


class TokenEndpoint:
    """``/v3/auth/token``. ``accepted_keys`` (lowercase UUIDs) and ``token_ttl`` (seconds)
    are replaced whole by the backend, so a request reads one value or the other."""

    def __init__(self, signer: TokenSigner, faults: ActiveFaults, journal: Journal, *,
                 accepted_keys: frozenset[str], token_ttl: float) -> None:
        self._signer = signer
        self._faults = faults
        self._journal = journal
        self.accepted_keys = accepted_keys
        self.token_ttl = token_ttl

    def exchange(self, handler: Handler) -> None:
        """``POST``: an API key for a token."""
        record: AuthRequestRecord = {"method": "POST", "status": 0, "time": time.monotonic(),
                                     "api_key_ok": False, "api_key": None}
        try:
            body = handler.read_body()
        except RequestError as err:
            record["status"] = err.status
            self._journal.add_auth(record)
            handler.send_request_error(err)
            return

        api_key = _api_key_in(body)
        key_format_ok = api_key is not None and is_api_key(api_key)
        key_ok = key_format_ok and api_key is not None and (
            api_key.lower() in self.accepted_keys)
        record["api_key"] = api_key
        record["api_key_ok"] = key_ok

        faults = self._faults.current
        if self._faults.stall(faults, "auth_hang", faults.auth_delay,
                              lambda: self._journal.add_auth(record)):
            handler.close_connection = True
            return

        faults, forced = self._faults.take_status("auth_statuses", "auth_status")
        if faults.auth_body is not None or (forced is not None and forced != 200):
            self._answer_forced(handler, record, forced, faults)
            return

        answer: dict[str, Any]
        if not key_format_ok:
            status, answer = 400, {"error": _AUTH_ERRORS[400]}
        elif not key_ok or api_key is None:
            status, answer = 403, {"error": _AUTH_ERRORS[403]}
        else:
            status = 200
            answer = {"token": self._signer.issue(api_key, self.token_ttl),
                      "project_id": self._signer.project_id, "project_prem_status": "free"}
        record["status"] = status
        self._journal.add_auth(record, token_issued=status == 200)
        handler.send_json(status, answer)

    def _answer_forced(self, handler: Handler, record: AuthRequestRecord, forced: int | None,
                       faults: Faults) -> None:
        status = forced if forced is not None else 200
        record["status"] = status
        self._journal.add_auth(record)
        retry_after = faults.auth_retry_after
        headers = ({"Retry-After": f"{retry_after:g}"}
                   if retry_after is not None and status in (429, 503) else {})
        body = faults.auth_body
        if body is not None:
            # Faults holds it as bytes; the str in its type is what it accepts.
            handler.send_bytes(status, body.encode() if isinstance(body, str) else body,
                               faults.auth_content_type, headers)
        else:
            message = _AUTH_ERRORS.get(status, status_phrase(status))
            handler.send_json(status, {"error": message}, headers)

    def verify(self, handler: Handler) -> None:
        """``GET``: the payload of the bearer token and its ``expires_at``, or 401."""
        record: AuthRequestRecord = {"method": "GET", "status": 0, "time": time.monotonic(),
                                     "api_key_ok": False, "api_key": None}
        try:
            claims = self._signer.claims(handler.bearer_token(), self._faults.current.token_leeway)
        except TokenRefused as refused:
            record["status"] = 401
            self._journal.add_auth(record)
            handler.send_json(401, {"error": refused.message})
            return
        answer = dict(claims)
        answer["expires_at"] = datetime.fromtimestamp(claims["exp"], tz=timezone.utc).isoformat()
        record["status"], record["api_key_ok"] = 200, True
        record["api_key"] = claims.get("api_key")
        self._journal.add_auth(record)
        handler.send_json(200, answer)


def _api_key_in(body: bytes) -> str | None:
    try:
        payload = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(payload, dict) and isinstance(payload.get("api_key"), str):
        return str(payload["api_key"])
    return None


def normalize_keys(keys: Iterable[str]) -> frozenset[str]:
    """API keys as the endpoint compares them: stripped, lowercase."""
    if isinstance(keys, str):
        # A bare string would otherwise be accepted as a set of single characters.
        keys = [keys]
    return frozenset(str(k).strip().lower() for k in keys)
