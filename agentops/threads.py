"""Context into threads: a thread or ``ThreadPoolExecutor`` task starts in the context of
the code that started it, so its spans are children of the session trace instead of
traces of their own. OpenTelemetry's ``opentelemetry-instrumentation-threading`` does
this; ``init`` turns it on unless ``instrument_threading`` is false."""

from __future__ import annotations

import logging

logger = logging.getLogger("agentops")


def instrument_threading() -> None:
    """Idempotent; a program that instrumented threading itself is left as it is. Never
    raises: without it spans made in threads start traces of their own, which is said."""
    try:
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor

        instrumentor = ThreadingInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    except Exception:
        logger.warning("Could not carry the session context into threads: spans made in "
                       "threads may start traces of their own", exc_info=True)
