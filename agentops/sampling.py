"""Whether the session traces are recorded, and if not, why: the sampler in effect (where
it was chosen) and OTEL_SDK_DISABLED.

A sampler that drops a trace drops it without a word: its spans never reach any span
processor, so the SDK cannot count them. What it can do is say so, in the URL line and the
diagnosis, from the sampler's public description and the session spans' sampled flag.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.environment_variables import (
    OTEL_SDK_DISABLED,
    OTEL_TRACES_SAMPLER,
    OTEL_TRACES_SAMPLER_ARG,
)

_RATIO = re.compile(r"TraceIdRatioBased\{([0-9.eE+-]+)")


def sdk_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """OpenTelemetry's own test: OTEL_SDK_DISABLED is 'true' (any case)."""
    environ = os.environ if environ is None else environ
    return environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"


def _root_description(description: str) -> str:
    """The sampler that decides for root spans (a session trace is a root)."""
    if description.startswith("ParentBased{root:"):
        return description[len("ParentBased{root:"):].split(",", 1)[0]
    return description


def describe(provider: Any, session_spans: Iterable[trace.Span] = (),
             environ: Mapping[str, str] | None = None, ours: bool | None = None) -> dict[str, Any]:
    """{sdk_disabled, sampler, source, ratio, records_every_trace, sessions_recorded}.

    ``sampler`` is the sampler's own description (e.g. ``AlwaysOffSampler``,
    ``ParentBased{root:TraceIdRatioBased{0.5},...}``); ``source`` says where it was chosen
    (``OTEL_TRACES_SAMPLER=...`` or "the program's TracerProvider"); ``ratio`` is the
    share of root traces kept (1.0 for always-on, 0.0 for always-off, None if unknown).
    ``sessions_recorded`` is False when any open session trace was not sampled, or the
    sampler keeps no root trace at all.
    """
    environ = os.environ if environ is None else environ
    disabled = sdk_disabled(environ)
    sampler = getattr(provider, "sampler", None)
    description = str(sampler.get_description()) if sampler is not None else "unknown"
    chosen = environ.get(OTEL_TRACES_SAMPLER, "").strip()
    if ours is None:
        from agentops.tracing import provider_is_ours

        ours = provider_is_ours(provider)
    if ours and chosen:
        arg = environ.get(OTEL_TRACES_SAMPLER_ARG, "").strip()
        source = f"{OTEL_TRACES_SAMPLER}={chosen}" + (f", {OTEL_TRACES_SAMPLER_ARG}={arg}"
                                                      if arg else "")
    elif ours:
        source = "the SDK's default"
    else:
        source = "the program's TracerProvider"
    root = _root_description(description)
    ratio: float | None
    if root.startswith("AlwaysOnSampler"):
        ratio = 1.0
    elif root.startswith("AlwaysOffSampler"):
        ratio = 0.0
    else:
        found = _RATIO.match(root)
        ratio = float(found.group(1)) if found else None
    spans = list(session_spans)
    unsampled = sum(1 for span in spans if not span.get_span_context().trace_flags.sampled)
    return {
        "sdk_disabled": disabled,
        "sampler": description,
        "source": source,
        "ratio": ratio,
        "records_every_trace": not disabled and ratio == 1.0,
        "sessions_recorded": not disabled and ratio != 0.0 and unsampled == 0,
        "session_traces_not_recorded": unsampled,
    }


def why_not_recorded(facts: Mapping[str, Any]) -> str | None:
    """A short clause for the URL line when the session is not recorded, else None."""
    if facts.get("sdk_disabled"):
        return "not recorded: OTEL_SDK_DISABLED=true; nothing is sent"
    if not facts.get("sessions_recorded", True):
        return (f"not recorded: the sampler {facts.get('sampler')} ({facts.get('source')}) "
                f"dropped this trace; nothing is sent")
    return None


def partly_recorded(facts: Mapping[str, Any]) -> str | None:
    """A short clause for the URL line when the sampler keeps only part of the traces."""
    if facts.get("sdk_disabled") or facts.get("records_every_trace", True):
        return None
    ratio = facts.get("ratio")
    share = f"about {ratio:.0%} of" if isinstance(ratio, float) else "only part of"
    return f"sampled: {facts.get('source')} keeps {share} the traces"
