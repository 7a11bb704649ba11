"""The SDK's pytest plugin is opt-in: installing agentops adds nothing to other programs'
pytest runs, and a suite that asks for it (``-p`` or ``pytest_plugins``) gets the
``local_backend`` fixture."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PLUGIN

USES_THE_FIXTURE = """
import sys

import requests


def test_the_plugin_is_loaded_only_when_asked():
    assert ("{plugin}" in sys.modules) is {expected}


def test_local_backend_issues_a_token(local_backend):
    answer = requests.post(local_backend.api_url + "/v3/auth/token",
                           json={{"api_key": local_backend.api_key}}, timeout=10)
    assert answer.status_code == 200 and answer.json()["token"]
"""


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a fresh interpreter on a suite of its own, as another program's suite runs."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PYTEST_", "AGENTOPS_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", "--rootdir", str(directory), *args,
                           str(directory)],
                          cwd=directory, capture_output=True, text=True, timeout=120, env=env)


def write_suite(directory: Path, *, expected: bool, conftest: str | None = None) -> None:
    (directory / "test_suite.py").write_text(
        textwrap.dedent(USES_THE_FIXTURE.format(plugin=PLUGIN, expected=expected)))
    if conftest is not None:
        (directory / "conftest.py").write_text(conftest)


def test_installing_the_sdk_registers_no_pytest11_entry_point():
    groups = {entry.group for entry in importlib.metadata.distribution("agentops").entry_points}
    assert "pytest11" not in groups, "reinstall with pip install -e . if this was installed " \
                                     "before the plugin became opt-in"


def test_a_suite_that_does_not_opt_in_never_loads_the_plugin(tmp_path):
    write_suite(tmp_path, expected=False)
    run = run_pytest(tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed, 1 error" in run.stdout
    assert "fixture 'local_backend' not found" in run.stdout


@pytest.mark.parametrize("how", ["-p", "pytest_plugins"])
def test_a_suite_that_opts_in_gets_a_running_local_backend(tmp_path, how):
    if how == "-p":
        write_suite(tmp_path, expected=True)
        run = run_pytest(tmp_path, "-p", PLUGIN)
    else:
        write_suite(tmp_path, expected=True, conftest=f"pytest_plugins = [{PLUGIN!r}]\n")
        run = run_pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
