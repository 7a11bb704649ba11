"""The programs the benchmark runs, one fresh interpreter each:
``python bench/workloads.py WORKLOAD`` with its settings as JSON in ``BENCH_CONFIG``.

Each workload prints one ``BENCH_RESULT {json}`` line on stdout. ``pipeline="agentops"``
runs through ``agentops.init``; ``pipeline="plain"`` is the yardstick: the idiomatic
OpenTelemetry setup (TracerProvider + BatchSpanProcessor + OTLPSpanExporter with a static
bearer token) doing the same job against the same receiver.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
EXIT_PREFIX = "BENCH_EXIT_START "
SPAN_NAME = "bench.span"
PARENT_SPAN_NAME = "bench.parent"


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def memory() -> dict[str, float]:
    """Peak (VmHWM) and current (VmRSS) resident memory in MiB."""
    values: dict[str, float] = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    values[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    if "VmHWM" not in values:  # no procfs: ru_maxrss is KiB on Linux, bytes on macOS
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        values["VmHWM"] = maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {"peak_rss_mib": round(values["VmHWM"], 2),
            "rss_mib": round(values.get("VmRSS", float("nan")), 2)}


class Pipeline:
    """The tracer and the flush of one pipeline, set up the way its users would."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.kind = config["pipeline"]
        self.parent_span = bool(config.get("parent_span"))
        if self.kind == "agentops":
            import agentops

            agentops.init(api_key=config["api_key"], endpoint=config["api_url"],
                          exporter_endpoint=config["otlp_url"],
                          wait_for_auth=config.get("wait_for_auth", True),
                          **config.get("init_kwargs", {}))
            self.client = agentops.get_client()
            self.flush: Callable[[], Any] = self.client.processor.force_flush
        else:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
            exporter = OTLPSpanExporter(endpoint=config["otlp_url"],
                                        headers={"Authorization": f"Bearer {config['token']}"})
            provider.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            self.client = None
            self.flush = provider.force_flush
        from opentelemetry import trace

        self.tracer = trace.get_tracer("bench")

    def spans(self, count: int, burst: int | None) -> None:
        """``count`` spans; with ``burst``, a flush after every ``burst`` spans. With
        ``parent_span`` (plain pipeline), under one parent span, as agentops' spans are under
        its session trace."""
        if not self.parent_span:
            self._spans(count, burst)
            return
        with self.tracer.start_as_current_span(PARENT_SPAN_NAME):
            self._spans(count, burst)
        if burst:
            self.flush()

    def _spans(self, count: int, burst: int | None) -> None:
        tracer = self.tracer
        for index in range(count):
            with tracer.start_as_current_span(SPAN_NAME, attributes={"bench.index": index}):
                pass
            if burst and (index + 1) % burst == 0:
                self.flush()
        if burst and count % burst:
            self.flush()

    def stats(self) -> dict[str, Any] | None:
        if self.client is None:
            return None
        snapshot = self.client.stats.snapshot()
        return {key: snapshot[key] for key in ("spans_made", "spans_exported", "spans_failed",
                                               "failures_by_cause")}


def pipeline_cost(config: dict[str, Any]) -> None:
    pipeline = Pipeline(config)
    count, burst = config["spans"], config["burst"]
    pipeline.spans(min(burst, count), burst)  # warm-up: connection open, code paths hot
    cpu, started = time.process_time(), time.perf_counter()
    pipeline.spans(count, burst)
    wall = time.perf_counter() - started
    emit({"wall_s": wall, "cpu_s": time.process_time() - cpu, "spans_per_s": count / wall,
          "warmup_spans": min(burst, count), "stats": pipeline.stats()})


def resident_memory(config: dict[str, Any]) -> None:
    pipeline = Pipeline(config)
    before = memory()
    started = time.perf_counter()
    # With the receiver up, bursts and flushes keep every span deliverable. With it down a
    # flush would wait out the exporter's retries (seconds per batch), so spans are made
    # without pause: the queue fills and the rest are dropped, as in a real outage.
    pipeline.spans(config["spans"], config["burst"] if config["receiver_up"] else None)
    wall = time.perf_counter() - started
    emit({**memory(), "before": before, "wall_s": wall, "stats": pipeline.stats()})
    if not config["receiver_up"]:
        # Exit behaviour is measured elsewhere; here the exporters' retry waits only cost time.
        sys.stdout.flush()
        os._exit(0)


def exit_time(config: dict[str, Any]) -> None:
    """Some spans, then the program's end; the parent times the exit from the mark."""
    pipeline = Pipeline({**config, "wait_for_auth": False})
    pipeline.spans(config["spans"], None)
    emit({"stats": pipeline.stats()})
    sys.stdout.write(f"{EXIT_PREFIX}{time.monotonic()!r}\n")
    sys.stdout.flush()


def diagnosis_cost(config: dict[str, Any]) -> None:
    import io
    import timeit

    import agentops

    pipeline = Pipeline({**config, "pipeline": "agentops"})
    pipeline.spans(config["spans"], config["burst"])
    diagnosis = agentops.diagnose_session()
    result: dict[str, Any] = {
        "spans_exported": diagnosis["export_stats"].get("spans_exported"),
        "diagnose_us": [1e6 * t / config["diagnose_calls"] for t in timeit.repeat(
            agentops.diagnose_session, number=config["diagnose_calls"], repeat=config["repeat"])],
    }
    try:
        import agentops.report  # noqa: F401  (print_session_status renders through it)
    except ImportError as error:
        result["print_status_error"] = f"{type(error).__name__}: {error}"
    else:
        def print_status() -> None:
            agentops.print_session_status(file=io.StringIO())

        print_status()  # first call pays for imports
        result["print_status_ms"] = [1e3 * t / config["print_calls"] for t in timeit.repeat(
            print_status, number=config["print_calls"], repeat=config["repeat"])]
    emit(result)


def auth_outcome(config: dict[str, Any]) -> None:
    """Milliseconds from ``init`` until the diagnosis no longer says ``pending``."""
    started = time.perf_counter()
    import agentops

    imported = time.perf_counter()
    agentops.init(api_key=config["api_key"], endpoint=config["api_url"],
                  exporter_endpoint=config["otlp_url"])
    returned = time.perf_counter()
    deadline = returned + 10
    state = "pending"
    polls = 0
    while time.perf_counter() < deadline:
        state = agentops.diagnose_session()["auth"]["state"]
        polls += 1
        if state != "pending":
            break
        time.sleep(0.0002)
    known = time.perf_counter()
    emit({"state": state, "polls": polls, "import_ms": 1e3 * (imported - started),
          "init_return_ms": 1e3 * (returned - imported), "known_ms": 1e3 * (known - imported)})


WORKLOADS: dict[str, Callable[[dict[str, Any]], None]] = {
    "pipeline_cost": pipeline_cost,
    "resident_memory": resident_memory,
    "exit_time": exit_time,
    "diagnosis_cost": diagnosis_cost,
    "auth_outcome": auth_outcome,
}

if __name__ == "__main__":
    WORKLOADS[sys.argv[1]](json.loads(os.environ["BENCH_CONFIG"]))
