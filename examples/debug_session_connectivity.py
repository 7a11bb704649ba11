"""Can session data reach AgentOps from here? Run the connectivity test, or see what each
common failure looks like.

    python examples/debug_session_connectivity.py [API_KEY] [--endpoint URL]
        [--exporter-endpoint URL] [--json] [--local]

With an API key (the argument or AGENTOPS_API_KEY) or an endpoint, it tests that setup.
Without any, or with --local, it starts the bundled LocalBackend on 127.0.0.1 (nothing
leaves this machine) and walks through three situations users meet: a healthy session,
an invalid API key and a receiver that is down. Each shows the connectivity test and
what a real program reports with agentops.print_session_status(). The walkthrough sets
every setting its scenarios need and leaves the user's own AGENTOPS_* variables out (it
names the ones it left out), so each scenario behaves as described on any machine.

Exit status: 0 passed (the walkthrough: every scenario behaved as expected), 1 failed
(or the reader of its output went away, as with ``| head``), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentops import terminal
from agentops.helpers.connectivity.render import render_json
from agentops.helpers.debug_session import (
    print_connectivity_test_results,
    test_session_connectivity,
)
from agentops.redaction import redact, redact_data

SETTINGS = "AGENTOPS_"
"""The prefix of the SDK's environment variables."""
PROGRAM_TIMEOUT = 60.0
TEST_TIMEOUT = 10.0

# A program as users write it: init from AGENTOPS_* variables, a few spans, then the
# status report. It leaves a summary of its diagnosis in the file named by argv[1].
SDK_PROGRAM = """
import json, sys
import agentops
from opentelemetry import trace

agentops.init(wait_for_auth=True)
tracer = trace.get_tracer("connectivity-example")
for step in ("plan", "search", "answer"):
    with tracer.start_as_current_span("agent." + step):
        pass
agentops.end_trace()
agentops.flush(timeout=15)
print()
agentops.print_session_status()
diagnosis = agentops.diagnose_session()
stats = diagnosis.get("export_stats") or {}
with open(sys.argv[1], "w") as out:
    json.dump({"exporter_healthy": diagnosis.get("exporter_healthy"),
               "auth_state": (diagnosis.get("auth") or {}).get("state"),
               "auth_reason": (diagnosis.get("auth") or {}).get("reason"),
               "spans_made": stats.get("spans_made"),
               "spans_exported": stats.get("spans_exported"),
               "failures_by_cause": stats.get("failures_by_cause") or {},
               "stored_by_cause": stats.get("stored_by_cause") or {}}, out)
"""


@dataclass
class Scenario:
    name: str
    title: str
    explanation: str
    expectation: str
    api_key: str
    exporter_endpoint: str
    test_ok: Callable[[dict[str, Any]], bool]
    program_ok: Callable[[dict[str, Any]], bool]


def failed_step(results: dict[str, Any]) -> dict[str, Any] | None:
    return next((s for s in results.get("steps", []) if s.get("status") == "failed"), None)


def fails_at(step_name: str, reason: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def check(results: dict[str, Any]) -> bool:
        step = failed_step(results)
        return (not results.get("test_passed") and step is not None
                and step["name"] == step_name and (reason is None or step.get("reason") == reason))
    return check


def closed_port() -> int:
    """A port nothing listens on: bound once to learn a free number, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scenarios(backend: Any) -> list[Scenario]:
    return [
        Scenario(
            "healthy", "a healthy session",
            "A valid API key; the API and the OTLP receiver both answer.",
            "every step passes and the program's spans arrive",
            backend.api_key, backend.otlp_url,
            test_ok=lambda r: bool(r.get("test_passed")),
            program_ok=lambda p: bool(p.get("exporter_healthy")) and not p["failures_by_cause"]
            and (p.get("spans_exported") or 0) >= 4),
        Scenario(
            "invalid_key", "an invalid API key",
            "A well-formed key that belongs to no project (a typo, or a key from "
            "another account).",
            "the token exchange fails with invalid_key; the program sends nothing",
            str(uuid.uuid4()), backend.otlp_url,
            test_ok=fails_at("token_exchange", "invalid_key"),
            program_ok=lambda p: p.get("auth_reason") == "invalid_key"
            and not p.get("spans_exported")),
        Scenario(
            "receiver_down", "the OTLP receiver is down",
            "Authentication works, but nothing listens at the exporter endpoint (a wrong "
            "port, a firewall, or an outage).",
            "the OTLP endpoint step fails; the program keeps its spans in offline storage "
            "for a later run",
            backend.api_key, f"http://127.0.0.1:{closed_port()}/v1/traces",
            test_ok=fails_at("otlp_reachable"),
            program_ok=lambda p: p.get("auth_state") == "authenticated"
            and not p.get("spans_exported") and bool(p["stored_by_cause"])),
    ]


def bypass_proxies_for_loopback(environ: Any) -> None:
    """A proxy set in the environment must not carry requests meant for 127.0.0.1."""
    proxies = ("http_proxy", "https_proxy", "all_proxy")
    if not any(name.lower() in proxies and value.strip() for name, value in environ.items()):
        return
    for name in ("no_proxy", "NO_PROXY"):
        current = environ.get(name, "")
        environ[name] = ",".join(filter(None, [current, "127.0.0.1", "localhost"]))


def without_sdk_settings(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``environ`` without its AGENTOPS_* variables, and the names of those that held a
    value (the settings the walkthrough leaves out)."""
    kept = {name: value for name, value in environ.items() if not name.startswith(SETTINGS)}
    ignored = sorted(name for name, value in environ.items()
                     if name.startswith(SETTINGS) and value.strip())
    return kept, ignored


def program_env(environ: Mapping[str, str], backend: Any, scenario: Scenario, encoding: str,
                storage: str) -> dict[str, str]:
    """The scenario's program's environment: ``environ`` (without AGENTOPS_* settings)
    with the scenario's settings, and without the OTEL_* ones, which would configure the
    program's OpenTelemetry differently from one machine to the next."""
    env = {k: v for k, v in environ.items() if not k.startswith(("OTEL_", SETTINGS))}
    env.update({
        "AGENTOPS_API_KEY": scenario.api_key,
        "AGENTOPS_API_ENDPOINT": backend.api_url,
        "AGENTOPS_EXPORTER_ENDPOINT": scenario.exporter_endpoint,
        "AGENTOPS_APP_URL": backend.app_url,
        "AGENTOPS_MAX_WAIT_TIME": "200",
        "AGENTOPS_AUTH_TIMEOUT": "3",
        "AGENTOPS_EXPORT_TIMEOUT": "2",
        "AGENTOPS_SHUTDOWN_TIMEOUT": "1",
        # Offline storage (on by default) in this walkthrough's own directory, removed when
        # it ends: the local backend the spans were meant for stops with it.
        "AGENTOPS_STORAGE_DIRECTORY": storage,
        # The program writes what this terminal can show: its report falls back to ASCII
        # where the terminal cannot encode the symbols.
        "PYTHONIOENCODING": f"{encoding}:replace",
        "PYTHONUNBUFFERED": "1",
    })
    bypass_proxies_for_loopback(env)
    return env


def run_program(environ: Mapping[str, str], backend: Any, scenario: Scenario, encoding: str,
                storage: str) -> tuple[dict[str, Any], str]:
    """Run SDK_PROGRAM in its own interpreter: agentops.init is process-wide."""
    fd, summary_path = tempfile.mkstemp(prefix="agentops-example-", suffix=".json")
    os.close(fd)
    try:
        proc = subprocess.run([sys.executable, "-c", SDK_PROGRAM, summary_path],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=program_env(environ, backend, scenario, encoding, storage),
                              timeout=PROGRAM_TIMEOUT)
        output = proc.stdout.decode(encoding, "replace")
        with open(summary_path, encoding="utf-8") as summary_file:
            text = summary_file.read()
        summary = json.loads(text) if text else {}
        if proc.returncode != 0:
            summary["error"] = f"the program exited with status {proc.returncode}"
    except subprocess.TimeoutExpired:
        summary, output = {"error": f"the program ran longer than {PROGRAM_TIMEOUT:g}s"}, ""
    finally:
        os.unlink(summary_path)
    summary.setdefault("failures_by_cause", {})
    summary.setdefault("stored_by_cause", {})
    return summary, output


def describe_test(results: dict[str, Any]) -> str:
    if results.get("test_passed"):
        return "connectivity test passed"
    step = failed_step(results)
    if step is None:
        return "connectivity test failed"
    return f"connectivity test failed at \"{step['title']}\" ({step.get('reason')})"


def describe_program(summary: dict[str, Any]) -> str:
    if summary.get("error"):
        return summary["error"]
    made, sent = summary.get("spans_made") or 0, summary.get("spans_exported") or 0
    lost = ", ".join(f"{cause}: {n}" for cause, n in summary["failures_by_cause"].items())
    kept = ", ".join(f"{cause}: {n}" for cause, n in summary["stored_by_cause"].items())
    text = f"program delivered {sent} of {made} spans"
    if summary.get("auth_state") != "authenticated":
        text += f", auth {summary.get('auth_state')} ({summary.get('auth_reason')})"
    return text + (f", lost {lost}" if lost else "") + (f", stored {kept}" if kept else "")


def walkthrough(as_json: bool, why: str) -> int:
    """The scenarios against a LocalBackend started here; ``why`` says why (the intro's
    first words)."""
    from agentops.testing import LocalBackend

    out = sys.stdout
    fancy = terminal.can_encode(out, "\u2500\u2713\u2717\u2502")
    colour = terminal.wants_colour(out)
    rule = ("\u2500" if fancy else "-") * 72
    bar = "\u2502" if fancy else "|"
    encoding = getattr(out, "encoding", None) or "utf-8"
    bypass_proxies_for_loopback(os.environ)
    environ, ignored = without_sdk_settings(os.environ)
    records: list[dict[str, Any]] = []
    with LocalBackend() as backend, tempfile.TemporaryDirectory(prefix="agentops-example-") as storage:
        cases = scenarios(backend)
        if not as_json:
            print("AgentOps connectivity walkthrough")
            print(f"{why}: using the bundled LocalBackend at {backend.api_url}")
            print("(token API and OTLP receiver on 127.0.0.1; nothing leaves this machine).")
            print(f"Session links below point at this local backend ({backend.app_url}), which")
            print("stops when the walkthrough ends: they do not open afterwards.")
            print("Each scenario runs the connectivity test (what `agentops doctor` runs), then")
            print("a real program: agentops.init(), three spans, agentops.print_session_status().")
            if ignored:
                print("Your own AGENTOPS_* settings are not used here (each scenario sets its "
                      f"own): {', '.join(ignored)}.")
        for number, case in enumerate(cases, 1):
            if not as_json:
                print(f"\n{rule}\nScenario {number} of {len(cases)}: {case.title}\n{rule}")
                print(case.explanation)
                print(f"Expected: {case.expectation}.\n")
            results = test_session_connectivity(
                case.api_key, timeout=TEST_TIMEOUT, endpoint=backend.api_url,
                exporter_endpoint=case.exporter_endpoint, app_url=backend.app_url,
                environ=environ)
            if not as_json:
                print("The connectivity test:")
                print_connectivity_test_results(results)
                print("\nA program using the SDK (its output, logs included):")
            summary, output = run_program(environ, backend, case, encoding, storage)
            if not as_json:
                for line in output.rstrip().splitlines():
                    print(redact(f"  {bar} {line}".rstrip()))
            as_expected = case.test_ok(results) and case.program_ok(summary)
            records.append({"name": case.name, "title": case.title,
                            "expected": case.expectation, "as_expected": as_expected,
                            "connectivity": results, "program": summary,
                            "program_output": output})
    passed = all(record["as_expected"] for record in records)
    if as_json:
        print(json.dumps(redact_data({"mode": "local", "passed": passed,
                                      "ignored_settings": ignored, "scenarios": records}),
                         indent=2))
        return 0 if passed else 1
    print(f"\n{rule}\nSummary\n{rule}")
    for record in records:
        ok = record["as_expected"]
        mark = terminal.paint(("\u2713" if fancy else "OK") if ok else ("\u2717" if fancy else "XX"),
                              terminal.GREEN if ok else terminal.RED, colour)
        verdict = "as expected" if ok else "NOT as expected"
        print(f"  {mark} {record['title']}: {verdict}: {describe_test(record['connectivity'])}; "
              f"{describe_program(record['program'])}")
    print(f"\nThe local backend at {backend.api_url} has stopped, and the session links above "
          "with it.")
    print("\nTo check your own setup: python examples/debug_session_connectivity.py YOUR_API_KEY"
          "\n(or `agentops doctor`, which also shows where each setting came from).")
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check that session data can reach AgentOps, or (without a key, or with "
                    "--local) walk through common failures against a local backend.")
    parser.add_argument("api_key", nargs="?", help="project API key (default: AGENTOPS_API_KEY)")
    parser.add_argument("--endpoint", help="API base URL (default: AGENTOPS_API_ENDPOINT or "
                                           "https://api.agentops.ai)")
    parser.add_argument("--exporter-endpoint", help="OTLP traces URL (default: "
                                                    "AGENTOPS_EXPORTER_ENDPOINT or the AgentOps one)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds (default 15)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--local", action="store_true",
                        help="walk through scenarios against the bundled LocalBackend")
    args = parser.parse_args(argv)
    explicit = args.api_key or args.endpoint or args.exporter_endpoint
    if args.local and explicit:
        parser.error("--local uses the bundled backend; it takes no API key or endpoints")
    if not 0 < args.timeout < float("inf"):
        parser.error("--timeout must be a positive number of seconds")
    if args.local:
        return walkthrough(args.json, "With --local")
    if not (explicit or os.environ.get("AGENTOPS_API_KEY", "").strip()):
        return walkthrough(args.json, "No API key given (argument or AGENTOPS_API_KEY)")
    results = test_session_connectivity(args.api_key, timeout=args.timeout,
                                        endpoint=args.endpoint,
                                        exporter_endpoint=args.exporter_endpoint)
    if args.json:
        print(render_json(results))
    else:
        print_connectivity_test_results(results)
    return 0 if results["test_passed"] else 1


if __name__ == "__main__":
    sys.exit(terminal.quiet_on_broken_pipe(main))
