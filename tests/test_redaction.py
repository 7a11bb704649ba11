"""agentops.redaction: what is removed from text by value and by shape, what is left alone,
and the exit points that use it in process (log records, reprs, exceptions, settings with
credentials). The end-to-end sweep over real programs is tests/test_secrets_sweep.py."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest

import agentops
from agentops import redaction
from agentops.api import AgentOpsAPI, TokenOutcome, error_text
from agentops.auth import AuthTracker
from agentops.config import Config, ConfigError
from agentops.export.stats import ExportStats
from agentops.redaction import redact, redact_data
from tests.hostile_server import HostileServer

KEY = "0b7d3e91-55c2-4f6a-8e1d-2c9a7f4b6e38"
PASSWORD = "Hunter2-redaction-7c"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_with(header: bytes, payload: bytes = b'{"sub": "x"}') -> str:
    return f"{b64url(header)}.{b64url(payload)}.{b64url(b'signature-bytes-here')}"


PRETTY = jwt_with(b'{ "alg": "HS256", "typ": "JWT" }', b'{\n  "api_key": "k",\n  "exp": 1\n}')
LEADING_SPACE = jwt_with(b' {"alg":"HS256"}')
COMPACT = jwt_with(b'{"alg":"HS256","typ":"JWT"}')


# -- by value ----------------------------------------------------------------------------------

@pytest.mark.parametrize("form", [KEY, KEY.upper(), KEY.replace("-", ""),
                                  KEY.replace("-", "").upper(), "{" + KEY.upper() + "}",
                                  f"urn:uuid:{KEY}"])
def test_the_api_key_is_removed_in_any_case_and_form(form):
    redaction.register_api_key("{" + KEY.upper() + "}")
    cleaned = redact(f"server says: bad key {form}!")
    assert KEY.replace("-", "") not in cleaned.lower().replace("-", "")
    assert "<api key>" in cleaned


def test_every_token_ever_registered_is_removed_not_only_the_latest():
    first, second = "opaque-token-number-one-a1b2", "opaque-token-number-two-c3d4"
    redaction.register_token(first)
    redaction.register_token(second)
    assert redact(f"old {first.upper()} new {second}") == "old <token> new <token>"


def test_a_secret_registered_after_a_text_was_redacted_is_removed_from_it_too():
    late = "registered-late-e5f6a7"
    text = f"detail quoting {late}"
    assert redact(text) == text  # cached now
    redaction.register_secret(late)
    assert late not in redact(text)


def test_short_values_are_not_registered_so_ordinary_words_survive():
    redaction.register_secret("abc")
    assert redact("abc def abcdef") == "abc def abcdef"


def test_the_tracker_registers_every_token_it_receives(local_backend):
    tracker = AuthTracker(AgentOpsAPI(local_backend.api_url), local_backend.api_key)
    tracker.start()
    assert tracker.wait(5) == "authenticated"
    first = tracker.current_token()
    second = tracker.refresh(first)
    assert first and second and first != second
    # Upper-cased, a token no longer decodes as a JWT: only its registration finds it.
    text = f"quoted {first.upper()} and {second.upper()}"
    assert redact(text) == "quoted <token> and <token>"


# -- by shape ----------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [PRETTY, LEADING_SPACE, COMPACT], ids=["eyAi", "IHs", "eyJ"])
def test_anything_shaped_like_a_jwt_is_removed_whatever_it_starts_with(token):
    assert not token.startswith("eyJ") or token is COMPACT
    for text in (f"rejected token {token}; retry", f"host.example.{token}", f"x={token}",
                 token, ".".join(token.split(".")[:2])):
        cleaned = redact(text)
        assert token.split(".")[1] not in cleaned, text
        assert "<token>" in cleaned


@pytest.mark.parametrize("text", [
    "opentelemetry.exporter.otlp.proto.http.trace_exporter", "api.agentops.ai:443",
    "127.0.0.1:8000", "OpenTelemetry 1.36.0", "exporter_endpoint.example.com",
    "key 5e1f...4f5a", "https://app.agentops.ai/sessions?trace_id=0123456789abcdef",
    "Retry-After: 30", "the basic settings of a bearer token",
])
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


@pytest.mark.parametrize("url, shown", [
    ("http://apiuser:S3cretPass@host:8000/v1/traces", "http://***@host:8000/v1/traces"),
    ("https://user@host/x", "https://***@host/x"),
    ("socks5h://u:p%40ss@proxy:1080", "socks5h://***@proxy:1080"),
])
def test_url_userinfo_is_masked(url, shown):
    assert redact(f"connecting to {url} now") == f"connecting to {shown} now"


@pytest.mark.parametrize("name", ["api_key", "token", "key", "password", "secret",
                                  "authorization", "access_token", "X-Api-Key", "client_secret"])
def test_query_values_named_like_secrets_are_masked(name):
    cleaned = redact(f"redirected to https://h/p?next=/a&{name}=v4lu3-h3r3&page=2")
    assert cleaned == f"redirected to https://h/p?next=/a&{name}=***&page=2"


def test_authorization_header_values_and_bearer_credentials_are_masked():
    assert redact("Authorization: Basic dXNlcjpwYXNzd29yZA==") == "Authorization: Basic ***"
    assert redact("sent Bearer abcdefghijklmnopqrstuvwx") == "sent Bearer ***"


def test_redact_data_cleans_every_string_and_keeps_the_shape():
    redaction.register_api_key(KEY)
    data = {"a": [f"k {KEY}", {"b": (PRETTY, 3)}], "n": None, "ok": True, "x": 1.5}
    assert redact_data(data) == {"a": ["k <api key>", {"b": ("<token>", 3)}], "n": None,
                                 "ok": True, "x": 1.5}


# -- entry points ------------------------------------------------------------------------------

def test_server_error_text_is_redacted_before_it_is_cut_short():
    # Cut first, the token would lose its last segments and part of it would remain.
    text = error_text(json.dumps({"error": "x" * 185 + " " + PRETTY}).encode())
    assert text == "x" * 185 + " <token>"


def test_a_redirect_location_is_redacted_where_it_enters():
    redaction.register_api_key(KEY)

    def redirect(server, connection, sock):
        sock.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://sso:" + PASSWORD.encode()
                     + b"@login.invalid/?api_key=" + KEY.upper().encode()
                     + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    with HostileServer(redirect) as server:
        outcome = AgentOpsAPI(server.url).fetch_token(KEY, timeout=5)
    assert outcome.reason == "unexpected_status"
    assert outcome.detail == "redirected to http://***@login.invalid/?api_key=<api key>"


# -- exit points in process ---------------------------------------------------------------------

def test_log_records_of_the_sdk_are_redacted_message_arguments_and_traceback(caplog):
    redaction.register_api_key(KEY)
    logger = logging.getLogger("agentops")
    caplog.set_level(logging.DEBUG, logger="agentops")
    try:
        raise RuntimeError(f"server echoed {KEY.upper()} and {PRETTY}")
    except RuntimeError:
        logger.exception("failed with %s at %s", KEY, f"http://u:{PASSWORD}@h/")
    record = caplog.records[-1]
    text = caplog.text
    assert KEY not in text.lower() and PASSWORD not in text and PRETTY not in text
    assert "<api key>" in record.getMessage() and "***@h" in record.getMessage()
    assert "RuntimeError: server echoed <api key> and <token>" in text


def test_library_log_records_lose_registered_secrets_only(caplog):
    redaction.register_secret("lib-secret-value-9f8e")
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug(
        '"POST /v1/traces?sig=%s&user=someone HTTP/1.1" 200', "lib-secret-value-9f8e")
    assert caplog.records[-1].getMessage() == '"POST /v1/traces?sig=***&user=someone HTTP/1.1" 200'


def test_reprs_of_public_objects_hold_no_secret():
    redaction.register_api_key(KEY)
    echoed = f"Invalid API key {KEY.upper()} {PRETTY}"
    outcome = TokenOutcome("invalid_key", 401, echoed, token=COMPACT)
    stats = ExportStats()
    batch = stats.batch_started(1)
    stats.batch_progress(batch, "client_error", f"HTTP 400: {PRETTY}")
    stats.batch_finished(batch, 0, [("client_error", 1, f"HTTP 400: {PRETTY}")])
    config = Config.resolve(environ={}, api_key=KEY,
                            exporter_endpoint="http://127.0.0.1:1/v1/traces?token=qv-123456")
    tracker = AuthTracker(None, KEY)
    tracker.detail = echoed
    for obj in (outcome, stats, config, tracker.snapshot(), config.public()):
        for text in (repr(obj), str(obj)):
            assert KEY not in text.lower() and "eyAi" not in text and "qv-123456" not in text, text


# -- URL credentials in settings --------------------------------------------------------------

URL_SETTINGS = {"endpoint": "AGENTOPS_API_ENDPOINT", "exporter_endpoint": "AGENTOPS_EXPORTER_ENDPOINT",
                "app_url": "AGENTOPS_APP_URL"}


@pytest.mark.parametrize("name", list(URL_SETTINGS))
def test_a_url_setting_with_credentials_is_refused_without_echoing_the_password(name):
    url = f"http://apiuser:{PASSWORD}@127.0.0.1:8000/x"
    with pytest.raises(ConfigError) as raised:
        Config.resolve(environ={}, **{name: url})
    message = str(raised.value)
    assert name in message and "credentials" in message and "http://***@127.0.0.1:8000/x" in message
    assert PASSWORD not in message and PASSWORD not in repr(raised.value)
    config = Config.resolve(environ={URL_SETTINGS[name]: url}, check_all=True)
    assert name in config.errors and PASSWORD not in repr(config)
    assert PASSWORD not in json.dumps(config.public()) + " ".join(config.errors.values())


def test_a_scheme_less_url_with_credentials_is_refused_without_echoing_the_password():
    with pytest.raises(ConfigError) as raised:
        Config.resolve(environ={}, endpoint=f"apiuser:{PASSWORD}@host")
    assert PASSWORD not in str(raised.value)


def test_init_with_credentials_in_an_endpoint_raises_and_under_fail_safe_says_why(caplog):
    url = f"http://apiuser:{PASSWORD}@127.0.0.1:9/v1/traces"
    with pytest.raises(ConfigError):
        agentops.init(api_key="", exporter_endpoint=url)
    caplog.set_level(logging.DEBUG, logger="agentops")
    agentops.init(api_key="", exporter_endpoint=url, fail_safe=True, auto_start_session=False)
    diagnosis = agentops.diagnose_session()
    report = io.StringIO()
    agentops.print_session_status(report)
    assert diagnosis["config"]["exporter_endpoint"] == "https://otlp.agentops.ai/v1/traces"
    assert any("exporter_endpoint" in issue and "credentials" in issue
               for issue in diagnosis["issues"])
    for text in (json.dumps(diagnosis), report.getvalue(), caplog.text):
        assert PASSWORD not in text


def test_an_exception_message_is_redacted_before_it_is_cut_short():
    import requests

    from agentops.http import exception_cause

    redaction.register_api_key(KEY)
    # The key starts at character 150: cut at 160 first, ten of its characters would stay.
    error = requests.exceptions.RequestException("x" * 150 + KEY + " tail")
    cause, detail = exception_cause(error, "http://127.0.0.1:1/v1/traces")
    assert cause == "connection_error"
    assert detail.endswith("x" * 10 + "<api key> ") and KEY[:4] not in detail


def test_a_child_forked_while_a_secret_is_being_registered_can_still_register_and_redact():
    import os
    import sys

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    redaction.register_secret("before-the-fork-1a2b")
    # The lock as a parent thread would hold it at the moment of the fork.
    with redaction._registry._lock:
        pid = os.fork()
        if pid == 0:  # the child: must neither deadlock nor forget
            try:
                redaction.register_secret("after-the-fork-3c4d")
                ok = redact("before-the-fork-1a2b after-the-fork-3c4d") == "*** ***"
            finally:
                os._exit(0 if ok else 1)
    import signal
    import time

    deadline = time.monotonic() + 10
    while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    if waited[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the child deadlocked on the lock its parent's thread held at the fork")
    assert os.waitstatus_to_exitcode(waited[1]) == 0, sys.platform
