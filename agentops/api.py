"""The AgentOps HTTP API: the API key for JWT exchange and token verification.

Every outcome of the token call maps to one reason of the vocabulary; nothing raises.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests

from agentops import transport
from agentops import vocabulary as v
from agentops.http import BodyTooLarge, exception_cause, parse_retry_after, read_capped
from agentops.redaction import redact, redacted_repr, register_api_key, register_token

MAX_BODY_BYTES = 64 * 1024
USER_AGENT = "agentops-python"


@redacted_repr
@dataclass(frozen=True)
class TokenOutcome:
    """Result of one token request. ``token`` is a secret: it is kept out of repr."""

    reason: str | None
    http_status: int | None
    detail: str
    token: str | None = field(default=None, repr=False)
    project_id: str | None = None
    expires_at: float | None = None
    """The token's ``exp`` claim (seconds since the epoch)."""
    payload: dict[str, Any] = field(default_factory=dict, repr=False)
    token_project_id: str | None = None
    """The token's ``project_id`` claim, which the receiver goes by."""
    retry_after: float | None = None
    """Seconds the API asked to wait before the next request (429/503 ``Retry-After``)."""

    @property
    def ok(self) -> bool:
        return self.token is not None


def token_claims(token: str) -> dict[str, Any]:
    """The JWT's claims, read without verifying the signature (the client has no key)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    if not isinstance(claims, dict):
        raise ValueError("claims are not an object")
    return claims


LATEST_EXPIRY = 253402300799.0
"""9999-12-31T23:59:59Z: an ``exp`` beyond it is not seconds since the epoch (milliseconds,
say) and is treated as unknown."""


def expiry(exp: Any) -> float | None:
    """The ``exp`` claim as seconds since the epoch, or None when it is absent or not a
    plausible time (NaN, infinite, negative, in milliseconds, not a number)."""
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    try:
        seconds = float(exp)
    except OverflowError:
        return None
    if not 0 < seconds <= LATEST_EXPIRY:  # also refuses NaN
        return None
    return seconds


def _retry_after(response: requests.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def error_text(body: bytes) -> str:
    """The server's own words on one line, without secrets it may echo (redacted before
    they are cut short, so a cut cannot hide a secret from the patterns): its JSON
    ``error``, or the start of the body."""
    try:
        message = json.loads(body).get("error")
        if isinstance(message, str):
            return str(redact(" ".join(message.split())))[:200]
    except (ValueError, AttributeError, RecursionError):
        pass
    text = " ".join(body[:400].decode("utf-8", "replace").split())
    if text[:15].lower().startswith(("<!doctype html", "<html")):
        return "an HTML page, not the AgentOps API (check the endpoint and any proxy)"
    return str(redact(text))[:120] or "empty body"


class AgentOpsAPI:
    """Client of the AgentOps API at ``base_url``."""

    def __init__(self, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        transport.mount(self.session)
        self.session.headers["User-Agent"] = USER_AGENT

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/v3/auth/token"

    def _exchange(self, method: str, timeout: float, **kwargs: Any) -> tuple[requests.Response, bytes] | TokenOutcome:
        """One request to the token endpoint: the response and at most 64 KiB of its body,
        read within ``timeout``; or the outcome that names why there is none."""
        deadline = time.monotonic() + timeout
        response = None
        try:
            response = self.session.request(method, self.token_url, timeout=timeout,
                                            allow_redirects=False, stream=True, **kwargs)
            return response, read_capped(response, MAX_BODY_BYTES, deadline)
        except BodyTooLarge as error:
            return TokenOutcome(v.BAD_RESPONSE, response.status_code if response is not None else None,
                                str(error))
        except Exception as error:  # requests raises many types; each maps to a reason
            reason, detail = exception_cause(error, self.token_url)
            return TokenOutcome(reason, response.status_code if response is not None else None, detail)

    def fetch_token(self, api_key: str, timeout: float) -> TokenOutcome:
        """POST /v3/auth/token; never raises, never follows redirects, reads at most 64 KiB."""
        register_api_key(api_key)
        exchanged = self._exchange("POST", timeout, json={"api_key": api_key})
        if isinstance(exchanged, TokenOutcome):
            return exchanged
        response, body = exchanged
        try:
            return self._token_outcome(response, body, api_key)
        except Exception as error:  # a body no rule foresaw is still only a bad response
            return TokenOutcome(v.BAD_RESPONSE, response.status_code,
                                f"unusable response body ({type(error).__name__})")

    def _token_outcome(self, response: requests.Response, body: bytes,
                       api_key: str) -> TokenOutcome:
        status = response.status_code
        if status == 400:
            return TokenOutcome(v.INVALID_KEY_FORMAT, status, error_text(body))
        if status in (401, 403):
            return TokenOutcome(v.INVALID_KEY, status, error_text(body))
        if status == 429:
            return TokenOutcome(v.RATE_LIMITED, status, error_text(body),
                                retry_after=_retry_after(response))
        if status == 408:
            return TokenOutcome(v.TIMEOUT, status, "the API timed out waiting for the request")
        if status >= 500:
            return TokenOutcome(v.SERVER_ERROR, status, error_text(body),
                                retry_after=_retry_after(response))
        if 300 <= status < 400:
            where = str(redact(response.headers.get("Location", "nowhere")))
            return TokenOutcome(v.UNEXPECTED_STATUS, status, f"redirected to {where[:120]}")
        if status != 200:
            return TokenOutcome(v.UNEXPECTED_STATUS, status, error_text(body))
        try:
            data = json.loads(body)
            token = data["token"]
            if not isinstance(token, str):
                raise TypeError
            # Whatever it turns out to be, it was offered as a token: never echo it.
            register_token(token)
        except (ValueError, KeyError, TypeError, RecursionError):
            kind = response.headers.get("Content-Type", "unknown content type").split(";")[0]
            return TokenOutcome(v.BAD_RESPONSE, status,
                                f"200 without a token in a JSON body ({kind})")
        try:
            claims = token_claims(token)
        except Exception:
            return TokenOutcome(v.BAD_RESPONSE, status, "the token in the response is not a JWT")
        expires_at = expiry(claims.get("exp"))
        claimed = claims.get("project_id")
        project_id = data.get("project_id") or claimed
        return TokenOutcome(None, status, "token issued", token=token,
                            project_id=str(project_id) if project_id else None,
                            expires_at=expires_at,
                            token_project_id=str(claimed) if claimed else None)

    def verify_token(self, token: str, timeout: float) -> TokenOutcome:
        """GET /v3/auth/token: does the API accept this token? (``token`` is not returned)."""
        register_token(token)
        exchanged = self._exchange("GET", timeout, headers={"Authorization": f"Bearer {token}"})
        if isinstance(exchanged, TokenOutcome):
            return exchanged
        response, body = exchanged
        status = response.status_code
        if status == 200:
            try:
                payload = json.loads(body)
                if not isinstance(payload, dict):
                    raise ValueError
            except (ValueError, RecursionError):
                return TokenOutcome(v.BAD_RESPONSE, status, "200 without a JSON object")
            payload.pop("api_key", None)
            return TokenOutcome(None, status, "token accepted", payload=payload,
                                project_id=payload.get("project_id"))
        if status in (401, 403):
            return TokenOutcome(v.INVALID_KEY, status, error_text(body))
        if status >= 500:
            return TokenOutcome(v.SERVER_ERROR, status, error_text(body))
        return TokenOutcome(v.UNEXPECTED_STATUS, status, error_text(body))
