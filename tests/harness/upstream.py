"""A recording HTTP/1.1 upstream, in the test process.

Records every request exactly as it arrived (method, path, every header line,
body) and answers with whatever the test's responder returns: a fixed body, a
chunked stream (each chunk flushed on its own), or a connection reset.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable

from .envoy import REPO

sys.path.insert(0, str(REPO / "local" / "demo"))
from fake_llm import read_request_body  # noqa: E402  (one chunked-body reader for both upstreams)


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("content-type", "application/json")])
    # bytes: sent with content-length; an iterable of bytes: sent chunked, one flush per item.
    body: bytes | Iterable[bytes] = b'{"ok":true}'
    # Seconds to wait between streamed chunks.
    chunk_delay: float = 0.0
    # Close the connection without answering (upstream reset).
    reset: bool = False


Responder = Callable[[Received], Reply]


def _default_responder(req: Received) -> Reply:
    return Reply(body=json.dumps({"ok": True, "path": req.path}).encode())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _handle(self):
        body = read_request_body(self)
        req = Received(self.command, self.path, list(self.headers.items()), body)
        upstream: Upstream = self.server.upstream  # type: ignore[attr-defined]
        upstream._record(req)
        reply = upstream.responder(req)
        if reply.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(reply.status)
        for k, v in reply.headers:
            self.send_header(k, v)
        if isinstance(reply.body, (bytes, bytearray)):
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for chunk in reply.body:
            if not chunk:
                continue
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            if reply.chunk_delay:
                time.sleep(reply.chunk_delay)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class Upstream:
    """`with Upstream() as up:` serves on 127.0.0.1:up.port until the block ends."""

    def __init__(self, responder: Responder | None = None):
        self.responder: Responder = responder or _default_responder
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.upstream = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, req: Received) -> None:
        with self._lock:
            self.received.append(req)

    def last(self) -> Received:
        with self._lock:
            if not self.received:
                raise AssertionError("the upstream received no request")
            return self.received[-1]

    def start(self) -> "Upstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "Upstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
