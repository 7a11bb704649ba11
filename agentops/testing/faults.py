"""Faults: one description of every way a LocalBackend can misbehave, and how a request
meets them.

A ``Faults`` value is immutable and checked when it is made, so a mistyped status or a
negative delay fails in the test that wrote it, not in a handler thread. A LocalBackend
holds one at a time (``LocalBackend(faults=Faults(...))``, ``backend.faults = ...``,
``backend.set_faults(...)``) in an ``ActiveFaults``, from which its endpoints take a
snapshot for each request, use up queued statuses and are held or delayed.

Units: every duration is in seconds (a float), every size in bytes, every status an HTTP
status code between 200 and 599.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["ActiveFaults", "Faults"]

# A held request also rechecks its hang this often, should a wake-up be missed.
_HOLD_POLL = 0.25


def _status(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 200 <= value <= 599:
        raise ValueError(
            f"Faults.{name} must be an HTTP status code between 200 and 599, got {value!r}"
        )
    return value


def _statuses(values: Iterable[int], name: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes, int)):
        raise TypeError(f"Faults.{name} must be a sequence of HTTP status codes, got {values!r}")
    return tuple(_status(value, f"{name} entry") for value in values)


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Faults.{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"Faults.{name} must be a finite, non-negative number of seconds, "
                         f"got {value!r}")
    return seconds


@dataclass(frozen=True)
class Faults:
    """Every fault a LocalBackend injects; the default injects none.

    Token endpoint (``POST /v3/auth/token``):

    - ``auth_status``: the status every token request is answered with instead of the
      backend's own answer; ``None`` answers as the hosted API does (200 with a token,
      400 for a malformed key, 403 for an unknown one). Its JSON body is the hosted API's
      error for that status.
    - ``auth_statuses``: statuses the next token requests get, one each and in order,
      before ``auth_status`` or the normal answer applies again. ``backend.faults`` shows
      the ones not used yet.
    - ``auth_body``: the body of the answer instead of the backend's (``str`` is encoded
      as UTF-8 and read back as ``bytes``); with no status set it comes with a 200.
    - ``auth_content_type``: the ``Content-Type`` sent with ``auth_body``.
    - ``auth_retry_after``: seconds sent as ``Retry-After`` with a 429 or 503 answer.
    - ``auth_delay``: seconds the backend waits before answering.
    - ``auth_hang``: requests go unanswered while this stays true; when it is cleared (or
      the backend stops) the held connections are closed without an answer.

    OTLP receiver (``POST /v1/traces``):

    - ``otlp_status``: the status every export request is answered with (before the
      token is checked); ``None`` answers as the collector does (200, or 401 for a
      missing, forged or expired token, 400/413/415 for a body it cannot read).
    - ``otlp_statuses``: statuses the next export requests that carry a body get, one
      each and in order, before ``otlp_status`` applies again. An empty request (a
      client's receiver check) does not use one: it meets ``otlp_status`` only.
    - ``otlp_retry_after``: seconds sent as ``Retry-After`` with a 429 answer.
    - ``otlp_location``: the ``Location`` header sent with a 3xx answer.
    - ``otlp_partial_success``: ``(rejected spans, error message)`` put in the
      ``ExportTraceServiceResponse.partial_success`` of a 200; the first ``rejected``
      spans of the request are not stored.
    - ``otlp_max_bytes``: requests whose body (as sent, before decompression) is larger
      than this many bytes are answered 413, as a size-limited receiver does.
    - ``otlp_delay``: seconds the receiver waits before answering.
    - ``otlp_hang``: as ``auth_hang``, for export requests; a held request is recorded
      (with status 0) when it arrives.
    - ``otlp_drip``: seconds between the bytes of a 200's body: a receiver that answers
      slower than any read timeout while never going silent for long. The body then
      carries a 200-character ``partial_success`` message, so there are bytes to drip.
    - ``token_leeway``: seconds past a token's ``exp`` the receiver still accepts it (a
      receiver whose clock is behind the issuer's).

    Raises ``ValueError`` or ``TypeError`` naming the field when a value is out of range.
    """

    auth_status: int | None = None
    auth_statuses: tuple[int, ...] = ()
    auth_body: bytes | str | None = None
    auth_content_type: str = "application/json"
    auth_retry_after: float | None = None
    auth_delay: float = 0.0
    auth_hang: bool = False
    otlp_status: int | None = None
    otlp_statuses: tuple[int, ...] = ()
    otlp_retry_after: float | None = None
    otlp_location: str | None = None
    otlp_partial_success: tuple[int, str] | None = None
    otlp_max_bytes: int | None = None
    otlp_delay: float = 0.0
    otlp_hang: bool = False
    otlp_drip: float = 0.0
    token_leeway: float = 0.0

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {
            "auth_statuses": _statuses(self.auth_statuses, "auth_statuses"),
            "otlp_statuses": _statuses(self.otlp_statuses, "otlp_statuses"),
            "auth_delay": _seconds(self.auth_delay, "auth_delay"),
            "otlp_delay": _seconds(self.otlp_delay, "otlp_delay"),
            "otlp_drip": _seconds(self.otlp_drip, "otlp_drip"),
            "token_leeway": _seconds(self.token_leeway, "token_leeway"),
            "auth_hang": bool(self.auth_hang),
            "otlp_hang": bool(self.otlp_hang),
            "auth_content_type": str(self.auth_content_type),
        }
        for name in ("auth_status", "otlp_status"):
            if getattr(self, name) is not None:
                _status(getattr(self, name), name)
        for name in ("auth_retry_after", "otlp_retry_after"):
            if getattr(self, name) is not None:
                checked[name] = _seconds(getattr(self, name), name)
        body = self.auth_body
        if isinstance(body, str):
            checked["auth_body"] = body.encode("utf-8")
        elif isinstance(body, (bytes, bytearray)):
            checked["auth_body"] = bytes(body)
        elif body is not None:
            raise TypeError(f"Faults.auth_body must be bytes, str or None, got {body!r}")
        if self.otlp_location is not None:
            checked["otlp_location"] = str(self.otlp_location)
        if self.otlp_partial_success is not None:
            checked["otlp_partial_success"] = self._partial_success(self.otlp_partial_success)
        if self.otlp_max_bytes is not None:
            limit = self.otlp_max_bytes
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(
                    f"Faults.otlp_max_bytes must be a non-negative number of bytes, got {limit!r}"
                )
        for name, value in checked.items():
            # Frozen: values are normalised once, here, and never change afterwards.
            object.__setattr__(self, name, value)

    @staticmethod
    def _partial_success(value: Any) -> tuple[int, str]:
        try:
            rejected, message = value
        except (TypeError, ValueError):
            raise TypeError(
                "Faults.otlp_partial_success must be (rejected spans, error message), "
                f"got {value!r}"
            ) from None
        if isinstance(rejected, bool) or not isinstance(rejected, int) or rejected < 0:
            raise ValueError(
                "Faults.otlp_partial_success's rejected spans must be a non-negative integer, "
                f"got {rejected!r}"
            )
        return rejected, str(message)


class ActiveFaults:
    """The ``Faults`` a running backend is under, shared by its handler threads.

    Replacing them wakes every held request, which rechecks its hang at once. ``stopping``
    is set while the backend stops: holds end and delays and drips are cut short.
    """

    def __init__(self, faults: Faults) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._faults = faults
        self.stopping = threading.Event()

    @property
    def current(self) -> Faults:
        with self._changed:
            return self._faults

    def replace(self, faults: Faults) -> None:
        if not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults, got {faults!r}")
        with self._changed:
            self._faults = faults
            self._changed.notify_all()

    def update(self, **changes: Any) -> Faults:
        """Changes the named fields in one step and returns the new description; raises
        TypeError for a name ``Faults`` lacks."""
        with self._changed:
            self._faults = dataclasses.replace(self._faults, **changes)
            self._changed.notify_all()
            return self._faults

    def take_status(self, queued: str, fixed: str, *,
                    use_queue: bool = True) -> tuple[Faults, int | None]:
        """The faults in force and the status they force on this request: the first of
        the ``queued`` statuses (used up), else the ``fixed`` one (None: no fault)."""
        with self._changed:
            faults = self._faults
            waiting: tuple[int, ...] = getattr(faults, queued)
            if use_queue and waiting:
                rest: dict[str, Any] = {queued: waiting[1:]}
                self._faults = dataclasses.replace(faults, **rest)
                return faults, waiting[0]
            return faults, getattr(faults, fixed)

    def stall(self, faults: Faults, hang: str, delay: float,
              on_hold: Callable[[], None]) -> bool:
        """Applies the named hang or else ``delay`` seconds; True when the request must go
        unanswered: a held one (``on_hold`` runs on arrival, so it is recorded while
        held), or one whose backend stopped meanwhile."""
        if getattr(faults, hang):
            on_hold()
            with self._changed:
                while getattr(self._faults, hang) and not self.stopping.is_set():
                    self._changed.wait(_HOLD_POLL)
            return True
        if delay > 0:
            self.stopping.wait(delay)
        return self.stopping.is_set()

    def start(self) -> None:
        self.stopping.clear()

    def stop(self) -> None:
        """Releases every held request and cuts delays short."""
        with self._changed:
            self.stopping.set()
            self._changed.notify_all()
