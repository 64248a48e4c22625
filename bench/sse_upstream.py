"""A fast streaming LLM upstream for the SSE benchmark: OpenAI Chat Completions
streams (`chat.completion.chunk` events, a final `usage` chunk, `[DONE]`) of any
size, chunked, written with sendall from prebuilt buffers so that Python is
never the bottleneck.

    POST /v1/chat/completions?bytes=<stream size>&pause_ms=<ms>

sends the first event at once, waits pause_ms (to show whether the proxy holds
the stream back), then streams about `bytes` of events in 64 KiB chunks.

Run as a script: `python sse_upstream.py PORT_FILE` listens on a free loopback
port and writes the port number to PORT_FILE.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

MODEL = "gpt-4o-mini"
BLOCK_TARGET = 64 * 1024


def _event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _chunk(content: dict | None = None, **extra) -> dict:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": MODEL,
        "choices": [] if content is None else [{"index": 0, "delta": content, "finish_reason": None}],
        **extra,
    }


FIRST_EVENT = _event(_chunk({"role": "assistant", "content": ""}))
# One content event stands for one output token, like a real stream.
TOKEN_EVENT = _event(_chunk({"content": " argument"}))
EVENTS_PER_BLOCK = BLOCK_TARGET // len(TOKEN_EVENT)
BLOCK = TOKEN_EVENT * EVENTS_PER_BLOCK
PROMPT_TOKENS = 17


def stream_plan(nbytes: int) -> tuple[int, int]:
    """(64 KiB blocks sent, completion tokens reported) for a stream of about nbytes."""
    blocks = max(1, round(nbytes / len(BLOCK)))
    return blocks, blocks * EVENTS_PER_BLOCK


def _final_events(completion_tokens: int) -> bytes:
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
    }
    stop = _chunk(None)
    stop["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    return _event(stop) + _event(_chunk(None, usage=usage)) + b"data: [DONE]\n\n"


def _framed(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


FRAMED_BLOCK = _framed(BLOCK)


def _read_request(f) -> tuple[str, int] | None:
    """(target, content length) of the next request, or None at end of connection."""
    line = f.readline()
    if not line:
        return None
    target = line.split()[1].decode()
    length = 0
    while True:
        header = f.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        f.read(length)
    return target, length


def _serve(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = conn.makefile("rb")
    try:
        while True:
            req = _read_request(f)
            if req is None:
                return
            query = parse_qs(urlsplit(req[0]).query)
            nbytes = int(query.get("bytes", ["1048576"])[0])
            pause = int(query.get("pause_ms", ["0"])[0]) / 1000
            blocks, tokens = stream_plan(nbytes)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                b"transfer-encoding: chunked\r\n\r\n" + _framed(FIRST_EVENT)
            )
            if pause:
                time.sleep(pause)
            for _ in range(blocks):
                conn.sendall(FRAMED_BLOCK)
            conn.sendall(_framed(_final_events(tokens)) + b"0\r\n\r\n")
    except (OSError, ValueError, IndexError):
        return
    finally:
        f.close()
        conn.close()


def main(port_file: str) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    with open(port_file, "w") as out:
        out.write(str(srv.getsockname()[1]))
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1])
