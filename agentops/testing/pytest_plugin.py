"""Pytest fixtures backed by LocalBackend. Opt-in: a test suite enables them with

    pytest_plugins = ["agentops.testing.pytest_plugin"]     # in its top-level conftest.py

or ``pytest -p agentops.testing.pytest_plugin``. No ``pytest11`` entry point registers
this module, so installing the SDK adds nothing to other programs' pytest runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from agentops.testing.backend import LocalBackend


@pytest.fixture
def local_backend() -> Iterator[LocalBackend]:
    """A fresh, started LocalBackend for one test, stopped afterwards."""
    # Imported lazily: a suite that enables the plugin pays for the backend's imports
    # only in the tests that use it.
    from agentops.testing.backend import LocalBackend

    backend = LocalBackend()
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()
