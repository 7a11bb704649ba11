"""Finding: one thing the diagnosis found, as data first.

``code`` is stable (support tools key off it), ``severity`` says how much it matters,
``evidence`` holds the facts it rests on (numbers, ISO 8601 UTC times, hosts as
``host:port``, vocabulary strings) and ``issue``/``recommendation`` are the two sentences
rendered from that evidence alone. Code downstream reads ``code`` and ``evidence``, never
the sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR = "error"
"""Session data does not reach the backend (or will not)."""
WARNING = "warning"
"""Some data was lost, or a setting puts it at risk."""
INFO = "info"
"""Worth knowing; nothing is lost."""
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    evidence: dict[str, Any] = field(default_factory=dict)
    issue: str = ""
    recommendation: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable: {code, severity, evidence, issue, recommendation}."""
        return {"code": self.code, "severity": self.severity, "evidence": dict(self.evidence),
                "issue": self.issue, "recommendation": self.recommendation}


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """'1 span', '2 spans', '1 failed batch', '3 failed batches'."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_form or noun + 's'}"
