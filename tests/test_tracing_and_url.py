"""Session traces, the tracer provider we install or join, and the URL line's marker."""

from __future__ import annotations

import pytest

from agentops import vocabulary as v
from agentops.auth import AuthSnapshot
from agentops.helpers.dashboard import session_url, url_line
from tests.conftest import run_python
from tests.streams import Terminal
from tests.test_sdk_e2e import env_for


def snapshot(state: str, reason: str | None = None, status: int | None = None) -> AuthSnapshot:
    return AuthSnapshot(state=state, reason=reason, http_status=status, detail=None, attempts=1,
                        since=None, authenticated_at=None, token_expires_at=None,
                        project_id=None, has_token=state == v.AUTHENTICATED, retrying=False,
                        endpoint=None)


URL = session_url("https://app.example.test/", 0xABC)


def test_session_url_has_32_lowercase_hex_digits():
    assert URL == "https://app.example.test/sessions?trace_id=" + "0" * 29 + "abc"


ACCEPTING = {"state": v.ACCEPTING, "cause": None, "http_status": 200}


@pytest.mark.parametrize("state, reason, status, receiver, emoji, ascii_marker, words", [
    (v.AUTHENTICATED, None, 200, ACCEPTING, "\U0001f7e2", "[OK]", "(authenticated)"),
    (v.AUTHENTICATED, None, 200, {"state": v.REJECTING, "cause": "auth_rejected",
                                  "http_status": 401},
     "\U0001f534", "[FAILED]", "receiver is rejecting: auth_rejected, HTTP 401"),
    (v.AUTHENTICATED, None, 200, {"state": v.UNREACHABLE, "cause": "connection_error"},
     "\U0001f534", "[FAILED]", "receiver is unreachable: connection_error"),
    (v.AUTHENTICATED, None, 200, {"state": v.CHECKING}, "\U0001f534", "[FAILED]",
     "receiver has not answered after 5.0 s (auth_timeout 5 s)"),
    (v.DISABLED, None, None, {"state": v.UNCHECKED}, "\U0001f7e1", "[LOCAL]", "local only"),
    (v.FAILED, v.INVALID_KEY, 403, {"state": v.UNCHECKED}, "\U0001f534", "[FAILED]",
     "auth failed: invalid_key, HTTP 403"),
    (v.PENDING, None, None, {"state": v.UNCHECKED}, "\U0001f534", "[FAILED]",
     "not complete after 5.0 s (auth_timeout 5 s)"),
])
def test_marker_is_green_only_once_the_receiver_accepted_with_an_ascii_fallback(
        state, reason, status, receiver, emoji, ascii_marker, words):
    utf8 = url_line(URL, "session", snapshot(state, reason, status), receiver, 5,
                    Terminal(tty=False))
    assert utf8.startswith(emoji) and words in utf8 and utf8.endswith(URL)
    cp1252 = url_line(URL, "session", snapshot(state, reason, status), receiver, 5,
                      Terminal("cp1252", tty=False))
    assert cp1252.startswith(ascii_marker)
    cp1252.encode("cp1252")


def test_url_is_coloured_on_a_tty_but_not_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    line = url_line(URL, "session", snapshot(v.AUTHENTICATED), ACCEPTING, 5, Terminal())
    assert f"\x1b[32m{URL}\x1b[0m" in line
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in url_line(URL, "session", snapshot(v.AUTHENTICATED), ACCEPTING, 5, Terminal())
    assert "\x1b[" not in url_line(URL, "session", snapshot(v.AUTHENTICATED), ACCEPTING, 5,
                                   Terminal(tty=False))


def test_spans_from_the_global_tracer_are_exported_when_no_provider_was_set(local_backend):
    code = """
    import agentops
    from opentelemetry import trace
    agentops.init(auto_start_session=False)
    with trace.get_tracer("user").start_as_current_span("from-global-tracer"):
        pass
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(1, timeout=5)
    assert local_backend.span_names == ["from-global-tracer"]


def test_an_existing_sdk_provider_gets_our_processor_and_keeps_its_own(local_backend):
    code = """
    import agentops, logging
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    mine = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(mine))
    trace.set_tracer_provider(provider)
    agentops.init(auto_start_session=False)
    assert trace.get_tracer_provider() is provider
    with trace.get_tracer("user").start_as_current_span("shared"):
        pass
    print("MINE", [s.name for s in mine.get_finished_spans()])
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert "MINE ['shared']" in run.stdout
    assert "added its span processor" in run.stderr
    assert local_backend.wait_for_spans(1, timeout=5) and local_backend.span_names == ["shared"]


def test_trace_context_manager_ends_with_error_status_on_exception(local_backend):
    code = """
    import agentops
    from opentelemetry import trace
    agentops.init(auto_start_session=False)
    try:
        with agentops.start_trace("work", tags=["t1"]) as ctx:
            with trace.get_tracer("user").start_as_current_span("child"):
                pass
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    ok = agentops.start_trace("fine")
    agentops.end_trace(ok, end_state="Success")
    print("ACTIVE", agentops.diagnose_session()["active_traces"], ctx.trace_id)
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(3, timeout=5)
    _, active, trace_id = next(line for line in run.stdout.splitlines() if line.startswith("ACTIVE")).split()
    assert active == "0"
    spans = {s["name"]: s for s in local_backend.spans}
    work, fine = spans["work.session"], spans["fine.session"]
    assert work["status_code"] == 2 and fine["status_code"] == 1
    assert work["status_message"] == "RuntimeError: boom"
    assert work["attributes"]["agentops.session.end_state"] == "Error"
    assert spans["child"]["trace_id"] == trace_id == work["trace_id"]
    assert work["attributes"]["agentops.tags"] == ["t1"]


def test_exactly_one_url_line_per_session_trace(local_backend):
    code = """
    import agentops
    agentops.init()
    agentops.end_trace()
    for name in ("a", "b"):
        agentops.end_trace(agentops.start_trace(name))
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "Session Replay" in line]
    assert len(lines) == 3 and len({line.split("trace_id=")[1] for line in lines}) == 3


def test_spans_under_an_unsampled_parent_are_still_recorded_unless_a_sampler_is_chosen(local_backend):
    code = """
    import agentops
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    agentops.init(auto_start_session=False)
    parent = SpanContext(trace_id=1, span_id=2, is_remote=True, trace_flags=TraceFlags(0))
    ctx = trace.set_span_in_context(NonRecordingSpan(parent))
    trace.get_tracer("user").start_span("under-unsampled", context=ctx).end()
    trace.get_tracer("user").start_span("a-root").end()
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(2, timeout=5)
    assert sorted(local_backend.span_names) == ["a-root", "under-unsampled"]
    local_backend.reset()
    run = run_python(code, env=env_for(local_backend, OTEL_TRACES_SAMPLER="parentbased_always_on"))
    assert run.returncode == 0, run.stderr
    # The root span arrives, so the program did export: the other one was not sampled.
    assert local_backend.wait_for_spans(1, timeout=5)
    assert local_backend.span_names == ["a-root"]
