"""What a step of the connectivity test found, as records rather than prose or positional
lists; :meth:`StepResult.as_dict` gives the JSON shape the test's result holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
"""A step's (or sub-step's) status."""


@dataclass(frozen=True)
class Substep:
    """One stage of reaching an endpoint.

    ``name`` is ``dns``, ``tcp``, ``tls`` or ``http``; ``status`` PASSED or FAILED;
    ``detail`` what it found (the addresses, the TLS version, ``HTTP 404``) or why it
    failed.
    """

    name: str
    status: str
    duration_ms: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """``{name, status, duration_ms, detail}``."""
        return {"name": self.name, "status": self.status, "duration_ms": self.duration_ms,
                "detail": self.detail}


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step.

    ``status`` is PASSED, FAILED or SKIPPED. ``reason`` is the cause of a failure, from the
    vocabulary (``agentops.vocabulary``; None for a refused setting, which the detail
    names). ``duration_ms`` is None until the runner measures it. ``facts`` are the step's
    own findings (``http_status``, ``endpoint``, ``project_id``, ``trace_id``, ...);
    ``substeps`` is set by the reachability steps only. ``name`` and ``title`` come from
    the table of steps (the runner sets them), so a step function never repeats them.
    """

    status: str
    detail: str
    reason: str | None = None
    duration_ms: float | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    substeps: tuple[Substep, ...] | None = None
    name: str = ""
    title: str = ""

    @classmethod
    def passed(cls, detail: str, **facts: Any) -> StepResult:
        return cls(PASSED, detail, facts=facts)

    @classmethod
    def failed(cls, reason: str | None, detail: str, **facts: Any) -> StepResult:
        return cls(FAILED, detail, reason=reason, facts=facts)

    @classmethod
    def skipped(cls, why: str) -> StepResult:
        return cls(SKIPPED, f"not run: {why}", duration_ms=0.0)

    @property
    def ok(self) -> bool:
        return self.status == PASSED

    def as_dict(self) -> dict[str, Any]:
        """``{name, title, status, duration_ms, detail}``, then ``reason`` when the step
        failed with one, ``substeps`` (each :meth:`Substep.as_dict`) for the reachability
        steps, and the step's facts."""
        shape: dict[str, Any] = {"name": self.name, "title": self.title, "status": self.status,
                                 "duration_ms": self.duration_ms, "detail": self.detail}
        if self.reason is not None:
            shape["reason"] = self.reason
        if self.substeps is not None:
            shape["substeps"] = [sub.as_dict() for sub in self.substeps]
        shape.update(self.facts)
        return shape
