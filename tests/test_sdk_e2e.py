"""The SDK in a real program (a subprocess) against LocalBackend: what arrives, what the
URL line says, and how long exit takes."""

from __future__ import annotations

import math
import re

import pytest

from agentops.testing import Faults
from tests.conftest import SLACK, clean_env, free_port, run_python

SPANS = 20

# Makes SPANS spans, then prints the diagnosis; delivery happens at exit unless the
# scenario flushes. The backend runs in the test process; the program finds it through
# the AGENTOPS_* environment variables.
PROGRAM = """
import json, sys, time
import agentops
from opentelemetry import trace

agentops.init(max_wait_time=100)
tracer = trace.get_tracer("e2e")
pause = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
for i in range({spans}):
    with tracer.start_as_current_span(f"span-{{i}}"):
        pass
    time.sleep(pause)
{after}
print(json.dumps(agentops.diagnose_session()))
print("END", time.time(), flush=True)
"""


def program(after: str = "") -> str:
    return PROGRAM.format(spans=SPANS, after=after)


def env_for(backend, api_key: str | None = "default", **extra: str) -> dict[str, str]:
    env = clean_env(AGENTOPS_API_ENDPOINT=backend.api_url,
                    AGENTOPS_EXPORTER_ENDPOINT=backend.otlp_url,
                    AGENTOPS_APP_URL=backend.app_url, **extra)
    if api_key is not None:
        env["AGENTOPS_API_KEY"] = backend.api_key if api_key == "default" else api_key
    return env


def exit_causes(stderr: str) -> dict[str, int]:
    """The exit line's "(cause: spans, ...)" as a dict."""
    found = re.search(r"spans not delivered \(([^)]*)\)", stderr)
    assert found, stderr
    return {cause: int(n) for cause, n in (part.split(": ") for part in found[1].split(", "))}


def url_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Session Replay" in line]


def test_healthy_program_delivers_every_span_at_exit_with_a_green_url(local_backend):
    run = run_python(program(), env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(SPANS + 1, timeout=5)
    names = local_backend.span_names
    assert sorted(n for n in names if n.startswith("span-")) == sorted(f"span-{i}" for i in range(SPANS))
    assert "session.session" in names
    lines = url_lines(run.stderr)
    assert len(lines) == 1 and "\U0001f7e2" in lines[0] and "/sessions?trace_id=" in lines[0]
    assert "WARNING" not in run.stderr and "not sent" not in run.stderr
    assert all(r["authorized"] for r in local_backend.otlp_requests)


def test_slow_authentication_holds_spans_until_the_token_arrives(local_backend):
    local_backend.faults = Faults(auth_delay=3.0)
    flush = "agentops.get_client().processor.force_flush()"
    run = run_python(program(flush), env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(SPANS + 1, timeout=5)
    requests_seen = local_backend.otlp_requests
    assert requests_seen and all(r["authorized"] and r["token"] for r in requests_seen)
    diagnosis = run.last_json()
    assert diagnosis["export_stats"]["spans_exported"] >= SPANS
    assert diagnosis["export_stats"]["failures_by_cause"] == {}
    lines = url_lines(run.stderr)
    assert len(lines) == 1 and "\U0001f7e2" in lines[0]


def test_receiver_answering_503_twice_then_ok_loses_nothing(local_backend):
    local_backend.faults = Faults(otlp_statuses=(503, 503))
    run = run_python(program("agentops.get_client().processor.force_flush()"),
                    env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(SPANS + 1, timeout=5)
    assert [r["status"] for r in local_backend.otlp_requests][:3] == [503, 503, 200]
    assert run.last_json()["export_stats"]["failures_by_cause"] == {}


def test_short_lived_tokens_are_refreshed_and_every_span_arrives(local_backend):
    ttl = 2
    local_backend.token_ttl = ttl
    run = run_python(program(), env=env_for(local_backend), args=["0.3"], timeout=60)
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(SPANS + 1, timeout=5)
    # Spans are exported over SPANS * 0.3 = 6 s, longer than one token lives (exp is
    # ttl rounded up to whole seconds), so at least one refresh. A token is replaced no
    # earlier than half its lifetime (ttl / 2) after it was issued, so over the whole run
    # at most one token per ttl / 2 seconds after the first (plus one for rounding); a
    # refresh on every export (every 100 ms) would be dozens.
    most = 1 + math.ceil(run.seconds / (ttl / 2)) + 1
    assert 2 <= local_backend.tokens_issued <= most, (local_backend.tokens_issued, run.seconds)
    assert run.last_json()["export_stats"]["failures_by_cause"] == {}
    assert "not sent" not in run.stderr


def test_receiver_that_never_answers_cannot_hold_exit_past_the_shutdown_budget(local_backend):
    local_backend.faults = Faults(otlp_hang=True)
    run = run_python(program(), env=env_for(local_backend, AGENTOPS_SHUTDOWN_TIMEOUT="2"),
                    timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.exit_seconds() <= 2 + SLACK
    assert "Session data not sent to backend" in run.stderr
    # The batch was sent and never answered: it keeps the cause it met, not "shutdown"
    # (spans never attempted are "shutdown"; the summary lists causes by count).
    assert "timeout" in exit_causes(run.stderr), run.stderr


UNUSED_BUDGET = 6.0
"""shutdown_timeout for programs that have nothing they could deliver: their exit must not
wait it out. Half of it is the margin for a loaded machine."""


def test_without_api_key_nothing_is_sent_and_the_url_says_local_only(local_backend):
    run = run_python(program(), env=env_for(local_backend, api_key=None,
                                           AGENTOPS_SHUTDOWN_TIMEOUT=str(UNUSED_BUDGET)))
    assert run.returncode == 0, run.stderr
    assert local_backend.otlp_requests == [] and local_backend.auth_requests == []
    assert run.exit_seconds() < UNUSED_BUDGET / 2
    lines = url_lines(run.stderr)
    assert len(lines) == 1 and "\U0001f7e1" in lines[0] and "local only" in lines[0]
    diagnosis = run.last_json()
    assert diagnosis["auth"]["state"] == "disabled"


def test_invalid_key_sends_nothing_exits_fast_and_shows_a_red_url(local_backend):
    unknown = "00000000-0000-4000-8000-000000000000"
    run = run_python(program(), env=env_for(local_backend, api_key=unknown,
                                           AGENTOPS_WAIT_FOR_AUTH="true",
                                           AGENTOPS_SHUTDOWN_TIMEOUT=str(UNUSED_BUDGET)))
    assert run.returncode == 0, run.stderr
    assert local_backend.otlp_requests == []
    assert run.exit_seconds() < UNUSED_BUDGET / 2
    lines = url_lines(run.stderr)
    assert len(lines) == 1 and "\U0001f534" in lines[0] and "invalid_key" in lines[0]
    assert "Authentication failed - invalid API key or network issue" in run.stderr
    assert "Session data will not reach backend" in run.stderr
    assert "not delivered" in run.stderr  # the exit summary
    diagnosis = run.last_json()
    assert diagnosis["auth"]["state"] == "failed" and diagnosis["auth"]["reason"] == "invalid_key"
    assert diagnosis["auth"]["http_status"] == 403


def test_receiver_always_401_is_counted_as_auth_rejected(local_backend):
    local_backend.faults = Faults(otlp_status=401)
    run = run_python(program("agentops.get_client().processor.force_flush()"),
                    env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    diagnosis = run.last_json()
    assert diagnosis["export_stats"]["failures_by_cause"].get("auth_rejected", 0) >= SPANS
    assert diagnosis["exporter_healthy"] is False
    # One refresh per rejected payload (a batch or the receiver check), which is then sent
    # once more and given up: each payload is two requests, and every token after the
    # first answers one payload's 401 (concurrent payloads share a refresh).
    sent = local_backend.otlp_requests + local_backend.receiver_checks
    assert sent and all(r["status"] == 401 for r in sent)
    assert 2 <= local_backend.tokens_issued <= 1 + len(sent) // 2, \
        (local_backend.tokens_issued, len(sent))
    assert local_backend.spans == []


def test_url_line_falls_back_to_ascii_on_a_stream_that_cannot_encode_emoji(local_backend):
    run = run_python(program(), env=env_for(local_backend, PYTHONIOENCODING="ascii"))
    assert run.returncode == 0, run.stderr
    lines = url_lines(run.stderr)
    assert len(lines) == 1 and lines[0].startswith("AgentOps: [OK] Session Replay")


def test_auth_service_down_program_still_exits_promptly(local_backend):
    env = env_for(local_backend)
    env["AGENTOPS_API_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    run = run_python(program(), env=env)
    assert run.returncode == 0, run.stderr
    assert run.exit_seconds() <= 2 + SLACK
    assert local_backend.otlp_requests == []
    diagnosis = run.last_json()
    assert diagnosis["auth"]["reason"] == "connection_error"


@pytest.mark.parametrize("wait", ["true", "false"])
def test_init_returns_without_waiting_for_the_network_unless_asked(local_backend, wait):
    delay = 1.5
    local_backend.faults = Faults(auth_delay=delay)
    code = """
    import time, agentops
    started = time.monotonic()
    agentops.init(auto_start_session=False)
    print("INIT", time.monotonic() - started, agentops.diagnose_session()["auth"]["state"])
    """
    run = run_python(code, env=env_for(local_backend, AGENTOPS_WAIT_FOR_AUTH=wait))
    assert run.returncode == 0, run.stderr
    _, seconds, state = next(line for line in run.stdout.splitlines() if line.startswith("INIT")).split()
    # Measured inside the program: whether init returned before the token endpoint could
    # answer (it answers after ``delay`` seconds).
    if wait == "true":
        assert state == "authenticated" and float(seconds) >= delay
    else:
        assert state == "pending" and float(seconds) < delay


def test_program_ending_before_authentication_still_prints_its_url_line(local_backend):
    local_backend.faults = Faults(auth_delay=5.0)
    code = "import agentops; agentops.init(shutdown_timeout=0.5)"
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    lines = url_lines(run.stderr)
    assert len(lines) == 1 and "not complete" in lines[0] and "\U0001f7e2" not in lines[0]
