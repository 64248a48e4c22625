"""Rate-limit accuracy: wrk with 64 connections against Envoy with 2 workers,
org-rate-limit and Envoy's native local_ratelimit configured to the same
limit; how many requests each admits against how many the limit allows.

Two scenarios:
- burst: a bucket of N refilled by 1 per minute; wrk sends about 3 N requests
  in well under a minute, so exactly N must be admitted.
- sustained: 100 requests per second with a bucket of 100, for a fixed time T;
  100 + 100 T may be admitted. The native filter refills by timer (10 tokens
  every 100 ms, its closest equivalent); ours computes refill from elapsed time.

Admitted and limited come from the Envoy under test (downstream 2xx and 4xx
counters, read after wrk stops, so requests still in flight at the end are
counted); wrk's own count of answers is shown next to them. Each run gets a
fresh Envoy (a spent bucket cannot be reset), and the two limiters alternate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from configs import Setup, native_local_ratelimit, org_rate_limit_config
from session import Session
from traffic import mcp_request
from wrkrun import run_wrk

PREFIX = "http.mcp_ingress."
OVERSEND = 3  # burst scenario: requests sent per request the limit allows
MAX_SECONDS = 40  # burst scenario: refill (1/min) adds nothing before 60 s
CONNECTIONS = 64


@dataclass(frozen=True)
class Scenario:
    name: str
    burst: int
    per_minute: int  # org-rate-limit's rate
    native_fill: tuple[int, str]  # local_ratelimit's tokens_per_fill, fill_interval
    seconds: int | None  # fixed wrk duration; None: stop after OVERSEND x burst answers

    def expected(self, duration_s: float) -> float:
        if self.seconds is None:
            return float(self.burst)
        return self.burst + self.per_minute / 60 * duration_s

    def describe(self) -> str:
        if self.seconds is None:
            return (f"bucket of {self.burst:,}, refilled 1 per minute; about {OVERSEND} × {self.burst:,} requests "
                    "sent in well under a minute")
        return (f"{self.per_minute // 60:,} per second, bucket of {self.burst:,}, for {self.seconds} s "
                f"(native: {self.native_fill[0]} tokens every {self.native_fill[1]})")


def scenarios(limit: int) -> list[Scenario]:
    return [
        Scenario("burst", limit, 1, (1, "60s"), None),
        Scenario("sustained", 100, 6000, (10, "0.1s"), 5),
    ]


@dataclass
class AccuracyRun:
    scenario: Scenario
    kind: str
    expected: float
    admitted: int
    limited: int
    answered: int  # responses wrk received before it stopped
    duration_s: float
    socket_errors: int = 0  # connect/read/write errors and timeouts (no answer in 10 s)
    connections_per_worker: list[int] = field(default_factory=list)
    command: str = ""

    @property
    def error_pct(self) -> float:
        return (self.admitted - self.expected) / self.expected * 100


def _limiters(s: Scenario) -> dict[str, tuple[Setup, dict | None]]:
    ours = {"org-rate-limit": org_rate_limit_config(per_minute=s.per_minute, burst=s.burst)}
    native = native_local_ratelimit(max_tokens=s.burst, tokens_per_fill=s.native_fill[0], fill_interval=s.native_fill[1])
    return {
        "org-rate-limit": (Setup("org-rate-limit", ("org-rate-limit",)), ours),
        "native local_ratelimit": (Setup("native local_ratelimit", native=(native,)), None),
    }


def run(session: Session, log) -> list[AccuracyRun]:
    opts = session.options
    spec = mcp_request().write(session.workdir / "request-accuracy.txt")
    runs = []
    for scenario in scenarios(opts.accuracy_limit):
        for n in range(opts.accuracy_runs):
            for kind, (setup, configs) in _limiters(scenario).items():
                envoy = session.start(setup, 2, configs=configs)
                if scenario.seconds is None:
                    enough = lambda: envoy.stat(PREFIX + "downstream_rq_completed") >= OVERSEND * scenario.burst  # noqa: E731
                    r = run_wrk(envoy.url + "/mcp", spec, mode="count", threads=2, connections=CONNECTIONS,
                                duration_s=MAX_SECONDS, stop_when=enough, poll_s=0.2)
                else:
                    r = run_wrk(envoy.url + "/mcp", spec, mode="count", threads=2, connections=CONNECTIONS,
                                duration_s=scenario.seconds)
                time.sleep(0.3)  # let requests in flight when wrk stopped finish
                stats = envoy.stats(r"^http\.mcp_ingress\.downstream_rq_[24]xx$")
                per_worker = envoy.stats(r"worker_[0-9]+\.downstream_cx_total$")
                session.stop(envoy)
                run = AccuracyRun(
                    scenario=scenario, kind=kind, expected=scenario.expected(r.duration_s),
                    admitted=stats.get(PREFIX + "downstream_rq_2xx", 0),
                    limited=stats.get(PREFIX + "downstream_rq_4xx", 0),
                    answered=sum(r.statuses.values()), duration_s=r.duration_s, socket_errors=r.failed,
                    connections_per_worker=[v for _, v in sorted(per_worker.items())], command=r.command,
                )
                runs.append(run)
                log(f"  {scenario.name} run {n + 1} {kind}: admitted {run.admitted:,} of {run.expected:,.0f} "
                    f"({run.error_pct:+.2f}%), {run.limited:,} limited, {run.answered:,} answered to wrk, "
                    f"{run.socket_errors} errors, connections per worker {run.connections_per_worker}")
    return runs
