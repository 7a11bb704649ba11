"""`agentops doctor` and examples/debug_session_connectivity.py as users run them: in a
fresh interpreter against LocalBackend, judged by exit status and output."""

from __future__ import annotations

import importlib.metadata
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentops.config import SETTINGS
from agentops.testing import Faults
from tests.conftest import STARTUP, clean_env, free_port
from tests.secret_scan import assert_no_leaks, secret_forms

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "debug_session_connectivity.py"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(args: list[str], timeout: float = 60, **env: str) -> Result:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          encoding="utf-8", timeout=timeout, env=clean_env(**env))
    return Result(proc.returncode, proc.stdout, proc.stderr)


def doctor(*args: str, **env: str) -> Result:
    return run(["-m", "agentops", "doctor", *args], **env)


def assert_no_secret(text: str, key: str) -> None:
    assert_no_leaks({"output": text}, secret_forms(keys=[key]))


def test_doctor_json_shows_sources_versions_and_the_key_masked_never_in_full(local_backend):
    result = doctor("--api-key", local_backend.api_key, "--exporter-endpoint",
                    local_backend.otlp_url, "--json",
                    AGENTOPS_API_ENDPOINT=local_backend.api_url)

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["configuration"]}
    assert rows["api_key"]["source"] == "argument"
    assert rows["api_key"]["value"] == f"{local_backend.api_key[:4]}...{local_backend.api_key[-4:]}"
    assert rows["endpoint"]["source"] == "env:AGENTOPS_API_ENDPOINT"
    assert rows["exporter_endpoint"]["source"] == "argument"
    assert rows["app_url"]["source"] == "default"
    assert rows["app_url"]["env"] == "AGENTOPS_APP_URL"
    assert report["versions"]["agentops"]
    assert report["versions"]["opentelemetry-sdk"] and report["versions"]["requests"]
    assert report["versions"]["python"].startswith(".".join(map(str, sys.version_info[:2])))
    assert report["passed"] is True and report["connectivity"]["test_passed"] is True
    assert_no_secret(result.stdout + result.stderr, local_backend.api_key)


def test_doctor_lists_the_llm_instrumentation(local_backend):
    import importlib.metadata

    def installed(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    args = ("--api-key", local_backend.api_key, "--exporter-endpoint", local_backend.otlp_url)
    env = {"AGENTOPS_API_ENDPOINT": local_backend.api_url}
    report = json.loads(doctor(*args, "--json", **env).stdout)["instrumentation"]
    assert set(report) == {"openai", "anthropic"}
    for name in report:
        assert report[name]["version"] == installed(name)
        instrumentor = f"opentelemetry-instrumentation-{name}"
        assert report[name]["instrumentor_version"] == installed(instrumentor)
        assert report[name]["pip_install"] == f"pip install 'agentops[{name}]'"
    text = doctor(*args, **env).stdout
    assert "LLM instrumentation" in text
    if installed("openai") and installed("opentelemetry-instrumentation-openai"):
        assert (f"openai     {installed('openai')}: instrumentor opentelemetry-instrumentation-"
                f"openai {installed('opentelemetry-instrumentation-openai')}") in text


def test_doctor_reads_the_key_from_the_environment_and_says_so(local_backend):
    result = doctor("--json", AGENTOPS_API_KEY=local_backend.api_key,
                    AGENTOPS_API_ENDPOINT=local_backend.api_url,
                    AGENTOPS_EXPORTER_ENDPOINT=local_backend.otlp_url)

    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["configuration"]}
    assert rows["api_key"]["source"] == "env:AGENTOPS_API_KEY"
    assert_no_secret(result.stdout + result.stderr, local_backend.api_key)


def test_doctor_text_report_is_safe_to_paste_and_masks_proxy_credentials(local_backend):
    result = doctor("--api-key", local_backend.api_key, "--endpoint", local_backend.api_url,
                    "--exporter-endpoint", local_backend.otlp_url,
                    HTTPS_PROXY="http://alice:s3cr3t@proxy.invalid:3128")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "HTTPS_PROXY=http://***@proxy.invalid:3128" in result.stdout
    assert "s3cr3t" not in result.stdout
    assert "Configuration (value, where it came from):" in result.stdout
    assert "AgentOps Connectivity Test" in result.stdout and "Result: PASSED" in result.stdout
    assert_no_secret(result.stdout + result.stderr, local_backend.api_key)


def test_doctor_exits_1_when_data_cannot_be_delivered(local_backend):
    bad_key = str(uuid.uuid4())
    result = doctor("--api-key", bad_key, "--endpoint", local_backend.api_url,
                    "--exporter-endpoint", local_backend.otlp_url, "--json")

    assert result.returncode == 1
    connectivity = json.loads(result.stdout)["connectivity"]
    failed = [s for s in connectivity["steps"] if s["status"] == "failed"]
    assert [(s["name"], s["reason"]) for s in failed] == [("token_exchange", "invalid_key")]
    assert_no_secret(result.stdout + result.stderr, bad_key)


def test_doctor_with_a_receiver_that_never_answers_finishes_within_its_timeout(local_backend):
    local_backend.faults = Faults(otlp_hang=True)

    started = time.monotonic()
    result = doctor("--api-key", local_backend.api_key, "--endpoint", local_backend.api_url,
                    "--exporter-endpoint", local_backend.otlp_url, "--timeout", "2")
    elapsed = time.monotonic() - started

    assert result.returncode == 1
    assert "timeout" in result.stdout
    assert elapsed < 2 + STARTUP  # doctor's --timeout, plus the interpreter's start-up


@pytest.mark.parametrize("args", [["--bogus"], ["--timeout", "-1"], ["--timeout", "soon"]])
def test_doctor_usage_errors_exit_2_with_doctors_usage(args):
    result = doctor(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: agentops doctor "), result.stderr
    assert "--exporter-endpoint" in result.stderr and result.stdout == ""


CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


def doctor_offline(*args: str, **ca: str) -> Result:
    """doctor against closed ports (it fails fast), with only the given CA variables."""
    port = free_port()
    env = {k: v for k, v in clean_env().items() if k not in CA_VARIABLES}
    env.update(ca)
    proc = subprocess.run(
        [sys.executable, "-m", "agentops", "doctor", "--timeout", "5", "--endpoint",
         f"http://127.0.0.1:{port}", "--exporter-endpoint", f"http://127.0.0.1:{port}/v1/traces",
         *args], capture_output=True, text=True, encoding="utf-8", timeout=60, env=env)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_doctor_reports_openssl_and_certifis_bundle_by_default():
    import certifi

    report = json.loads(doctor_offline("--json").stdout)["tls"]
    assert report["openssl_version"] == ssl.OPENSSL_VERSION
    bundle = report["ca_bundle"]
    assert bundle["path"] == certifi.where() and bundle["kind"] == "file"
    version = importlib.metadata.version("certifi")
    assert bundle["source"] == f"certifi {version} (requests' default)"
    text = doctor_offline().stdout
    assert f"  {ssl.OPENSSL_VERSION} (Python's ssl module)" in text
    assert f"  CA bundle: {certifi.where()} (file, from certifi" in text


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_doctor_names_the_variable_that_chose_the_ca_bundle(tmp_path, variable):
    import certifi

    bundle = tmp_path / "corporate.pem"
    bundle.write_text(Path(certifi.where()).read_text())
    ca = {variable: str(bundle)}
    if variable == "CURL_CA_BUNDLE":  # requests reads REQUESTS_CA_BUNDLE first
        ca["SSL_CERT_FILE"] = certifi.where()
    report = json.loads(doctor_offline("--json", **ca).stdout)["tls"]
    assert report["ca_bundle"] == {"path": str(bundle), "source": variable, "kind": "file"}
    text = doctor_offline(**ca).stdout
    assert f"  CA bundle: {bundle} (file, from {variable})" in text
    if "SSL_CERT_FILE" in ca:
        assert report["not_used_by_requests"] == {"SSL_CERT_FILE": certifi.where()}
        assert (f"  SSL_CERT_FILE={certifi.where()} is set, but requests does not read it"
                in text)


def test_doctor_says_when_the_ca_bundle_named_does_not_exist(tmp_path):
    missing = tmp_path / "gone.pem"
    result = doctor_offline(REQUESTS_CA_BUNDLE=str(missing))
    assert f"  CA bundle: {missing} (from REQUESTS_CA_BUNDLE): MISSING" in result.stdout
    report = json.loads(doctor_offline("--json", REQUESTS_CA_BUNDLE=str(missing)).stdout)
    assert report["tls"]["ca_bundle"]["kind"] == "missing"


def head(args: list[str], lines: int, **env: str) -> tuple[list[str], Result]:
    """``python ARGS | head -n LINES``: a real pipe whose reader closes it after ``lines``
    lines; stdout block-buffered, as in a shell pipeline."""
    environment = clean_env(**env)
    del environment["PYTHONUNBUFFERED"]
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, *args], stdout=write_end, stderr=subprocess.PIPE,
                            env=environment)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = [reader.readline().decode() for _ in range(lines)]
    _, stderr = proc.communicate(timeout=120)
    return first, Result(proc.returncode, "", stderr.decode())


@pytest.mark.parametrize("command", ["doctor", "example"])
def test_output_piped_into_a_reader_that_stops_early_ends_quietly(command):
    """The program's next write after the reader has gone fails: it ends with status 1
    and nothing on stderr (no BrokenPipeError traceback or 'Exception ignored')."""
    port = free_port()
    args = (["-m", "agentops", "doctor", "--timeout", "5", "--endpoint",
             f"http://127.0.0.1:{port}", "--exporter-endpoint",
             f"http://127.0.0.1:{port}/v1/traces"] if command == "doctor"
            else [str(EXAMPLE), "--local"])
    first, result = head(args, 1)
    assert first[0].startswith("AgentOps")
    assert result.stderr == "" and result.returncode == 1


def test_agentops_without_a_command_prints_usage_and_exits_2():
    result = run(["-m", "agentops"])

    assert result.returncode == 2
    assert "doctor" in result.stderr


def test_example_local_walkthrough_shows_all_three_scenarios_as_expected():
    # --local with a key in the environment: the walkthrough says why it runs locally.
    result = run([str(EXAMPLE), "--local"], timeout=120, AGENTOPS_API_KEY=str(uuid.uuid4()))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No API key given" not in result.stdout
    assert "With --local: using the bundled LocalBackend at http://127.0.0.1:" in result.stdout
    assert ("Session links below point at this local backend (http://127.0.0.1:"
            in result.stdout)
    assert "stops when the walkthrough ends: they do not open afterwards." in result.stdout
    assert "has stopped, and the session links above with it." in result.stdout
    for title in ("a healthy session", "an invalid API key", "the OTLP receiver is down"):
        assert title in result.stdout
    assert result.stdout.count("AgentOps Connectivity Test") == 3
    assert result.stdout.count("AgentOps Session Diagnostic Report") == 3
    assert result.stdout.count(": as expected:") == 3
    assert_no_leaks({"stdout": result.stdout}, secret_forms())


def test_example_local_walkthrough_is_independent_of_the_users_agentops_settings():
    """Every AGENTOPS_* setting set to a value the SDK refuses, or to a valid one that
    changes what a scenario does (endpoints where nothing listens, no session trace, no
    offline storage, refused settings fatal): the walkthrough leaves them all out, both in
    its connectivity tests and in its programs, says which, and its scenarios behave as
    described, the healthy one included."""
    closed = f"http://127.0.0.1:{free_port()}"
    hostile = {setting.env: "abc" for setting in SETTINGS}
    hostile.update(AGENTOPS_API_ENDPOINT=closed, AGENTOPS_APP_URL=closed,
                   AGENTOPS_EXPORTER_ENDPOINT=f"{closed}/v1/traces",
                   AGENTOPS_API_KEY="0" * 8 + "-dead-beef-0000-" + "0" * 12,
                   AGENTOPS_FAIL_SAFE="false", AGENTOPS_AUTO_START_SESSION="false",
                   AGENTOPS_OFFLINE_STORAGE="false")
    result = run([str(EXAMPLE), "--local"], timeout=120, **hostile)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": as expected:") == 3, result.stdout
    assert "a healthy session: as expected: connectivity test passed" in result.stdout
    assert ("Your own AGENTOPS_* settings are not used here (each scenario sets its own): "
            f"{', '.join(sorted(hostile))}." in result.stdout)
    assert hostile["AGENTOPS_API_KEY"] not in result.stdout


def test_example_without_a_key_says_why_it_walks_through_a_local_backend():
    first, result = head([str(EXAMPLE)], 2)
    assert first[1].startswith("No API key given (argument or AGENTOPS_API_KEY): using the "
                               "bundled LocalBackend at http://127.0.0.1:")
    assert result.stderr == ""


def test_example_with_a_key_and_endpoints_tests_that_setup(local_backend):
    result = run([str(EXAMPLE), local_backend.api_key, "--endpoint", local_backend.api_url,
                  "--exporter-endpoint", local_backend.otlp_url, "--json"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["test_passed"] is True
    assert local_backend.wait_for_spans(1, timeout=5)


def test_example_with_an_invalid_key_exits_1(local_backend):
    result = run([str(EXAMPLE), str(uuid.uuid4()), "--endpoint", local_backend.api_url,
                  "--exporter-endpoint", f"http://127.0.0.1:{free_port()}/v1/traces"])

    assert result.returncode == 1
    assert "invalid_key (HTTP 403)" in result.stdout


@pytest.mark.parametrize("args", [["--bogus"], ["--local", "--endpoint", "http://127.0.0.1:1"]])
def test_example_usage_errors_exit_2(args):
    assert run([str(EXAMPLE), *args]).returncode == 2
