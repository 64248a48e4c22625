"""A fake LLM provider: OpenAI, Anthropic and Gemini wire formats, JSON and SSE.

Stands in for the AI providers behind mcp-llm's sidecar in `make run` and in
the tests, on the routes the real APIs use:

    POST /v1/chat/completions                       OpenAI Chat Completions (+ stream, stream_options.include_usage)
    POST /v1/responses                              OpenAI Responses (+ stream)
    POST /v1/messages                               Anthropic Messages (+ stream)
    POST /v1beta/models/{model}:generateContent     Gemini
    POST /v1beta/models/{model}:streamGenerateContent[?alt=sse]   Gemini stream (SSE, or a JSON array without alt=sse)

Run it:  python local/demo/fake_llm.py --port 8002

Token counts are deterministic so tests know exactly what to expect: input =
tokens of every prompt text + 4 per message, output = tokens of the reply
(a "token" is a word or a punctuation mark); prompts of 1024 tokens or more
report the whole 1024-token blocks as cached; reasoning models (`o1`, `o3`,
`o4-mini`, `gpt-5*`, `gemini-2.5-*`, ...) spend 2 reasoning tokens per output
token. A model name containing `error` gets the provider's rate-limit error.
JSON answers are gzip-compressed when the client accepts gzip, as the real
providers do. Import it to reuse the bodies: `respond()`, `plan()`, `expected_usage()`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable
from urllib.parse import parse_qs, urlsplit

REPLY = "Both sides made their case; the motion passes on the strength of the evidence."

# Aliases answered with a dated snapshot, like the real APIs do.
SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "o4-mini": "o4-mini-2025-04-16",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}

CACHE_BLOCK = 1024


def count_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def words(text: str) -> list[str]:
    """The reply cut into stream deltas (each keeps its leading space)."""
    return re.findall(r"\s*\S+", text)


def is_reasoning_model(model: str) -> bool:
    return bool(re.match(r"^(o\d|gpt-5|gemini-2\.5)", model))


@dataclass
class Completion:
    """What the fake answers: the same facts in every provider format."""

    api: str  # openai_chat, openai_responses, anthropic_messages, gemini
    model: str  # response model
    text: str
    input_tokens: int  # all input, cached included
    output_tokens: int  # all output, reasoning included
    cached_tokens: int
    reasoning_tokens: int
    error: bool = False


def _texts(value) -> Iterable[str]:
    """Every prompt string in a request body value (strings, content parts, nested)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key in ("content", "text", "parts", "input", "instructions", "system"):
            if key in value:
                yield from _texts(value[key])


def _messages(api: str, request: dict) -> list:
    if api == "gemini":
        return list(request.get("contents") or [])
    if api == "openai_responses":
        inp = request.get("input")
        return [inp] if isinstance(inp, str) else list(inp or [])
    return list(request.get("messages") or [])


def plan(api: str, request: dict, path_model: str | None = None) -> Completion:
    """The deterministic answer to one request."""
    model = path_model or str(request.get("model") or "unknown-model")
    messages = _messages(api, request)
    prompt = list(_texts(messages))
    for key in ("system", "instructions", "systemInstruction"):
        if key in request:
            prompt += list(_texts(request[key]))
    input_tokens = sum(count_tokens(t) for t in prompt) + 4 * max(len(messages), 1)
    visible = count_tokens(REPLY)
    reasoning = 2 * visible if is_reasoning_model(model) and api != "anthropic_messages" else 0
    cached = (input_tokens // CACHE_BLOCK) * CACHE_BLOCK
    return Completion(
        api=api,
        model=SNAPSHOTS.get(model, model),
        text=REPLY,
        input_tokens=input_tokens,
        output_tokens=visible + reasoning,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        error="error" in model,
    )


def expected_usage(c: Completion) -> dict:
    """What token-usage-metrics reports for `c` (its normalized counts)."""
    return {
        "input": c.input_tokens,
        "output": c.output_tokens,
        "cached_input": c.cached_tokens,
        "cache_creation_input": 0,
        "reasoning": c.reasoning_tokens,
    }


# ---- wire formats ------------------------------------------------------------

def _sse(data: dict | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def openai_usage(c: Completion) -> dict:
    return {
        "prompt_tokens": c.input_tokens,
        "completion_tokens": c.output_tokens,
        "total_tokens": c.input_tokens + c.output_tokens,
        "prompt_tokens_details": {"cached_tokens": c.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": c.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_chat_json(c: Completion) -> dict:
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion",
        "created": 1764000000,
        "model": c.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": c.text, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": openai_usage(c),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def openai_chat_sse(c: Completion, include_usage: bool) -> list[bytes]:
    def chunk(delta: dict, finish=None) -> dict:
        body = {
            "id": "chatcmpl-fake0001",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": c.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    out = [_sse(chunk({"role": "assistant", "content": "", "refusal": None}))]
    out += [_sse(chunk({"content": w})) for w in words(c.text)]
    out.append(_sse(chunk({}, finish="stop")))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = openai_usage(c)
        out.append(_sse(last))
    out.append(_sse("[DONE]"))
    return out


def responses_usage(c: Completion) -> dict:
    return {
        "input_tokens": c.input_tokens,
        "input_tokens_details": {"cached_tokens": c.cached_tokens},
        "output_tokens": c.output_tokens,
        "output_tokens_details": {"reasoning_tokens": c.reasoning_tokens},
        "total_tokens": c.input_tokens + c.output_tokens,
    }


def _response_object(c: Completion, status: str, with_output: bool) -> dict:
    output = []
    if with_output:
        output = [{
            "id": "msg_fake0001",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": c.text, "annotations": []}],
        }]
    return {
        "id": "resp_fake0001",
        "object": "response",
        "created_at": 1764000000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": c.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": responses_usage(c) if status == "completed" else None,
    }


def openai_responses_json(c: Completion) -> dict:
    return _response_object(c, "completed", True)


def openai_responses_sse(c: Completion) -> list[bytes]:
    seq = iter(range(10_000))
    item = {"id": "msg_fake0001", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    out = [
        _sse({"type": "response.created", "sequence_number": next(seq), "response": _response_object(c, "in_progress", False)}, "response.created"),
        _sse({"type": "response.in_progress", "sequence_number": next(seq), "response": _response_object(c, "in_progress", False)}, "response.in_progress"),
        _sse({"type": "response.output_item.added", "sequence_number": next(seq), "output_index": 0, "item": item}, "response.output_item.added"),
        _sse({"type": "response.content_part.added", "sequence_number": next(seq), "item_id": "msg_fake0001", "output_index": 0, "content_index": 0,
              "part": {"type": "output_text", "text": "", "annotations": []}}, "response.content_part.added"),
    ]
    for w in words(c.text):
        out.append(_sse({"type": "response.output_text.delta", "sequence_number": next(seq), "item_id": "msg_fake0001",
                         "output_index": 0, "content_index": 0, "delta": w}, "response.output_text.delta"))
    done_item = dict(item, status="completed", content=[{"type": "output_text", "text": c.text, "annotations": []}])
    out += [
        _sse({"type": "response.output_text.done", "sequence_number": next(seq), "item_id": "msg_fake0001", "output_index": 0,
              "content_index": 0, "text": c.text}, "response.output_text.done"),
        _sse({"type": "response.output_item.done", "sequence_number": next(seq), "output_index": 0, "item": done_item}, "response.output_item.done"),
        _sse({"type": "response.completed", "sequence_number": next(seq), "response": _response_object(c, "completed", True)}, "response.completed"),
    ]
    return out


def anthropic_usage(c: Completion) -> dict:
    return {
        "input_tokens": c.input_tokens - c.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": c.cached_tokens,
        "output_tokens": c.output_tokens,
        "service_tier": "standard",
    }


def _anthropic_message(c: Completion, content: list, usage: dict, stop) -> dict:
    return {
        "id": "msg_fake0001",
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def anthropic_json(c: Completion) -> dict:
    return _anthropic_message(c, [{"type": "text", "text": c.text}], anthropic_usage(c), "end_turn")


def anthropic_sse(c: Completion) -> list[bytes]:
    start_usage = dict(anthropic_usage(c), output_tokens=1)
    out = [
        _sse({"type": "message_start", "message": _anthropic_message(c, [], start_usage, None)}, "message_start"),
        _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start"),
        _sse({"type": "ping"}, "ping"),
    ]
    for w in words(c.text):
        out.append(_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}, "content_block_delta"))
    out += [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
              "usage": {"output_tokens": c.output_tokens}}, "message_delta"),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return out


def gemini_usage(c: Completion, visible: int | None = None) -> dict:
    visible = c.output_tokens - c.reasoning_tokens if visible is None else visible
    usage = {
        "promptTokenCount": c.input_tokens,
        "candidatesTokenCount": visible,
        "totalTokenCount": c.input_tokens + visible + c.reasoning_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": c.input_tokens}],
    }
    if c.cached_tokens:
        usage["cachedContentTokenCount"] = c.cached_tokens
    if c.reasoning_tokens:
        usage["thoughtsTokenCount"] = c.reasoning_tokens
    return usage


def _gemini_chunk(c: Completion, text: str, usage: dict, finish: bool) -> dict:
    candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": c.model, "responseId": "fakeResp0001"}


def gemini_json(c: Completion) -> dict:
    return _gemini_chunk(c, c.text, gemini_usage(c), True)


def gemini_chunks(c: Completion) -> list[dict]:
    """Stream chunks; usageMetadata grows with the reply (the last one wins)."""
    parts = words(c.text)
    out, so_far = [], 0
    for i, w in enumerate(parts):
        so_far += count_tokens(w)
        out.append(_gemini_chunk(c, w, gemini_usage(c, visible=so_far), i == len(parts) - 1))
    return out


def gemini_sse(c: Completion) -> list[bytes]:
    # Google ends each event with CRLF CRLF.
    return [f"data: {json.dumps(chunk)}\r\n\r\n".encode() for chunk in gemini_chunks(c)]


def gemini_json_array(c: Completion) -> list[bytes]:
    chunks = [json.dumps(x).encode() for x in gemini_chunks(c)]
    return [b"[" + chunks[0]] + [b"\n," + x for x in chunks[1:]] + [b"]"]


def error_body(api: str) -> tuple[int, dict]:
    if api == "anthropic_messages":
        return 429, {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}
    if api == "gemini":
        return 429, {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}
    return 429, {"error": {"message": "Rate limit reached for requests", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}


# ---- routing -------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes | list[bytes]  # bytes: one body; list: SSE/streamed chunks


def route(path: str) -> tuple[str, str | None, bool, bool] | None:
    """(api, path model, streamed, sse) for a provider path, else None."""
    parts = urlsplit(path)
    p = parts.path
    if p.endswith("/chat/completions"):
        return "openai_chat", None, False, False
    if p.endswith("/v1/responses"):
        return "openai_responses", None, False, False
    if p.endswith("/v1/messages"):
        return "anthropic_messages", None, False, False
    m = re.search(r"/models/([^/:]+):(generateContent|streamGenerateContent)$", p)
    if m:
        stream = m.group(2) == "streamGenerateContent"
        sse = stream and parse_qs(parts.query).get("alt") == ["sse"]
        return "gemini", m.group(1), stream, sse
    return None


def _json_answer(status: int, doc: dict, accept_encoding: str) -> Answer:
    body = json.dumps(doc).encode()
    headers = [("content-type", "application/json")]
    if "gzip" in accept_encoding.lower():
        body = gzip.compress(body)
        headers.append(("content-encoding", "gzip"))
    return Answer(status, headers, body)


SSE_HEADERS = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]


def respond(method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
    """The fake provider's answer to one request (used by the server and by tests)."""
    lower = {k.lower(): v for k, v in headers.items()}
    found = route(path)
    if method != "POST" or found is None:
        return Answer(404, [("content-type", "application/json")], b'{"error":{"message":"not found"}}')
    api, path_model, gemini_stream, gemini_sse_wanted = found
    try:
        request = json.loads(body or b"{}")
        if not isinstance(request, dict):
            raise ValueError("not an object")
    except ValueError:
        return Answer(400, [("content-type", "application/json")], b'{"error":{"message":"invalid JSON body"}}')
    c = plan(api, request, path_model)
    accept = lower.get("accept-encoding", "")
    if c.error:
        status, doc = error_body(api)
        return _json_answer(status, doc, accept)
    if api == "gemini":
        if not gemini_stream:
            return _json_answer(200, gemini_json(c), accept)
        if gemini_sse_wanted:
            return Answer(200, list(SSE_HEADERS), gemini_sse(c))
        return Answer(200, [("content-type", "application/json; charset=UTF-8")], gemini_json_array(c))
    if not request.get("stream"):
        doc = {"openai_chat": openai_chat_json, "openai_responses": openai_responses_json,
               "anthropic_messages": anthropic_json}[api](c)
        return _json_answer(200, doc, accept)
    if api == "openai_chat":
        include = bool((request.get("stream_options") or {}).get("include_usage"))
        return Answer(200, list(SSE_HEADERS), openai_chat_sse(c, include))
    if api == "openai_responses":
        return Answer(200, list(SSE_HEADERS), openai_responses_sse(c))
    return Answer(200, list(SSE_HEADERS), anthropic_sse(c))


# ---- server --------------------------------------------------------------------

def read_request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The whole request body, content-length or chunked (the test harness's
    recording upstream reads bodies with this too)."""
    if handler.headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("content-length") or 0)
    return handler.rfile.read(length) if length else b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.verbose:  # type: ignore[attr-defined]
            super().log_message(fmt, *args)

    def _handle(self):
        body = read_request_body(self)
        headers = dict(self.headers.items())
        self.server.received.append((self.command, self.path, headers, body))  # type: ignore[attr-defined]
        answer = respond(self.command, self.path, headers, body)
        self.send_response(answer.status)
        for k, v in answer.headers:
            self.send_header(k, v)
        if isinstance(answer.body, bytes):
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        delay = self.server.chunk_delay  # type: ignore[attr-defined]
        for chunk in answer.body:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            if delay:
                time.sleep(delay)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_POST = do_GET = _handle


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog is 5: a burst of 32+ new connections
    # (tests and bench run that many clients through Envoy) overflows it, a
    # dropped SYN is retried after 1 s, and Envoy's 1 s connect timeout
    # answers 503.
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        # A client (or Envoy, for a call a token budget denied after its
        # headers went on) that goes away mid-answer is not an error here.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class FakeLLM:
    """`with FakeLLM() as llm:` serves on 127.0.0.1:llm.port until the block ends."""

    def __init__(self, port: int = 0, chunk_delay: float = 0.0, verbose: bool = False):
        self.server = _Server(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.received = []  # type: ignore[attr-defined]
        self.server.chunk_delay = chunk_delay  # type: ignore[attr-defined]
        self.server.verbose = verbose  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def received(self) -> list[tuple[str, str, dict, bytes]]:
        return self.server.received  # type: ignore[attr-defined]

    def __enter__(self) -> "FakeLLM":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between streamed chunks")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    fake = FakeLLM(args.port, args.chunk_delay, verbose=not args.quiet)
    print(f"fake LLM provider (OpenAI, Anthropic, Gemini) on http://127.0.0.1:{fake.port}", flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
