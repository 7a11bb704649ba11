"""The one way the diagnosis, doctor and the connectivity test write a moment, and read
one back."""

from __future__ import annotations

import pytest

from agentops.timestamps import iso, seconds_since


def test_a_moment_is_written_in_utc_with_milliseconds_and_read_back():
    assert iso(0) == "1970-01-01T00:00:00.000+00:00"
    assert iso(1_800_000_000.1234) == "2027-01-15T08:00:00.123+00:00"
    assert iso(None) is None
    assert seconds_since(iso(1000.25), now=1010.5) == pytest.approx(10.25)


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-13-01T00:00:00"])
def test_no_moment_or_an_unreadable_one_is_no_duration(text):
    assert seconds_since(text, now=5.0) is None
