"""The SDK's benchmarks against the plain OpenTelemetry pipeline doing the same job.

    python bench/run.py            full run (about 9 minutes), writes bench/results/latest.json
    python bench/run.py --quick    smoke run (under a minute), writes a temporary file
    python bench/run.py --json FILE

The yardstick is the idiomatic OpenTelemetry setup: TracerProvider + BatchSpanProcessor +
OTLPSpanExporter with a static ``Authorization: Bearer`` header. Both pipelines talk to the
same LocalBackend, started here on 127.0.0.1, and every measured program runs in a fresh
interpreter, agentops and plain alternated round by round so machine noise cancels out in
their ratio. Goals are shown, never asserted; what is asserted is correctness: every span
the pipelines were asked to deliver reached the backend.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from workloads import EXIT_PREFIX, RESULT_PREFIX, SPAN_NAME  # noqa: E402

from agentops.export.storage import OfflineStore  # noqa: E402
from agentops.testing import Faults, LocalBackend  # noqa: E402

LATEST = BENCH_DIR / "results" / "latest.json"
WORKLOADS = BENCH_DIR / "workloads.py"
SDK_ENV_PREFIXES = ("AGENTOPS_", "OTEL_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                    "http_proxy", "https_proxy", "no_proxy", "NO_COLOR")
SHUTDOWN_TIMEOUT = 2.0  # agentops' default, which the exit goal is stated against
REFUSED_EXIT = 0.5
"""Seconds: a receiver refusing connections at exit costs one attempt, then the spans are
stored in offline storage (on by default)."""
PIPELINES = ("agentops", "plain")


@dataclass(frozen=True)
class Settings:
    rounds: int
    pipeline_rounds: int
    startup_rounds: int
    pipeline_spans: int
    burst: int
    memory_spans: int
    exit_spans: int
    diagnose_calls: int
    print_calls: int
    repeat: int


FULL = Settings(rounds=5, pipeline_rounds=7, startup_rounds=15, pipeline_spans=50_000,
                burst=1_000, memory_spans=200_000, exit_spans=100, diagnose_calls=2_000,
                print_calls=200, repeat=5)
QUICK = Settings(rounds=2, pipeline_rounds=2, startup_rounds=2, pipeline_spans=5_000,
                 burst=1_000, memory_spans=10_000, exit_spans=100, diagnose_calls=500,
                 print_calls=50, repeat=3)


class BenchError(RuntimeError):
    """A workload failed or a pipeline did not deliver what it was asked to."""


# -- running programs -----------------------------------------------------------------------


BYTECODE_CACHE = Path(tempfile.gettempdir()) / "agentops-bench-pycache"
STORE_ROOT = tempfile.mkdtemp(prefix="agentops-bench-store-")
"""Each workload's offline storage directory is made here; removed when the bench ends."""


def child_env(**extra: str) -> dict[str, str]:
    """The environment without SDK or proxy settings, so both pipelines see only their
    arguments, and with bytecode caching on: an installed package has its modules
    compiled, and so does OpenTelemetry in site-packages, so agentops must not be compiled
    from source on every start (``PYTHONDONTWRITEBYTECODE`` would do that). The cache
    lives outside the work tree."""
    env = {k: val for k, val in os.environ.items()
           if not k.startswith(SDK_ENV_PREFIXES) and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(BYTECODE_CACHE)
    # Offline storage on (the default), never in the user's own cache directory.
    env["AGENTOPS_STORAGE_DIRECTORY"] = tempfile.mkdtemp(dir=STORE_ROOT)
    env.update(extra)
    return env


def warm_bytecode_cache() -> None:
    modules = ["agentops", "agentops.report", "agentops.diagnostics", "jwt",
               "opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter",
               "requests"]
    code = (f"import importlib\nfor name in {modules!r}:\n    try:\n"
            "        importlib.import_module(name)\n    except ImportError:\n        pass\n")
    subprocess.run([sys.executable, "-c", code], env=child_env(), check=True, timeout=120,
                   stdout=subprocess.DEVNULL)


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def parse_result(stdout: str, stderr: str, what: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise BenchError(f"{what}: no result line\nstdout:\n{tail(stdout)}\nstderr:\n{tail(stderr)}")


def run_workload(name: str, config: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    what = f"{name} ({config.get('pipeline', 'agentops')})"
    proc = subprocess.run([sys.executable, str(WORKLOADS), name], capture_output=True,
                          text=True, timeout=timeout,
                          env=child_env(BENCH_CONFIG=json.dumps(config)))
    if proc.returncode != 0:
        raise BenchError(f"{what} exited with {proc.returncode}\nstderr:\n{tail(proc.stderr)}")
    return parse_result(proc.stdout, proc.stderr, what)


def timed_program(code: str, env: dict[str, str], timeout: float = 60) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a whole ``python -c code`` process,
    start-up and exit included."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env=env, timeout=timeout)
        raise BenchError(f"program failed ({proc.returncode}):\n{code}\n{tail(again.stderr)}")
    return seconds, usage.ru_utime + usage.ru_stime


class ExitRun:
    """A workload whose exit is timed: from the monotonic mark it prints just before the end
    of its program to the moment this process sees it end (CLOCK_MONOTONIC is system-wide)."""

    def __init__(self, config: dict[str, Any], timeout: float = 90) -> None:
        self.what = f"exit_time ({config['pipeline']})"
        self.timeout = timeout
        self.marked = threading.Event()
        self.mark: float | None = None
        self.ended_at: float | None = None
        self.stdout: list[str] = []
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.config = config
        self.env = child_env(BENCH_CONFIG=json.dumps(config))
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKLOADS), "exit_time"], stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, env=self.env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line)
            if line.startswith(EXIT_PREFIX):
                self.mark = float(line[len(EXIT_PREFIX):])
                self.marked.set()
        self.proc.wait()
        self.ended_at = time.monotonic()
        self.marked.set()

    def wait_mark(self) -> None:
        if not self.marked.wait(self.timeout):
            self.proc.kill()
            raise BenchError(f"{self.what}: no exit mark within {self.timeout}s")

    def result(self) -> dict[str, Any]:
        self._reader.join(self.timeout)
        if self._reader.is_alive():
            self.proc.kill()
            raise BenchError(f"{self.what}: still running after {self.timeout}s")
        self._stderr.seek(0)
        stderr = self._stderr.read()
        self._stderr.close()
        if self.proc.returncode != 0 or self.mark is None or self.ended_at is None:
            raise BenchError(f"{self.what} exited with {self.proc.returncode}\n{tail(stderr)}")
        result = parse_result("".join(self.stdout), stderr, self.what)
        result["exit_s"] = self.ended_at - self.mark
        if self.config["pipeline"] == "agentops":
            result["stored_spans"] = OfflineStore(
                self.env["AGENTOPS_STORAGE_DIRECTORY"], api_key=self.config["api_key"],
                endpoint=self.config["otlp_url"]).status(fresh=True)["pending_spans"]
        return result


# -- figures --------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    samples: list[float]
    goal: str | None = None
    met: bool | None = None
    note: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(median=self.median, min=min(self.samples, default=None),
                    max=max(self.samples, default=None))
        return data


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-round ratios: each agentops sample against the plain sample run next to it."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def judged(figure: Figure, test: Callable[[float], bool]) -> Figure:
    if figure.median is not None:
        figure.met = test(figure.median)
    return figure


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the benchmarks -------------------------------------------------------------------------


class Bench:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.backend = LocalBackend().start()
        self.hanging = LocalBackend(faults=Faults(otlp_hang=True)).start()
        # Bound and never listening: connections are refused, and no other program can
        # take the port while the bench runs.
        self._closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._closed.bind(("127.0.0.1", 0))
        self.closed_url = f"http://127.0.0.1:{self._closed.getsockname()[1]}/v1/traces"
        self.figures: list[Figure] = []
        self.raw: dict[str, Any] = {}

    def close(self) -> None:
        self.backend.stop()
        self.hanging.stop()
        self._closed.close()

    def target(self, backend: LocalBackend, otlp_url: str | None = None) -> dict[str, Any]:
        """Where a workload sends: the backend's token API, and its receiver unless
        ``otlp_url`` says otherwise. The plain pipeline gets a token signed up front."""
        return {"api_key": backend.api_key, "api_url": backend.api_url,
                "otlp_url": otlp_url or backend.otlp_url, "token": backend.issue_token()}

    def delivered(self) -> int:
        return sum(r["span_count"] for r in self.backend.otlp_requests if r["status"] == 200)

    # 1. pipeline cost

    def pipeline_cost(self) -> None:
        s = self.s
        variants = {"agentops": {"pipeline": "agentops"}, "plain": {"pipeline": "plain"},
                    "plain_parent": {"pipeline": "plain", "parent_span": True}}
        samples: dict[str, list[dict[str, Any]]] = {p: [] for p in variants}
        for round_ in range(s.pipeline_rounds):
            for pipeline, variant in variants.items():
                self.backend.reset()
                result = run_workload("pipeline_cost", {
                    **self.target(self.backend), **variant,
                    "spans": s.pipeline_spans, "burst": s.burst})
                expected = s.pipeline_spans + result["warmup_spans"]
                received = self.backend.span_names.count(SPAN_NAME)
                if received != expected:
                    raise BenchError(f"pipeline_cost ({pipeline}): the backend received "
                                     f"{received} of {expected} spans")
                result["received"] = received
                samples[pipeline].append(result)
                progress(f"pipeline round {round_ + 1}/{s.pipeline_rounds} {pipeline}: "
                         f"{result['wall_s']:.2f} s, all {received} spans received")
        self.raw["pipeline_cost"] = samples
        wall = {p: [r["wall_s"] for r in samples[p]] for p in variants}
        cpu = {p: [r["cpu_s"] for r in samples[p]] for p in variants}
        n = f"{s.pipeline_spans:,}"
        self.figures += [
            Figure("pipeline.agentops.wall", f"Pipeline {n} spans: agentops", "s",
                   wall["agentops"]),
            Figure("pipeline.plain.wall", f"Pipeline {n} spans: plain OpenTelemetry", "s",
                   wall["plain"]),
            Figure("pipeline.agentops.rate", "Pipeline throughput: agentops", "spans/s",
                   [r["spans_per_s"] for r in samples["agentops"]]),
            Figure("pipeline.plain.rate", "Pipeline throughput: plain OpenTelemetry", "spans/s",
                   [r["spans_per_s"] for r in samples["plain"]]),
            Figure("pipeline.plain_parent.wall",
                   f"Pipeline {n} spans: plain OpenTelemetry, under a parent span", "s",
                   wall["plain_parent"]),
            judged(Figure("pipeline.parent_ratio",
                          "Pipeline time agentops / plain under a parent span", "x",
                          ratios(wall["agentops"], wall["plain_parent"]), goal="<= 1.02"),
                   lambda r: r <= 1.02),
            judged(Figure("pipeline.parent_cpu_ratio",
                          "Pipeline CPU time agentops / plain under a parent span", "x",
                          ratios(cpu["agentops"], cpu["plain_parent"]), goal="<= 1.02"),
                   lambda r: r <= 1.02),
            Figure("pipeline.ratio", "Pipeline time agentops / plain (root spans)", "x",
                   ratios(wall["agentops"], wall["plain"])),
            Figure("pipeline.cpu_ratio", "Pipeline CPU time agentops / plain (root spans)", "x",
                   ratios(cpu["agentops"], cpu["plain"])),
        ]

    # 2. start-up

    def startup(self) -> None:
        target = self.target(self.backend)
        env = child_env(BENCH_API_KEY=target["api_key"], BENCH_API_URL=target["api_url"],
                        BENCH_OTLP_URL=target["otlp_url"], BENCH_TOKEN=target["token"])
        programs = {
            "init.agentops": (
                "import os\n"
                "import agentops\n"
                "agentops.init(api_key=os.environ['BENCH_API_KEY'],"
                " endpoint=os.environ['BENCH_API_URL'],"
                " exporter_endpoint=os.environ['BENCH_OTLP_URL'])\n"),
            "init.plain": (
                "import os\n"
                "from opentelemetry import trace\n"
                "from opentelemetry.exporter.otlp.proto.http.trace_exporter import"
                " OTLPSpanExporter\n"
                "from opentelemetry.sdk.resources import Resource\n"
                "from opentelemetry.sdk.trace import TracerProvider\n"
                "from opentelemetry.sdk.trace.export import BatchSpanProcessor\n"
                "provider = TracerProvider(resource=Resource.create({'service.name': 'bench'}))\n"
                "provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter("
                "endpoint=os.environ['BENCH_OTLP_URL'],"
                " headers={'Authorization': 'Bearer ' + os.environ['BENCH_TOKEN']})))\n"
                "trace.set_tracer_provider(provider)\n"),
            "import.agentops": "import agentops\n",
            "import.plain": ("import opentelemetry.sdk.trace,"
                             " opentelemetry.exporter.otlp.proto.http.trace_exporter, requests\n"),
        }
        for code in programs.values():  # warm the file cache; not measured
            timed_program(code, env)
        wall: dict[str, list[float]] = {name: [] for name in programs}
        cpu: dict[str, list[float]] = {name: [] for name in programs}
        rounds = self.s.startup_rounds
        for round_ in range(rounds):
            for name, code in programs.items():
                seconds, cpu_seconds = timed_program(code, env)
                wall[name].append(1000 * seconds)
                cpu[name].append(1000 * cpu_seconds)
            progress(f"start-up round {round_ + 1}/{rounds}: " + ", ".join(
                f"{name} {values[-1]:.0f} ms" for name, values in wall.items()))
        self.raw["startup_ms"] = {"wall": wall, "cpu": cpu}
        self.figures += [
            Figure("startup.init.agentops", "Process: import + agentops.init + exit", "ms",
                   wall["init.agentops"]),
            Figure("startup.init.plain", "Process: plain OpenTelemetry setup + exit", "ms",
                   wall["init.plain"]),
            judged(Figure("startup.init.ratio", "Start-up process agentops / plain", "x",
                          ratios(wall["init.agentops"], wall["init.plain"]), goal="<= 1.2"),
                   lambda r: r <= 1.2),
            Figure("startup.init.cpu_ratio", "Start-up process CPU time agentops / plain", "x",
                   ratios(cpu["init.agentops"], cpu["init.plain"])),
            Figure("startup.import.agentops", "Process: import agentops", "ms",
                   wall["import.agentops"]),
            Figure("startup.import.plain", "Process: import otel sdk + otlp http + requests",
                   "ms", wall["import.plain"]),
            judged(Figure("startup.import.ratio", "Import agentops / plain imports", "x",
                          ratios(wall["import.agentops"], wall["import.plain"]),
                          goal="<= 1.2"), lambda r: r <= 1.2),
            Figure("startup.import.cpu_ratio", "Import CPU time agentops / plain imports", "x",
                   ratios(cpu["import.agentops"], cpu["import.plain"])),
        ]

    # 3. exit time

    def exit_time(self) -> None:
        """Per round the two plain programs are started first and left waiting on their
        exporters (their exits take many seconds and use no CPU); the agentops programs then
        run one at a time, so nothing else is busy while their exits are timed."""
        scenarios = {"hang": self.target(self.hanging),
                     "refused": self.target(self.backend, self.closed_url)}
        samples: dict[str, list[dict[str, Any]]] = {
            f"{scenario}.{p}": [] for scenario in scenarios for p in PIPELINES}
        for round_ in range(self.s.rounds):
            plain = {name: ExitRun({**target, "pipeline": "plain", "spans": self.s.exit_spans})
                     for name, target in scenarios.items()}
            for run in plain.values():
                run.wait_mark()
            order = list(scenarios) if round_ % 2 == 0 else list(reversed(scenarios))
            for name in order:
                run = ExitRun({**scenarios[name], "pipeline": "agentops",
                               "spans": self.s.exit_spans})
                samples[f"{name}.agentops"].append(run.result())
            for name, run in plain.items():
                samples[f"{name}.plain"].append(run.result())
            progress(f"exit round {round_ + 1}/{self.s.rounds}: " + ", ".join(
                f"{key} {values[-1]['exit_s']:.2f} s" for key, values in samples.items()))
        self.raw["exit"] = samples
        bound = SHUTDOWN_TIMEOUT + 0.5
        seconds = {key: [r["exit_s"] for r in values] for key, values in samples.items()}
        made = self.s.exit_spans + 1  # and the session trace's root span, ended at exit
        unstored = [r["stored_spans"] for r in samples["refused.agentops"]
                    if r["stored_spans"] != made]
        if unstored:
            raise BenchError(f"exit, connection refused: offline storage held {unstored} "
                             f"spans, not all {made}")
        self.figures += [
            judged(Figure("exit.hang.agentops", "Exit, receiver never answers: agentops", "s",
                          seconds["hang.agentops"], goal=f"<= {bound:g}"), lambda v: v <= bound),
            Figure("exit.hang.plain", "Exit, receiver never answers: plain", "s",
                   seconds["hang.plain"]),
            judged(Figure("exit.refused.agentops",
                          "Exit, connection refused: agentops (every span stored)", "s",
                          seconds["refused.agentops"], goal=f"<= {REFUSED_EXIT:g}"),
                   lambda v: v <= REFUSED_EXIT),
            Figure("exit.refused.plain", "Exit, connection refused: plain", "s",
                   seconds["refused.plain"]),
        ]

    # 4. diagnosis cost

    def diagnosis_cost(self) -> None:
        results = []
        for round_ in range(self.s.rounds):
            result = run_workload("diagnosis_cost", {
                **self.target(self.backend), "spans": self.s.burst, "burst": self.s.burst,
                "diagnose_calls": self.s.diagnose_calls, "print_calls": self.s.print_calls,
                "repeat": self.s.repeat})
            if not result["spans_exported"]:
                raise BenchError("diagnosis_cost: the client exported no spans")
            results.append(result)
            progress(f"diagnosis round {round_ + 1}/{self.s.rounds}: diagnose_session "
                     f"{statistics.median(result['diagnose_us']):.0f} us, print_session_status "
                     + (f"{statistics.median(result['print_status_ms']):.2f} ms"
                        if "print_status_ms" in result else "unavailable"))
        self.raw["diagnosis"] = results
        diagnose = [statistics.median(r["diagnose_us"]) for r in results]
        printing = [statistics.median(r["print_status_ms"]) for r in results
                    if "print_status_ms" in r]
        missing = next((r["print_status_error"] for r in results if "print_status_error" in r),
                       None)
        self.figures += [
            judged(Figure("diagnose_session", "diagnose_session() per call", "us", diagnose,
                          goal="< 100"), lambda v: v < 100),
            judged(Figure("print_session_status", "print_session_status() to StringIO", "ms",
                          printing, goal="< 2", note=missing and f"unavailable: {missing}"),
                   lambda v: v < 2),
        ]

    # 5. resident memory

    def memory(self) -> None:
        s = self.s
        scenarios = {"up": self.target(self.backend),
                     "down": self.target(self.backend, self.closed_url)}
        samples: dict[str, list[dict[str, Any]]] = {
            f"{scenario}.{p}": [] for scenario in scenarios for p in PIPELINES}
        for round_ in range(s.rounds):
            for scenario, target in scenarios.items():
                for pipeline in PIPELINES:
                    self.backend.reset()
                    result = run_workload("resident_memory", {
                        **target, "pipeline": pipeline, "spans": s.memory_spans,
                        "burst": s.burst, "receiver_up": scenario == "up"}, timeout=300)
                    if scenario == "up":
                        # agentops also delivers its session trace's root span at exit.
                        expected = s.memory_spans + (pipeline == "agentops")
                        received = self.delivered()
                        if received != expected:
                            raise BenchError(f"resident_memory ({pipeline}): the backend "
                                             f"received {received} of {expected} spans")
                        result["received"] = received
                    samples[f"{scenario}.{pipeline}"].append(result)
                    progress(f"memory round {round_ + 1}/{s.rounds} receiver {scenario} "
                             f"{pipeline}: peak {result['peak_rss_mib']:.1f} MiB, "
                             f"now {result['rss_mib']:.1f} MiB")
        self.raw["memory"] = samples
        n = f"{s.memory_spans:,}"
        for scenario, words in (("up", "receiver up"), ("down", "receiver down")):
            for pipeline, name in (("agentops", "agentops"), ("plain", "plain")):
                values = samples[f"{scenario}.{pipeline}"]
                self.figures += [
                    Figure(f"memory.{scenario}.{pipeline}.peak",
                           f"Peak RSS, {n} spans, {words}: {name}", "MiB",
                           [r["peak_rss_mib"] for r in values]),
                    Figure(f"memory.{scenario}.{pipeline}.now",
                           f"RSS after {n} spans, {words}: {name}", "MiB",
                           [r["rss_mib"] for r in values]),
                ]
            self.figures.append(Figure(
                f"memory.{scenario}.peak_ratio", f"Peak RSS agentops / plain, {words}", "x",
                ratios([r["peak_rss_mib"] for r in samples[f"{scenario}.agentops"]],
                       [r["peak_rss_mib"] for r in samples[f"{scenario}.plain"]])))

    # 6. time to the auth outcome

    def auth_outcome(self) -> None:
        healthy = self.target(self.backend)
        cases = {"authenticated": healthy,
                 "failed": {**healthy, "api_key": str(uuid.uuid4())}}  # a key it never issued
        samples: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
        for round_ in range(self.s.rounds):
            for case, target in cases.items():
                result = run_workload("auth_outcome", target)
                if result["state"] != case:
                    raise BenchError(f"auth_outcome: expected {case}, diagnosis says "
                                     f"{result['state']}")
                samples[case].append(result)
            progress(f"auth round {round_ + 1}/{self.s.rounds}: " + ", ".join(
                f"{case} {values[-1]['known_ms']:.1f} ms" for case, values in samples.items()))
        self.raw["auth_outcome"] = samples
        self.figures += [
            Figure("auth.healthy", "init to auth outcome known: healthy", "ms",
                   [r["known_ms"] for r in samples["authenticated"]]),
            Figure("auth.invalid_key", "init to auth outcome known: invalid key", "ms",
                   [r["known_ms"] for r in samples["failed"]]),
        ]


# -- report ---------------------------------------------------------------------------------


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    rows = [("Figure", "Median [min-max]", "Unit", "Goal", "Met")]
    for f in figures:
        if f.samples:
            value = f"{number(f.median)} [{number(min(f.samples))}-{number(max(f.samples))}]"
        else:
            value = f.note or "-"
        met = "-" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.label, value, f.unit, f.goal or "", met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=BENCH_DIR, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "opentelemetry_sdk": version("opentelemetry-sdk"),
        "opentelemetry_exporter_otlp_proto_http": version("opentelemetry-exporter-otlp-proto-http"),
        "requests": version("requests"),
        "agentops": version("agentops"),
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds and small N: a smoke run; never writes latest.json")
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    out = args.json
    if out is None:
        out = (Path(tempfile.mkdtemp(prefix="agentops-bench-")) / "bench.json"
               if args.quick else LATEST)

    started = time.monotonic()
    load_before = os.getloadavg()
    warm_bytecode_cache()
    bench = Bench(settings)
    try:
        bench.pipeline_cost()
        bench.startup()
        bench.exit_time()
        bench.diagnosis_cost()
        bench.memory()
        bench.auth_outcome()
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        bench.close()
        shutil.rmtree(STORE_ROOT, ignore_errors=True)

    results = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "settings": asdict(settings),
        "machine": machine(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "duration_s": round(time.monotonic() - started, 1),
        "figures": [figure.as_dict() for figure in bench.figures],
        "raw": bench.raw,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(bench.figures))
    print(f"\n{results['mode']} run, {results['duration_s']} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
