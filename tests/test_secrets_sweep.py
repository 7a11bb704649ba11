"""The secrets sweep: every hostile answer the suite knows, each made to echo secrets back,
run as a real program in a fresh interpreter with every logger at DEBUG.

Each scenario is one subprocess that runs, in order and separated by channel markers: a
program using the SDK (init, spans, flush), the diagnosis JSON, the report, the reprs of
the public objects, the exit, ``agentops doctor`` (text and ``--json``) and the
connectivity example. Everything it writes to stdout and stderr is searched for the API
key (any letter case, canonical, dash-less and as given), every token the backend issued
(whole, and its payload and signature alone), anything shaped like a JWT, and the URL and
proxy passwords. A leak fails the test naming the channel and the line.

The backend here is hostile by design: ``EchoBackend`` answers as each scripted fault
says and quotes what it received (the key, in upper case too, and the bearer token) in
bodies and headers; faults below the HTTP layer come from ``tests/hostile_server.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import hostile_server as hostile
from tests.conftest import clean_env, free_port, run_python
from tests.secret_scan import FRAGMENT, assert_no_leaks, leaks, secret_forms

KEY = "3c9e5b1a-7d4f-4a2e-9b8c-1f6e0d2a4c7b"
RAW_KEY = "{" + KEY.upper() + "}"
"""The key as a user may paste it: braces and upper case (uuid accepts both)."""
NEAR_KEY = KEY[:-1] + "z"
"""Looks like the key, is not a UUID: refused, and must not be echoed either."""
UNKNOWN_KEY = "8a2d6f0e-4c1b-4e9a-b3d7-5f8c2e1a9b60"
"""A well-formed key no project has."""
PASSWORD = "S3cretPass-4b7e1"
PROXY_PASSWORD = "Pr0xyPass-9d2c6"
QUERY_SECRET = "qs-7c1e9a4f2b"
VENDOR_SECRETS = ("vendor-one-credential-5e2a", "vendor-two-credential-8b3f")
"""Another vendor's credentials in OTEL_EXPORTER_OTLP_*HEADERS: meant for the program's
other exporters, never for AgentOps."""
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "debug_session_connectivity.py"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], key: bytes, pretty: bool = False) -> str:
    """HS256, compact JSON (``eyJ...``) or pretty-printed (header ``eyAi...``, payload
    ``ewog...``): both are valid JWTs to any parser."""
    if pretty:
        header = b'{ "alg": "HS256", "typ": "JWT" }'
        payload = json.dumps(claims, indent=2).encode()
    else:
        header = b'{"alg":"HS256","typ":"JWT"}'
        payload = json.dumps(claims, separators=(",", ":")).encode()
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


FOREIGN_TOKEN = make_jwt({"sub": "someone-else", "api_key": str(uuid.uuid4()), "exp": 2 ** 31},
                         b"another-service", pretty=True)
"""A token this process never held, pretty-printed: only its shape can give it away."""


# -- the echoing backend -------------------------------------------------------------------

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class EchoBackend:
    """A token API and OTLP receiver on 127.0.0.1 whose answers come from ``auth`` and
    ``otlp`` (functions of what was received); records every token it issued and the
    headers of every OTLP request."""

    auth: Callable[[EchoBackend, str], Answer] | None = None
    otlp: Callable[[EchoBackend, str | None], Answer] | None = None
    pretty_tokens: bool = False
    auth_delay: float = 0.0
    issued: list[str] = field(default_factory=list)
    otlp_headers: list[dict[str, str]] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    """How often each kind of answer was given (proof that a scenario ran its fault)."""
    _signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- answers
    def issue(self) -> str:
        claims = {"project_id": "sweep-project", "api_key": KEY, "project_prem_status": "free",
                  "exp": int(time.time()) + 3600, "jti": secrets.token_hex(8)}
        token = make_jwt(claims, self._signing_key, pretty=self.pretty_tokens)
        with self._lock:
            self.issued.append(token)
        return token

    def count(self, kind: str) -> None:
        with self._lock:
            self.answers[kind] = self.answers.get(kind, 0) + 1

    def _auth_post(self, api_key: str) -> Answer:
        with self._lock:
            delay, self.auth_delay = self.auth_delay, 0.0
        if delay:  # only the first request (the program's): doctor's need not wait
            time.sleep(delay)
        if self.auth is not None:
            return self.auth(self, api_key)
        if api_key.lower() != KEY:
            return json_answer(403, {"error": f"Invalid API key {api_key.upper()}"})
        return json_answer(200, {"token": self.issue(), "project_id": "sweep-project"})

    def _auth_get(self, token: str | None) -> Answer:
        if token in self.issued:
            return json_answer(200, {"project_id": "sweep-project", "expires_at": "2099-01-01"})
        return json_answer(401, {"error": f"Invalid token {token}"})

    def _traces(self, token: str | None, headers: dict[str, str]) -> Answer:
        with self._lock:
            self.otlp_headers.append(headers)
        if self.otlp is not None:
            return self.otlp(self, token)
        if token not in self.issued:
            return json_answer(401, {"error": f"Invalid token {token}"})
        return 200, {"Content-Type": "application/x-protobuf"}, b""

    # -- serving
    def start(self) -> EchoBackend:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _bearer(self) -> str | None:
                value = self.headers.get("Authorization") or ""
                return value[7:] if value.startswith("Bearer ") else None

            def _answer(self, answer: Answer) -> None:
                status, headers, body = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                if self.path.startswith("/v3/auth/token"):
                    try:
                        api_key = str(json.loads(body).get("api_key"))
                    except (ValueError, AttributeError):
                        api_key = ""
                    self._answer(backend._auth_post(api_key))
                elif self.path.startswith("/v1/traces"):
                    self._answer(backend._traces(self._bearer(), dict(self.headers.items())))
                else:
                    self._answer(json_answer(404, {"error": "not found"}))

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/v3/auth/token"):
                    self._answer(backend._auth_get(self._bearer()))
                else:
                    self._answer((200, {"Content-Type": "text/plain"}, b"ok"))

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hang up mid-request by design (timeouts, exit)

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="echo-backend",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def otlp_url(self) -> str:
        return f"{self.url}/v1/traces"


def json_answer(status: int, payload: dict[str, Any], **headers: str) -> Answer:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


def echo_key(status: int) -> Callable[[EchoBackend, str], Answer]:
    """The token endpoint refuses the key, quoting it in upper case, dash-less and as sent,
    in its body and in a header."""

    def answer(backend: EchoBackend, api_key: str) -> Answer:
        backend.count(f"auth {status}")
        text = (f"Invalid API key {api_key.upper()} (also known as {api_key.replace('-', '')}, "
                f"sent as {api_key})")
        return json_answer(status, {"error": text, "api_key": api_key},
                           **{"WWW-Authenticate": f'Bearer realm="agentops", key="{api_key}"'})

    return answer


def redirect_with_key(backend: EchoBackend, api_key: str) -> Answer:
    backend.count("auth 302")
    location = (f"http://apiuser:{PASSWORD}@login.invalid/sso?api_key={api_key.upper()}"
                f"&token={FOREIGN_TOKEN}&next=/v3/auth/token")
    return 302, {"Location": location, "Content-Type": "text/plain"}, b""


def html_with_key(backend: EchoBackend, api_key: str) -> Answer:
    backend.count("auth html")
    page = f"<html><body>Sign in to the Wi-Fi. Your key: {api_key.upper()}</body></html>"
    return 200, {"Content-Type": "text/html"}, page.encode()


def not_a_jwt(backend: EchoBackend, api_key: str) -> Answer:
    backend.count("auth not-a-jwt")
    return json_answer(200, {"token": f"eyJhbGciOi.{api_key}.parts", "echo": api_key.upper()})


def echo_token(status: int, retry_after: str | None = None) -> Callable[[EchoBackend, str | None], Answer]:
    """The receiver refuses the batch, quoting the bearer token it got and a token this
    process never held."""

    def answer(backend: EchoBackend, token: str | None) -> Answer:
        backend.count(f"otlp {status}")
        headers = {"Retry-After": retry_after} if retry_after else {}
        return json_answer(status, {"error": f"rejected token {token}; did you mean "
                                             f"{FOREIGN_TOKEN}? key {KEY.upper()}"}, **headers)

    return answer


def partial_success_echo(backend: EchoBackend, token: str | None) -> Answer:
    """200, but the receiver's partial_success rejects a span, quoting the token."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    answer = ExportTraceServiceResponse()
    if token is None or token not in backend.issued:
        return json_answer(401, {"error": f"Invalid token {token}"})
    backend.count("otlp partial")
    answer.partial_success.rejected_spans = 1
    answer.partial_success.error_message = (f"span refused for token {token} "
                                            f"(key {KEY.upper()}; see {FOREIGN_TOKEN})")
    return 200, {"Content-Type": "application/x-protobuf"}, answer.SerializeToString()


def receiver_redirect(backend: EchoBackend, token: str | None) -> Answer:
    backend.count("otlp 307")
    location = f"http://collector:{PASSWORD}@elsewhere.invalid/v1/traces?token={token}"
    return 307, {"Location": location, "Content-Type": "text/plain"}, b""


def cycling(*answers: Callable[[EchoBackend, str | None], Answer]) -> Callable[[EchoBackend, str | None], Answer]:
    calls = iter(range(10 ** 6))

    def answer(backend: EchoBackend, token: str | None) -> Answer:
        return answers[next(calls) % len(answers)](backend, token)

    return answer


# -- the program ------------------------------------------------------------------------------

PROGRAM = r"""
import json, logging, os, runpy, sys, traceback
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                    format="%(name)s %(levelname)s %(message)s")

def channel(name):
    for stream in (sys.stdout, sys.stderr):
        print(f"=== channel {name} ===", file=stream, flush=True)

channel("init")
import agentops
from agentops.api import AgentOpsAPI
from opentelemetry import trace

try:
    session = agentops.init(max_wait_time=100)
except agentops.ConfigError as error:
    print(repr(error))
    traceback.print_exc()
    # Local-only, so that the diagnosis and the report still have a client to describe.
    session = agentops.init(max_wait_time=100, fail_safe=True, api_key="")
client = agentops.get_client()

channel("spans")
tracer = trace.get_tracer("sweep")
def burst(prefix):
    for i in range(3):
        with tracer.start_as_current_span(f"{prefix}-{i}") as span:
            span.set_attribute("index", i)
burst("first")
if client is not None:
    client.processor.force_flush(5000)
    client.tracker.wait(float(os.environ["SWEEP_AUTH_WAIT"]))
    burst("second")
    client.processor.force_flush(5000)

channel("diagnosis")
print(json.dumps(agentops.diagnose_session()))
channel("report")
agentops.print_session_status()
channel("reprs")
objects = {"client": client, "session": session}
if client is not None:
    objects.update(config=client.config, public_config=client.config.public(),
                   auth=client.tracker.snapshot(), stats=client.stats,
                   stats_snapshot=client.stats.snapshot(), traces=client.traces)
    if client.config.api_key:
        objects["token_outcome"] = AgentOpsAPI(client.config.endpoint).fetch_token(
            client.config.api_key, 2.0)
for name, value in objects.items():
    print(name, repr(value))
    print(name, str(value))

channel("exit")
if client is not None:
    client.shutdown(timeout=1)

from agentops.cli import main as agentops_command
timeout = os.environ["SWEEP_TIMEOUT"]
channel("doctor-text")
agentops_command(["doctor", "--timeout", timeout])
channel("doctor-json")
agentops_command(["doctor", "--json", "--timeout", timeout])
channel("example")
example = runpy.run_path(os.environ["SWEEP_EXAMPLE"])
example["main"](["--endpoint", os.environ["AGENTOPS_API_ENDPOINT"], "--timeout", timeout])
channel("end")
"""


@dataclass
class Scenario:
    """One hostile situation: how to set it up and what proves it really happened."""

    env: Callable[[Any], dict[str, str]]
    """Environment for the program, given the fixture's servers."""
    check: Callable[[dict[str, Any], Any], None]
    """Asserts on the diagnosis and the servers that the fault was met."""
    echo: dict[str, Any] = field(default_factory=dict)
    """EchoBackend settings."""
    fault: Callable[..., None] | None = None
    """A tests/hostile_server.py fault for the API endpoint instead of EchoBackend."""
    tls: bool = False
    auth_wait: float = 3.0
    timeout: float = 3.0
    """Seconds doctor and the example may take (their --timeout): a server that never
    answers costs this much per run."""


def sdk_env(api: str, otlp: str, key: str = KEY, **extra: str) -> dict[str, str]:
    env = {"AGENTOPS_API_KEY": key, "AGENTOPS_API_ENDPOINT": api,
           "AGENTOPS_EXPORTER_ENDPOINT": otlp, "AGENTOPS_APP_URL": "http://127.0.0.1:9/app",
           "AGENTOPS_LOG_LEVEL": "DEBUG", "AGENTOPS_AUTH_TIMEOUT": "1",
           "AGENTOPS_EXPORT_TIMEOUT": "1", "AGENTOPS_SHUTDOWN_TIMEOUT": "1"}
    env.update(extra)
    return env


def on_echo(**extra: str) -> Callable[[Any], dict[str, str]]:
    return lambda s: sdk_env(s.echo.url, s.echo.otlp_url, **extra)


def on_hostile(**extra: str) -> Callable[[Any], dict[str, str]]:
    return lambda s: sdk_env(s.hostile.url, s.echo.otlp_url, **extra)


def auth_is(reason: str | None, state: str = "failed") -> Callable[[dict[str, Any], Any], None]:
    def check(diagnosis: dict[str, Any], servers: Any) -> None:
        assert (diagnosis["auth"]["state"], diagnosis["auth"]["reason"]) == (state, reason), \
            diagnosis["auth"]

    return check


def answered(kind: str, then: Callable[[dict[str, Any], Any], None] | None = None):
    def check(diagnosis: dict[str, Any], servers: Any) -> None:
        assert servers.echo.answers.get(kind), f"the backend never gave its {kind!r} answer"
        if then is not None:
            then(diagnosis, servers)

    return check


def delivered(diagnosis: dict[str, Any], servers: Any) -> None:
    assert diagnosis["export_stats"]["spans_exported"] >= 6, diagnosis["export_stats"]
    assert servers.echo.issued


def lost_to(cause: str) -> Callable[[dict[str, Any], Any], None]:
    def check(diagnosis: dict[str, Any], servers: Any) -> None:
        assert diagnosis["export_stats"]["failures_by_cause"].get(cause), \
            diagnosis["export_stats"]

    return check


def stored_for(cause: str) -> Callable[[dict[str, Any], Any], None]:
    def check(diagnosis: dict[str, Any], servers: Any) -> None:
        assert diagnosis["export_stats"]["stored_by_cause"].get(cause), diagnosis["export_stats"]
        assert diagnosis["storage"]["pending_batches"], diagnosis["storage"]
    return check


def both(*checks: Callable[[dict[str, Any], Any], None]) -> Callable[[dict[str, Any], Any], None]:
    def check(diagnosis: dict[str, Any], servers: Any) -> None:
        for one in checks:
            one(diagnosis, servers)

    return check


def no_foreign_headers_sent(diagnosis: dict[str, Any], servers: Any) -> None:
    delivered(diagnosis, servers)
    sent = json.dumps(servers.echo.otlp_headers)
    assert servers.echo.otlp_headers and not any(secret in sent for secret in VENDOR_SECRETS), \
        "another vendor's OTLP headers were sent to the AgentOps receiver"
    names = {name.lower() for headers in servers.echo.otlp_headers for name in headers}
    assert not names & {"x-vendor-key", "x-trace-vendor"}, names


def refused_setting(name: str) -> Callable[[dict[str, Any], Any], None]:
    def check(diagnosis: dict[str, Any], servers: Any) -> None:
        assert any(name in issue and "credentials" in issue for issue in diagnosis["issues"]), \
            diagnosis["issues"]

    return check


def with_credentials(url: str, user: str = "apiuser", password: str = PASSWORD) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{user}:{password}@{rest}"


SCENARIOS: dict[str, Scenario] = {
    # Healthy: tokens are held and used; the key given as pasted (braces, upper case).
    "healthy": Scenario(on_echo(AGENTOPS_API_KEY=RAW_KEY), delivered),
    # The token endpoint, answering as a hostile or broken server would.
    "auth_401_echoes_the_key_in_upper_case": Scenario(
        on_echo(AGENTOPS_API_KEY=RAW_KEY), answered("auth 401", auth_is("invalid_key")),
        echo={"auth": echo_key(401)}),
    "auth_400_echoes_the_key": Scenario(
        on_echo(), answered("auth 400", auth_is("invalid_key_format")),
        echo={"auth": echo_key(400)}),
    "auth_500_echoes_the_key": Scenario(
        on_echo(), answered("auth 500", auth_is("server_error")),
        echo={"auth": echo_key(500)}, auth_wait=1.5),
    "auth_429_echoes_the_key": Scenario(
        on_echo(), answered("auth 429", auth_is("rate_limited")),
        echo={"auth": echo_key(429)}, auth_wait=1.5),
    "auth_302_location_with_the_key_and_a_password": Scenario(
        on_echo(), answered("auth 302", auth_is("unexpected_status")),
        echo={"auth": redirect_with_key}),
    "auth_200_html_page_with_the_key": Scenario(
        on_echo(), answered("auth html", auth_is("bad_response")), echo={"auth": html_with_key}),
    "auth_200_token_that_is_not_a_jwt": Scenario(
        on_echo(), answered("auth not-a-jwt", auth_is("bad_response")),
        echo={"auth": not_a_jwt}),
    "auth_slow_tokens_arrive_late": Scenario(
        on_echo(), lost_to("not_authenticated"), echo={"auth_delay": 1.5}, auth_wait=0.2),
    "auth_unknown_key": Scenario(
        on_echo(AGENTOPS_API_KEY=UNKNOWN_KEY),
        auth_is("invalid_key")),
    "api_down": Scenario(
        lambda s: sdk_env(f"http://127.0.0.1:{free_port()}", s.echo.otlp_url),
        auth_is("connection_error"), auth_wait=1.0),
    "key_refused_locally_fail_safe": Scenario(
        on_echo(AGENTOPS_API_KEY=NEAR_KEY, AGENTOPS_FAIL_SAFE="true"),
        auth_is("invalid_key_format")),
    # A key that is not a UUID never raises: authentication fails at once.
    "key_refused_locally_without_fail_safe": Scenario(
        on_echo(AGENTOPS_API_KEY=NEAR_KEY), auth_is("invalid_key_format")),
    # Faults below HTTP semantics (tests/hostile_server.py).
    "auth_body_drips_forever": Scenario(
        on_hostile(), auth_is(None, "pending"), fault=hostile.drip(interval=0.2), auth_wait=0.5,
        timeout=1.5),
    "auth_headers_then_silence": Scenario(
        on_hostile(), auth_is(None, "pending"), fault=hostile.silence_after_headers,
        auth_wait=0.5, timeout=1.5),
    "auth_body_cut_short": Scenario(
        on_hostile(), auth_is("connection_error"), fault=hostile.truncated_body),
    "auth_redirect_loop": Scenario(
        on_hostile(), auth_is("unexpected_status"), fault=hostile.redirect_to_itself),
    "auth_10_mb_body": Scenario(
        on_hostile(), auth_is("bad_response"),
        fault=hostile.large_body(10 * 1024 * 1024, chunked=True)),
    "auth_body_not_in_its_content_encoding": Scenario(
        on_hostile(), auth_is("bad_response"),
        fault=hostile.large_body(0, encoding="gzip", body=f"not gzip {KEY}".encode())),
    "auth_untrusted_certificate": Scenario(
        on_hostile(), auth_is("tls_error"), fault=hostile.answer_ok, tls=True),
    # The receiver.
    "receiver_400_echoes_a_pretty_printed_token": Scenario(
        on_echo(), answered("otlp 400", lost_to("client_error")),
        echo={"pretty_tokens": True, "otlp": echo_token(400)}),
    "receiver_401_echoes_every_token_it_gets": Scenario(
        on_echo(), answered("otlp 401", lost_to("auth_rejected")),
        echo={"otlp": echo_token(401)}),
    "receiver_413_429_5xx_echo_the_token": Scenario(
        on_echo(), answered("otlp 413"),
        echo={"otlp": cycling(echo_token(413), echo_token(429, retry_after="0"),
                              echo_token(500), echo_token(503))}),
    "receiver_partial_success_quotes_the_token": Scenario(
        on_echo(), answered("otlp partial", lost_to("rejected_by_receiver")),
        echo={"otlp": partial_success_echo}),
    "receiver_redirect_with_the_token_and_a_password": Scenario(
        on_echo(), answered("otlp 307", lost_to("unexpected_status")),
        echo={"otlp": receiver_redirect}),
    "receiver_down": Scenario(
        lambda s: sdk_env(s.echo.url, f"http://127.0.0.1:{free_port()}/v1/traces"),
        lost_to("connection_error")),
    "receiver_down_with_offline_storage": Scenario(
        lambda s: sdk_env(s.echo.url, f"http://127.0.0.1:{free_port()}/v1/traces",
                          AGENTOPS_OFFLINE_STORAGE="true"),
        stored_for("connection_error")),
    # Credentials in settings and in the environment.
    "endpoints_with_userinfo": Scenario(
        lambda s: sdk_env(with_credentials(s.echo.url), with_credentials(s.echo.otlp_url),
                          AGENTOPS_APP_URL=with_credentials("http://127.0.0.1:9/app")),
        both(auth_is(None, "disabled"), refused_setting("exporter_endpoint"))),
    "exporter_endpoint_with_a_secret_query_value": Scenario(
        lambda s: sdk_env(s.echo.url, f"{s.echo.otlp_url}?signature={QUERY_SECRET}"),
        delivered),
    "another_vendors_otlp_headers_in_the_environment": Scenario(
        on_echo(OTEL_EXPORTER_OTLP_HEADERS=f"x-vendor-key={VENDOR_SECRETS[0]},"
                                           f"authorization=Basic%20{VENDOR_SECRETS[1]}",
                OTEL_EXPORTER_OTLP_TRACES_HEADERS=f"x-trace-vendor={VENDOR_SECRETS[0]}"),
        no_foreign_headers_sent),
    "proxy_with_credentials": Scenario(
        lambda s: sdk_env(s.echo.url, s.echo.otlp_url, NO_PROXY="", no_proxy="",
                          HTTP_PROXY=f"http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:"
                                     f"{free_port()}"),
        auth_is("connection_error"), auth_wait=1.0),
}


# -- finding leaks ------------------------------------------------------------------------------

def sweep_forms(tokens: list[str], *keys: str) -> dict[str, str]:
    """Every form the sweep looks for: the keys, the issued tokens, and the passwords and
    credentials its scenarios put in URLs, proxies and other vendors' headers."""
    return secret_forms(keys=keys, tokens=tokens, others={
        PASSWORD: "URL password", PROXY_PASSWORD: "proxy password",
        QUERY_SECRET: "query secret", FOREIGN_TOKEN: "foreign token",
        **{secret: "another vendor's credential" for secret in VENDOR_SECRETS}})


# -- the sweep ----------------------------------------------------------------------------------

@dataclass
class Servers:
    echo: EchoBackend
    hostile: hostile.HostileServer | None = None


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory):
    return hostile.self_signed_context(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_secret_in_any_output_of_a_program_doctor_or_the_example(name, tls_context):
    scenario = SCENARIOS[name]
    if scenario.tls and tls_context is None:
        pytest.skip("no way to make a self-signed certificate (cryptography or openssl)")
    servers = Servers(EchoBackend(**scenario.echo).start())
    try:
        if scenario.fault is not None:
            servers.hostile = hostile.HostileServer(
                scenario.fault, tls_context=tls_context if scenario.tls else None,
                max_seconds=60).start()
        env = clean_env(**scenario.env(servers), SWEEP_EXAMPLE=str(EXAMPLE),
                        SWEEP_TIMEOUT=f"{scenario.timeout:g}", SWEEP_AUTH_WAIT=f"{scenario.auth_wait:g}")
        run = run_python(PROGRAM, env=env, timeout=120)
    finally:
        servers.echo.stop()
        if servers.hostile is not None:
            servers.hostile.stop()

    assert "=== channel end ===" in run.stdout, f"the program did not finish:\n{run.stderr[-3000:]}"
    # Proof that DEBUG records of the libraries were part of what was searched.
    assert "urllib3" in run.stderr or name == "endpoints_with_userinfo"
    diagnosis = json.loads(run.stdout.split("=== channel diagnosis ===\n")[1].splitlines()[0])
    scenario.check(diagnosis, servers)

    forms = sweep_forms(servers.echo.issued, KEY, RAW_KEY, NEAR_KEY, UNKNOWN_KEY)
    outputs = {"stdout": run.stdout, "stderr": run.stderr}
    for stored in sorted(Path(env["AGENTOPS_STORAGE_DIRECTORY"]).iterdir()):  # offline storage
        outputs[f"file {stored.name}"] = stored.read_bytes().decode("latin-1")
    assert_no_leaks(outputs, forms)
    # A usable key appears masked: what support needs to recognise it.
    if diagnosis["auth"].get("state") not in (None, "disabled", "failed") or \
            diagnosis["auth"].get("reason") not in (None, "invalid_key_format"):
        given = str(uuid.UUID(env["AGENTOPS_API_KEY"]))
        assert f"{given[:4]}...{given[-4:]}" in run.stdout


def test_the_sweep_finds_a_leak_and_names_its_channel_and_line():
    token = make_jwt({"a": 1}, b"k", pretty=True)
    output = "\n".join(["=== channel report ===", "fine", f"key {KEY.upper()} here",
                        "=== channel doctor-json ===", f'"detail": "x.{token}"'])
    found = leaks(output, sweep_forms([token], KEY), "stdout")
    assert found[0].startswith("stdout/report line 3: API key: key <API key> here")
    assert any(f.startswith("stdout/doctor-json line 5: issued token #1:") for f in found)
    assert any("JWT-shaped" in f and "doctor-json line 5" in f for f in found)
    long_token = make_jwt({"api_key": KEY, "project_id": "p1"}, b"k")
    cut = long_token.split(".")[1][3:3 + FRAGMENT]  # a token cut short, not at its start
    assert leaks(f"detail: {cut}...", sweep_forms([long_token], KEY), "stderr") == [
        "stderr line 1: a piece of issued token #1 (payload): detail: "
        "<issued token #1 (payload)>..."]
    assert leaks("api.agentops.ai 127.0.0.1 opentelemetry.exporter.otlp 5e1f...4f5a",
                 sweep_forms([], KEY), "stdout") == []
