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

from agentops.testing import AUTH_TOKEN_PATH, MAX_BODY_BYTES, LocalBackend

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


def test_auth_status_and_body_knobs(backend: LocalBackend) -> None:
    url = backend.api_url + AUTH_TOKEN_PATH
    backend.auth_status = 500
    response = requests.post(url, json={"api_key": backend.api_key}, timeout=5)
    assert response.status_code == 500
    assert response.json() == {"error": "Authentication failed"}

    backend.auth_status = None
    backend.auth_body = "<html>maintenance</html>"
    backend.auth_content_type = "text/html"
    response = requests.post(url, json={"api_key": backend.api_key}, timeout=5)
    assert response.status_code == 200
    assert response.text == "<html>maintenance</html>"
    assert response.headers["Content-Type"] == "text/html"
    assert backend.tokens_issued == 0

    backend.reset()
    assert backend.auth_body is None and backend.auth_requests == []
    assert requests.post(url, json={"api_key": backend.api_key}, timeout=5).status_code == 200


def test_auth_delay(backend: LocalBackend) -> None:
    backend.auth_delay = 0.4
    started = time.monotonic()
    get_token(backend)
    assert time.monotonic() - started >= 0.4


def test_auth_hang_times_out_client(backend: LocalBackend) -> None:
    backend.auth_hang = True
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            backend.api_url + AUTH_TOKEN_PATH, json={"api_key": backend.api_key}, timeout=0.3
        )
    backend.auth_hang = False
    assert get_token(backend)


# -- OTLP receiver -------------------------------------------------------------


def test_otlp_accepts_spans_with_valid_token(backend: LocalBackend) -> None:
    token = get_token(backend)
    body = otlp_body("root", "child")
    response = post_otlp(backend, body, token)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(response.content)

    assert backend.wait_for_spans(2, timeout=1)
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
    backend.queue_otlp_statuses(503, 503)
    with requests.Session() as session:
        statuses = [
            post_otlp(backend, otlp_body(), token, session=session).status_code for _ in range(3)
        ]
    assert statuses == [503, 503, 200]
    assert backend.otlp_statuses == []
    assert len(backend.spans) == 1
    assert [r["span_count"] for r in backend.otlp_requests] == [1, 1, 1]


def test_otlp_forced_status_retry_after_and_400_body(backend: LocalBackend) -> None:
    token = get_token(backend)
    backend.otlp_status = 503
    backend.otlp_statuses = [429, 400]
    backend.otlp_retry_after = 2
    first = post_otlp(backend, otlp_body(), token)
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    second = post_otlp(backend, otlp_body(), token)
    assert second.status_code == 400 and "error" in second.json()
    for _ in range(2):
        assert post_otlp(backend, otlp_body(), token).status_code == 503
    backend.otlp_status = None
    assert post_otlp(backend, otlp_body(), token).status_code == 200
    assert len(backend.spans) == 1


def test_otlp_hang_times_out_and_stop_is_prompt() -> None:
    backend = LocalBackend(otlp_hang=True).start()
    token = backend.issue_token()
    with pytest.raises(requests.exceptions.ReadTimeout):
        post_otlp(backend, otlp_body(), token, timeout=0.5)
    assert backend.wait_for_otlp_requests(1, timeout=1)
    assert backend.otlp_requests[0]["status"] == 0
    started = time.monotonic()
    backend.stop()
    assert time.monotonic() - started < 2
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
    assert time.monotonic() - started < 2
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
    backend.otlp_delay = 0.3
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
    assert backend.wait_for_spans(20, timeout=2)
    assert sorted(backend.span_names) == sorted(f"span-{i}" for i in range(20))
    assert len(backend.otlp_requests) == 20


def test_wait_for_spans_times_out(backend: LocalBackend) -> None:
    started = time.monotonic()
    assert backend.wait_for_spans(1, timeout=0.2) is False
    assert time.monotonic() - started < 1


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
