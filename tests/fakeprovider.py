"""A fake LLM provider: a real HTTP server on 127.0.0.1 that the real SDK clients talk to.

It speaks the wire formats of OpenAI (``/v1/chat/completions``, ``/v1/responses``,
``/v1/embeddings``), Anthropic (``/v1/messages``) and Gemini
(``/{version}/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``),
plain JSON and server-sent events, with the usage numbers, model, text, error status and
delays a test chooses through ``FakeProvider.reply(...)``. Payload shapes follow what the
SDKs parse (see shared/reference/STANDARDS.md section 5). Analytics endpoints of other
tools (posthog, langfuse) get an empty 200, so their wrappers can be benchmarked offline.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_GEMINI_PATH = re.compile(
    r"^/(v1|v1beta|v1alpha)/models/([^:/]+):(generateContent|streamGenerateContent)"
)
_SINKS = ("/batch", "/i/", "/e/", "/capture", "/flags", "/decide", "/api/public/")


@dataclass
class Reply:
    """What the fake answers next (sticky until the next ``reply()``)."""

    text: str = "Hello from the fake provider."
    model: str | None = None  # None: echo the requested model
    usage: dict[str, Any] | None = None  # provider-native usage object; None: small defaults
    finish: str | None = None  # provider-native finish reason; None: the usual "stop"
    status: int = 200  # >= 400: an error response in the provider's format
    error: str = "fake provider error"
    delay: float = 0.0  # seconds before answering (client timeouts)
    chunks: int = 3  # text pieces in a stream
    chunk_delay: float = 0.0  # seconds between stream events
    stream_error_after: int | None = None  # an error event after this many text pieces
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class FakeProvider:
    """Start with ``FakeProvider().start()``; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self._reply = Reply()
        self._lock = threading.Lock()
        self.requests: list[Seen] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Bind an ephemeral port on 127.0.0.1 and serve in a daemon thread."""
        fake = self

        class Handler(_Handler):
            provider = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="fake-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(self, **changes: Any) -> Reply:
        """Set what the following requests get (fields of ``Reply``; the rest are defaults)."""
        with self._lock:
            self._reply = replace(Reply(), **changes)
            return self._reply

    def reset(self) -> None:
        """Default replies and an empty request log."""
        with self._lock:
            self._reply = Reply()
            self.requests.clear()

    def current(self) -> Reply:
        """The reply in force."""
        with self._lock:
            return self._reply

    def last(self, path_part: str = "") -> Seen:
        """The last request whose path contains ``path_part``."""
        for seen in reversed(self.requests):
            if path_part in seen.path:
                return seen
        raise AssertionError(f"no request to {path_part!r}; saw {[s.path for s in self.requests]}")


class _Handler(BaseHTTPRequestHandler):
    provider: FakeProvider
    protocol_version = "HTTP/1.1"  # keep-alive for plain responses
    disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms ACK waits

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}  # protobuf/gzip analytics payloads: not ours to read
        path = self.path
        fake = self.provider
        with fake._lock:
            fake.requests.append(Seen("POST", path, body, dict(self.headers.items())))
            reply = fake._reply
        if path.startswith(_SINKS):
            self._json(200, {})
            return
        if reply.delay:
            time.sleep(reply.delay)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(path, body, reply)  # (those two: the client gave up, a timeout test)

    def _route(self, path: str, body: dict[str, Any], reply: Reply) -> None:
        model = reply.model or str(body.get("model") or "fake-model")
        stream = body.get("stream") is True
        if path.startswith("/v1/chat/completions"):
            if reply.status >= 400:
                self._json(reply.status, _openai_error(reply))
            elif stream:
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                self._sse(_openai_chat_stream(reply, model, include))
            else:
                self._json(200, _openai_chat(reply, model))
        elif path.startswith("/v1/responses"):
            if reply.status >= 400:
                self._json(reply.status, _openai_error(reply))
            elif stream:
                self._sse(_responses_stream(reply, model))
            else:
                self._json(200, _response_object(reply, model, "completed"))
        elif path.startswith("/v1/embeddings"):
            if reply.status >= 400:
                self._json(reply.status, _openai_error(reply))
            else:
                self._json(200, _embeddings(reply, model, body))
        elif path.startswith("/v1/messages"):
            if reply.status >= 400:
                self._json(reply.status, _anthropic_error(reply))
            elif stream:
                self._sse(_anthropic_stream(reply, model))
            else:
                self._json(200, _anthropic_message(reply, model))
        elif match := _GEMINI_PATH.match(path):
            model = reply.model or match.group(2)
            if reply.status >= 400:
                self._json(reply.status, _gemini_error(reply))
            elif match.group(3) == "streamGenerateContent":
                self._sse(_gemini_stream(reply, model))
            else:
                self._json(
                    200, _gemini_response(reply, model, reply.text, _gemini_usage(reply), True)
                )
        else:
            self._json(404, {"error": {"message": f"fake provider: no route {path}"}})

    # -- writing ---------------------------------------------------------------------

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, frames: Iterator[tuple[str | None, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the end of the body is the end of the stream
        self.end_headers()
        self.close_connection = True
        delay = self.provider.current().chunk_delay
        for event, data in frames:
            text = data if isinstance(data, str) else json.dumps(data)
            frame = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
            self.wfile.write(frame.encode())
            self.wfile.flush()
            if delay:
                time.sleep(delay)


def _pieces(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text) or 1))
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# -- OpenAI --------------------------------------------------------------------------


def _openai_error(reply: Reply) -> dict[str, Any]:
    kind = {429: "rate_limit_exceeded", 400: "invalid_request_error"}.get(
        reply.status, "server_error"
    )
    return {"error": {"message": reply.error, "type": kind, "param": None, "code": kind}}


def _openai_usage(reply: Reply) -> dict[str, Any]:
    return reply.usage or {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def _openai_chat(reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish or "stop",
            }
        ],
        "usage": _openai_usage(reply),
    }


def _openai_chat_stream(
    reply: Reply, model: str, include_usage: bool
) -> Iterator[tuple[str | None, Any]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield None, chunk({"role": "assistant", "content": ""})
    for i, piece in enumerate(_pieces(reply.text, reply.chunks)):
        if reply.stream_error_after is not None and i == reply.stream_error_after:
            yield None, {"error": {"message": reply.error, "type": "server_error"}}
            return
        yield None, chunk({"content": piece})
    yield None, chunk({}, reply.finish or "stop")
    if include_usage:
        yield None, {**base, "choices": [], "usage": _openai_usage(reply)}
    yield None, "[DONE]"


def _responses_usage(reply: Reply) -> dict[str, Any]:
    return reply.usage or {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 19,
    }


def _response_object(reply: Reply, model: str, status: str) -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_fake",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        ]
        if done
        else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _responses_usage(reply) if done else None,
    }


def _responses_stream(reply: Reply, model: str) -> Iterator[tuple[str | None, Any]]:
    seq = iter(range(10_000))

    def event(kind: str, **data: Any) -> tuple[str, Any]:
        return kind, {"type": kind, "sequence_number": next(seq), **data}

    item = {
        "type": "message",
        "id": "msg_fake",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    part = {"type": "output_text", "text": "", "annotations": []}
    yield event("response.created", response=_response_object(reply, model, "in_progress"))
    yield event("response.output_item.added", output_index=0, item=item)
    yield event(
        "response.content_part.added",
        item_id="msg_fake",
        output_index=0,
        content_index=0,
        part=part,
    )
    for piece in _pieces(reply.text, reply.chunks):
        yield event(
            "response.output_text.delta",
            item_id="msg_fake",
            output_index=0,
            content_index=0,
            delta=piece,
            logprobs=[],
        )
    yield event(
        "response.output_text.done",
        item_id="msg_fake",
        output_index=0,
        content_index=0,
        text=reply.text,
        logprobs=[],
    )
    done_part = {**part, "text": reply.text}
    yield event(
        "response.content_part.done",
        item_id="msg_fake",
        output_index=0,
        content_index=0,
        part=done_part,
    )
    done_item = {**item, "status": "completed", "content": [done_part]}
    yield event("response.output_item.done", output_index=0, item=done_item)
    yield event("response.completed", response=_response_object(reply, model, "completed"))


def _embeddings(reply: Reply, model: str, body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    return {
        "object": "list",
        "model": model,
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(count)
        ],
        "usage": reply.usage or {"prompt_tokens": 8, "total_tokens": 8},
    }


# -- Anthropic -----------------------------------------------------------------------


def _anthropic_error(reply: Reply) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 400: "invalid_request_error", 529: "overloaded_error"}.get(
        reply.status, "api_error"
    )
    return {"type": "error", "error": {"type": kind, "message": reply.error}}


def _anthropic_usage(reply: Reply) -> dict[str, Any]:
    return reply.usage or {"input_tokens": 12, "output_tokens": 7}


def _anthropic_message(reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": reply.finish or "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(reply),
    }


def _anthropic_stream(reply: Reply, model: str) -> Iterator[tuple[str | None, Any]]:
    usage = _anthropic_usage(reply)
    # message_start holds input and cache counts with a tiny output; message_delta repeats
    # them with the final output: cumulative, so a client that adds them double counts
    start_usage = {**usage, "output_tokens": 1}
    message = {
        **_anthropic_message(reply, model),
        "content": [],
        "stop_reason": None,
        "usage": start_usage,
    }
    yield "message_start", {"type": "message_start", "message": message}
    yield (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        },
    )
    yield "ping", {"type": "ping"}
    for i, piece in enumerate(_pieces(reply.text, reply.chunks)):
        if reply.stream_error_after is not None and i == reply.stream_error_after:
            yield (
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": reply.error}},
            )
            return
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.finish or "end_turn", "stop_sequence": None},
            "usage": usage,
        },
    )
    yield "message_stop", {"type": "message_stop"}


# -- Gemini --------------------------------------------------------------------------


def _gemini_error(reply: Reply) -> dict[str, Any]:
    status = {429: "RESOURCE_EXHAUSTED", 400: "INVALID_ARGUMENT"}.get(reply.status, "INTERNAL")
    return {"error": {"code": reply.status, "message": reply.error, "status": status}}


def _gemini_usage(reply: Reply) -> dict[str, Any]:
    return reply.usage or {"promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 19}


def _gemini_response(
    reply: Reply, model: str, text: str, usage: dict[str, Any], last: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0,
    }
    if last:
        candidate["finishReason"] = reply.finish or "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "r1",
    }


def _gemini_stream(reply: Reply, model: str) -> Iterator[tuple[str | None, Any]]:
    final = _gemini_usage(reply)
    pieces = _pieces(reply.text, reply.chunks)
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        # cumulative usage: candidates grow chunk by chunk, the last chunk has the totals
        usage = dict(final)
        if not last:
            usage["candidatesTokenCount"] = (
                final.get("candidatesTokenCount", 0) * (i + 1) // len(pieces)
            )
            usage["totalTokenCount"] = sum(
                usage.get(k, 0)
                for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")
            )
        yield None, _gemini_response(reply, model, piece, usage, last)


# -- helpers for the instrument tests -------------------------------------------------


@contextlib.contextmanager
def running() -> Iterator[FakeProvider]:
    """A started fake provider, stopped afterwards."""
    fake = FakeProvider().start()
    try:
        yield fake
    finally:
        fake.stop()


def stored(tally: Any, where: str = "kind = 'llm_call'") -> list[dict[str, Any]]:
    """Flush ``tally`` and read its events back with plain SQL, oldest first."""
    from dbutil import rows

    assert tally.flush(10), "the pipeline did not drain"
    return rows(tally.database_url, f"SELECT * FROM events WHERE {where} ORDER BY event_id")


def only(tally: Any, where: str = "kind = 'llm_call'") -> dict[str, Any]:
    """The single stored event matching ``where``."""
    found = stored(tally, where)
    assert len(found) == 1, f"expected one event, found {len(found)}: {found}"
    return found[0]


if __name__ == "__main__":
    # a fake provider in its own process (benchmarks: its threads must not share the
    # measured process's GIL): prints its URL, serves until stdin closes
    import sys

    with running() as server:
        server.reply(text="Hi!", chunks=3)
        print(server.url, flush=True)
        sys.stdin.read()
