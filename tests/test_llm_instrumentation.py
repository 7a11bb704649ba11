"""LLM calls recorded: the real openai and anthropic clients against a local fake of their
APIs (tests/fake_llm.py), through the SDK to LocalBackend, in a subprocess each (the
instrumentors patch process-wide). Also: deactivation, idempotence, capture_content, the
provider's key kept out of spans, and the findings when a library or its instrumentor is
missing (hidden from a subprocess by a filtered copy of site-packages)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import site
import time
from pathlib import Path

import pytest

from agentops.auth import AuthSnapshot
from agentops.config import Config
from agentops.diagnostics import Facts, collect, evaluate, no_spans
from agentops.llm_spans import scrub, upstream_attributes
from tests.conftest import clean_env, run_python
from tests.fake_llm import (
    ANTHROPIC_MODEL,
    ANTHROPIC_USAGE,
    OPENAI_MODEL,
    OPENAI_USAGE,
    FakeLLMServer,
)

# Found, not imported: importing them here would let in-process init() calls of other
# tests activate their instrumentors in the test runner.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openai") is None or importlib.util.find_spec("anthropic") is None,
    reason="the openai and anthropic clients are not installed (pip install -e '.[test]')")
OPENAI_VERSION = importlib.metadata.version("openai") if pytestmark.args[0] is False else None

PROVIDER_KEY = "sk-proj-Zx81TestProviderKey0000111122223333"
ANTHROPIC_KEY = "sk-ant-api03-TestAnthropicKey44445555666677778888"

HEADER = """
import asyncio, json, sys
import agentops
fake = sys.argv[1]
"""

FOOTER = """
import os
client = agentops.get_client()
print(json.dumps({"trace_id": client.traces[0].trace_id if client.traces else None,
                  "content_variable": os.environ.get("TRACELOOP_TRACE_CONTENT"),
                  "diagnosis": agentops.diagnose_session()}))
"""


@pytest.fixture
def fake():
    with FakeLLMServer() as server:
        yield server


def env_for(backend, **extra: str) -> dict[str, str]:
    return clean_env(AGENTOPS_API_ENDPOINT=backend.api_url,
                     AGENTOPS_EXPORTER_ENDPOINT=backend.otlp_url,
                     AGENTOPS_APP_URL=backend.app_url, AGENTOPS_API_KEY=backend.api_key,
                     AGENTOPS_MAX_WAIT_TIME="100", **extra)


def run_program(body: str, backend, fake, *, env: dict[str, str] | None = None,
                python_args: list[str] | None = None) -> dict:
    code = HEADER + body + FOOTER
    run = run_python(code, env=env or env_for(backend), args=[fake.base_url], timeout=90,
                     python_args=python_args)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    result = run.last_json()
    result["stderr"] = run.stderr
    return result


def llm_spans(backend, trace_id: str, count: int) -> list[dict]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        spans = [s for s in backend.spans_for_trace(trace_id)
                 if s["attributes"].get("agentops.span.kind") == "llm"]
        if len(spans) >= count:
            return spans
        time.sleep(0.05)
    raise AssertionError(f"expected {count} LLM spans in trace {trace_id}, got "
                         f"{[s['name'] for s in backend.spans_for_trace(trace_id)]}")


def assert_under_session(backend, trace_id: str, spans: list[dict]) -> None:
    root = [s for s in backend.spans_for_trace(trace_id) if s["parent_span_id"] is None]
    assert len(root) == 1 and root[0]["attributes"]["agentops.span.kind"] == "session"
    for span in spans:
        assert span["trace_id"] == trace_id
        assert span["parent_span_id"] == root[0]["span_id"]


OPENAI_CALLS = f"""
agentops.init()
import openai
llm = openai.OpenAI(api_key={PROVIDER_KEY!r}, base_url=fake + "/v1")
llm.chat.completions.create(model={OPENAI_MODEL!r},
                            messages=[{{"role": "user", "content": "Say hello"}}],
                            extra_headers={{"Authorization": "Bearer {PROVIDER_KEY}"}})
"""


def test_default_init_delivers_an_openai_chat_completion_as_a_genai_span_in_the_session(
        local_backend, fake):
    result = run_program(OPENAI_CALLS, local_backend, fake)
    [span] = llm_spans(local_backend, result["trace_id"], 1)
    assert_under_session(local_backend, result["trace_id"], [span])
    attributes = span["attributes"]
    assert attributes["gen_ai.request.model"] == OPENAI_MODEL
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.usage.prompt_tokens"] == OPENAI_USAGE["prompt_tokens"]
    assert attributes["gen_ai.usage.completion_tokens"] == OPENAI_USAGE["completion_tokens"]
    assert attributes["gen_ai.usage.total_tokens"] == OPENAI_USAGE["total_tokens"]
    # content is recorded by default, as upstream does
    assert attributes["gen_ai.prompt.0.content"] == "Say hello"
    assert attributes["gen_ai.completion.0.content"].startswith("Hello from the fake model")
    assert result["content_variable"] is None  # the SDK leaves the instrumentor's switch alone
    # the key went to the provider, and nowhere into the span
    assert any(PROVIDER_KEY in str(r["headers"]) for r in fake.requests)
    assert PROVIDER_KEY not in json.dumps(local_backend.spans)
    openai_facts = result["diagnosis"]["instrumentation"]["openai"]
    assert openai_facts["active"] and openai_facts["activated_by"] == "agentops"
    assert openai_facts["instrumentor"] == "opentelemetry-instrumentation-openai"
    assert openai_facts["version"] == OPENAI_VERSION
    assert openai_facts["spans"] >= 0  # counted at export; the exit delivers the span


def test_streaming_and_async_openai_calls_arrive_with_model_and_usage(local_backend, fake):
    body = f"""
agentops.init()
import openai
llm = openai.OpenAI(api_key={PROVIDER_KEY!r}, base_url=fake + "/v1")
stream = llm.chat.completions.create(model={OPENAI_MODEL!r}, stream=True,
    stream_options={{"include_usage": True}},
    messages=[{{"role": "user", "content": "stream please"}}])
text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
assert text.startswith("Hello"), text

async def main():
    allm = openai.AsyncOpenAI(api_key={PROVIDER_KEY!r}, base_url=fake + "/v1")
    await allm.chat.completions.create(model={OPENAI_MODEL!r},
        messages=[{{"role": "user", "content": "async please"}}])
asyncio.run(main())
agentops.get_client().processor.force_flush()
"""
    result = run_program(body, local_backend, fake)
    spans = llm_spans(local_backend, result["trace_id"], 2)
    assert_under_session(local_backend, result["trace_id"], spans)
    by_prompt = {s["attributes"]["gen_ai.prompt.0.content"]: s["attributes"] for s in spans}
    streamed, awaited = by_prompt["stream please"], by_prompt["async please"]
    assert streamed["gen_ai.request.streaming"] is True
    for attributes in (streamed, awaited):
        assert attributes["gen_ai.request.model"] == OPENAI_MODEL
        assert attributes["gen_ai.usage.prompt_tokens"] == OPENAI_USAGE["prompt_tokens"]
        assert attributes["gen_ai.usage.completion_tokens"] == OPENAI_USAGE["completion_tokens"]
    assert result["diagnosis"]["instrumentation"]["openai"]["spans"] == 2


def test_anthropic_messages_and_stream_arrive_with_model_and_usage(local_backend, fake):
    body = f"""
agentops.init()
import anthropic
llm = anthropic.Anthropic(api_key={ANTHROPIC_KEY!r}, base_url=fake)
llm.messages.create(model={ANTHROPIC_MODEL!r}, max_tokens=32,
                    messages=[{{"role": "user", "content": "Say hello"}}])
with llm.messages.stream(model={ANTHROPIC_MODEL!r}, max_tokens=32,
                         messages=[{{"role": "user", "content": "stream please"}}]) as stream:
    text = "".join(stream.text_stream)
assert text.startswith("Hello"), text

async def main():
    allm = anthropic.AsyncAnthropic(api_key={ANTHROPIC_KEY!r}, base_url=fake)
    await allm.messages.create(model={ANTHROPIC_MODEL!r}, max_tokens=32,
                               messages=[{{"role": "user", "content": "async please"}}])
asyncio.run(main())
agentops.get_client().processor.force_flush()
"""
    result = run_program(body, local_backend, fake)
    spans = llm_spans(local_backend, result["trace_id"], 3)
    assert len(spans) == 3, [s["name"] for s in spans]
    assert_under_session(local_backend, result["trace_id"], spans)
    own_streamed = [s["attributes"] for s in local_backend.spans_for_trace(result["trace_id"])
                    if s["scope"] == "com.anthropic.sdk.python"
                    and s["attributes"].get("gen_ai.request.stream")]
    for span in spans:
        attributes = span["attributes"]
        assert attributes["gen_ai.request.model"] == ANTHROPIC_MODEL
        assert str(attributes["gen_ai.system"]).lower() == "anthropic"
        if "gen_ai.usage.prompt_tokens" in attributes:
            prompt, completion = (attributes["gen_ai.usage.prompt_tokens"],
                                  attributes["gen_ai.usage.completion_tokens"])
        else:
            # OpenLLMetry 0.48.1 (the release beside OpenTelemetry 1.36) reads no usage from
            # anthropic 2.x streams; the client's own span of that call, in the same
            # session trace, carries it (the only streamed call here).
            assert attributes.get("gen_ai.prompt.0.content") == "stream please", attributes
            [streamed] = own_streamed
            prompt, completion = (streamed["gen_ai.usage.input_tokens"],
                                  streamed["gen_ai.usage.output_tokens"])
        assert prompt == ANTHROPIC_USAGE["input_tokens"]
        # OpenLLMetry adds the streamed usage deltas up (message_start's 1 included)
        assert completion in (ANTHROPIC_USAGE["output_tokens"],
                              ANTHROPIC_USAGE["output_tokens"] + 1)
    non_streamed = [s for s in spans if "async" in s["attributes"].get("gen_ai.prompt.0.content", "")
                    or s["attributes"].get("gen_ai.prompt.0.content") == "Say hello"]
    assert all("gen_ai.usage.prompt_tokens" in s["attributes"] for s in non_streamed)
    assert ANTHROPIC_KEY not in json.dumps(local_backend.spans)
    facts = result["diagnosis"]["instrumentation"]["anthropic"]
    assert facts["active"] and facts["spans"] == 3


def test_capture_content_false_records_no_prompt_or_completion(local_backend, fake):
    result = run_program(OPENAI_CALLS, local_backend, fake,
                         env=env_for(local_backend, AGENTOPS_CAPTURE_CONTENT="false"))
    [span] = llm_spans(local_backend, result["trace_id"], 1)
    attributes = span["attributes"]
    assert attributes["gen_ai.request.model"] == OPENAI_MODEL
    assert attributes["gen_ai.usage.prompt_tokens"] == OPENAI_USAGE["prompt_tokens"]
    content = [key for key in attributes if key.startswith(("gen_ai.prompt", "gen_ai.completion"))
               or key in ("gen_ai.input.messages", "gen_ai.output.messages")]
    assert content == []
    assert "Say hello" not in json.dumps(local_backend.spans)
    # the instrumentor's own switch is set too, so it never even records them
    assert result["content_variable"] == "false"


def test_instrument_llm_calls_false_deactivates_what_the_sdk_activated(local_backend, fake):
    body = OPENAI_CALLS + """
before = agentops.diagnose_session()["instrumentation"]["openai"]
agentops.init(instrument_llm_calls=False)
llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "after"}])
print(json.dumps({"before": before}))
"""
    result = run_program(body, local_backend, fake)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(
            s["attributes"].get("agentops.span.kind") == "llm" for s in local_backend.spans):
        time.sleep(0.05)
    prompts = [s["attributes"].get("gen_ai.prompt.0.content") for s in local_backend.spans
               if s["attributes"].get("agentops.span.kind") == "llm"]
    assert prompts == ["Say hello"]
    assert len(fake.requests) == 2  # the second call was made, just not recorded
    facts = result["diagnosis"]["instrumentation"]["openai"]
    assert not facts["active"] and facts["activated_by"] is None
    issues = result["diagnosis"]["issues"]
    assert any("instrument_llm_calls is off (instrument_llm_calls=False passed" in i
               and "openai" in i for i in issues), issues


def test_an_instrumentor_the_program_activated_is_left_alone(local_backend, fake):
    body = """
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
OpenAIInstrumentor().instrument()
""" + OPENAI_CALLS + """
before = agentops.diagnose_session()["instrumentation"]["openai"]
agentops.init(instrument_llm_calls=False)
print(json.dumps({"before": before, "still_active":
                  OpenAIInstrumentor().is_instrumented_by_opentelemetry}))
"""
    run = run_python(HEADER + body, env=env_for(local_backend), args=[fake.base_url], timeout=90)
    assert run.returncode == 0, run.stderr
    result = run.last_json()
    assert result["still_active"] is True
    assert result["before"]["active"] and result["before"]["activated_by"] == "program"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not local_backend.spans:
        time.sleep(0.05)
    [span] = [s for s in local_backend.spans if s["name"] == "openai.chat"]  # one, not two
    assert span["attributes"]["gen_ai.request.model"] == OPENAI_MODEL


# -- a library or its instrumentor missing ------------------------------------------------

def _site_packages() -> Path:
    return Path(next(p for p in site.getsitepackages() if p.endswith("site-packages")))


def hidden_site(tmp_path: Path, *hidden: str) -> str:
    """A copy of site-packages made of links, without the top-level entries whose names
    start with one of ``hidden`` (packages and their .dist-info)."""
    overlay = tmp_path / "site"
    overlay.mkdir()
    for entry in _site_packages().iterdir():
        if entry.name.endswith(".pth") or entry.name.startswith(hidden):
            continue
        (overlay / entry.name).symlink_to(entry)
    return str(overlay)


def run_hidden(tmp_path: Path, backend, fake, body: str, *hidden: str) -> dict:
    overlay = hidden_site(tmp_path, *hidden)
    repo = str(Path(__file__).resolve().parent.parent)
    env = env_for(backend, PYTHONPATH=os.pathsep.join([repo, overlay]))
    # -S: no site-packages of the interpreter, only the filtered copy on PYTHONPATH.
    return run_program(body, backend, fake, env=env, python_args=["-S"])


def test_library_imported_without_its_instrumentor_gives_the_finding_with_the_pip_line(
        tmp_path, local_backend, fake):
    result = run_hidden(tmp_path, local_backend, fake, OPENAI_CALLS,
                        "opentelemetry_instrumentation_openai-")
    facts = result["diagnosis"]["instrumentation"]["openai"]
    assert facts["installed"] and facts["imported"]
    assert facts["instrumentor"] is None and not facts["active"]
    issues, advice = result["diagnosis"]["issues"], result["diagnosis"]["recommendations"]
    [index] = [i for i, issue in enumerate(issues) if "no OpenTelemetry instrumentor" in issue]
    assert issues[index].startswith(f"openai {OPENAI_VERSION} is imported")
    assert "pip install 'agentops[openai]'" in advice[index]


def test_library_missing_is_reported_as_not_installed_without_an_exception(
        tmp_path, local_backend, fake):
    body = """
agentops.init()
try:
    import openai
except ImportError:
    print("openai is hidden")
"""
    result = run_hidden(tmp_path, local_backend, fake, body, "openai", "openai-")
    facts = result["diagnosis"]["instrumentation"]["openai"]
    assert facts == {**facts, "installed": False, "version": None, "imported": False,
                     "active": False}
    assert not any("openai" in issue for issue in result["diagnosis"]["issues"])


# -- units ---------------------------------------------------------------------------------

def test_upstream_attributes_add_upstream_names_and_keep_the_original_ones():
    attributes = upstream_attributes({
        "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.output_tokens": 4, "gen_ai.is_streaming": True,
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
            {"type": "text", "content": "a"}, {"type": "text", "content": "b"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                               "parts": [{"type": "text", "content": "c"}]}]),
    }, capture_content=True)
    assert attributes["gen_ai.system"] == "openai"
    assert (attributes["gen_ai.usage.prompt_tokens"], attributes["gen_ai.usage.completion_tokens"],
            attributes["gen_ai.usage.total_tokens"]) == (3, 4, 7)
    assert attributes["gen_ai.request.streaming"] is True
    assert attributes["gen_ai.prompt.0.content"] == "ab"
    assert attributes["gen_ai.completion.0.finish_reason"] == "stop"
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert attributes["agentops.span.kind"] == "llm"


def test_upstream_attributes_keep_existing_upstream_layout_and_drop_content_when_asked():
    old = {"gen_ai.system": "Anthropic", "llm.usage.total_tokens": 9,
           "gen_ai.prompt.0.content": "secret prompt", "gen_ai.completion.0.content": "x"}
    assert upstream_attributes(old, capture_content=True)["gen_ai.usage.total_tokens"] == 9
    assert upstream_attributes(old, capture_content=True)["gen_ai.system"] == "Anthropic"
    stripped = upstream_attributes(old, capture_content=False)
    assert not any(key.startswith(("gen_ai.prompt", "gen_ai.completion")) for key in stripped)


@pytest.mark.parametrize("text", [
    f"{{'Authorization': 'Bearer {PROVIDER_KEY}'}}",
    "{'api-key': 'plainazurekey123456'}",
    f"{{\"x-api-key\": \"{ANTHROPIC_KEY}\"}}",
    f"key in a prompt: {PROVIDER_KEY}",
    "http://user:hunter2secret@proxy.example/v1",
])
def test_scrub_masks_provider_keys_secret_headers_and_url_passwords(text):
    cleaned = scrub(text, ())  # by shape and by header name, not by a known value
    for secret in (PROVIDER_KEY, ANTHROPIC_KEY, "plainazurekey123456", "hunter2secret"):
        assert secret not in cleaned


def test_scrub_masks_the_key_from_the_environment_whatever_its_shape():
    assert "0123456789abcdef" not in scrub("x 0123456789abcdef y", ("0123456789abcdef",))


def facts_with(sessions, *, now, pending=0, instrument=True, libraries=None):
    auth = AuthSnapshot(state="authenticated", reason=None, http_status=200, detail=None,
                        attempts=1, since=None, authenticated_at=None, token_expires_at=None,
                        project_id="p", has_token=True, retrying=False, endpoint=None)
    return Facts(auth=auth, stats={"spans_pending": pending, "failures_by_cause": {}},
                 config=Config(instrument_llm_calls=instrument), now=now,
                 sessions=tuple(sessions), instrumentation=libraries or {})


def test_no_spans_finding_after_a_minute_with_only_the_root():
    session = {"name": "session", "trace_id": "ab" * 16, "started_at": 1000.0, "spans": 0}
    assert no_spans(facts_with([session], now=1059.0)) is None
    finding = no_spans(facts_with([session], now=1061.0))
    assert finding.code == "session.no_spans"
    assert finding.evidence["trace_id"] == "ab" * 16
    issue, advice = finding.issue, finding.recommendation
    assert issue.startswith("no spans recorded in this session")
    assert "ab" * 16 in issue and "61s" in issue
    assert "get_tracer" in advice and "no LLM instrumentor is active" in advice
    assert no_spans(facts_with([{**session, "spans": 1}], now=1061.0)) is None
    assert no_spans(facts_with([session], now=1061.0, pending=3)) is None
    assert "instrument_llm_calls is off" in no_spans(
        facts_with([session], now=1061.0, instrument=False)).recommendation


def test_no_spans_finding_from_a_real_client_and_gone_once_a_span_is_exported(local_backend):
    from opentelemetry import trace

    import agentops

    agentops.init(api_key=local_backend.api_key, endpoint=local_backend.api_url,
                  exporter_endpoint=local_backend.otlp_url, max_wait_time=50,
                  log_session_replay_url=False, instrument_llm_calls=False)
    client = agentops.get_client()
    later = time.time() + 120
    issues, _ = evaluate(collect(client, now=later))
    assert any(i.startswith("no spans recorded in this session") for i in issues), issues
    with trace.get_tracer("t").start_as_current_span("work"):
        pass
    assert client.processor.force_flush()
    issues, _ = evaluate(collect(client, now=later))
    assert not any(i.startswith("no spans recorded") for i in issues), issues


def test_missing_instrumentor_rule_names_each_library_and_its_pip_line():
    libraries = {name: {"installed": True, "imported": True, "version": "1.0", "active": False,
                        "instrumentor": None, "pip_install": f"pip install 'agentops[{name}]'"}
                 for name in ("openai", "anthropic")}
    issues, advice = evaluate(facts_with([], now=0, libraries=libraries))
    [index] = [i for i, issue in enumerate(issues) if "no OpenTelemetry instrumentor" in issue]
    assert issues[index].startswith("openai 1.0 and anthropic 1.0 are imported")
    assert "pip install 'agentops[openai]'; pip install 'agentops[anthropic]'" in advice[index]
