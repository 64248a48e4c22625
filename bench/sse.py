"""Streamed LLM responses (SSE) of 1 MiB and 64 MiB through token-usage-metrics
versus bare Envoy: throughput, time to the first event, and Envoy's peak
memory, which must not grow with the stream's size.

Each (configuration, size) gets a fresh Envoy with 1 worker, so its VmHWM
(peak resident memory, from /proc) belongs to that stream size alone.
"""

from __future__ import annotations

import socket
import statistics
import time
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from configs import Setup, bench_key, bench_org
from procs import Envoy, start_sse_upstream
from session import Session
from sse_upstream import stream_plan
from traffic import LLM_BODY, request_headers

MIB = 1024 * 1024
# The upstream waits this long after the first event: a proxy that holds the
# stream back shows a time to first event of at least this much.
PAUSE_MS = 300
STREAMS = {1: 20, 64: 3}  # streams per size: enough bytes for a stable rate

SETUPS = [Setup("bare"), Setup("token-usage-metrics", ("token-usage-metrics",))]


@dataclass
class SseRun:
    setup: str
    size_mib: int
    streams: int = 0
    ttfb_ms: float = 0.0
    rates_mib_s: list[float] = field(default_factory=list)
    rss_start_kib: int = 0
    rss_end_kib: int = 0
    hwm_kib: int = 0
    complete: bool = True
    tokens_expected: int = 0
    tokens_counted: float | None = None
    cpu_ms_per_mib: float = 0.0  # Envoy CPU time (all threads) per MiB streamed

    @property
    def mib_s(self) -> float:
        return statistics.median(self.rates_mib_s) if self.rates_mib_s else 0.0


def fetch_stream(port: int, nbytes: int, pause_ms: int = 0) -> tuple[float, float, bool]:
    """One streamed completion on a fresh connection: (seconds to the first
    event, seconds to the end, whether the stream arrived whole)."""
    body = LLM_BODY[:-1] + ',"stream":true,"stream_options":{"include_usage":true}}'
    headers = {**request_headers(bench_key(0), bench_org(0)), "accept": "text/event-stream",
               "content-length": str(len(body)), "connection": "close", "host": "api.openai.com"}
    head = f"POST /v1/chat/completions?bytes={nbytes}&pause_ms={pause_ms} HTTP/1.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    buf = bytearray(MIB)
    view = memoryview(buf)
    first = None
    tail = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        start = time.perf_counter()
        s.sendall(head.encode() + body.encode())
        while True:
            n = s.recv_into(view)
            if n == 0:
                break
            if first is None and b"data:" in bytes(view[:n]):
                first = time.perf_counter()
            tail = (tail + bytes(view[max(0, n - 256):n]))[-256:]
        end = time.perf_counter()
    complete = tail.endswith(b"0\r\n\r\n") and b"[DONE]" in tail
    return (first or end) - start, end - start, complete


def output_tokens_counted(envoy: Envoy) -> float | None:
    """Output tokens in token-usage-metrics' Prometheus counters (None when it
    exports no token counter)."""
    total = None
    for family in text_string_to_metric_families(envoy.admin("/stats/prometheus")):
        for s in family.samples:
            if "token" in s.name and s.labels.get("gen_ai_token_type") == "output" and s.name.endswith("_total"):
                total = (total or 0.0) + s.value
    return total


def run(session: Session, log) -> list[SseRun]:
    upstream, port = start_sse_upstream(session.workdir)
    session.track(upstream)
    runs = []
    for size in session.options.sse_sizes_mib:
        for setup in SETUPS:
            envoy = session.start(setup, 1, upstreams={"llm_provider": port})
            run = SseRun(setup.name, size, streams=STREAMS.get(size, 3))
            run.rss_start_kib = envoy.memory()["VmRSS"]
            ttfb, _, ok = fetch_stream(envoy.port, MIB, PAUSE_MS)
            run.ttfb_ms = ttfb * 1000
            run.complete &= ok
            cpu_before = envoy.cpu_seconds()
            for _ in range(run.streams):
                _, seconds, ok = fetch_stream(envoy.port, size * MIB)
                run.complete &= ok
                run.rates_mib_s.append(size / seconds)
            run.cpu_ms_per_mib = (envoy.cpu_seconds() - cpu_before) * 1000 / (run.streams * size)
            mem = envoy.memory()
            run.rss_end_kib, run.hwm_kib = mem["VmRSS"], mem["VmHWM"]
            run.tokens_expected = stream_plan(MIB)[1] + run.streams * stream_plan(size * MIB)[1]
            run.tokens_counted = output_tokens_counted(envoy)
            session.stop(envoy)
            log(f"  {setup.name} {size} MiB: {run.mib_s:,.0f} MiB/s, {run.cpu_ms_per_mib:.1f} ms CPU/MiB, first event {run.ttfb_ms:.1f} ms, "
                f"peak RSS {run.hwm_kib / 1024:.1f} MiB, complete={run.complete}")
            runs.append(run)
    session.stop(upstream)
    return runs
