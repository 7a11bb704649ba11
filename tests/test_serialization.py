"""Decorator inputs/outputs and tag values become attributes without ever raising, bounded
in size; end states of three types resolve to one text and one status."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import datetime, timezone

import pytest
from opentelemetry.trace import StatusCode

import agentops
from agentops.helpers.serialization import MAX_CONTENT_CHARS, attribute_value, safe_serialize
from agentops.tracing import resolve_end_state


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no")


class RaisingEverything:
    def __getattr__(self, name: str):
        raise RuntimeError(f"no {name}")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model:
    def model_dump(self) -> dict:
        return {"field": 1}


def test_strings_stay_as_they_are_and_values_become_json():
    assert safe_serialize("plain text") == "plain text"
    assert safe_serialize({"a": [1, 2.5, None, True]}) == '{"a": [1, 2.5, null, true]}'
    assert safe_serialize(Point(1, 2)) == '{"x": 1, "y": 2}'
    assert safe_serialize(Model()) == '{"field": 1}'
    stamp = datetime(2026, 1, 2, tzinfo=timezone.utc)
    key = uuid.UUID(int=1)
    assert safe_serialize([stamp, key, {1, 2} - {2}]) == \
        f'["2026-01-02T00:00:00+00:00", "{key}", [1]]'


@pytest.mark.parametrize("value", [RaisingRepr(), RaisingEverything(), threading.Lock(),
                                   object(), b"\x00\xff", float("nan")],
                         ids=["raising-repr", "raising-everything", "lock", "object", "bytes",
                              "nan"])
def test_unserialisable_values_never_raise(value):
    text = safe_serialize({"args": (value,), "kwargs": {"v": value}})
    assert isinstance(text, str) and text


def test_cycles_depth_breadth_and_length_are_bounded():
    looped: list = []
    looped.append(looped)
    assert safe_serialize(looped) == '["<cycle list>"]'
    deep: list = []
    for _ in range(100):
        deep = [deep]
    assert len(safe_serialize(deep)) < 100
    wide = safe_serialize(list(range(10_000)))
    assert wide.endswith('"... 9744 more"]')
    huge = safe_serialize("x" * (MAX_CONTENT_CHARS * 3))
    assert len(huge) == MAX_CONTENT_CHARS
    assert huge.endswith(f"...[truncated {MAX_CONTENT_CHARS * 2} chars]")


def test_attribute_values_keep_what_opentelemetry_accepts():
    assert attribute_value(3) == 3 and attribute_value("s") == "s" and attribute_value(True)
    assert attribute_value(["a", "b"]) == ["a", "b"]
    assert attribute_value([1, "mixed"]) == '[1, "mixed"]'
    assert attribute_value({"k": 1}) == '{"k": 1}'
    assert attribute_value(RaisingRepr()).startswith("<RaisingRepr instance at 0x")


@pytest.mark.parametrize("end_state, text, code", [
    ("Success", "Success", StatusCode.OK),
    ("Fail", "Fail", StatusCode.ERROR),
    ("Indeterminate", "Indeterminate", StatusCode.UNSET),
    (None, "Success", StatusCode.OK),
    (StatusCode.OK, "Success", StatusCode.OK),
    (StatusCode.ERROR, "Error", StatusCode.ERROR),
    (StatusCode.UNSET, "Indeterminate", StatusCode.UNSET),
    (agentops.TraceState.SUCCESS, "Success", StatusCode.OK),
    (agentops.ERROR, "Error", StatusCode.ERROR),
    (agentops.UNSET, "Indeterminate", StatusCode.UNSET),
])
def test_end_states_of_every_accepted_type(end_state, text, code):
    assert resolve_end_state(end_state) == (text, code)


@pytest.mark.parametrize("end_state", [42, 1.0, ["Success"], object()])
def test_other_end_state_types_are_refused_with_what_to_pass(end_state):
    with pytest.raises(TypeError, match="end_state must be a string"):
        resolve_end_state(end_state)


def test_decorator_tags_of_another_type_are_refused_where_the_decorator_is_written():
    with pytest.raises(TypeError, match=r"@tool\(tags=...\) takes a list of strings or a dict"):
        agentops.tool(tags="one-tag")
    agentops.tool(tags=("a", "b"))  # any sequence of strings is fine
