"""Shared test helpers: run a program using the SDK in a fresh interpreter, where exit
behaviour and process-wide state (the global tracer provider, atexit) are real."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass

import pytest

import agentops.client

PLUGIN = "agentops.testing.pytest_plugin"


def _plugin_registered_by_an_older_install() -> bool:
    """An environment installed from a version that still declared a pytest11 entry point
    loads the plugin already, and naming it again is a pytest error; reinstalling
    (pip install -e .) clears it, and test_pytest_plugin.py fails until then."""
    return any(entry.value == PLUGIN
               for entry in importlib.metadata.entry_points(group="pytest11"))


# The local_backend fixture: the SDK's pytest plugin is opt-in, as for any user's suite.
pytest_plugins = [] if _plugin_registered_by_an_older_install() else [PLUGIN]

SLACK = 1.0
"""Seconds a bounded operation may overrun its documented budget on a loaded 2-core machine
(scheduling, a drip interval, interpreter teardown): every timing assert is a budget plus
this margin, never a bare number."""
STARTUP = 5.0
"""Seconds a fresh interpreter may take to start and import the SDK on that machine, for
asserts on a whole subprocess's run time."""

SDK_ENV_PREFIXES = ("AGENTOPS_", "OTEL_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                    "http_proxy", "https_proxy", "no_proxy", "NO_COLOR")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    ended_at: float
    """``time.time()`` once the process had ended."""

    def exit_seconds(self) -> float:
        """Seconds from the program's ``END <time.time()>`` line to the end of its process:
        how long its exit took."""
        for line in self.stdout.splitlines():
            if line.startswith("END "):
                return self.ended_at - float(line.split()[1])
        raise AssertionError(f"no END line in stdout:\n{self.stdout}\nstderr:\n{self.stderr}")

    def last_json(self) -> dict:
        """The last stdout line that is a JSON object (programs print their diagnosis so)."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        raise AssertionError(f"no JSON line in stdout:\n{self.stdout}\nstderr:\n{self.stderr}")


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on (connections to it are refused): bound once to
    learn a free number, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STORAGE_OFF = {"AGENTOPS_OFFLINE_STORAGE": "false"}
"""Tests run with offline storage off unless they turn it on: most describe what becomes of
spans the receiver did not take (their loss causes), which storage would keep instead.
tests/test_offline_storage_e2e.py runs the SDK with storage on, its default."""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without SDK settings, offline storage off (``STORAGE_OFF``) and its
    directory fresh, so that no test replays what another stored."""
    env = {k: val for k, val in os.environ.items() if not k.startswith(SDK_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(STORAGE_OFF)
    env["AGENTOPS_STORAGE_DIRECTORY"] = tempfile.mkdtemp(prefix="agentops-test-store-")
    env.update(extra)
    return env


def run_python(code: str, *, timeout: float = 60, env: dict[str, str] | None = None,
               args: list[str] | None = None, python_args: list[str] | None = None) -> Run:
    """Run ``code`` (dedented) with this interpreter; environment cleared of SDK settings."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, *(python_args or []), "-c", textwrap.dedent(code),
                           *(args or [])],
                          capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else clean_env())
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started,
               time.time())


@pytest.fixture(autouse=True)
def _offline_storage_in_a_test_directory(tmp_path_factory, monkeypatch):
    """In-process tests never read or fill the user's own offline storage, and run with it
    off unless they turn it on (see ``STORAGE_OFF``)."""
    monkeypatch.setenv("AGENTOPS_STORAGE_DIRECTORY",
                       str(tmp_path_factory.mktemp("agentops-store")))
    for name, value in STORAGE_OFF.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def _no_client_leaks_between_tests():
    """In-process tests must not leave a running client for the next test."""
    yield
    client = agentops.client.replace_current(None)
    if client is not None:
        client.shutdown(timeout=0.5)


class Program:
    """A program started in the background, which prints READY when it is where the test
    wants to act on it."""

    def __init__(self, code: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)

    def wait_for(self, marker: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(marker):
                return line
        self.proc.kill()
        raise AssertionError(f"{marker} never printed: {self.proc.stderr.read()}")

    def signal_and_wait(self, signum: int, timeout: float = 30) -> tuple[float, str, str]:
        sent = time.monotonic()
        self.proc.send_signal(signum)
        out, err = self.proc.communicate(timeout=timeout)
        return time.monotonic() - sent, out, err
