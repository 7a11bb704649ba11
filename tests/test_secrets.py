"""Secrets never leak: across real programs (healthy, invalid key, receiver 401, receiver
down, slow authentication, refused keys) and the doctor, with every logger at DEBUG, the
full API key and every JWT the backend issued appear nowhere: not on stdout or stderr,
not in log records, not in the diagnosis or the report, not in exception messages. The
key may appear masked (first and last four characters at most)."""

from __future__ import annotations

import io
import json
import logging

import pytest

import agentops
from agentops.config import Config
from agentops.testing import Faults, LocalBackend
from tests.conftest import clean_env, free_port, run_python
from tests.secret_scan import assert_no_leaks, secret_forms

KEY = "5e1fa0c7-3b2d-4e8f-9a61-0c7d2b3e4f5a"
"""Recognisable, so that a leak of any part of it longer than the mask is found."""
NEAR_KEY = KEY[:-1] + "g"
"""Looks like the key, is not a UUID: refused by Config, must not be echoed either."""
UNKNOWN_KEY = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"

PROGRAM = """
import json, logging, sys
if "--basic-logging" in sys.argv:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(name)s %(levelname)s %(message)s")
import agentops
from opentelemetry import trace

agentops.init(max_wait_time=100)
client = agentops.get_client()
tracer = trace.get_tracer("secrets")

def burst(prefix):
    for i in range(5):
        with tracer.start_as_current_span(f"{prefix}-{i}") as span:
            span.set_attribute("index", i)

burst("first")
if client is not None:
    client.processor.force_flush()
    client.tracker.wait(5)
    burst("second")
    client.processor.force_flush()
    print(client.tracker.snapshot())
    print(client.config.public())
    print(client.stats.snapshot())
print(json.dumps(agentops.diagnose_session()))
agentops.print_session_status()
print("END", flush=True)
"""


@pytest.fixture
def backend():
    with LocalBackend(api_key=KEY) as instance:
        yield instance


def program_env(backend: LocalBackend, **extra: str) -> dict[str, str]:
    env = {"AGENTOPS_API_KEY": KEY, "AGENTOPS_API_ENDPOINT": backend.api_url,
           "AGENTOPS_EXPORTER_ENDPOINT": backend.otlp_url, "AGENTOPS_APP_URL": backend.app_url,
           "AGENTOPS_LOG_LEVEL": "DEBUG", "AGENTOPS_AUTH_TIMEOUT": "1",
           "AGENTOPS_SHUTDOWN_TIMEOUT": "2", "AGENTOPS_EXPORT_TIMEOUT": "1"}
    env.update(extra)
    return clean_env(**env)


def issued_tokens(backend: LocalBackend) -> set[str]:
    return {request["token"] for request in backend.otlp_requests if request["token"]}


def assert_no_secrets(outputs: dict[str, str], keys: set[str],
                      tokens: set[str] | frozenset[str] = frozenset()) -> None:
    assert_no_leaks(outputs, secret_forms(keys=keys, tokens=tokens))


def run_scenario(backend: LocalBackend, env: dict[str, str], basic_logging: bool):
    run = run_python(PROGRAM, env=env, timeout=60,
                     args=["--basic-logging"] if basic_logging else [])
    assert run.returncode == 0, run.stderr
    assert "END" in run.stdout, run.stdout
    return run


def configure_healthy(backend, env):
    pass


def configure_invalid_key(backend, env):
    env["AGENTOPS_API_KEY"] = UNKNOWN_KEY


def configure_receiver_401(backend, env):
    backend.faults = Faults(otlp_status=401)


def configure_receiver_down(backend, env):
    env["AGENTOPS_EXPORTER_ENDPOINT"] = f"http://127.0.0.1:{free_port()}/v1/traces"


def configure_auth_slow(backend, env):
    backend.faults = Faults(auth_delay=2.0)


def configure_fail_safe_bad_key(backend, env):
    env["AGENTOPS_API_KEY"] = NEAR_KEY
    env["AGENTOPS_FAIL_SAFE"] = "true"


SCENARIOS = {
    "healthy": configure_healthy,
    "invalid_key": configure_invalid_key,
    "receiver_401": configure_receiver_401,
    "receiver_down": configure_receiver_down,
    "auth_slow": configure_auth_slow,
    "fail_safe_bad_key": configure_fail_safe_bad_key,
}
EXPECTS_TOKENS = {"healthy", "receiver_401", "auth_slow"}


@pytest.mark.parametrize("basic_logging", [True, False], ids=["root-debug", "sdk-handler"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_key_or_token_in_a_programs_output_logs_or_diagnosis(backend, scenario,
                                                                basic_logging):
    env = program_env(backend)
    SCENARIOS[scenario](backend, env)
    run = run_scenario(backend, env, basic_logging)
    tokens = issued_tokens(backend)
    if scenario in EXPECTS_TOKENS:
        assert tokens, "the scenario was meant to send spans with a token"
    if basic_logging and scenario != "fail_safe_bad_key":
        # Proof that third-party DEBUG records were part of what was searched.
        assert "urllib3" in run.stderr
    diagnosis = json.dumps(run.last_json())
    assert_no_secrets({"stdout": run.stdout, "stderr": run.stderr, "diagnosis": diagnosis},
                      {KEY, NEAR_KEY, UNKNOWN_KEY}, tokens)
    used = env["AGENTOPS_API_KEY"]
    if used != NEAR_KEY:
        assert f"{used[:4]}...{used[-4:]}" in run.stdout, "the masked key is what is shown"


def test_a_refused_key_is_not_in_the_warning_or_the_diagnosis(backend):
    env = program_env(backend, AGENTOPS_API_KEY=NEAR_KEY)
    run = run_python(PROGRAM, env=env, timeout=60, args=["--basic-logging"])
    assert run.returncode == 0, run.stderr
    assert "invalid_key_format" in run.stderr and "not a valid AgentOps API key" in run.stderr
    assert_no_secrets({"stdout": run.stdout, "stderr": run.stderr}, {KEY, NEAR_KEY})
    assert backend.auth_requests == []


@pytest.fixture
def doctor():
    import agentops.cli  # noqa: F401  (our own module: a failure to import is a failure)

    def run(backend: LocalBackend, *args: str, **extra: str):
        env = program_env(backend, **extra)
        code = "import sys; from agentops.cli import main; sys.exit(main(sys.argv[1:]))"
        return run_python(code, env=env, timeout=60, args=["doctor", *args])

    return run


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
@pytest.mark.parametrize("key_from", ["env", "argument", "unknown-key", "receiver-401"])
def test_no_key_or_token_in_doctor_output(backend, doctor, as_json, key_from):
    args = ["--json"] if as_json else []
    extra: dict[str, str] = {}
    if key_from == "argument":
        args += ["--api-key", KEY]
        extra["AGENTOPS_API_KEY"] = ""
    elif key_from == "unknown-key":
        extra["AGENTOPS_API_KEY"] = UNKNOWN_KEY
    elif key_from == "receiver-401":
        backend.faults = Faults(otlp_status=401)
    run = doctor(backend, *args, **extra)
    assert run.returncode in (0, 1), run.stderr
    if key_from in ("env", "argument"):
        assert run.returncode == 0, run.stdout + run.stderr
        assert issued_tokens(backend), "the doctor was meant to export a test span"
    if as_json:
        json.loads(run.stdout)
    assert_no_secrets({"stdout": run.stdout, "stderr": run.stderr},
                      {KEY, UNKNOWN_KEY}, issued_tokens(backend))


# -- in process: log records, reprs and exceptions -------------------------------------

def test_no_key_or_token_in_log_records_reprs_or_reports_in_process(backend, caplog):
    caplog.set_level(logging.DEBUG)
    backend.faults = Faults(otlp_statuses=(401, 401))
    agentops.init(api_key=KEY, endpoint=backend.api_url, exporter_endpoint=backend.otlp_url,
                  app_url=backend.app_url, max_wait_time=50, wait_for_auth=True,
                  log_level="DEBUG", export_timeout=2)
    client = agentops.get_client()
    from opentelemetry import trace

    tracer = trace.get_tracer("secrets")
    for index in range(5):
        with tracer.start_as_current_span(f"span-{index}"):
            pass
    client.processor.force_flush()
    report = io.StringIO()
    agentops.print_session_status(report)
    client.shutdown(timeout=1)
    tokens = issued_tokens(backend)
    assert tokens

    records = "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records)
    outputs = {
        "log records": records,
        "diagnosis": json.dumps(agentops.diagnose_session()),
        "report": report.getvalue(),
        "auth snapshot": repr(client.tracker.snapshot()),
        "public config": repr(client.config.public()),
        "stats": repr(client.stats.snapshot()),
        "trace": repr(client.traces),
    }
    assert_no_secrets(outputs, {KEY}, tokens)


def test_the_token_outcome_repr_hides_the_token(backend):
    outcome = agentops.api.AgentOpsAPI(backend.api_url).fetch_token(KEY, timeout=5)
    assert outcome.ok
    assert_no_secrets({"repr": repr(outcome), "str": str(outcome)}, {KEY}, {outcome.token})


@pytest.mark.parametrize("value", [NEAR_KEY, KEY.replace("-", "_"), KEY + "-extra", KEY[:30]])
def test_config_errors_about_a_key_never_echo_it(value):
    refused = Config.resolve(environ={}, api_key=value)
    config = Config.resolve(environ={"AGENTOPS_API_KEY": value, "AGENTOPS_FAIL_SAFE": "1"})
    assert refused.api_key is None and refused.api_key_error
    assert_no_secrets({"error": refused.api_key_error or "", "repr": repr(refused),
                       "fail-safe errors": " ".join(config.errors.values()),
                       "api_key_error": config.api_key_error or ""}, {value, KEY})


def test_the_config_repr_does_not_show_the_full_key():
    config = Config.resolve(environ={}, api_key=KEY)
    assert_no_secrets({"repr": repr(config), "str": str(config)}, {KEY})

