"""Rate-limit accuracy: a counted burst across 2 Envoy workers and 64
connections against org-rate-limit and against Envoy's native local_ratelimit
configured to the same limit; how many requests each admits.

The limit is a bucket of N requests refilled by 1 per minute; the burst sends
about 3 N requests and lasts well under a minute, so exactly N must be
admitted. Each run gets a fresh Envoy (a spent bucket cannot be reset), and
the two kinds alternate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from configs import Setup, native_local_ratelimit, org_rate_limit_config
from session import Session
from traffic import mcp_request
from wrkrun import run_wrk

COMPLETED = "http.mcp_ingress.downstream_rq_completed"
OVERSEND = 3  # requests sent per request the limit allows
MAX_SECONDS = 40  # refill (1/min) adds nothing before 60 s


@dataclass
class AccuracyRun:
    kind: str
    limit: int
    admitted: int
    limited: int
    other: dict[int, int]
    requests: int
    duration_s: float
    connections_per_worker: list[int] = field(default_factory=list)
    socket_errors: int = 0  # connect/read/write errors and timeouts (no answer in 10 s)
    command: str = ""

    @property
    def error_pct(self) -> float:
        return (self.admitted - self.limit) / self.limit * 100


def setups(limit: int) -> dict[str, tuple[Setup, dict | None]]:
    ours = {"org-rate-limit": org_rate_limit_config(per_minute=1, burst=limit)}
    native = native_local_ratelimit(max_tokens=limit, tokens_per_fill=1, fill_interval="60s")
    return {
        "org-rate-limit": (Setup("org-rate-limit", ("org-rate-limit",)), ours),
        "native local_ratelimit": (Setup("native local_ratelimit", native=(native,)), None),
    }


def run(session: Session, log) -> list[AccuracyRun]:
    opts = session.options
    spec = mcp_request().write(session.workdir / "request-accuracy.txt")
    runs = []
    for n in range(opts.accuracy_runs):
        for kind, (setup, configs) in setups(opts.accuracy_limit).items():
            envoy = session.start(setup, 2, configs=configs)
            sent = lambda: envoy.stat(COMPLETED) >= OVERSEND * opts.accuracy_limit  # noqa: E731
            r = run_wrk(envoy.url + "/mcp", spec, mode="count", threads=2, connections=opts.accuracy_connections,
                        duration_s=MAX_SECONDS, stop_when=sent, poll_s=0.2)
            per_worker = envoy.stats(r"worker_[0-9]+\.downstream_cx_total$")
            session.stop(envoy)
            run = AccuracyRun(
                kind=kind, limit=opts.accuracy_limit,
                admitted=r.statuses.get(200, 0), limited=r.statuses.get(429, 0),
                other={s: c for s, c in r.statuses.items() if s not in (200, 429)},
                requests=r.requests, duration_s=r.duration_s,
                connections_per_worker=[v for _, v in sorted(per_worker.items())],
                socket_errors=r.failed,
                command=r.command,
            )
            runs.append(run)
            log(f"  run {n + 1} {kind}: admitted {run.admitted} of limit {run.limit} "
                f"({run.error_pct:+.2f}%), {run.limited} limited, {run.requests} answered, {run.socket_errors} errors, "
                f"connections per worker {run.connections_per_worker}")
    return runs
