"""OTLP/HTTP trace requests decoded into plain span records.

``decode_traces_request`` takes an export request's body and headers as received and
returns one ``SpanRecord`` per span, or raises ``PayloadError`` with the HTTP status a
collector answers for a body it cannot read.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any, TypedDict

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = [
    "MAX_DECOMPRESSED_BYTES",
    "PROTOBUF_CONTENT_TYPES",
    "PayloadError",
    "SpanEventRecord",
    "SpanRecord",
    "decode_traces_request",
]

# Compressed bodies are capped apart from the raw-size limit: a small gzip bomb must not
# get past it and balloon in memory.
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
PROTOBUF_CONTENT_TYPES = ("application/x-protobuf", "application/protobuf")


class SpanEventRecord(TypedDict):
    name: str
    attributes: dict[str, Any]


class SpanRecord(TypedDict):
    """One received span. Ids are lowercase hex (trace 32 characters, span 16); times are
    nanoseconds since the Unix epoch; ``status_code`` and ``kind`` are the OTLP enum
    values (status 0 unset, 1 ok, 2 error; kind 1 internal ... 5 consumer). Attribute
    values are Python values: str, int, float, bool, lists and dicts of them."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    events: list[SpanEventRecord]
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    scope: str | None
    resource: dict[str, Any]


class PayloadError(Exception):
    """A body the receiver cannot read: ``status`` is the HTTP status to answer with
    (400 malformed, 413 too large once decompressed, 415 unsupported type or encoding)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_traces_request(
    body: bytes, content_type: str | None, content_encoding: str | None
) -> list[SpanRecord]:
    """The spans of an ``ExportTraceServiceRequest`` body as sent over HTTP.

    ``content_type`` and ``content_encoding`` are the request's header values (None when
    absent); gzip, deflate (zlib-wrapped or raw) and identity are understood. An empty
    body is a valid request with no spans.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type and media_type not in PROTOBUF_CONTENT_TYPES:
        raise PayloadError(415, f"Unsupported content type {media_type!r}")
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(decompress(body, content_encoding))
    except (DecodeError, ValueError, RuntimeError) as err:
        raise PayloadError(400, f"Malformed OTLP protobuf: {err}") from None
    return spans_from_request(message)


def decompress(body: bytes, encoding: str | None) -> bytes:
    """``body`` decoded from its ``Content-Encoding``; raises PayloadError."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name in ("gzip", "x-gzip"):
        candidates = [16 + zlib.MAX_WBITS]
    elif name == "deflate":
        # "deflate" is zlib-wrapped by the standard, but raw streams are common.
        candidates = [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    else:
        raise PayloadError(415, f"Unsupported content encoding {name!r}")
    last_error: zlib.error | None = None
    for wbits in candidates:
        try:
            return _inflate(body, wbits)
        except zlib.error as err:
            last_error = err
    raise PayloadError(400, f"Body does not decompress as {name}: {last_error}")


def _inflate(body: bytes, wbits: int) -> bytes:
    out: list[bytes] = []
    size = 0
    data = body
    while True:
        decompressor = zlib.decompressobj(wbits)
        chunk = decompressor.decompress(data, MAX_DECOMPRESSED_BYTES - size + 1)
        size += len(chunk)
        if size > MAX_DECOMPRESSED_BYTES or decompressor.unconsumed_tail:
            raise PayloadError(413, "Decompressed body too large")
        out.append(chunk)
        if not decompressor.eof:
            raise zlib.error("truncated stream")
        data = decompressor.unused_data
        # gzip allows several concatenated members; other formats end here.
        if not data or wbits != 16 + zlib.MAX_WBITS:
            break
    return b"".join(out)


def spans_from_request(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    """One record per span of a decoded request, each with its own copy of the resource."""
    spans: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name or None
            for span in scope_spans.spans:
                spans.append(
                    {
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "attributes": _attributes(span.attributes),
                        "status_code": int(span.status.code),
                        "status_message": span.status.message,
                        "events": [{"name": event.name,
                                    "attributes": _attributes(event.attributes)}
                                   for event in span.events],
                        "kind": int(span.kind),
                        "start_time_unix_nano": int(span.start_time_unix_nano),
                        "end_time_unix_nano": int(span.end_time_unix_nano),
                        "scope": scope,
                        "resource": dict(resource),
                    }
                )
    return spans


def _attributes(key_values: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in key_values}


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)
