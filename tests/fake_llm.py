"""A local stand-in for the OpenAI and Anthropic HTTP APIs (127.0.0.1, standard library
only), answering the two calls the tests make with fixed token usage, as JSON or as a
server-sent event stream.

    with FakeLLMServer() as server:
        client = openai.OpenAI(api_key=..., base_url=server.openai_url)

It records each request's path, headers and JSON body, so a test can check what the
client sent (e.g. that the API key left in a header and nowhere else).

Run it standalone (``python tests/fake_llm.py``) to point a program at it by hand.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_MODEL = "gpt-4o-mini"
OPENAI_RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
OPENAI_USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}

ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"
ANTHROPIC_USAGE = {"input_tokens": 13, "output_tokens": 5}

REPLY = "Hello from the fake model."
MAX_BODY = 1 << 20


class FakeLLMServer:
    """Answers ``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_url(self) -> str:
        return self.base_url

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, MAX_BODY))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        fake: FakeLLMServer = self.server.fake  # type: ignore[attr-defined]
        fake.record({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        if self.path.rstrip("/").endswith("/chat/completions"):
            self._openai(body)
        elif self.path.rstrip("/").endswith("/messages"):
            self._anthropic(body)
        else:
            self._json(404, {"error": {"message": f"unknown path {self.path}"}})

    # -- OpenAI ----------------------------------------------------------------------

    def _openai(self, body: dict[str, Any]) -> None:
        created = int(time.time())
        base = {"id": "chatcmpl-fake1", "created": created, "model": OPENAI_RESPONSE_MODEL,
                "system_fingerprint": "fp_fake"}
        if not body.get("stream"):
            self._json(200, {**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": REPLY},
                 "finish_reason": "stop", "logprobs": None}], "usage": OPENAI_USAGE})
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]}]
        for word in REPLY.split(" "):
            events.append({**chunk, "choices": [{"index": 0, "delta": {"content": word + " "},
                                                 "finish_reason": None}]})
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "choices": [], "usage": OPENAI_USAGE})
        self._sse([(None, event) for event in events] + [(None, "[DONE]")])

    # -- Anthropic -------------------------------------------------------------------

    def _anthropic(self, body: dict[str, Any]) -> None:
        message = {"id": "msg_fake1", "type": "message", "role": "assistant",
                   "model": ANTHROPIC_MODEL, "stop_sequence": None}
        if not body.get("stream"):
            self._json(200, {**message, "content": [{"type": "text", "text": REPLY}],
                             "stop_reason": "end_turn", "usage": ANTHROPIC_USAGE})
            return
        start_usage = {"input_tokens": ANTHROPIC_USAGE["input_tokens"], "output_tokens": 1}
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": {
                **message, "content": [], "stop_reason": None, "usage": start_usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
        ]
        for word in REPLY.split(" "):
            events.append(("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": word + " "}}))
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._sse(events)

    # -- plumbing --------------------------------------------------------------------

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, Any]]) -> None:
        parts = []
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            parts.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
        payload = "".join(parts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


if __name__ == "__main__":
    with FakeLLMServer() as server:
        print(f"OpenAI base_url: {server.openai_url}\nAnthropic base_url: {server.anthropic_url}",
              flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
