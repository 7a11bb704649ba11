"""``TraceState``: the end states ``end_trace`` takes, as in upstream agentops 0.4.

Each member's value is the OpenTelemetry ``StatusCode`` the session trace ends with;
``str(TraceState.SUCCESS)`` is ``"SUCCESS"``. ``end_trace`` also takes a ``StatusCode`` or a
string such as ``"Success"``, ``"Error"``, ``"Indeterminate"`` (see ``agentops.tracing``).
"""

from __future__ import annotations

from enum import Enum

from opentelemetry.trace import StatusCode


class TraceState(Enum):
    SUCCESS = StatusCode.OK
    ERROR = StatusCode.ERROR
    UNSET = StatusCode.UNSET

    def __str__(self) -> str:
        return self.name

    def to_status_code(self) -> StatusCode:
        return self.value


SUCCESS = TraceState.SUCCESS
ERROR = TraceState.ERROR
UNSET = TraceState.UNSET
