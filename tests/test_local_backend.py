from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from pathlib import Path

import jwt
import pytest
import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from agentops.testing import (
    AUTH_TOKEN_PATH,
    MAX_BODY_BYTES,
    STOP_TIMEOUT,
    Faults,
    LocalBackend,
)
from tests.conftest import SLACK

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_spans(*names: str) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "backend-tests"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.scope")
    names = names or ("op",)
    with tracer.start_as_current_span(names[0]) as root:
        root.set_attribute("agentops.kind", "session")
        root.set_attribute("count", 3)
        root.set_attribute("ratio", 0.5)
        root.set_attribute("flag", True)
        root.set_attribute("tags", ["a", "b"])
        for name in names[1:]:
            with tracer.start_as_current_span(name) as child:
                child.set_status(Status(StatusCode.ERROR, "boom"))
    spans = list(exporter.get_finished_spans())
    provider.shutdown()
    return spans


def otlp_body(*names: str) -> bytes:
    return encode_spans(make_spans(*names)).SerializeToString()


def get_token(backend: LocalBackend) -> str:
    response = requests.post(backend.api_url + AUTH_TOKEN_PATH, json={"api_key": backend.api_key})
    assert response.status_code == 200
    return response.json()["token"]


def post_otlp(
    backend: LocalBackend,
    body: bytes,
    token: str | None,
    extra: dict[str, str] | None = None,
    timeout: float = 5,
    session: requests.Session | None = None,
) -> requests.Response:
    headers = {"Content-Type": "application/x-protobuf"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    client = session or requests
    return client.post(backend.otlp_url, data=body, headers=headers, timeout=timeout)


@pytest.fixture
def backend(local_backend: LocalBackend) -> LocalBackend:
    return local_backend


# -- token endpoint ------------------------------------------------------------


def test_urls_and_default_key(backend: LocalBackend) -> None:
    assert backend.api_url == f"http://127.0.0.1:{backend.port}"
    assert backend.otlp_url == backend.api_url + "/v1/traces"
    assert backend.app_url == backend.api_url + "/app"
    assert uuid.UUID(backend.api_key).version == 4
    assert backend.accepted_keys == {backend.api_key}
    page = requests.get(backend.app_url + "/sessions", timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]


def test_token_issued_is_a_signed_jwt_with_expiry(backend: LocalBackend) -> None:
    before = time.time()
    response = requests.post(
        backend.api_url + AUTH_TOKEN_PATH, json={"api_key": backend.api_key}, timeout=5
    )
    assert response.status_code == 200
    payload = response.json()
    assert payload["project_id"] == backend.project_id
    assert payload["project_prem_status"] == "free"
    claims = jwt.decode(payload["token"], options={"verify_signature": False})
    assert claims["api_key"] == backend.api_key
    assert claims["project_id"] == backend.project_id
    assert claims["exp"] >= before + 30 * 24 * 3600
    assert jwt.get_unverified_header(payload["token"])["alg"] == "HS256"
    assert backend.decode_token(payload["token"]) == claims
    assert get_token(backend) != payload["token"]
    assert backend.tokens_issued == 2
    assert [r["status"] for r in backend.auth_requests] == [200, 200]
    assert backend.auth_requests[0]["api_key_ok"] is True


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"api_key": "not-a-uuid"}),
        json.dumps({"key": str(uuid.uuid4())}),
        json.dumps([1, 2]),
        "{not json",
        "",
    ],
)
def test_token_rejects_malformed_key_with_400(backend: LocalBackend, body: str) -> None:
    response = requests.post(
        backend.api_url + AUTH_TOKEN_PATH,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid API key format"}
    assert backend.tokens_issued == 0


def test_token_rejects_unknown_key_with_403(backend: LocalBackend) -> None:
    response = requests.post(
        backend.api_url + AUTH_TOKEN_PATH, json={"api_key": str(uuid.uuid4())}, timeout=5
    )
    assert response.status_code == 403
    assert response.json() == {"error": "Invalid API key"}
    assert backend.auth_requests[-1]["api_key_ok"] is False

    other = str(uuid.uuid4())
    backend.accepted_keys = {backend.api_key, other}
    response = requests.post(backend.api_url + AUTH_TOKEN_PATH, json={"api_key": other}, timeout=5)
    assert response.status_code == 200


def test_token_verification_get(backend: LocalBackend) -> None:
    token = get_token(backend)
    url = backend.api_url + AUTH_TOKEN_PATH
    ok = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert ok.status_code == 200
    body = ok.json()
    assert body["api_key"] == backend.api_key
    assert body["expires_at"].endswith("+00:00")
    assert requests.get(url, timeout=5).status_code == 401
    forged = LocalBackend().issue_token(backend.api_key)
    bad = requests.get(url, headers={"Authorization": f"Bearer {forged}"}, timeout=5)
    assert bad.status_code == 401 and "error" in bad.json()
    expired = backend.issue_token(ttl=-5)
    assert requests.get(url, headers={"Authorization": f"Bearer {expired}"}, timeout=5).json() == {
        "error": "Token expired"
    }


def test_auth_status_and_body_faults(backend: LocalBackend) -> None:
    url = backend.api_url + AUTH_TOKEN_PATH
    backend.faults = Faults(auth_status=500)
    response = requests.post(url, json={"api_key": backend.api_key}, timeout=5)
    assert response.status_code == 500
    assert response.json() == {"error": "Authentication failed"}

    backend.faults = Faults(auth_body="<html>maintenance</html>", auth_content_type="text/html")
    response = requests.post(url, json={"api_key": backend.api_key}, timeout=5)
    assert response.status_code == 200
    assert response.text == "<html>maintenance</html>"
    assert response.headers["Content-Type"] == "text/html"
    assert backend.tokens_issued == 0

    backend.reset()
    assert backend.faults == Faults() and backend.auth_requests == []
    assert requests.post(url, json={"api_key": backend.api_key}, timeout=5).status_code == 200


def test_auth_delay(backend: LocalBackend) -> None:
    backend.faults = Faults(auth_delay=0.4)
    started = time.monotonic()
    get_token(backend)
    assert time.monotonic() - started >= 0.4


def test_auth_hang_times_out_client(backend: LocalBackend) -> None:
    backend.faults = Faults(auth_hang=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            backend.api_url + AUTH_TOKEN_PATH, json={"api_key": backend.api_key}, timeout=0.3
        )
    backend.set_faults(auth_hang=False)
    assert get_token(backend)


# -- OTLP receiver -------------------------------------------------------------


def test_otlp_accepts_spans_with_valid_token(backend: LocalBackend) -> None:
    token = get_token(backend)
    body = otlp_body("root", "child")
    response = post_otlp(backend, body, token)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(response.content)

    assert backend.wait_for_spans(2)
    spans = {s["name"]: s for s in backend.spans}
    root, child = spans["root"], spans["child"]
    assert len(root["trace_id"]) == 32 and len(root["span_id"]) == 16
    assert root["parent_span_id"] is None
    assert child["parent_span_id"] == root["span_id"]
    assert child["status_code"] == 2
    assert root["attributes"] == {
        "agentops.kind": "session",
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "tags": ["a", "b"],
    }
    assert root["resource"]["service.name"] == "backend-tests"
    assert sorted(backend.span_names) == ["child", "root"]
    assert len(backend.spans_for_trace(root["trace_id"].upper())) == 2

    (record,) = backend.otlp_requests
    assert record["status"] == 200 and record["authorized"] is True
    assert record["token"] == token and record["span_count"] == 2
    assert record["bytes"] == len(body)

    (copied_root,) = [s for s in backend.spans_for_trace(root["trace_id"]) if s["name"] == "root"]
    copied_root["attributes"]["tags"].append("mutated")
    assert all(s["attributes"].get("tags") != ["a", "b", "mutated"] for s in backend.spans)


def test_otlp_rejects_missing_forged_and_expired_tokens(backend: LocalBackend) -> None:
    body = otlp_body()
    forged = LocalBackend().issue_token(backend.api_key)
    for token in (None, "garbage", forged, backend.issue_token(ttl=-1)):
        response = post_otlp(backend, body, token)
        assert response.status_code == 401
        assert "error" in response.json()
    assert backend.spans == []
    assert [r["authorized"] for r in backend.otlp_requests] == [False] * 4
    assert all(r["span_count"] == 1 for r in backend.otlp_requests)


def test_otlp_token_expires_after_ttl(backend: LocalBackend) -> None:
    backend.token_ttl = 1
    token = get_token(backend)
    assert post_otlp(backend, otlp_body(), token).status_code == 200
    time.sleep(2.05)
    assert post_otlp(backend, otlp_body(), token).status_code == 401
    assert len(backend.spans) == 1


def test_otlp_compressed_bodies(backend: LocalBackend) -> None:
    token = get_token(backend)
    raw = otlp_body()
    assert post_otlp(backend, gzip.compress(raw), token, {"Content-Encoding": "gzip"}).ok
    assert post_otlp(backend, zlib.compress(raw), token, {"Content-Encoding": "deflate"}).ok
    assert len(backend.spans) == 2
    broken = post_otlp(backend, b"\x1f\x8bnot gzip", token, {"Content-Encoding": "gzip"})
    assert broken.status_code == 400
    assert post_otlp(backend, raw, token, {"Content-Encoding": "br"}).status_code == 415


def test_otlp_malformed_protobuf_is_400(backend: LocalBackend) -> None:
    response = post_otlp(backend, b"\xff\xff\xff\xff", get_token(backend))
    assert response.status_code == 400
    assert backend.spans == []


def test_otlp_status_sequence_then_normal(backend: LocalBackend) -> None:
    token = get_token(backend)
    backend.faults = Faults(otlp_statuses=(503, 503))
    with requests.Session() as session:
        statuses = [
            post_otlp(backend, otlp_body(), token, session=session).status_code for _ in range(3)
        ]
    assert statuses == [503, 503, 200]
    assert backend.faults.otlp_statuses == ()
    assert len(backend.spans) == 1
    assert [r["span_count"] for r in backend.otlp_requests] == [1, 1, 1]


def test_otlp_forced_status_retry_after_and_400_body(backend: LocalBackend) -> None:
    token = get_token(backend)
    backend.faults = Faults(otlp_status=503, otlp_statuses=(429, 400), otlp_retry_after=2)
    first = post_otlp(backend, otlp_body(), token)
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    second = post_otlp(backend, otlp_body(), token)
    assert second.status_code == 400 and "error" in second.json()
    for _ in range(2):
        assert post_otlp(backend, otlp_body(), token).status_code == 503
    backend.set_faults(otlp_status=None)
    assert backend.faults == Faults(otlp_retry_after=2)
    assert post_otlp(backend, otlp_body(), token).status_code == 200
    assert len(backend.spans) == 1


def test_otlp_hang_times_out_and_stop_ends_within_its_budget() -> None:
    backend = LocalBackend(faults=Faults(otlp_hang=True)).start()
    token = backend.issue_token()
    with pytest.raises(requests.exceptions.ReadTimeout):
        post_otlp(backend, otlp_body(), token, timeout=0.5)
    assert backend.wait_for_otlp_requests(1)
    assert backend.otlp_requests[0]["status"] == 0
    started = time.monotonic()
    backend.stop()
    assert time.monotonic() - started < STOP_TIMEOUT + SLACK
    backend.stop()
    assert backend.spans == []


def test_stop_with_idle_keep_alive_connection() -> None:
    backend = LocalBackend().start()
    conn = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.status == 200
        response.read()
    sock = conn.sock
    conn.request("POST", AUTH_TOKEN_PATH, body=json.dumps({"api_key": backend.api_key}))
    conn.getresponse().read()
    assert conn.sock is sock
    started = time.monotonic()
    backend.stop()
    assert time.monotonic() - started < STOP_TIMEOUT + SLACK
    conn.close()


def test_oversized_body_is_refused_without_reading() -> None:
    with LocalBackend() as backend:
        with socket.create_connection(("127.0.0.1", backend.port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-protobuf\r\n"
                + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
            )
            reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 413")
        assert backend.otlp_requests[0]["status"] == 413


def test_otlp_delay(backend: LocalBackend) -> None:
    backend.faults = Faults(otlp_delay=0.3)
    started = time.monotonic()
    assert post_otlp(backend, otlp_body(), backend.issue_token()).ok
    assert time.monotonic() - started >= 0.3


def test_concurrent_exports_are_all_recorded(backend: LocalBackend) -> None:
    token = get_token(backend)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with requests.Session() as session:
                response = post_otlp(backend, otlp_body(f"span-{i}"), token, session=session)
                assert response.status_code == 200
        except BaseException as err:  # noqa: BLE001 - surfaced via the errors list
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert backend.wait_for_spans(20)
    assert sorted(backend.span_names) == sorted(f"span-{i}" for i in range(20))
    assert len(backend.otlp_requests) == 20


def test_wait_for_spans_times_out(backend: LocalBackend) -> None:
    started = time.monotonic()
    assert backend.wait_for_spans(1, timeout=0.2) is False
    assert time.monotonic() - started < 0.2 + SLACK


def test_restart_keeps_port_and_tokens() -> None:
    backend = LocalBackend().start()
    try:
        token = get_token(backend)
        url = backend.otlp_url
        backend.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            post_otlp(backend, otlp_body(), token, timeout=1)
        backend.start()
        assert backend.otlp_url == url
        assert post_otlp(backend, otlp_body(), token).status_code == 200
    finally:
        backend.stop()


def test_sdk_otlp_exporter_end_to_end(backend: LocalBackend) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    exporter = OTLPSpanExporter(
        endpoint=backend.otlp_url,
        headers={"Authorization": f"Bearer {get_token(backend)}"},
        compression=Compression.Gzip,
        timeout=5,
    )
    try:
        assert exporter.export(make_spans("root", "llm")) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert sorted(backend.span_names) == ["llm", "root"]


# -- faults -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("otlp_status", 99, ValueError),
        ("otlp_status", True, ValueError),
        ("auth_status", 600, ValueError),
        ("otlp_statuses", (503, 42), ValueError),
        ("auth_statuses", 503, TypeError),
        ("otlp_delay", -1, ValueError),
        ("auth_delay", float("nan"), ValueError),
        ("otlp_drip", float("inf"), ValueError),
        ("otlp_retry_after", "soon", TypeError),
        ("token_leeway", -0.5, ValueError),
        ("auth_body", 12, TypeError),
        ("otlp_partial_success", 3, TypeError),
        ("otlp_partial_success", (-1, "x"), ValueError),
        ("otlp_max_bytes", -1, ValueError),
    ],
)
def test_faults_refuse_a_bad_value_naming_the_field(field: str, value: object,
                                                     error: type[Exception]) -> None:
    with pytest.raises(error, match=f"Faults.{field}"):
        Faults(**{field: value})  # type: ignore[arg-type]


def test_faults_normalise_what_they_are_given() -> None:
    faults = Faults(auth_body="caf\u00e9", otlp_statuses=[503, 429],  # type: ignore[arg-type]
                    otlp_delay=1, otlp_partial_success=[2, "old"])  # type: ignore[arg-type]
    assert faults.auth_body == "caf\u00e9".encode()
    assert faults.otlp_statuses == (503, 429)
    assert faults.otlp_delay == 1.0 and isinstance(faults.otlp_delay, float)
    assert faults.otlp_partial_success == (2, "old")


def test_set_faults_changes_the_named_ones_and_keeps_the_rest(backend: LocalBackend) -> None:
    backend.faults = Faults(otlp_status=503, otlp_retry_after=2)
    assert backend.set_faults(otlp_status=429) == Faults(otlp_status=429, otlp_retry_after=2)
    assert backend.faults == Faults(otlp_status=429, otlp_retry_after=2)
    with pytest.raises(TypeError, match="otlp_stauts"):
        backend.set_faults(otlp_stauts=500)
    with pytest.raises(ValueError, match="Faults.otlp_status"):
        backend.set_faults(otlp_status=42)
    with pytest.raises(TypeError, match="must be a Faults"):
        backend.faults = {"otlp_status": 500}  # type: ignore[assignment]
    assert backend.faults == Faults(otlp_status=429, otlp_retry_after=2)


def test_reset_restores_the_constructor_faults() -> None:
    with LocalBackend(faults=Faults(otlp_status=503)) as backend:
        backend.faults = Faults(auth_status=500)
        backend.reset()
        assert backend.faults == Faults(otlp_status=503)
        assert post_otlp(backend, otlp_body(), backend.issue_token()).status_code == 503


def test_clearing_a_hang_releases_the_held_request_unanswered(backend: LocalBackend) -> None:
    backend.faults = Faults(auth_hang=True, otlp_retry_after=1)
    outcome: list[BaseException] = []

    def held_request() -> None:
        try:
            requests.post(backend.api_url + AUTH_TOKEN_PATH, json={"api_key": backend.api_key},
                          timeout=30)
        except requests.RequestException as err:
            outcome.append(err)

    thread = threading.Thread(target=held_request)
    thread.start()
    deadline = time.monotonic() + 10
    while not backend.auth_requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.auth_requests[0]["status"] == 0  # recorded on arrival, still held
    backend.set_faults(auth_hang=False)
    thread.join(10)
    # Released long before the client's own 30 s timeout: the connection closes unanswered.
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError), outcome
    assert backend.faults == Faults(otlp_retry_after=1)
    assert get_token(backend)


def test_queued_auth_statuses_come_first_with_retry_after(backend: LocalBackend) -> None:
    backend.faults = Faults(auth_statuses=(429, 503), auth_retry_after=1.5)
    url = backend.api_url + AUTH_TOKEN_PATH
    first = requests.post(url, json={"api_key": backend.api_key}, timeout=5)
    assert first.status_code == 429 and first.headers["Retry-After"] == "1.5"
    assert backend.faults.auth_statuses == (503,)
    second = requests.post(url, json={"api_key": backend.api_key}, timeout=5)
    assert second.status_code == 503 and second.json() == {"error": "Service Unavailable"}
    assert get_token(backend)
    assert [r["status"] for r in backend.auth_requests] == [429, 503, 200]


def test_receiver_checks_meet_the_status_but_leave_the_queue(backend: LocalBackend) -> None:
    token = backend.issue_token()
    backend.faults = Faults(otlp_statuses=(503,))
    assert post_otlp(backend, b"", token).status_code == 200
    assert backend.faults.otlp_statuses == (503,)
    assert post_otlp(backend, otlp_body(), token).status_code == 503
    backend.faults = Faults(otlp_status=401)
    assert post_otlp(backend, b"", token).status_code == 401
    assert [r["status"] for r in backend.receiver_checks] == [200, 401]
    assert [r["status"] for r in backend.otlp_requests] == [503]


def test_partial_success_keeps_only_the_accepted_spans(backend: LocalBackend) -> None:
    backend.faults = Faults(otlp_partial_success=(2, "too old"))
    response = post_otlp(backend, otlp_body("root", "a", "b"), backend.issue_token())
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert response.status_code == 200
    assert answer.partial_success.rejected_spans == 2
    assert answer.partial_success.error_message == "too old"
    assert len(backend.spans) == 1


def test_max_bytes_and_location_faults(backend: LocalBackend) -> None:
    token = backend.issue_token()
    body = otlp_body()
    backend.faults = Faults(otlp_max_bytes=len(body) - 1)
    assert post_otlp(backend, body, token).status_code == 413
    backend.set_faults(otlp_max_bytes=len(body))
    assert post_otlp(backend, body, token).status_code == 200
    backend.faults = Faults(otlp_status=308, otlp_location="http://127.0.0.1:9/v1/traces")
    moved = requests.post(backend.otlp_url, data=body, allow_redirects=False, timeout=5,
                          headers={"Authorization": f"Bearer {token}"})
    assert moved.status_code == 308
    assert moved.headers["Location"] == "http://127.0.0.1:9/v1/traces"


def test_otlp_drip_sends_the_answer_a_byte_at_a_time(backend: LocalBackend) -> None:
    interval = 0.01
    backend.faults = Faults(otlp_drip=interval)
    conn = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    started = time.monotonic()
    conn.request("POST", "/v1/traces", body=otlp_body(), headers={
        "Content-Type": "application/x-protobuf",
        "Authorization": f"Bearer {backend.issue_token()}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.monotonic() - started
    conn.close()
    assert response.status == 200 and len(body) == int(response.getheader("Content-Length"))
    assert len(body) >= 200  # the documented padding: there are bytes to drip
    ExportTraceServiceResponse().ParseFromString(body)
    # The backend waits the interval before each byte, so the whole answer cannot be
    # faster than this (a lower bound: a loaded machine only makes it slower).
    assert elapsed >= len(body) * interval


# -- standalone ---------------------------------------------------------------


def test_standalone_module_prints_urls_and_stops_on_sigterm() -> None:
    api_key = str(uuid.uuid4())
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen(
        [sys.executable, "-m", "agentops.testing", "--port", "0", "--api-key", api_key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    ) as proc:
        try:
            lines: list[str] = []
            assert proc.stdout is not None and proc.stderr is not None
            while not any(line.startswith("Press Ctrl+C") for line in lines):
                line = proc.stdout.readline()
                assert line, f"standalone exited early: {proc.stderr.read()}"
                lines.append(line.strip())
            output = "\n".join(lines)
            api_url = lines[0].rsplit(" ", 1)[-1]
            assert api_url.startswith("http://127.0.0.1:")
            assert f"{api_url}/v1/traces" in output and f"{api_url}/app" in output
            assert api_key in output
            response = requests.post(
                api_url + AUTH_TOKEN_PATH, json={"api_key": api_key}, timeout=5
            )
            assert response.status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
            assert proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()


def test_standalone_refuses_remote_host() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentops.testing", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=10,
    )
    assert proc.returncode == 2
    assert "--allow-remote" in proc.stderr
