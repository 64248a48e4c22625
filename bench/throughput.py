"""Requests per second and latency of every configuration at saturation, with
1 and with 2 Envoy workers, in alternating rounds.

All Envoys of the matrix run at once (idle ones cost nothing measurable), so a
round is just wrk pointed at one after the other; odd rounds go in reverse
order, so slow drifts of a shared machine hit every configuration alike.
"""

from __future__ import annotations

import http.client
import ssl
import statistics
from dataclasses import dataclass, field

from configs import Setup, throughput_setups
from procs import Envoy
from session import Session
from traffic import REQUESTS
from wrkrun import WrkResult, run_wrk

# Which request each configuration is driven with: token-usage-metrics reads
# LLM responses, so it gets the LLM request, and bare Envoy both.
REQUESTS_BY_SETUP = {"bare": ("mcp", "llm"), "token-usage-metrics": ("llm",), "mcp-guard": ("mcp", "mcp-modern")}


@dataclass
class Cell:
    setup: Setup
    request: str
    workers: int
    envoy: Envoy | None = None
    results: list[WrkResult] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # Envoy's CPU time during each round
    rss_kib: int = 0

    @property
    def key(self) -> tuple[str, str, int]:
        return self.setup.name, self.request, self.workers

    def _median(self, values) -> float:
        return statistics.median(values) if values else 0.0

    @property
    def rps(self) -> float:
        return self._median([r.rps for r in self.results])

    @property
    def p50_ms(self) -> float:
        return self._median([r.latency_us["p50"] for r in self.results]) / 1000

    @property
    def p99_ms(self) -> float:
        return self._median([r.latency_us["p99"] for r in self.results]) / 1000

    @property
    def cpu_us_per_request(self) -> float:
        """Envoy CPU time per request (all its threads): what a request costs,
        much less sensitive than rps to other work on a shared machine."""
        return self._median([c / r.requests * 1e6 for c, r in zip(self.cpu_s, self.results) if r.requests])

    @property
    def spread(self) -> float:
        """(max - min) / median of the rounds' rps."""
        values = [r.rps for r in self.results]
        return (max(values) - min(values)) / self.rps if len(values) > 1 and self.rps else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(r.errors.get("status", 0) for r in self.results)

    @property
    def socket_errors(self) -> int:
        return sum(r.failed for r in self.results)


def _probe(url: str, request) -> tuple[int, bytes]:
    """One request by hand: every configuration must answer the bench's
    requests with 2xx (a 401 or 429 would measure the wrong thing)."""
    tls = url.startswith("https://")
    host, port = url.removeprefix("https://" if tls else "http://").split(":")
    conn = (http.client.HTTPSConnection(host, int(port), timeout=10, context=ssl._create_unverified_context())
            if tls else http.client.HTTPConnection(host, int(port), timeout=10))
    try:
        conn.request(request.method, request.path, body=request.body, headers=request.headers)
        resp = conn.getresponse()
        return resp.status, resp.read()[:500]
    finally:
        conn.close()


def run(session: Session, log) -> list[Cell]:
    opts = session.options
    specs = {name: make().write(session.workdir / f"request-{name}.txt") for name, make in REQUESTS.items()}
    cells: list[Cell] = []
    for workers in opts.workers:
        for setup in throughput_setups():
            if opts.only and setup.name not in opts.only:
                continue
            envoy = session.start(setup, workers)
            log(f"  started {setup.name} ({workers} worker{'s' * (workers > 1)}) on :{envoy.port}")
            for request in REQUESTS_BY_SETUP.get(setup.name, ("mcp",)):
                cells.append(Cell(setup, request, workers, envoy))

    def drive(cell: Cell, seconds: float) -> WrkResult:
        return run_wrk(
            cell.envoy.url + REQUESTS[cell.request]().path, specs[cell.request],
            threads=opts.wrk_threads, connections=opts.wrk_connections, duration_s=seconds,
        )

    for cell in cells:
        status, body = _probe(cell.envoy.url, REQUESTS[cell.request]())
        if not 200 <= status < 300:
            raise RuntimeError(f"{cell.setup.name} ({cell.request}, {cell.workers}w) answers {status} {body!r}: "
                               "fix the bench's config overrides (bench/configs.py) or the filter")
    if opts.warmup_s:
        log(f"  warm-up: {opts.warmup_s:g}s per configuration")
        for cell in cells:
            drive(cell, opts.warmup_s)

    for rnd in range(opts.rounds):
        order = cells if rnd % 2 == 0 else list(reversed(cells))
        for cell in order:
            before = cell.envoy.cpu_seconds()
            cell.results.append(drive(cell, opts.duration_s))
            cell.cpu_s.append(cell.envoy.cpu_seconds() - before)
        log(f"  round {rnd + 1}/{opts.rounds}: " + ", ".join(
            f"{c.setup.name}/{c.request}/w{c.workers} {c.results[-1].rps:,.0f}" for c in cells))

    for cell in cells:
        cell.rss_kib = cell.envoy.memory().get("VmRSS", 0)
    for cell in cells:
        if cell.envoy in session.running:
            session.stop(cell.envoy)
    return cells
