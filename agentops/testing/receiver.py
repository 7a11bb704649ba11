"""The backend's OTLP/HTTP trace receiver, ``POST /v1/traces``.

It answers as the hosted OpenTelemetry Collector with its JWT auth extension does: 200
with an ``ExportTraceServiceResponse`` for a request carrying a valid token, 401 for a
missing, forged or expired one, 400/413/415 for a body it cannot read. A status forced
by the faults is answered before the token is checked.
"""

from __future__ import annotations

import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from agentops.testing.faults import ActiveFaults, Faults
from agentops.testing.otlp import PayloadError, SpanRecord, decode_traces_request
from agentops.testing.records import Journal, OtlpRequestRecord
from agentops.testing.server import Handler, RequestError, status_phrase
from agentops.testing.tokens import TokenSigner

__all__ = ["TraceReceiver"]

_PROTOBUF = "application/x-protobuf"


class TraceReceiver:
    """Receives export requests; an empty one (a client's receiver check) is recorded
    apart and never uses a queued status."""

    def __init__(self, signer: TokenSigner, faults: ActiveFaults, journal: Journal) -> None:
        self._signer = signer
        self._faults = faults
        self._journal = journal

    def receive(self, handler: Handler) -> None:
        token = handler.bearer_token()
        record: OtlpRequestRecord = {
            "status": 0,
            "authorized": False,
            "token": token,
            "span_count": 0,
            "bytes": 0,
            "header_names": sorted({name.lower() for name in handler.headers.keys()}),
            "time": time.monotonic(),
        }
        try:
            raw = handler.read_body()
        except RequestError as err:
            record["status"] = err.status
            self._journal.add_otlp(record, check=False)
            handler.send_request_error(err)
            return
        check = not raw
        record["bytes"] = len(raw)
        refusal = self._signer.refusal(token, self._faults.current.token_leeway)
        record["authorized"] = refusal is None

        # Decoded before any fault applies, so even refused requests say what they
        # carried, which is what retry tests compare.
        spans: list[SpanRecord] = []
        problem: PayloadError | None = None
        try:
            spans = decode_traces_request(raw, handler.headers.get("Content-Type"),
                                          handler.headers.get("Content-Encoding"))
            record["span_count"] = len(spans)
        except PayloadError as err:
            problem = err

        faults = self._faults.current
        if self._faults.stall(faults, "otlp_hang", faults.otlp_delay,
                              lambda: self._journal.add_otlp(record, check=check)):
            handler.close_connection = True
            return

        faults, forced = self._faults.take_status("otlp_statuses", "otlp_status",
                                                  use_queue=not check)
        if forced is None and faults.otlp_max_bytes is not None and (
                len(raw) > faults.otlp_max_bytes):
            forced = 413
        if forced is not None and forced != 200:
            self._answer_forced(handler, record, forced, faults, check=check)
        elif refusal is not None:
            self._answer_error(handler, record, 401, refusal, check=check)
        elif problem is not None:
            self._answer_error(handler, record, problem.status, problem.message, check=check)
        else:
            self._accept(handler, record, spans, faults, check=check)

    def _answer_error(self, handler: Handler, record: OtlpRequestRecord, status: int,
                      message: str, *, check: bool) -> None:
        record["status"] = status
        self._journal.add_otlp(record, check=check)
        handler.send_json(status, {"error": message})

    def _answer_forced(self, handler: Handler, record: OtlpRequestRecord, status: int,
                       faults: Faults, *, check: bool) -> None:
        record["status"] = status
        self._journal.add_otlp(record, check=check)
        headers: dict[str, str] = {}
        if status == 429 and faults.otlp_retry_after is not None:
            headers["Retry-After"] = f"{faults.otlp_retry_after:g}"
        if 300 <= status < 400 and faults.otlp_location is not None:
            headers["Location"] = faults.otlp_location
        if status >= 400:
            handler.send_json(status, {"error": status_phrase(status)}, headers)
        else:
            handler.send_bytes(status, b"", _PROTOBUF, headers)

    def _accept(self, handler: Handler, record: OtlpRequestRecord, spans: list[SpanRecord],
                faults: Faults, *, check: bool) -> None:
        answer = ExportTraceServiceResponse()
        accepted = spans
        if faults.otlp_partial_success is not None and spans:
            rejected, message = faults.otlp_partial_success
            answer.partial_success.rejected_spans = min(rejected, len(spans))
            answer.partial_success.error_message = message
            accepted = spans[answer.partial_success.rejected_spans:]
        record["status"] = 200
        self._journal.add_otlp(record, check=check, spans=accepted)
        if faults.otlp_drip > 0:
            answer.partial_success.error_message = "." * 200  # a body worth dripping
            handler.send_dripped(200, answer.SerializeToString(), _PROTOBUF,
                                 faults.otlp_drip, self._faults.stopping)
            return
        handler.send_bytes(200, answer.SerializeToString(), _PROTOBUF)
