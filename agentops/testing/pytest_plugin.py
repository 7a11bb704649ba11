"""Pytest fixtures backed by LocalBackend, registered through the ``pytest11`` entry point."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from agentops.testing.backend import LocalBackend


@pytest.fixture
def local_backend() -> Iterator[LocalBackend]:
    """A fresh, started LocalBackend for one test, stopped afterwards."""
    # Imported lazily: the plugin loads in every pytest run of an environment
    # that has agentops installed, and most of those never use the backend.
    from agentops.testing.backend import LocalBackend

    backend = LocalBackend()
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()
