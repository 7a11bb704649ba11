"""Programs written for upstream agentops 0.4 (and 0.3-style calls it still accepts) run
unchanged against LocalBackend, and their spans arrive with upstream's names, kinds and
attribute keys. Also the session-trace rows of issue 10: each start_trace is a root of its
own, traces may end in any order or on any thread, and end states come in three types."""

from __future__ import annotations

import collections
import textwrap

from tests.conftest import run_python
from tests.test_sdk_e2e import env_for, url_lines

# Every program ends by flushing and printing its export stats, so that a test can check
# that each decorator span was counted and delivered like any other span.
FLUSH_AND_REPORT = """
import json as _json
agentops.get_client().processor.force_flush()
print(_json.dumps(agentops.diagnose_session()["export_stats"]))
"""


def run_program(backend, code: str, expect_spans: int, **env: str):
    run = run_python(textwrap.dedent(code) + FLUSH_AND_REPORT, env=env_for(backend, **env))
    assert run.returncode == 0, run.stderr
    assert backend.wait_for_spans(expect_spans, timeout=10), backend.span_names
    return run


def by_name(backend) -> dict[str, list[dict]]:
    spans: dict[str, list[dict]] = collections.defaultdict(list)
    for span in backend.spans:
        spans[span["name"]].append(span)
    return spans


def one(spans: dict[str, list[dict]], name: str) -> dict:
    assert len(spans[name]) == 1, (name, sorted(spans))
    return spans[name][0]


def child_of(span: dict, parent: dict) -> bool:
    return span["parent_span_id"] == parent["span_id"] and span["trace_id"] == parent["trace_id"]


def deprecation_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "DeprecationWarning" in line]


# -- upstream's quickstart: decorators from agentops.sdk.decorators ---------------------

QUICKSTART = """
import agentops
from agentops.sdk.decorators import agent, operation, tool, trace, workflow, task, guardrail

agentops.init(auto_start_session=False, max_wait_time=100)

@agent
class Researcher:
    def __init__(self, topic):
        self.topic = topic

    @operation
    def research(self):
        return [self.search(query) for query in ("alpha", "beta")]

    @tool(cost=0.01)
    def search(self, query):
        return {"query": query, "hits": 3}

@guardrail(spec="input")
def allowed(text):
    return "forbidden" not in text

@workflow(name="pipeline", version=2)
def pipeline(topic):
    assert allowed(topic)
    return summarise(Researcher(topic).research())

@task
def summarise(results):
    return len(results)

@trace(name="research-run", tags=["quickstart"])
def main(topic):
    return pipeline(topic)

print("RESULT", main("otel"))
"""


def test_upstream_quickstart_decorators_arrive_with_upstream_names_kinds_and_keys(local_backend):
    run = run_program(local_backend, QUICKSTART, expect_spans=8)
    assert "RESULT 2" in run.stdout
    spans = by_name(local_backend)
    session = one(spans, "research-run.session")
    workflow = one(spans, "pipeline.workflow")
    researcher = one(spans, "Researcher.agent")
    research = one(spans, "research.task")
    summarise = one(spans, "summarise.task")
    guard = one(spans, "allowed.guardrail")
    searches = spans["search.tool"]
    assert len(searches) == 2

    assert session["parent_span_id"] is None
    assert session["attributes"]["agentops.span.kind"] == "session"
    assert session["attributes"]["agentops.tags"] == ["quickstart"]
    assert session["attributes"]["agentops.session.end_state"] == "Success"
    assert session["attributes"]["agentops.entity.input"] == '{"args": ["otel"], "kwargs": {}}'
    assert session["attributes"]["agentops.entity.output"] == "2"
    assert session["status_code"] == 1
    assert child_of(workflow, session) and child_of(guard, workflow)
    assert child_of(researcher, workflow) and child_of(research, workflow)
    assert child_of(summarise, workflow)
    assert all(child_of(search, research) for search in searches)

    assert workflow["attributes"]["operation.name"] == "pipeline"
    assert workflow["attributes"]["operation.version"] == 2
    assert workflow["attributes"]["agentops.span.kind"] == "workflow"
    assert researcher["attributes"]["agentops.span.kind"] == "agent"
    assert researcher["attributes"]["agentops.entity.input"] == '{"args": ["otel"], "kwargs": {}}'
    assert research["attributes"]["agentops.span.kind"] == "task"  # operation is task upstream
    assert guard["attributes"]["agentops.guardrail.spec"] == "input"
    assert guard["attributes"]["agentops.guardrail.output"] == "true"
    search = next(s for s in searches if '"alpha"' in s["attributes"]["agentops.tool.input"])
    # methods record their arguments without the instance, as upstream
    assert search["attributes"]["agentops.tool.input"] == '{"args": ["alpha"], "kwargs": {}}'
    assert search["attributes"]["agentops.tool.output"] == '{"query": "alpha", "hits": 3}'
    assert search["attributes"]["gen_ai.usage.total_cost"] == 0.01
    assert search["attributes"]["operation.name"] == "search"

    lines = url_lines(run.stderr)
    assert len(lines) == 1 and "research-run trace" in lines[0]
    assert session["trace_id"] in lines[0]
    stats = run.last_json()
    assert stats["spans_made"] == stats["spans_exported"] == 8


# -- the top-level decorators: sync, async, generators, classes, errors -----------------

TOP_LEVEL = """
import asyncio, threading
import agentops

agentops.init(auto_start_session=False, max_wait_time=100)

@agentops.tool
def numbers(n):
    for i in range(n):
        yield i
    return "done"

@agentops.task(name="double")
async def twice(x):
    await asyncio.sleep(0)
    return x * 2

@agentops.workflow
async def stream(n):
    for i in range(n):
        yield await twice(i)

@agentops.agent(name="helper")
class Helper:
    def __init__(self, lock):
        self.lock = lock

    async def __aenter__(self):
        self.entered = True
        return self

    async def __aexit__(self, *exc):
        return False

@agentops.tool
def explode(value):
    raise ValueError("bad value " + str(value))

class Unprintable:
    def __repr__(self):
        raise RuntimeError("no repr")

looped = []
looped.append(looped)

@agentops.operation
def swallow(*args, **kwargs):
    return Unprintable()

@agentops.trace
async def async_session():
    async with Helper(threading.Lock()) as helper:
        assert helper.entered
        return [x async for x in stream(2)]

@agentops.track_endpoint(name="endpoint")
def handler(payload):
    return {"ok": payload}

@agentops.track_endpoint
async def async_handler(payload):
    await asyncio.sleep(0)
    return payload

@agentops.trace(name="gen-session")
def session_generator():
    yield 1
    yield 2

print("GEN", list(numbers(3)))
print("ASYNC", asyncio.run(async_session()))
print("GENSESSION", list(session_generator()))
print("ENDPOINT", handler("p"), asyncio.run(async_handler("q")))
try:
    explode(7)
except ValueError as error:
    print("RAISED", error)
swallow(Unprintable(), looped, huge="x" * 200_000, lock=threading.Lock())
"""


def test_top_level_decorators_on_every_kind_of_callable(local_backend):
    run = run_program(local_backend, TOP_LEVEL, expect_spans=16)
    assert "GEN [0, 1, 2]" in run.stdout and "ASYNC [0, 2]" in run.stdout
    assert "GENSESSION [1, 2]" in run.stdout and "ENDPOINT {'ok': 'p'} q" in run.stdout
    assert "RAISED bad value 7" in run.stdout
    spans = by_name(local_backend)

    numbers = one(spans, "numbers.tool")
    assert numbers["attributes"]["agentops.tool.input"] == '{"args": [3], "kwargs": {}}'
    assert numbers["parent_span_id"] is None  # no session open: nothing current

    session = one(spans, "async_session.session")
    helper = [s for s in spans["helper.agent"]]
    assert len(helper) == 2 and all(child_of(s, session) for s in helper)  # __init__ and async with
    block = max(helper, key=lambda s: s["end_time_unix_nano"])
    workflow = one(spans, "stream.workflow")
    assert child_of(workflow, block)
    doubles = spans["double.task"]
    assert len(doubles) == 2 and all(child_of(d, workflow) for d in doubles)
    assert sorted(d["attributes"]["agentops.task.output"] for d in doubles) == ["0", "2"]
    assert session["attributes"]["agentops.entity.output"] == "[0, 2]"

    generated = one(spans, "gen-session.session")
    assert generated["parent_span_id"] is None and generated["status_code"] == 1

    endpoint = one(spans, "endpoint.session")
    request, response = one(spans, "endpoint.request.http"), one(spans, "endpoint.response.http")
    assert child_of(request, endpoint) and child_of(response, endpoint)
    assert request["attributes"]["agentops.span.kind"] == "http"
    assert request["attributes"]["http.method"] == "REQUEST"
    assert response["attributes"]["http.status_code"] == 200
    async_endpoint = one(spans, "async_handler.session")
    async_response = one(spans, "async_handler.response.http")
    assert child_of(one(spans, "async_handler.request.http"), async_endpoint)
    assert child_of(async_response, async_endpoint)
    assert async_response["attributes"]["agentops.entity.output"] == \
        '{"status_code": 200, "data": "q"}'

    exploded = one(spans, "explode.tool")
    assert exploded["status_code"] == 2
    assert exploded["status_message"] == "ValueError: bad value 7"

    swallowed = one(spans, "swallow.task")
    recorded_input = swallowed["attributes"]["agentops.task.input"]
    assert len(recorded_input) <= 65_536 and "truncated" in recorded_input
    assert "<cycle list>" in recorded_input and "<Unprintable instance at" in recorded_input
    assert swallowed["attributes"]["agentops.task.output"].startswith('"<Unprintable instance')
    assert swallowed["status_code"] == 0

    assert len(url_lines(run.stderr)) == 4  # async_session, gen-session, both endpoints
    stats = run.last_json()
    assert stats["spans_made"] == stats["spans_exported"] == 16


def test_an_exception_in_a_decorated_session_ends_it_as_error_and_propagates(local_backend):
    code = """
    import agentops
    agentops.init(auto_start_session=False)

    @agentops.trace(name="failing")
    def failing():
        raise KeyError("missing")

    try:
        failing()
    except KeyError:
        print("PROPAGATED")
    """
    run = run_program(local_backend, code, expect_spans=1)
    assert "PROPAGATED" in run.stdout
    span = one(by_name(local_backend), "failing.session")
    assert span["status_code"] == 2 and span["status_message"] == "KeyError: 'missing'"
    assert span["attributes"]["agentops.session.end_state"] == "Error"


def test_decorated_functions_run_untraced_before_init(local_backend):
    code = """
    import agentops

    @agentops.tool
    def early(x):
        return x + 1

    @agentops.trace
    def early_session():
        return early(1)

    print("EARLY", early_session())
    agentops.init(auto_start_session=False)
    print("LATER", early(2))
    """
    run = run_program(local_backend, code, expect_spans=1)
    assert "EARLY 2" in run.stdout and "LATER 3" in run.stdout
    assert local_backend.span_names == ["early.tool"]


# -- a 0.3-style program ------------------------------------------------------------------

LEGACY = """
import agentops
from agentops import (track_agent, track_tool, record, ActionEvent, ErrorEvent, ToolEvent,
                      LLMEvent)

session = agentops.init(tags=["v03"], default_tags=["shared"], max_wait_time=100,
                        auto_init=True, skip_auto_end_session=True, env_data_opt_out=True)
print("INIT", type(session).__name__, session.trace_context.name)

@track_agent(name="planner")
class Planner:
    def plan(self):
        return "plan"

@track_tool
def lookup():
    return 42

for _ in range(2):
    action = record(ActionEvent(action_type="plan", params={"x": 1}))
    error = ErrorEvent(details="oops")
    print("EVENTS", action.end_timestamp is not None, error.init_timestamp is not None,
          ToolEvent(name="t"), LLMEvent(prompt="p"))
session.record(ActionEvent())
session.create_agent(name="planner")
print("PLAN", Planner().plan(), lookup())

second = agentops.start_session(tags=["second"])
third = agentops.start_session()
agentops.end_session("Fail", end_state_reason="third failed")   # the latest started
second.end_session(end_state="Success")
session.end_session("Success")
agentops.start_session(tags=["left-open"])
agentops.end_all_sessions()
@agentops.session
def old_style():
    return 1
old_style(); old_style()
agentops.end_session()  # nothing open any more: a warning, no error
"""


def test_a_03_style_program_runs_unchanged_and_each_deprecated_name_warns_once(local_backend):
    run = run_program(local_backend, LEGACY, expect_spans=6)
    assert "INIT Session session" in run.stdout
    assert run.stdout.count("EVENTS True True None None") == 2
    assert "PLAN plan 42" in run.stdout
    spans = by_name(local_backend)
    sessions = spans["session.session"]
    assert len(sessions) == 4
    # init's tags (deprecated) and default_tags are merged and given to every session trace
    plain = [s for s in sessions if s["attributes"]["agentops.tags"] == ["shared", "v03"]]
    assert len(plain) == 2  # init's and the third
    init_session = next(s for s in plain if s["status_code"] == 1)
    assert init_session["attributes"]["agentops.session.end_state"] == "Success"
    third = next(s for s in plain if s["status_code"] == 2)
    assert third["attributes"]["agentops.session.end_state"] == "Fail"
    assert third["status_code"] == 2
    assert third["attributes"]["agentops.legacy.end_state_reason"] == "third failed"
    second = next(s for s in sessions if "second" in s["attributes"]["agentops.tags"])
    assert second["attributes"]["agentops.session.end_state"] == "Success"
    left_open = next(s for s in sessions if "left-open" in s["attributes"]["agentops.tags"])
    assert left_open["attributes"]["agentops.session.end_state"] == "Success"
    assert [s["status_code"] for s in spans["old_style.session"]] == [1, 1]
    assert "ignores unknown argument" not in run.stderr

    warnings = deprecation_lines(run.stderr)
    names = ["init(tags=...)", "track_agent", "track_tool", "record()", "ActionEvent",
             "ErrorEvent", "ToolEvent", "LLMEvent", "start_session()", "end_session()",
             "end_all_sessions()", "session", "Session.end_session()"]
    for name in names:
        matching = [w for w in warnings if f"agentops.{name} is deprecated; use " in w]
        assert len(matching) == 1, (name, warnings)
    assert len(warnings) == len(names)
    assert "no session is active" in run.stderr


# -- manual traces, dict tags, metadata, end states, the client before init --------------

MANUAL = """
import agentops
from opentelemetry.trace import StatusCode

before = agentops.get_client()
print("BEFORE", type(before).__name__, before.initialized)
agentops.configure(max_wait_time=100, default_tags=["configured"], bogus=1)
print("NO_TRACE", agentops.update_trace_metadata({"x": 1}))
assert before.init(auto_start_session=False) is None

run = agentops.start_trace("nightly-run", tags={"team": "search", "attempt": 2, "obj": object()})
print("META", agentops.update_trace_metadata({
    "user_id": "u-1", "agent_name": "planner", "steps": ["plan", "act"], "skip": None,
    "nested": {"no": "dicts"}, "tags": ["meta-tag"]}))
print("PREFIX", agentops.update_trace_metadata({"run": 3}, prefix="custom"))
agentops.end_trace(run, end_state=agentops.TraceState.SUCCESS)

for name, state in [("status-ok", StatusCode.OK), ("status-error", StatusCode.ERROR),
                    ("trace-unset", agentops.UNSET), ("const-success", agentops.SUCCESS),
                    ("const-error", agentops.ERROR), ("text", "Indeterminate")]:
    agentops.end_trace(agentops.start_trace(name, tags=["manual"]), end_state=state)

wrong = agentops.start_trace("wrong-type")
try:
    agentops.end_trace(wrong, end_state=42)
except TypeError as error:
    print("TYPEERROR", "end_state" in str(error), wrong.ended)
agentops.end_trace(wrong, "Success")
print("CLIENT", type(agentops.get_client()).__name__, agentops.get_client().initialized)
"""


def test_manual_traces_with_dict_tags_metadata_and_every_end_state_type(local_backend):
    run = run_program(local_backend, MANUAL, expect_spans=8)
    assert "BEFORE UnstartedClient False" in run.stdout
    assert "NO_TRACE False" in run.stdout
    assert "META True" in run.stdout and "PREFIX True" in run.stdout
    assert "TYPEERROR True False" in run.stdout
    assert "CLIENT Client True" in run.stdout
    assert "ignores unknown arguments: bogus" in run.stderr
    spans = by_name(local_backend)
    nightly = one(spans, "nightly-run.session")["attributes"]
    assert nightly["team"] == "search" and nightly["attempt"] == 2
    assert nightly["obj"].startswith("<object object at")
    assert nightly["trace.metadata.user_id"] == "u-1"
    assert nightly["agent.name"] == "planner"
    assert nightly["trace.metadata.steps"] == '["plan", "act"]'
    assert nightly["agentops.tags"] == '["meta-tag"]'  # a convention key, as upstream
    assert "trace.metadata.skip" not in nightly and "trace.metadata.nested" not in nightly
    assert nightly["custom.run"] == 3
    assert nightly["agentops.session.end_state"] == "Success"

    expected = {"status-ok": ("Success", 1), "status-error": ("Error", 2),
                "trace-unset": ("Indeterminate", 0), "const-success": ("Success", 1),
                "const-error": ("Error", 2), "text": ("Indeterminate", 0),
                "wrong-type": ("Success", 1)}
    for name, (state, status) in expected.items():
        span = one(spans, f"{name}.session")
        assert (span["attributes"]["agentops.session.end_state"], span["status_code"]) == \
            (state, status), name
    assert one(spans, "status-ok.session")["attributes"]["agentops.tags"] == \
        ["configured", "manual"]


def test_start_trace_before_init_initialises_from_the_environment(local_backend):
    code = """
    import agentops
    with agentops.start_trace("no-init"):
        pass
    """
    run = run_program(local_backend, code, expect_spans=1)
    assert local_backend.span_names == ["no-init.session"]
    assert len(url_lines(run.stderr)) == 1


# -- issue 10: session traces of their own, ended in any order or thread ------------------


def test_start_trace_after_init_is_a_new_root_with_its_own_trace_id_and_url(local_backend):
    code = """
    import agentops
    from opentelemetry import trace
    tracer = trace.get_tracer("user")
    agentops.init(max_wait_time=100)
    with tracer.start_as_current_span("outer"):
        with agentops.start_trace("nightly-run") as run:
            with tracer.start_as_current_span("inside"):
                pass
        with tracer.start_as_current_span("after"):
            pass
    agentops.end_trace()
    """
    run = run_program(local_backend, code, expect_spans=5)
    spans = by_name(local_backend)
    init_session, nightly = one(spans, "session.session"), one(spans, "nightly-run.session")
    outer, inside, after = one(spans, "outer"), one(spans, "inside"), one(spans, "after")
    assert nightly["parent_span_id"] is None and nightly["trace_id"] != init_session["trace_id"]
    assert child_of(inside, nightly)
    assert child_of(outer, init_session) and child_of(after, outer)
    lines = url_lines(run.stderr)
    assert len(lines) == 2
    assert {line.split("trace_id=")[1] for line in lines} == \
        {init_session["trace_id"], nightly["trace_id"]}


def test_traces_ended_out_of_order_or_on_another_thread_never_adopt_later_spans(local_backend):
    code = """
    import asyncio, threading
    import agentops
    from opentelemetry import trace
    tracer = trace.get_tracer("user")
    agentops.init(max_wait_time=100)

    a = agentops.start_trace("a")
    b = agentops.start_trace("b")
    agentops.end_trace(a)
    tracer.start_span("while-b-open").end()
    agentops.end_trace(b)
    tracer.start_span("after-both").end()

    c = agentops.start_trace("c")
    worker = threading.Thread(target=agentops.end_trace, args=(c,))
    worker.start(); worker.join()
    tracer.start_span("after-thread-end").end()

    async def main():
        d = agentops.start_trace("d")
        await asyncio.to_thread(agentops.end_trace, d)
        tracer.start_span("in-loop-after-d").end()

    asyncio.run(main())
    agentops.end_trace()
    """
    run = run_program(local_backend, code, expect_spans=9)
    spans = by_name(local_backend)
    init_session = one(spans, "session.session")
    assert child_of(one(spans, "while-b-open"), one(spans, "b.session"))
    for name in ("after-both", "after-thread-end", "in-loop-after-d"):
        assert child_of(one(spans, name), init_session), name
    for name in ("a", "b", "c", "d"):
        root = one(spans, f"{name}.session")
        assert root["parent_span_id"] is None and root["trace_id"] != init_session["trace_id"]
        assert root["attributes"]["agentops.session.end_state"] == "Success"
    assert "Failed to detach context" not in run.stderr
    assert run.last_json()["spans_exported"] == 9


def test_a_generator_span_is_current_only_while_its_body_runs_and_ends_when_closed(local_backend):
    code = """
    import agentops
    from opentelemetry import trace
    tracer = trace.get_tracer("user")
    agentops.init(auto_start_session=False)

    @agentops.tool
    def items():
        tracer.start_span("in-body").end()
        yield 1
        yield 2
        yield 3

    @agentops.task
    def failing_items():
        yield 1
        raise RuntimeError("stream broke")

    iterator = items()
    print("FIRST", next(iterator))
    tracer.start_span("between").end()
    for item in iterator:
        break                      # leaves it suspended: closing it ends its span
    iterator.close()
    try:
        list(failing_items())
    except RuntimeError:
        print("RAISED")
    never_started = items()        # no iteration: no span
    """
    run = run_program(local_backend, code, expect_spans=4)
    assert "FIRST 1" in run.stdout and "RAISED" in run.stdout
    spans = by_name(local_backend)
    generator = one(spans, "items.tool")
    assert child_of(one(spans, "in-body"), generator)
    assert one(spans, "between")["parent_span_id"] is None
    assert generator["status_code"] == 0
    failing = one(spans, "failing_items.task")
    assert failing["status_code"] == 2 and failing["status_message"] == "RuntimeError: stream broke"


def test_decorators_over_classmethods_and_staticmethods(local_backend):
    code = """
    import agentops
    agentops.init(auto_start_session=False)

    class Catalogue:
        @agentops.tool
        @classmethod
        def lookup(cls, key):
            return key.upper()

        @agentops.tool(name="normalise")
        @staticmethod
        def clean(text):
            return text.strip()

        @classmethod
        @agentops.task
        def build(cls, size):
            return size

    print("VALUES", Catalogue.lookup("k"), Catalogue().clean(" t "), Catalogue.build(3))
    """
    run = run_program(local_backend, code, expect_spans=3)
    assert "VALUES K t 3" in run.stdout
    spans = by_name(local_backend)
    assert one(spans, "lookup.tool")["attributes"]["agentops.tool.input"] == \
        '{"args": ["k"], "kwargs": {}}'
    assert one(spans, "normalise.tool")["attributes"]["agentops.tool.output"] == "t"
    assert one(spans, "build.task")["attributes"]["agentops.task.output"] == "3"


def test_configure_refuses_a_bad_value_at_once_and_keeps_nothing_of_that_call():
    import pytest

    import agentops

    with pytest.raises(agentops.ConfigError, match="max_wait_time"):
        agentops.configure(max_wait_time="soon", trace_name="kept-out")
    pending = agentops.get_client()
    assert isinstance(pending, agentops.UnstartedClient)
    assert pending.config.trace_name == "session" and pending.config.max_wait_time == 5000
