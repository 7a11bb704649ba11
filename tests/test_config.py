"""Settings: arguments win over env vars, env vars over defaults; bad values are named."""

from __future__ import annotations

import inspect
import json
import logging
import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

import agentops
from agentops.config import SETTINGS, Config, ConfigError, mask_secret

KEY = "6f4e1c2a-9b1d-4c3e-8f00-123456787f79"


def test_arguments_win_over_env_vars_which_win_over_defaults():
    env = {"AGENTOPS_API_ENDPOINT": "http://127.0.0.1:9/env", "AGENTOPS_AUTH_TIMEOUT": "7"}
    config = Config.resolve(environ=env, endpoint="http://127.0.0.1:8/arg")
    assert config.endpoint == "http://127.0.0.1:8/arg"
    assert config.sources["endpoint"] == "argument"
    assert config.auth_timeout == 7.0
    assert config.sources["auth_timeout"] == "env:AGENTOPS_AUTH_TIMEOUT"
    assert config.shutdown_timeout == 2.0 and config.sources["shutdown_timeout"] == "default"


def test_every_setting_has_an_env_var_and_a_default_in_config():
    names = {s.name for s in SETTINGS}
    assert names == {f for f in Config.__dataclass_fields__} - {"sources", "errors",
                                                                 "error_sources"}
    assert all(s.env.startswith("AGENTOPS_") for s in SETTINGS)


@pytest.mark.parametrize("name, value, expected", [
    ("endpoint", "ftp://example.com", "endpoint must be an http(s) URL"),
    ("exporter_endpoint", "localhost:4318", "exporter_endpoint must be an http(s) URL"),
    ("auth_timeout", -1, "auth_timeout must be a number of seconds from 0 to 3600"),
    ("shutdown_timeout", "soon", "shutdown_timeout must be a number of seconds"),
    ("default_tags", "a,b", "default_tags must be a list of strings"),
    ("default_tags", [1, 2], "default_tags must be a list of strings"),
    ("max_queue_size", 0, "max_queue_size must be a whole number from 1 to 10000000"),
    ("log_level", "LOUD", "log_level must be a logging level"),
])
def test_bad_values_raise_an_error_naming_the_setting(name, value, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        Config.resolve(environ={}, **{name: value})


def test_bad_env_var_names_the_variable():
    with pytest.raises(ConfigError, match=r"auth_timeout \(AGENTOPS_AUTH_TIMEOUT\)"):
        Config.resolve(environ={"AGENTOPS_AUTH_TIMEOUT": "abc"})


def test_a_key_that_is_not_a_uuid_is_refused_without_raising_and_never_shown_whole():
    bad = "sk-this-is-a-long-secret-value-1234"
    config = Config.resolve(environ={}, api_key=bad)
    assert config.api_key is None
    assert "api_key is not a valid AgentOps API key: expected a UUID" in config.api_key_error
    assert bad not in config.api_key_error and "sk-t...1234" in config.api_key_error
    assert config.error_sources == {"api_key": "argument"}


def test_a_refused_setting_raises_naming_the_setting_and_where_its_value_came_from():
    with pytest.raises(ConfigError) as info:
        Config.resolve(environ={"AGENTOPS_API_ENDPOINT": "ftp://x"})
    assert (info.value.setting, info.value.source) == ("endpoint", "env:AGENTOPS_API_ENDPOINT")


def test_fail_safe_logs_bad_values_and_keeps_the_defaults():
    config = Config.resolve(environ={}, fail_safe=True, api_key="nope", auth_timeout="x")
    assert config.api_key is None and config.auth_timeout == 5.0
    assert len(config.errors) == 2 and config.api_key_error


def test_init_raises_for_a_bad_endpoint_but_a_malformed_key_only_fails_authentication(caplog):
    with pytest.raises(ConfigError, match="endpoint"):
        agentops.init(api_key=KEY, endpoint="not a url")
    with caplog.at_level(logging.WARNING, logger="agentops"):
        agentops.init(api_key="bad-key", auto_start_session=False)
    assert isinstance(agentops.get_client(), agentops.Client)
    diagnosis = agentops.diagnose_session()
    assert diagnosis["auth"]["state"] == "failed"
    assert diagnosis["auth"]["reason"] == "invalid_key_format"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "Authentication failed - invalid API key or network issue" in warnings[0]
    assert "invalid_key_format" in warnings[0] and "api_key" in warnings[0]


def test_unknown_keyword_is_a_warning_that_names_it(caplog):
    with caplog.at_level(logging.WARNING, logger="agentops"):
        agentops.init(auto_start_session=False, instrument_llm_calls=True, skip_auto_end=True)
    assert any("'skip_auto_end'" in r.getMessage() for r in caplog.records)


def test_plain_http_to_a_remote_host_warns_that_the_key_travels_unencrypted(caplog):
    with caplog.at_level(logging.WARNING, logger="agentops"):
        Config.resolve(environ={}, api_key=KEY, endpoint="http://api.example.com")
        Config.resolve(environ={}, api_key=KEY, endpoint="http://127.0.0.1:8000")
    warnings = [r.getMessage() for r in caplog.records if "unencrypted" in r.getMessage()]
    assert len(warnings) == 1 and "api.example.com" in warnings[0]


def test_masked_key_shows_at_most_four_characters_at_each_end():
    assert mask_secret(KEY) == "6f4e...7f79"
    assert mask_secret("short") == "*****"
    assert mask_secret(None) is None


def test_env_tags_are_comma_separated():
    assert Config.resolve(environ={"AGENTOPS_DEFAULT_TAGS": "a, b,,c"}).default_tags == ["a", "b", "c"]


UPSTREAM_INIT_ARGUMENTS = (
    "api_key", "endpoint", "app_url", "max_wait_time", "max_queue_size", "tags",
    "default_tags", "trace_name", "instrument_llm_calls", "auto_start_session", "auto_init",
    "skip_auto_end_session", "env_data_opt_out", "log_level", "fail_safe",
    "log_session_replay_url", "exporter_endpoint")
"""Upstream agentops 0.4's ``init`` parameters, in order (agentops/__init__.py upstream)."""


def _members(annotation: Any) -> set[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return set(get_args(annotation))
    return {annotation}


def test_init_takes_every_declared_setting_as_a_keyword_that_defaults_to_not_given():
    parameters = inspect.signature(agentops.init).parameters
    hints = get_type_hints(agentops.init, localns={"Session": object})
    declared = get_type_hints(Config)
    extras = {"tags", *agentops.UPSTREAM_NO_OP_ARGUMENTS}
    named = [name for name, p in parameters.items() if p.kind is not p.VAR_KEYWORD]
    assert set(named) == {s.name for s in SETTINGS} | extras
    assert parameters["kwargs"].kind is inspect.Parameter.VAR_KEYWORD
    for setting in SETTINGS:
        assert parameters[setting.name].default is None, setting.name
        # init may take more forms than Config keeps (log_level: a name or a number).
        accepted = _members(hints[setting.name])
        assert _members(declared[setting.name]) | {type(None)} <= accepted, setting.name


def test_upstream_init_arguments_keep_their_names_and_positions():
    parameters = list(inspect.signature(agentops.init).parameters)
    assert parameters[:len(UPSTREAM_INIT_ARGUMENTS)] == list(UPSTREAM_INIT_ARGUMENTS)


def _readme_settings_rows() -> list[list[str]]:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines[0] == "| argument | environment variable | default | meaning |"
    return [line.strip("|").strip().split(" | ") for line in lines[2:]]


def _as_the_readme_shows(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, list):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def test_readme_table_lists_every_setting_with_its_env_var_default_and_meaning_as_declared():
    rows = _readme_settings_rows()
    assert [row[0] for row in rows] == [f"`{s.name}`" for s in SETTINGS]
    for (_name, env, default, meaning), setting in zip(rows, SETTINGS, strict=True):
        assert env == f"`{setting.env}`", setting.name
        assert default == _as_the_readme_shows(setting.show(setting.default)), setting.name
        # The README may add a link to the section that says more.
        assert re.fullmatch(re.escape(setting.help) + r"( See \[[^\]]+\]\(#[a-z-]+\)\.)?",
                            meaning), (setting.name, meaning)


def test_key_is_kept_in_the_canonical_uuid_form_the_api_expects():
    braced = "{6F4E1C2A-9B1D-4C3E-8F00-123456787F79}"
    assert Config.resolve(environ={}, api_key=braced).api_key == KEY


@pytest.mark.parametrize("name, value", [
    ("storage_max_mb", 0), ("storage_max_mb", 1.5), ("storage_max_mb", "lots"),
    ("storage_max_age_hours", 0), ("storage_max_age_hours", -1),
    ("storage_max_age_hours", 721), ("storage_max_age_hours", float("nan")),
])
def test_storage_bounds_out_of_range_are_refused_saying_what_is_accepted(name, value):
    with pytest.raises(ConfigError, match=f"{name} must be a (whole )?number"):
        Config.resolve(**{name: value})


@pytest.mark.parametrize("function", [agentops.flush, agentops.shutdown])
@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 1e10, -1, "soon", True])
def test_flush_and_shutdown_refuse_a_timeout_that_is_not_seconds_saying_what_is_accepted(
        function, timeout):
    with pytest.raises(ConfigError, match="timeout must be a number of seconds from 0 to 3600"):
        function(timeout=timeout)


def test_agentops_flush_refuses_a_timeout_beyond_an_hour_with_its_usage():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "agentops", "flush", "--timeout", "1e10"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "must be a number of seconds above 0 and at most 3600, got '1e10'" in run.stderr
    assert "Traceback" not in run.stderr
