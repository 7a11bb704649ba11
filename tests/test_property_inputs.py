"""Hostile input, generated: any value for any setting (argument or environment variable)
either works or raises ConfigError naming the setting, and never anything with
``fail_safe``; no accepted value breaks a thread later; any answer of the token endpoint
maps to a TokenOutcome and never raises. The inputs that once broke these properties
have their own tests below.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import string
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit

import jwt
import pytest
import responses
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import agentops
import agentops.client
from agentops import vocabulary as v
from agentops.api import AgentOpsAPI, TokenOutcome, token_claims
from agentops.config import SETTINGS, Config, ConfigError
from agentops.testing import Faults
from tests.conftest import SLACK, free_port

KEY = "6f4e1c2a-9b1d-4c3e-8f00-123456787f79"
NAMES = [setting.name for setting in SETTINGS]
ENV_NAMES = [setting.env for setting in SETTINGS]
ENV_BY_NAME = {setting.name: setting.env for setting in SETTINGS}
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}
URL_SETTINGS = ("endpoint", "app_url", "exporter_endpoint")
INT_SETTINGS = ("max_wait_time", "max_queue_size")
SECONDS_SETTINGS = ("auth_timeout", "shutdown_timeout", "export_timeout")

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# The SDK's auth thread jitters its retry delay with ``random``; a thread of one example
# can still do so while Hypothesis draws the next one, which Hypothesis reports.
SDK_THREADS_USE_RANDOM = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies")


# -- strategies ----------------------------------------------------------------------

class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


TRICKY_TEXT = [
    "", " ", "\t\n", "0", "-1", "1.5", "nan", "NaN", "inf", "-inf", "1e400", "1" * 400,
    "1" * 5000, "true", "FALSE", "yes", "off", "DEBUG", "level 5", "\x00", "é", "💥",
    "http://", "https://", "http://127.0.0.1", "http://127.0.0.1:0", "http://127.0.0.1:99999",
    "http://127.0.0.1:-1", "http://[::1]:8080", "ftp://127.0.0.1", "127.0.0.1:8080",
    "http://user:pass@127.0.0.1/", KEY, KEY.upper(), f"{{{KEY}}}", f"urn:uuid:{KEY}",
    KEY.replace("-", ""), KEY[:-1], KEY + "0", " " + KEY + " ", "a,b,,c", ",",
]

text_values = st.one_of(st.text(max_size=40), st.sampled_from(TRICKY_TEXT))

any_value = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.sampled_from([0, -1, 1, 2**63, 10**19, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    text_values, st.binary(max_size=16),
    st.lists(st.one_of(st.text(max_size=8), st.integers(), st.none()), max_size=4),
    st.tuples(st.text(max_size=4)),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    st.sampled_from([Opaque(), 1j, b"5", bytearray(b"1"), float("nan")]),
)

LOOPBACK = "http://127.0.0.1:9"
USABLE = {
    "api_key": st.sampled_from([KEY, KEY.upper(), f" {KEY} "]),
    "endpoint": st.just(LOOPBACK), "app_url": st.just(LOOPBACK + "/app"),
    "exporter_endpoint": st.just(LOOPBACK + "/v1/traces"),
    "max_wait_time": st.integers(1, 10**6), "max_queue_size": st.integers(1, 10**5),
    "default_tags": st.lists(st.text(max_size=8), max_size=3),
    "trace_name": st.text(max_size=20),
    "log_level": st.sampled_from(["DEBUG", "info", " WARNING ", 10, 50, 0]),
    "auth_timeout": st.floats(0, 30), "shutdown_timeout": st.floats(0, 30),
    "export_timeout": st.floats(0, 30),
    "storage_max_mb": st.integers(1, 10**5),
    "storage_max_age_hours": st.floats(0.01, 720),
    "storage_directory": st.sampled_from([os.path.join(tempfile.gettempdir(), "agentops-prop"),
                                          "~/.cache/agentops-prop", " relative/store "]),
}
FLAGS = ("auto_start_session", "fail_safe", "log_session_replay_url", "instrument_llm_calls",
         "wait_for_auth", "capture_content", "offline_storage", "handle_sigterm",
         "instrument_threading")
USABLE.update({name: st.sampled_from([True, False, "true", "0", " Yes ", "off"])
               for name in FLAGS})
USABLE_ENV = {name: strategy.map(lambda value: ",".join(value) if isinstance(value, list)
                                 else str(value))
              for name, strategy in USABLE.items()}


@st.composite
def arguments(draw, names=tuple(NAMES)):
    """Mostly usable values, so that whole configurations get through, and anything else:
    (arguments, the names given an arbitrary value, which alone may be refused)."""
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=6))
    values, arbitrary = {}, set()
    for name in chosen:
        if draw(st.integers(0, 3)) == 0:
            values[name] = draw(any_value)
            arbitrary.add(name)
        else:
            values[name] = draw(USABLE[name])
    return values, arbitrary


@st.composite
def environment(draw):
    """(environment, the names whose variable holds arbitrary text)."""
    chosen = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=6))
    values, arbitrary = {}, set()
    for name in chosen:
        if draw(st.integers(0, 3)) == 0:
            values[ENV_BY_NAME[name]] = draw(text_values)
            arbitrary.add(name)
        else:
            values[ENV_BY_NAME[name]] = draw(USABLE_ENV[name])
    return values, arbitrary


def refusable(args, arbitrary_args, env, arbitrary_env) -> set[str]:
    """The settings whose effective input (an argument wins over the environment) is an
    arbitrary value: only these may be refused."""
    names = set()
    for name in NAMES:
        if args.get(name) is not None:
            if name in arbitrary_args:
                names.add(name)
        elif env.get(ENV_BY_NAME[name], "").strip() and name in arbitrary_env:
            names.add(name)
    return names


# -- Config.resolve ------------------------------------------------------------------

def names(text: str, setting: str) -> bool:
    """Whether ``text`` names ``setting`` as a word ('endpoint' is not named by
    'exporter_endpoint')."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(setting)}(?![A-Za-z0-9_])", text) is not None


def assert_refusals_explained(config: Config, allowed: set[str]) -> None:
    """Only settings given an arbitrary value were refused; each refusal names its own
    setting, and the setting holds its default."""
    assert set(config.errors) <= allowed, (sorted(config.errors), sorted(allowed))
    for name, message in config.errors.items():
        assert names(message, name), (name, message)
        assert config.sources[name] == "default"
        if name != "fail_safe":
            assert getattr(config, name) == DEFAULTS[name], name


def assert_usable(config: Config) -> None:
    """What the rest of the SDK relies on, whatever the input was."""
    assert config.api_key is None or uuid.UUID(config.api_key)
    for name in URL_SETTINGS:
        parts = urlsplit(getattr(config, name))
        assert parts.scheme in ("http", "https") and parts.hostname
    for name in INT_SETTINGS:
        value = getattr(config, name)
        assert isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63
    # Every wait in the SDK and in OpenTelemetry's worker must be one a thread can make.
    assert config.max_wait_time / 1000 <= threading.TIMEOUT_MAX
    for name in SECONDS_SETTINGS:
        value = getattr(config, name)
        assert isinstance(value, float) and math.isfinite(value)
        assert 0 <= value <= threading.TIMEOUT_MAX
    assert isinstance(config.log_level, int)
    assert isinstance(config.default_tags, list)
    assert all(isinstance(tag, str) for tag in config.default_tags)
    assert isinstance(config.trace_name, str)
    for name in FLAGS:
        assert isinstance(getattr(config, name), bool)
    envs = {setting.name: setting.env for setting in SETTINGS}
    for name, source in config.sources.items():
        assert source in ("argument", "default", f"env:{envs[name]}")
    json.dumps(config.public())


@PROPERTY
@given(drawn_args=arguments(), drawn_env=environment())
def test_resolve_either_works_or_raises_config_error_naming_the_refused_setting(
        drawn_args, drawn_env):
    (args, arbitrary_args), (env, arbitrary_env) = drawn_args, drawn_env
    args.pop("fail_safe", None)
    env = {name: value for name, value in env.items() if name != "AGENTOPS_FAIL_SAFE"}
    allowed = refusable(args, arbitrary_args, env, arbitrary_env)
    every_refusal = Config.resolve(environ=env, check_all=True, **args)
    assert_refusals_explained(every_refusal, allowed)
    try:
        config = Config.resolve(environ=env, **args)
    except ConfigError as error:
        event("ConfigError")
        assert isinstance(error, ValueError)
        assert str(error) in every_refusal.errors.values()
        return
    event("resolved")
    assert_usable(config)
    assert dict(config.errors) == dict(every_refusal.errors)
    assert config == every_refusal and dict(config.sources) == dict(every_refusal.sources)


@PROPERTY
@given(drawn_args=arguments(), drawn_env=environment(),
       fail_safe=st.sampled_from([True, "true", "1", " yes "]), through_env=st.booleans())
def test_resolve_with_fail_safe_never_raises_and_refuses_only_what_it_cannot_use(
        drawn_args, drawn_env, fail_safe, through_env):
    (args, arbitrary_args), (env, arbitrary_env) = drawn_args, drawn_env
    args.pop("fail_safe", None)
    if through_env:
        env = {**env, "AGENTOPS_FAIL_SAFE": str(fail_safe)}
    else:
        args["fail_safe"] = fail_safe
    config = Config.resolve(environ=env, **args)
    assert config.fail_safe is True
    assert_usable(config)
    event(f"{len(config.errors)} refused")
    assert_refusals_explained(config, refusable(args, arbitrary_args, env, arbitrary_env))


@PROPERTY
@given(key=st.text(alphabet="0123456789abcdef-", min_size=13, max_size=60))
def test_a_refused_api_key_is_never_echoed_in_full(key):
    try:
        uuid.UUID(key)
        return
    except ValueError:
        pass
    refused = Config.resolve(environ={}, api_key=key)
    assert refused.api_key is None and refused.api_key_error
    assert key.strip() not in refused.api_key_error
    config = Config.resolve(environ={"AGENTOPS_API_KEY": key}, fail_safe=True)
    assert config.api_key is None
    assert all(key.strip() not in error for error in config.errors.values())
    assert key.strip() not in (config.api_key_error or "")


@pytest.mark.parametrize("text, level", [("10", 10), (" 40 ", 40), ("warning", 30)])
def test_a_log_level_in_the_environment_may_be_a_number_as_in_code(text, level):
    assert Config.resolve(environ={"AGENTOPS_LOG_LEVEL": text}).log_level == level
    with pytest.raises(ConfigError, match="AGENTOPS_LOG_LEVEL"):
        Config.resolve(environ={"AGENTOPS_LOG_LEVEL": "1" * 5000})


BEYOND_USE = [
    ("max_wait_time", float("inf")), ("max_wait_time", 10**400), ("max_wait_time", 10**13),
    ("max_queue_size", 2**63), ("auth_timeout", 10**400), ("auth_timeout", 1e12),
    ("shutdown_timeout", 1e300), ("export_timeout", float("inf")),
    ("endpoint", "http://[::1:8080"), ("exporter_endpoint", "https://[bad/v1/traces"),
]


@pytest.mark.parametrize("name, value", BEYOND_USE)
def test_values_no_thread_or_platform_can_use_are_config_errors(name, value):
    with pytest.raises(ConfigError, match=name):
        Config.resolve(environ={}, **{name: value})
    config = Config.resolve(environ={}, fail_safe=True, **{name: value})
    assert config.sources[name] == "default" and config.errors


def test_a_url_with_an_unclosed_ipv6_bracket_in_the_environment_is_a_config_error():
    environ = {"AGENTOPS_API_ENDPOINT": "http://[::1:8080"}
    with pytest.raises(ConfigError, match="AGENTOPS_API_ENDPOINT"):
        Config.resolve(environ=environ)
    assert Config.resolve(environ={**environ, "AGENTOPS_FAIL_SAFE": "1"}).errors


# -- agentops.init -------------------------------------------------------------------

UNREACHABLE = f"http://127.0.0.1:{free_port()}"
NO_NETWORK_ENV = {"AGENTOPS_API_ENDPOINT": UNREACHABLE,
                  "AGENTOPS_EXPORTER_ENDPOINT": f"{UNREACHABLE}/v1/traces",
                  "AGENTOPS_APP_URL": f"{UNREACHABLE}/app"}

not_a_url = st.one_of(
    st.none(), st.integers(), st.floats(), st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.text(alphabet=string.ascii_letters + string.digits + "/._- ", max_size=20),
    st.sampled_from(["ftp://127.0.0.1", "http://", "http://127.0.0.1:99999",
                     "http://127.0.0.1:-1", "127.0.0.1:80", ""]),
)


@st.composite
def init_arguments(draw):
    """Arguments for init that never reach beyond 127.0.0.1: a usable API key only when the
    API endpoint is certainly loopback (under fail_safe a refused endpoint falls back to the
    public default, and the key would be sent there). (arguments, the names given an
    arbitrary value)."""
    args, arbitrary = draw(arguments(tuple(n for n in NAMES if n not in URL_SETTINGS + (
        "api_key", "auto_start_session"))))
    for name in URL_SETTINGS:
        refused = draw(st.integers(0, 3)) == 0
        if refused:
            arbitrary.add(name)
        choice = draw(not_a_url if refused else st.sampled_from(["unset", "loopback"]))
        if choice == "loopback":
            args[name] = UNREACHABLE + ("/v1/traces" if name == "exporter_endpoint" else "")
        elif choice != "unset":
            args[name] = choice
    endpoint_is_loopback = args.get("endpoint") is None or args["endpoint"] == UNREACHABLE
    exporter_is_loopback = args.get("exporter_endpoint") is None or str(
        args["exporter_endpoint"]).startswith(UNREACHABLE)
    if endpoint_is_loopback and exporter_is_loopback and draw(st.booleans()):
        args["api_key"] = draw(USABLE["api_key"])
    else:
        refused = draw(st.integers(0, 3)) == 0
        if refused:
            arbitrary.add("api_key")
        args["api_key"] = draw(any_value.filter(lambda value: not _usable_key(value))
                               if refused else st.sampled_from([None, "", "  "]))
    if draw(st.booleans()):
        usable = draw(st.booleans())
        args["export_timeout"] = draw(USABLE["export_timeout"] if usable else any_value)
        arbitrary.discard("export_timeout")
        if not usable:
            arbitrary.add("export_timeout")
    if draw(st.booleans()):
        args["not_a_setting"] = draw(any_value)
    return args, arbitrary


def _usable_key(value: object) -> bool:
    try:
        return isinstance(value, str) and bool(uuid.UUID(value.strip()))
    except ValueError:
        return False


@contextmanager
def sdk_sandbox():
    """Environment without the network; whatever init leaves behind is undone, and a
    thread of the SDK that died meanwhile fails the example."""
    crashed: list[str] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda hook: crashed.append(
        f"{hook.thread.name if hook.thread else '?'}: {hook.exc_value!r}")
    saved_env = {name: os.environ.get(name) for name in ENV_NAMES}
    agentops_logger = logging.getLogger("agentops")
    saved_level, saved_handlers = agentops_logger.level, list(agentops_logger.handlers)
    for name in ENV_NAMES:
        os.environ.pop(name, None)
    os.environ.update(NO_NETWORK_ENV)
    try:
        yield
    finally:
        client = agentops.client.replace_current(None)
        if client is not None:
            client.shutdown(timeout=0.2)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        agentops_logger.setLevel(saved_level)
        agentops_logger.handlers[:] = saved_handlers
        threading.excepthook = previous_hook
    if crashed:
        raise AssertionError(f"a thread died: {crashed}")


@SDK_THREADS_USE_RANDOM
@PROPERTY
@given(drawn=init_arguments())
def test_init_either_works_or_raises_config_error_naming_a_refused_setting(drawn):
    args, arbitrary = drawn
    args.pop("fail_safe", None)
    with sdk_sandbox():
        try:
            agentops.init(**args, auto_start_session=False)
            client = agentops.get_client()
        except ConfigError as error:
            event("ConfigError")
            assert any(names(str(error), name) for name in arbitrary), (str(error), arbitrary)
            return
        event(f"initialised, auth {client.tracker.state}")
        assert client is agentops.get_client() and client is not None
        assert_usable(client.config)
        assert_refusals_explained(client.config, arbitrary)
        json.dumps(agentops.diagnose_session())


@SDK_THREADS_USE_RANDOM
@PROPERTY
@given(drawn=init_arguments())
def test_init_with_fail_safe_never_raises(drawn):
    args, arbitrary = drawn
    args["fail_safe"] = True
    with sdk_sandbox():
        agentops.init(**args, auto_start_session=False)
        client = agentops.client.current()
        event("initialised" if client is not None else "init failed, logged")
        if client is not None:
            event(f"{len(client.config.errors)} settings refused")
            assert_usable(client.config)
            assert_refusals_explained(client.config, arbitrary)
        json.dumps(agentops.diagnose_session())


def test_a_queue_size_too_large_for_the_platform_is_a_config_error():
    with sdk_sandbox():
        with pytest.raises(ConfigError):
            agentops.init(auto_start_session=False, max_queue_size=2**63)


def test_a_batch_interval_beyond_what_threads_can_wait_is_refused_and_ignored_under_fail_safe():
    with sdk_sandbox():
        with pytest.raises(ConfigError, match="max_wait_time"):
            agentops.init(auto_start_session=False, max_wait_time=10**13)
        agentops.init(auto_start_session=False, max_wait_time=10**13, fail_safe=True)
        client = agentops.get_client()
        assert client.config.max_wait_time == DEFAULTS["max_wait_time"]
        assert "max_wait_time" in client.config.errors
        time.sleep(0.3)  # the export worker waits with the default; sdk_sandbox checks it lives


@pytest.mark.parametrize("setting", ["auth_timeout", "shutdown_timeout"])
def test_a_timeout_beyond_what_threads_can_wait_is_refused_and_ignored_under_fail_safe(
        local_backend, setting):
    local_backend.faults = Faults(auth_delay=0.3)
    settings = dict(api_key=local_backend.api_key, endpoint=local_backend.api_url,
                    exporter_endpoint=local_backend.otlp_url, app_url=local_backend.app_url,
                    wait_for_auth=True, **{setting: 1e12})
    with sdk_sandbox():
        with pytest.raises(ConfigError, match=setting):
            agentops.init(**settings)
        agentops.init(**settings, fail_safe=True)
        client = agentops.get_client()
        assert getattr(client.config, setting) == DEFAULTS[setting]
        assert client.tracker.state == v.AUTHENTICATED  # init waited, within the default
        started = time.monotonic()
        client.shutdown()
        # Within the default budget (2 s), plus the margin for a loaded machine.
        assert time.monotonic() - started <= DEFAULTS["shutdown_timeout"] + SLACK


# -- token endpoint answers ----------------------------------------------------------

BASE = "https://api.example.test"
TOKEN_URL = f"{BASE}/v3/auth/token"

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=12)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


real_jwts = st.builds(
    lambda claims, key: jwt.encode(claims, key, algorithm="HS256"),
    st.dictionaries(st.sampled_from(["exp", "project_id", "api_key", "iat", "sub"]),
                    json_values, max_size=4),
    st.binary(min_size=32, max_size=32))

fake_jwts = st.one_of(
    st.builds(lambda *parts: ".".join(parts),
              st.one_of(st.just("eyJhbGciOiJIUzI1NiJ9"), st.text(max_size=30)),
              st.one_of(st.binary(max_size=40).map(b64), json_values.map(
                  lambda value: b64(json.dumps(value).encode()))),
              st.binary(max_size=40).map(b64)),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.=", max_size=80),
)

token_field = st.one_of(real_jwts, fake_jwts, json_values)

token_bodies = st.builds(
    lambda token, extra: json.dumps({"token": token, **extra}).encode(),
    token_field,
    st.dictionaries(st.sampled_from(["project_id", "project_prem_status", "error"]),
                    json_values, max_size=3))

bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    json_values.map(lambda value: json.dumps(value).encode()),
    token_bodies,
    st.sampled_from([b"", b"<html><body>Sign in</body></html>", b"{broken", b"null",
                     b'{"error": "Invalid API key"}', b"\xff\xfe\x00"]),
)

content_types = st.one_of(
    st.sampled_from(["application/json", "application/json; charset=utf-8", "text/html",
                     "text/plain", "application/octet-stream", "application/x-protobuf", ""]),
    st.text(alphabet=string.ascii_letters + string.digits + "/;=-+. ", max_size=40),
)

statuses = st.one_of(st.just(200), st.sampled_from([400, 401, 403, 404, 302, 500, 503]),
                     st.integers(min_value=200, max_value=599))


def expected_reason(status: int) -> set[str | None]:
    if status == 200:
        return {None, v.BAD_RESPONSE}
    if status == 400:
        return {v.INVALID_KEY_FORMAT}
    if status in (401, 403):
        return {v.INVALID_KEY}
    if status == 408:
        return {v.TIMEOUT}
    if status == 429:
        return {v.RATE_LIMITED}
    if status >= 500:
        return {v.SERVER_ERROR}
    return {v.UNEXPECTED_STATUS}


def answer(status: int, body: bytes, content_type: str) -> TokenOutcome:
    if status in (204, 304):
        body = b""  # these never carry a body on the wire: http.client does not read one
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        headers = {"Location": TOKEN_URL} if 300 <= status < 400 else {}
        mock.post(TOKEN_URL, status=status, body=body, content_type=content_type or None,
                  headers=headers)
        return AgentOpsAPI(BASE).fetch_token(KEY, timeout=2)


@PROPERTY
@given(status=statuses, body=bodies, content_type=content_types)
@example(status=200, body=json.dumps({"token": jwt.encode({"exp": 1e300}, "k" * 32)}).encode(),
         content_type="application/json")
@example(status=200, body=b'{"token": "a.b.c"}', content_type="text/html")
@example(status=200, body=json.dumps({"token": jwt.encode({"exp": 10**400}, "k" * 32)}).encode(),
         content_type="application/json")
@example(status=200, body=b"[" * 20000, content_type="application/json")
@example(status=403, body=b"[" * 20000, content_type="application/json")
@example(status=204, body=b"\x00", content_type="application/json")
def test_any_token_endpoint_answer_maps_to_an_outcome_and_never_raises(status, body,
                                                                       content_type):
    outcome = answer(status, body, content_type)
    event(f"reason {outcome.reason}")
    assert isinstance(outcome, TokenOutcome)
    assert outcome.reason in expected_reason(status)
    assert outcome.http_status == status
    assert isinstance(outcome.detail, str) and len(outcome.detail) <= 300
    if outcome.reason is None:
        assert outcome.token is not None and isinstance(token_claims(outcome.token), dict)
        assert outcome.token not in repr(outcome)
    else:
        assert outcome.reason in v.AUTH_REASONS and outcome.token is None


@PROPERTY
@given(token=token_field, status=st.sampled_from([200, 200, 200, 201, 204]))
def test_a_token_is_accepted_only_when_it_decodes_as_a_jwt(token, status):
    body = json.dumps({"token": token}).encode()
    outcome = answer(status, body, "application/json")
    try:
        decodable = isinstance(token, str) and isinstance(token_claims(token), dict)
    except Exception:
        decodable = False
    event("decodable" if decodable else "not decodable")
    assert (outcome.reason is None) == (decodable and status == 200)


def test_a_token_with_an_absurd_exp_is_handled_without_raising():
    token = jwt.encode({"exp": 10**400}, "k" * 32, algorithm="HS256")
    outcome = answer(200, json.dumps({"token": token}).encode(), "application/json")
    assert outcome.reason in (None, v.BAD_RESPONSE)


@pytest.mark.parametrize("status", [200, 403, 500])
def test_a_deeply_nested_json_body_is_handled_without_raising(status):
    outcome = answer(status, b"[" * 20000, "application/json")
    assert outcome.reason in v.AUTH_REASONS
