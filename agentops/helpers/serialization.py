"""Turning arbitrary Python values into span attributes without ever raising.

Decorators record a function's arguments and return value; tags and metadata come from
user code. Any of them may be unserialisable (sockets, locks), self-referencing, huge, or
have a ``__repr__`` that raises. ``safe_serialize`` always returns a string of at most
``MAX_CONTENT_CHARS`` characters; ``attribute_value`` keeps values OpenTelemetry accepts
as they are and serialises the rest.
"""

from __future__ import annotations

import dataclasses
import json
import reprlib
import sys
from collections.abc import Mapping
from datetime import date, datetime, time
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

MAX_CONTENT_CHARS = 65_536
"""Longest serialised input or output kept on a span; longer text is cut and marked."""

MAX_DEPTH = 8
MAX_ITEMS = 256
"""Nesting levels and items per container walked; deeper or further content is elided."""

_PRIMITIVES = (str, bool, int, float)


def safe_serialize(value: Any, limit: int = MAX_CONTENT_CHARS) -> str:
    """A JSON text for ``value`` (a string stays as it is, as upstream records it), at most
    ``limit`` characters: objects become dicts (``model_dump``, dataclasses, ``to_json``,
    ``__dict__``) or their ``repr``; cycles, depth and size are bounded. Never raises."""
    try:
        text = value if isinstance(value, str) else json.dumps(
            _plain(value, MAX_DEPTH, set()), ensure_ascii=False, allow_nan=True)
    except Exception as error:  # a value that defeats every fallback still yields a text
        text = f"<unserialisable {type(value).__name__}: {type(error).__name__}>"
    return _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = f"...[truncated {len(text) - limit} chars]"
    return text[: max(0, limit - len(marker))] + marker


def _plain(value: Any, depth: int, seen: set[int]) -> Any:
    """A JSON-compatible copy of ``value``, bounded in depth and breadth."""
    if value is None or isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (UUID, PurePath)) or _is_decimal(value):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value, depth, seen)
    if isinstance(value, (bytes, bytearray)):
        return _safe_repr(bytes(value[:MAX_ITEMS]))
    if depth <= 0:
        return _safe_repr(value)
    if id(value) in seen:
        return f"<cycle {type(value).__name__}>"
    seen = seen | {id(value)}
    if isinstance(value, Mapping):
        items = []
        for index, (key, item) in enumerate(_items(value)):
            if index >= MAX_ITEMS:
                items.append(("...", f"{len(value) - MAX_ITEMS} more"))
                break
            items.append((key if isinstance(key, str) else _safe_repr(key),
                          _plain(item, depth - 1, seen)))
        return dict(items)
    if isinstance(value, (list, tuple, set, frozenset)):
        out = [_plain(item, depth - 1, seen) for _, item in zip(range(MAX_ITEMS), value, strict=False)]
        if len(value) > MAX_ITEMS:
            out.append(f"... {len(value) - MAX_ITEMS} more")
        return out
    as_dict = _as_dict(value)
    if as_dict is not None:
        return _plain(as_dict, depth, seen)
    return _safe_repr(value)


def _is_decimal(value: Any) -> bool:
    # decimal costs milliseconds to import; no Decimal exists unless the program imported it
    decimal = sys.modules.get("decimal")
    return decimal is not None and isinstance(value, decimal.Decimal)


def _items(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    try:
        return list(mapping.items())[: MAX_ITEMS + 1]
    except Exception:
        return []


def _as_dict(value: Any) -> Any:
    """The data a model object holds, by the conventions of common libraries."""
    try:
        if hasattr(value, "model_dump") and callable(value.model_dump):  # pydantic 2
            return value.model_dump()
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if hasattr(value, "to_json") and callable(value.to_json):
            return value.to_json()
        if hasattr(value, "dict") and callable(value.dict) and not isinstance(value, type):  # pydantic 1
            return value.dict()
    except Exception:
        return None
    return None


_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = _repr.maxother = 1024
"""Bounded reprs: a large container at the depth limit costs what its first items cost."""


def _safe_repr(value: Any) -> str:
    try:
        text = _repr.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
    return _cut(text, 1024)


def attribute_value(value: Any) -> Any:
    """``value`` when OpenTelemetry accepts it as an attribute (a str, bool, int or float,
    or a list of one of those), else its ``safe_serialize`` text."""
    if isinstance(value, str):
        return _cut(value, MAX_CONTENT_CHARS)
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (list, tuple)) and value:
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and kinds.pop() in _PRIMITIVES:
            return list(value)
    try:
        plain = _plain(value, MAX_DEPTH, set())
    except Exception:
        plain = None
    # An object shown by its repr is kept as that text rather than as a quoted JSON string.
    return _cut(plain, MAX_CONTENT_CHARS) if isinstance(plain, str) else safe_serialize(value)
