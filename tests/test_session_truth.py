"""A session whose status is true: each test runs a real program (a subprocess) against
LocalBackend, or a server that refuses, and checks that what the SDK says (the URL line,
the warnings, the exit line, the diagnosis and its findings) matches what happened."""

from __future__ import annotations

import json
import re

import pytest

from agentops.testing import Faults
from tests.conftest import SLACK, clean_env, free_port, run_python
from tests.test_sdk_e2e import env_for, url_lines

GREEN = "\U0001f7e2"


def findings(diagnosis: dict) -> dict[str, dict]:
    return {finding["code"]: finding for finding in diagnosis["findings"]}


def sdk_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("AgentOps: ")]


# -- findings as data ------------------------------------------------------------------------

def test_each_finding_carries_a_code_severity_evidence_and_the_issue_it_renders(local_backend):
    local_backend.faults = Faults(otlp_status=400)
    code = """
    import json, agentops
    from opentelemetry import trace
    agentops.init(auto_start_session=False, wait_for_auth=True, export_timeout=1)
    for i in range(3):
        trace.get_tracer("t").start_span(f"s{i}").end()
    agentops.get_client().processor.force_flush()
    print(json.dumps(agentops.diagnose_session()))
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    diagnosis = run.last_json()
    found = findings(diagnosis)
    client_error = found["export.client_error"]
    assert client_error["severity"] == "warning"
    assert client_error["evidence"]["spans"] == 3
    assert client_error["evidence"]["batches"] == 1
    assert client_error["evidence"]["endpoint"] == f"127.0.0.1:{local_backend.port}"
    assert client_error["evidence"]["first_at"].endswith("+00:00")
    assert "HTTP 400" in client_error["evidence"]["last_detail"]
    assert "/v1/traces" in client_error["recommendation"]
    # issues and recommendations are the findings' sentences, in order, nothing else
    assert diagnosis["issues"] == [f["issue"] for f in diagnosis["findings"]]
    assert diagnosis["recommendations"] == [f["recommendation"] for f in diagnosis["findings"]]


def test_connectivity_test_and_diagnosis_explain_the_same_failure_with_the_same_rule(
        local_backend):
    local_backend.accepted_keys = []
    code = """
    import json, agentops
    from agentops.helpers.debug_session import test_session_connectivity
    agentops.init(auto_start_session=False, wait_for_auth=True)
    print(json.dumps({"diagnosis": agentops.diagnose_session(),
                      "connectivity": test_session_connectivity(timeout=10)}))
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    both = run.last_json()
    from_diagnosis = findings(both["diagnosis"])
    from_connectivity = findings(both["connectivity"])
    assert list(from_connectivity) == ["auth.no_token", "auth.invalid_key"]
    assert list(from_diagnosis) == ["auth.no_token", "auth.invalid_key"]
    for code in from_connectivity:
        assert from_connectivity[code]["recommendation"] == from_diagnosis[code]["recommendation"]
        assert from_connectivity[code]["evidence"]["http_status"] if code != "auth.no_token" \
            else True


# -- how the program ends decides the session's end state ----------------------------------

END_PROGRAMS = {
    "normal end": ("pass", 0, "Success", 1, ""),
    "sys.exit(0)": ("import sys; sys.exit(0)", 0, "Success", 1, ""),
    "uncaught exception": ("raise ValueError('the plan failed')", 1, "Error", 2,
                           "ValueError: the plan failed"),
    "sys.exit(3)": ("import sys; sys.exit(3)", 3, "Error", 2, "exit status 3"),
}


@pytest.mark.parametrize("scenario", list(END_PROGRAMS))
def test_a_script_that_never_calls_end_trace_gets_the_end_state_of_its_exit(local_backend,
                                                                              scenario):
    ending, returncode, end_state, status_code, message = END_PROGRAMS[scenario]
    code = f"""
    import agentops
    agentops.init(trace_name="nightly-run")
    {ending}
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == returncode, run.stderr
    assert local_backend.wait_for_spans(1, timeout=5)
    [session] = [s for s in local_backend.spans if s["name"] == "nightly-run.session"]
    assert session["attributes"]["agentops.session.end_state"] == end_state
    assert session["status_code"] == status_code  # 1 OK, 2 ERROR
    assert session["status_message"] == message
    assert session["attributes"].get("agentops.session.end_state_reason", "") == message
    events = [event["name"] for event in session["events"]]
    if scenario == "uncaught exception":
        [event] = session["events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "ValueError"
        assert event["attributes"]["exception.message"] == "the plan failed"
        assert "Traceback" in run.stderr  # the program's own traceback is still printed
    else:
        assert events == []


def test_a_program_that_replaces_sys_excepthook_ends_indeterminate_not_success(local_backend):
    code = """
    import sys, agentops
    agentops.init(trace_name="run")
    sys.excepthook = lambda *exc: print("handled", file=sys.stderr)
    raise RuntimeError("hidden from the SDK")
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 1
    assert local_backend.wait_for_spans(1, timeout=5)
    [session] = local_backend.spans
    assert session["attributes"]["agentops.session.end_state"] == "Indeterminate"
    assert session["status_code"] == 0  # UNSET: neither success nor failure is known
    assert "exit cause unknown" in session["attributes"]["agentops.session.end_state_reason"]


# -- sampling and OTEL_SDK_DISABLED --------------------------------------------------------

SAMPLING_PROGRAM = """
import json, agentops
{before}
agentops.init(wait_for_auth=True)
agentops.get_client().processor.force_flush()
print(json.dumps(agentops.diagnose_session()))
"""


@pytest.mark.parametrize("scenario, before, env, words, code", [
    ("env always_off", "", {"OTEL_TRACES_SAMPLER": "always_off"},
     "OTEL_TRACES_SAMPLER=always_off", "session.not_sampled"),
    ("env ratio 0", "", {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
     "OTEL_TRACES_SAMPLER=traceidratio", "session.not_sampled"),
    ("program's provider", "from opentelemetry import trace\n"
     "from opentelemetry.sdk.trace import TracerProvider\n"
     "from opentelemetry.sdk.trace.sampling import ALWAYS_OFF\n"
     "trace.set_tracer_provider(TracerProvider(sampler=ALWAYS_OFF))",
     {}, "the program's TracerProvider", "session.not_sampled"),
    ("sdk disabled", "", {"OTEL_SDK_DISABLED": "true"}, "OTEL_SDK_DISABLED=true",
     "session.sdk_disabled"),
])
def test_a_session_the_sampler_drops_is_never_green_and_the_diagnosis_says_why(
        local_backend, scenario, before, env, words, code):
    run = run_python(SAMPLING_PROGRAM.format(before=before), env=env_for(local_backend, **env))
    assert run.returncode == 0, run.stderr
    [line] = url_lines(run.stderr)
    assert GREEN not in line and "not recorded" in line and words in line, line
    diagnosis = run.last_json()
    finding = findings(diagnosis)[code]
    assert finding["severity"] == "error" and words in finding["issue"]
    fix = finding["recommendation"]
    if scenario.startswith("env"):
        assert "Unset OTEL_TRACES_SAMPLER" in fix
    elif scenario == "sdk disabled":
        assert "Unset OTEL_SDK_DISABLED" in fix
    else:
        assert "TracerProvider without a sampler" in fix
    assert "Session appears healthy - data should be reaching backend" not in \
        diagnosis["recommendations"]
    assert local_backend.spans == []


def test_a_ratio_sampler_is_named_on_the_url_line_whichever_way_the_session_fell(local_backend):
    run = run_python(SAMPLING_PROGRAM.format(before=""), env=env_for(
        local_backend, OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.5"))
    assert run.returncode == 0, run.stderr
    [line] = url_lines(run.stderr)
    diagnosis = run.last_json()
    sampled = diagnosis["sampling"]["sessions_recorded"]
    assert GREEN not in line and "traceidratio" in line.lower()
    if sampled:
        assert "[SAMPLED]" in line or "\U0001f7e1" in line
        assert "about 50% of" in line
        assert "session.sampled_in_part" in findings(diagnosis)
    else:
        assert "not recorded" in line
        assert "session.not_sampled" in findings(diagnosis)


# -- context into threads --------------------------------------------------------------------

THREAD_PROGRAM = """
import json, agentops
from concurrent.futures import ThreadPoolExecutor
from opentelemetry import trace
agentops.init(trace_name="with-tools", {setting})
def tool(i):
    with trace.get_tracer("tools").start_as_current_span(f"tool-{{i}}"):
        pass
with ThreadPoolExecutor(2) as pool:
    list(pool.map(tool, range(3)))
"""


def test_tool_spans_in_a_thread_pool_are_children_of_the_session(local_backend):
    run = run_python(THREAD_PROGRAM.format(setting=""), env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(4, timeout=5)
    [session] = [s for s in local_backend.spans if s["name"] == "with-tools.session"]
    tools = [s for s in local_backend.spans if s["name"].startswith("tool-")]
    assert len(tools) == 3
    assert {s["trace_id"] for s in tools} == {session["trace_id"]}
    assert {s["parent_span_id"] for s in tools} == {session["span_id"]}


def test_instrument_threading_false_leaves_threads_alone(local_backend):
    run = run_python(THREAD_PROGRAM.format(setting="instrument_threading=False"),
                     env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    assert local_backend.wait_for_spans(4, timeout=5)
    [session] = [s for s in local_backend.spans if s["name"] == "with-tools.session"]
    tools = [s for s in local_backend.spans if s["name"].startswith("tool-")]
    assert all(s["trace_id"] != session["trace_id"] for s in tools)


# -- measured facts, one warning, one exit line ---------------------------------------------

def test_a_program_ending_while_authentication_runs_says_how_long_it_actually_waited(
        local_backend):
    local_backend.faults = Faults(auth_delay=3.0)
    code = "import time, agentops; agentops.init(shutdown_timeout=0.3); time.sleep(2.3)"
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    [line] = url_lines(run.stderr)
    found = re.search(r"authentication not complete after (\d+\.\d) s \(the program ended\)",
                      line)
    assert found, line
    # 2.3 s of program, at most the 0.3 s exit budget and a 0.1 s grace (plus start-up)
    assert 2.3 <= float(found.group(1)) <= 2.9, line
    assert "5s" not in run.stderr and "after 5" not in run.stderr
    # the program ended before auth_timeout: no "Authentication timeout" claim
    assert "Authentication timeout" not in run.stderr


@pytest.mark.parametrize("storage", [False, True])
def test_a_program_ending_while_the_receiver_check_runs_says_how_long_it_actually_waited(
        local_backend, tmp_path, storage):
    """With offline storage the exit cuts the check short: that says nothing about the
    receiver, which must not be called unreachable for it."""
    local_backend.faults = Faults(otlp_hang=True)
    code = ("import time, agentops; agentops.init(shutdown_timeout=0.3, wait_for_auth=True); "
            "time.sleep(1.2)")
    run = run_python(code, env=env_for(local_backend, AGENTOPS_AUTH_TIMEOUT="30",
                                       AGENTOPS_OFFLINE_STORAGE=str(storage),
                                       AGENTOPS_STORAGE_DIRECTORY=str(tmp_path)))
    assert run.returncode == 0, run.stderr
    [line] = url_lines(run.stderr)
    found = re.search(r"the receiver has not answered after (\d+\.\d) s \(the program ended\)",
                      line)
    assert found, line
    # 1.2 s of program, at most the 0.3 s exit budget and a 0.1 s grace (plus start-up)
    assert 1.0 <= float(found.group(1)) <= 1.2 + 0.4 + SLACK, line
    assert "after 30" not in run.stderr


def test_one_receiver_failure_is_one_warning_when_it_happens_and_one_exit_line(local_backend):
    otlp = f"http://127.0.0.1:{free_port()}/v1/traces"
    code = """
    import agentops, sys
    from opentelemetry import trace
    agentops.init(auto_start_session=False, wait_for_auth=True, export_timeout=0.5)
    trace.get_tracer("t").start_span("only-one").end()
    agentops.get_client().processor.force_flush()
    sys.stderr.write("AgentOps: -- program ends --\\n")
    """
    env = env_for(local_backend)
    env["AGENTOPS_EXPORTER_ENDPOINT"] = otlp
    run = run_python(code, env=env)
    assert run.returncode == 0, run.stderr
    lines = [line for line in sdk_lines(run.stderr) if "Session Replay" not in line]
    assert len(lines) == 3, lines
    warning, marker, exit_line = lines
    assert marker.endswith("-- program ends --")
    assert "connection_error" in warning and "1 span not delivered" in warning
    assert "connection_error: 1" in exit_line and "1 of 1 span not delivered" in exit_line
    assert "1 spans" not in run.stderr


def test_a_failure_during_the_exit_is_told_by_the_exit_line_alone(local_backend):
    otlp = f"http://127.0.0.1:{free_port()}/v1/traces"
    code = """
    import agentops
    from opentelemetry import trace
    agentops.init(auto_start_session=False, wait_for_auth=True, export_timeout=0.5)
    for i in range(2):
        trace.get_tracer("t").start_span(f"s{i}").end()
    """
    env = env_for(local_backend)
    env["AGENTOPS_EXPORTER_ENDPOINT"] = otlp
    run = run_python(code, env=env)
    assert run.returncode == 0, run.stderr
    [line] = sdk_lines(run.stderr)
    assert "2 of 2 spans not delivered (connection_error: 2)" in line


def test_a_refused_key_is_one_warning_and_an_exit_line_naming_the_same_cause(local_backend):
    local_backend.accepted_keys = []
    code = """
    import agentops, sys
    from opentelemetry import trace
    agentops.init(auto_start_session=False, wait_for_auth=True)
    for i in range(4):
        trace.get_tracer("t").start_span(f"s{i}").end()
    agentops.get_client().processor.force_flush()
    sys.stderr.write("AgentOps: -- program ends --\\n")
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    lines = sdk_lines(run.stderr)
    assert len(lines) == 3, lines
    # the auth thread's warning may be written just after init returns
    exit_line = lines.pop()
    marker = lines.index("AgentOps: -- program ends --")
    [warning] = lines[:marker] + lines[marker + 1:]
    assert "Authentication failed - invalid API key or network issue" in warning
    assert "invalid_key" in warning
    assert "4 of 4 spans not delivered" in exit_line
    assert "not_authenticated: 4 (authentication failed: invalid_key)" in exit_line


def test_queue_overflow_is_warned_when_it_happens_not_only_at_exit(local_backend):
    # Spans pile up while the first batch waits for a token.
    local_backend.faults = Faults(auth_delay=1.0)
    code = """
    import agentops, logging, sys
    from opentelemetry import trace
    agentops.init(auto_start_session=False, max_queue_size=10)
    logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
    for i in range(500):
        trace.get_tracer("burst").start_span("burst").end()
    print("-- burst made --")
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    out = run.stdout.splitlines()
    marker = out.index("-- burst made --")
    before = [line for line in out[:marker] if "queue_overflow" in line]
    assert len(before) == 1 and before[0].startswith("WARNING")
    assert "1 span not delivered" in before[0] and "max_queue_size 10" in before[0]
    exit_lines = [line for line in out[marker:] if "not delivered" in line]
    assert len(exit_lines) == 1 and "queue_overflow" in exit_lines[0]


def test_report_right_after_init_claims_neither_a_rate_nor_health(local_backend):
    # The receiver check is still waiting for its answer.
    local_backend.faults = Faults(otlp_delay=1.5)
    code = """
    import time, agentops
    agentops.init(wait_for_auth=True)
    agentops.print_session_status()
    time.sleep(2.5)
    print("-- after the receiver answered --")
    agentops.print_session_status()
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    first, second = run.stdout.split("-- after the receiver answered --")
    assert "Success Rate: n/a (nothing sent yet)" in first
    assert "Session appears healthy" not in first
    assert "Exporter Healthy: False" in first
    assert "has not confirmed it accepts the token yet" in first
    # once the receiver accepted the token: healthy, and still no rate before an export
    assert "Exporter Healthy: True" in second and "Session appears healthy" in second
    assert "Success Rate: n/a (nothing sent yet)" in second


# -- settings ----------------------------------------------------------------------------------

def test_a_malformed_api_key_fails_authentication_instead_of_raising(local_backend):
    code = """
    import json, agentops
    agentops.init(api_key="not-a-uuid", wait_for_auth=True)
    print(json.dumps(agentops.diagnose_session()))
    """
    run = run_python(code, env=env_for(local_backend, api_key=None))
    assert run.returncode == 0, run.stderr
    diagnosis = run.last_json()
    assert diagnosis["sdk_initialized"] is True
    assert (diagnosis["auth"]["state"], diagnosis["auth"]["reason"]) == \
        ("failed", "invalid_key_format")
    [line] = url_lines(run.stderr)
    assert line.startswith("AgentOps: \U0001f534") and "invalid_key_format" in line
    assert "auth.invalid_key_format" in findings(diagnosis)
    assert "not-a-uuid" not in run.stderr + run.stdout
    assert local_backend.auth_requests == [] and local_backend.spans == []


@pytest.mark.parametrize("where, env, argument, origin", [
    ("argument", {}, 'endpoint="ftp://x"', "passed to agentops.init()"),
    ("environment", {"AGENTOPS_API_ENDPOINT": "ftp://x"}, "", "from AGENTOPS_API_ENDPOINT"),
])
def test_a_refused_setting_raises_and_the_diagnosis_names_it_and_its_source(where, env,
                                                                           argument, origin):
    code = f"""
    import json, agentops
    try:
        agentops.init({argument})
    except agentops.ConfigError as error:
        print("raised", error.setting)
    print(json.dumps(agentops.diagnose_session()))
    """
    run = run_python(code, env=clean_env(**env))
    assert run.returncode == 0, run.stderr
    assert "raised endpoint" in run.stdout
    diagnosis = run.last_json()
    refused = findings(diagnosis)["config.refused_setting"]
    assert refused["evidence"]["setting"] == "endpoint"
    assert origin in refused["issue"] and "http(s) URL" in refused["issue"]
    assert diagnosis["issues"][0] == "AgentOps SDK not initialized"


# -- logging destinations --------------------------------------------------------------------

def test_logging_basic_config_after_init_prints_each_sdk_line_once(local_backend):
    code = """
    import logging, agentops
    agentops.init(wait_for_auth=True)
    logging.basicConfig(format="LOG %(message)s")
    agentops.start_trace("second")
    import time; time.sleep(0.2)
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    second = [line for line in run.stderr.splitlines() if "for second trace" in line]
    assert len(second) == 1 and second[0].startswith("LOG "), run.stderr


@pytest.mark.parametrize("destination", ["stdout", "file"])
def test_a_cp1252_destination_gets_ascii_markers_and_no_logging_error(local_backend, tmp_path,
                                                                     destination):
    log_file = tmp_path / "run.log"
    handler = ("logging.basicConfig(stream=sys.stdout)" if destination == "stdout" else
               f"logging.basicConfig(handlers=[logging.FileHandler({str(log_file)!r}, "
               f"encoding='cp1252')])")
    code = f"""
    import logging, sys, agentops
    {handler}
    agentops.init(wait_for_auth=True)
    import time; time.sleep(0.2)
    """
    run = run_python(code, env=env_for(local_backend, PYTHONIOENCODING="cp1252"))
    assert run.returncode == 0, run.stderr
    written = run.stdout if destination == "stdout" else log_file.read_text("cp1252")
    assert "Logging error" not in run.stderr and "UnicodeEncodeError" not in run.stderr
    [line] = [line for line in written.splitlines() if "Session Replay" in line]
    assert "[OK] Session Replay" in line and "authenticated" in line


# -- the global tracer provider --------------------------------------------------------------

def test_a_provider_set_by_the_program_after_init_is_named_in_the_diagnosis(local_backend):
    code = """
    import json, agentops
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    agentops.init(auto_start_session=False)
    mine = TracerProvider()
    trace.set_tracer_provider(mine)
    mine.get_tracer("mine").start_span("lost").end()
    print(json.dumps(agentops.diagnose_session()))
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    finding = findings(run.last_json())["tracing.provider_override_refused"]
    assert finding["evidence"]["override_refused"] == 1
    assert "after agentops.init()" in finding["issue"]
    assert "before agentops.init()" in finding["recommendation"]


# -- naming what failed: CA bundle, proxy, IPv6 ------------------------------------------------

AUTHENTICATE = """
import json, sys, agentops
agentops.init(api_key="0123abcd-1111-2222-3333-444455556666", endpoint=sys.argv[1],
              wait_for_auth=True, auth_timeout=3)
print(json.dumps(agentops.diagnose_session()))
"""


def authenticate_against(endpoint: str, **env: str):
    """A program that waits for authentication at ``endpoint``, then prints its diagnosis."""
    run = run_python(AUTHENTICATE, env=clean_env(**env), args=[endpoint])
    assert run.returncode == 0, run.stderr
    return run


def test_a_missing_ca_bundle_is_a_tls_error_naming_the_path(tmp_path):
    missing = str(tmp_path / "corp-ca.pem")
    diagnosis = authenticate_against("https://127.0.0.1:9", REQUESTS_CA_BUNDLE=missing).last_json()
    assert diagnosis["auth"]["reason"] == "tls_error"
    assert missing in diagnosis["auth"]["detail"]
    finding = findings(diagnosis)["auth.tls_error"]
    assert finding["evidence"]["ca_bundle_missing"] == missing
    assert f"REQUESTS_CA_BUNDLE names {missing}, which does not exist" in \
        finding["recommendation"]
    assert "API key" not in finding["recommendation"]


def test_a_refusing_proxy_is_named_with_its_credentials_masked():
    proxy = f"http://alice:s3cret-pass@127.0.0.1:{free_port()}"
    run = authenticate_against("https://api.example.test", HTTPS_PROXY=proxy)
    diagnosis = run.last_json()
    masked = proxy.replace("alice:s3cret-pass", "***")
    assert diagnosis["auth"]["reason"] == "connection_error"
    assert f"proxy {masked}" in diagnosis["auth"]["detail"]
    finding = findings(diagnosis)["auth.connection_error"]
    assert finding["evidence"]["proxy"] == masked
    assert masked in finding["issue"] and "api.example.test:443" in finding["issue"]
    everything = run.stdout + run.stderr
    assert "s3cret" not in everything and "alice" not in everything


def test_an_ipv6_endpoint_is_labelled_with_brackets():
    diagnosis = authenticate_against("http://[::1]:9").last_json()
    assert "[::1]:9" in diagnosis["auth"]["detail"]
    assert findings(diagnosis)["auth.connection_error"]["evidence"]["endpoint"] == "[::1]:9"
    assert "::1:9" not in json.dumps(diagnosis).replace("[::1]:9", "")


# -- the token's project --------------------------------------------------------------------

def test_a_token_for_another_project_than_the_response_names_is_a_finding(local_backend):
    token = local_backend.issue_token(local_backend.api_key)
    claimed = local_backend.decode_token(token)["project_id"]
    local_backend.faults = Faults(
        auth_body=json.dumps({"token": token, "project_id": "some-other-project"}))
    code = """
    import json, agentops
    agentops.init(auto_start_session=False, wait_for_auth=True)
    print(json.dumps(agentops.diagnose_session()))
    """
    run = run_python(code, env=env_for(local_backend))
    assert run.returncode == 0, run.stderr
    finding = findings(run.last_json())["auth.project_mismatch"]
    assert finding["evidence"] == {"response_project_id": "some-other-project",
                                   "token_project_id": claimed,
                                   "endpoint": f"127.0.0.1:{local_backend.port}"}
    assert claimed in finding["issue"] and "some-other-project" in finding["issue"]


# -- a Jupyter kernel ----------------------------------------------------------------------

def test_in_a_jupyter_kernel_the_url_line_is_output_of_the_cell_that_called_init(
        local_backend):
    import queue
    import time

    from jupyter_client.manager import start_new_kernel

    local_backend.faults = Faults(auth_delay=1.0)  # the line comes after init's cell has finished
    manager, kernel = start_new_kernel(kernel_name="python3", env=env_for(local_backend))
    try:
        init_cell = kernel.execute("import agentops; agentops.init()")
        later_cell = kernel.execute("import time; time.sleep(2.5)")
        output: dict[str, list[str]] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                message = kernel.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            cell = message["parent_header"].get("msg_id")
            if message["msg_type"] == "stream":
                output.setdefault(cell, []).append(message["content"]["text"])
            if (cell == later_cell and message["msg_type"] == "status"
                    and message["content"]["execution_state"] == "idle"):
                break
    finally:
        manager.shutdown_kernel(now=True)
    in_init_cell = "".join(output.get(init_cell, []))
    assert "Session Replay" in in_init_cell and "authenticated" in in_init_cell, output
    assert "Session Replay" not in "".join(output.get(later_cell, []))


def test_a_script_terminated_by_sigterm_ends_its_session_indeterminate(local_backend):
    import signal
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
    import sys, time, agentops
    agentops.init(trace_name="nightly-run", wait_for_auth=True)
    print("READY", flush=True)
    time.sleep(30)
    """)
    with subprocess.Popen([sys.executable, "-c", code], env=env_for(local_backend),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "READY"
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == -signal.SIGTERM
    assert local_backend.wait_for_spans(1, timeout=5)
    [session] = [s for s in local_backend.spans if s["name"] == "nightly-run.session"]
    assert session["attributes"]["agentops.session.end_state"] == "Indeterminate"
    assert session["attributes"]["agentops.session.end_state_reason"] == \
        "terminated by SIGTERM"
    assert session["status_code"] == 0  # UNSET


# -- the README's URL lines are what programs print ----------------------------------------

def _readme_url_lines() -> list[str]:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    return [line for line in readme.splitlines()
            if line.startswith("AgentOps: ") and "Session Replay" in line]


def _shape(line: str) -> str:
    """The line without its URL, numbers wildcarded (times and ratios vary per run)."""
    text = line.rsplit("): ", 1)[0]
    return re.sub(r"\d+(\.\d+)?", "N", text)


# A program that lives until the receiver check answered (the documented steady state).
SETTLED = "import time, agentops; agentops.init(wait_for_auth=True); time.sleep(1.5)"
README_SCENARIOS = [
    ("(authenticated)", {}, {}, SETTLED),
    ("local only", {"api_key": None}, {}, "import agentops; agentops.init()"),
    ("auth failed", {}, {"accepted_keys": []},
     SETTLED),
    ("the program ended", {}, {"faults": Faults(auth_delay=3.0)},
     "import time, agentops; agentops.init(shutdown_timeout=0.3); time.sleep(2.3)"),
    ("not recorded", {"OTEL_TRACES_SAMPLER": "always_off"}, {},
     SETTLED),
    ("sampled", {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.999"}, {},
     SETTLED),
]


@pytest.mark.parametrize("words, env, backend_settings, code", README_SCENARIOS,
                         ids=[s[0] for s in README_SCENARIOS])
def test_each_url_line_the_readme_shows_is_one_a_program_prints(local_backend, words, env,
                                                                backend_settings, code):
    [documented] = [line for line in _readme_url_lines() if words in line]
    for name, value in backend_settings.items():
        setattr(local_backend, name, value)
    api_key = env.pop("api_key", "default") if "api_key" in env else "default"
    run = run_python(code, env=env_for(local_backend, api_key=api_key, **env))
    assert run.returncode == 0, run.stderr
    [printed] = url_lines(run.stderr)
    assert _shape(printed) == _shape(documented), (printed, documented)
