"""The facts a diagnosis rests on, collected once per diagnosis and never turned into words
here: snapshots of the auth tracker and the export statistics, the configuration, the
environment, and what the tracing pipeline knows about sampling and the global provider."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentops import vocabulary as v
from agentops.auth import AuthSnapshot
from agentops.config import Config
from agentops.timestamps import seconds_since

if TYPE_CHECKING:
    from agentops.client import Client

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                   "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at."""

    auth: AuthSnapshot
    stats: Mapping[str, Any]
    """``ExportStats.snapshot()``."""
    config: Config
    environ: Mapping[str, str] = field(default_factory=dict)
    now: float = field(default_factory=time.time)
    receiver: Mapping[str, Any] = field(default_factory=dict)
    """``ReceiverStatus.snapshot()``: {state, cause, http_status, detail, checked_at,
    latency_ms} of the receiver check."""
    sampling: Mapping[str, Any] | None = None
    """``agentops.sampling.describe()``: whether the session traces are recorded and why."""
    provider: Mapping[str, Any] | None = None
    """{replaced, global_provider, override_refused, override_refused_at}."""
    token_check: Mapping[str, Any] | None = None
    """{reason, http_status, detail}: the API refused a token it issued (connectivity test)."""
    instrumentation: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``Instrumentation.snapshot()``: per supported LLM library."""
    sessions: tuple[Mapping[str, Any], ...] = ()
    """Open session traces: ``name``, ``trace_id``, ``started_at`` (epoch seconds) and
    ``spans`` (spans of the trace seen on their way to export, its root excluded)."""
    storage: Mapping[str, Any] = field(default_factory=dict)
    """``Client.storage_status()``: {enabled, directory, pending_batches, pending_spans,
    bytes, oldest_at}, with ``error`` (cannot be read) or ``write_error`` (a batch could not
    be stored) when so."""

    def lost(self, cause: str) -> int:
        by_cause = self.stats.get("failures_by_cause")
        return int(by_cause.get(cause, 0)) if by_cause else 0

    def cause(self, cause: str) -> Mapping[str, Any]:
        """What the stats know of one loss cause: spans, batches, first_at, last_at,
        last_detail, http_status."""
        return (self.stats.get("causes") or {}).get(cause) or {}

    @property
    def auth_age(self) -> float | None:
        """Seconds since the auth state last changed."""
        return seconds_since(self.auth.since, self.now)

    @property
    def pending_too_long(self) -> bool:
        if self.auth.state != v.PENDING:
            return False
        age = self.auth_age
        return age is not None and age > self.config.auth_timeout

    def set_variables(self, names: tuple[str, ...]) -> list[str]:
        return [name for name in names if self.environ.get(name)]


def collect(client: Client, environ: Mapping[str, str] | None = None,
            now: float | None = None) -> Facts:
    from agentops import sampling
    from agentops.instrumentation import instrumentation
    from agentops.tracing import provider_facts

    auth = client.tracker.snapshot()
    stats = client.stats.snapshot()
    sessions = tuple({"name": t.name, "trace_id": t.trace_id, "started_at": t.started_at,
                      "spans": client.tally.spans_in(t.span.get_span_context().trace_id)}
                     for t in list(client.traces))
    return Facts(auth=auth, stats=stats, config=client.config,
                 environ=os.environ if environ is None else environ,
                 now=time.time() if now is None else now,
                 receiver=client.receiver.snapshot(),
                 sampling=sampling.describe(client.provider, [t.span for t in client.traces],
                                            environ=environ),
                 provider=provider_facts(client.provider),
                 instrumentation=instrumentation.snapshot(client.tally.library_counts()),
                 sessions=sessions, storage=client.storage_status())
