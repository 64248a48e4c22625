"""Envoy's memory with the composed chain (the shipped layout): resident set at start, while and after
serving a million requests spread over 100,000 organizations, with 2
workers. Each organization has its own signed API token (HS256 JWT from the
bench's issuer, added to api-key-auth's shipped config); wrk rotates through
them. Per-organization state (rate-limit buckets in shared data, metric
labels) is what could grow; the samples show whether it levels off once every
organization has been seen."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from configs import Setup, bench_jwts, plugin_configs
from harness.envoy import FILTERS
from session import Session
from traffic import rotating_mcp_request
from wrkrun import run_wrk

COMPLETED = "http.mcp_ingress.downstream_rq_completed"
MIN_SECONDS = 60


@dataclass
class MemoryRun:
    orgs: int
    target: int
    auth_config_bytes: int
    rss_start_kib: int = 0
    rss_end_kib: int = 0
    hwm_kib: int = 0
    requests: int = 0
    duration_s: float = 0.0
    non_2xx: int = 0
    socket_errors: int = 0
    samples: list[tuple[int, int]] = field(default_factory=list)  # (requests completed, RSS KiB)
    command: str = ""
    # From the access log's last lines: proof the rotation reached the filters.
    tail_lines: int = 0
    tail_orgs: int = 0
    tail_auth: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def _read_log_tail(path, result: MemoryRun, nbytes: int = 1 << 20) -> None:
    if not path.exists():
        return
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - nbytes))
        lines = f.read().splitlines()[1:]  # the first may be cut
    orgs = set()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        result.tail_lines += 1
        orgs.add(entry.get("org_id"))
        auth = str(entry.get("auth_result"))
        result.tail_auth[auth] = result.tail_auth.get(auth, 0) + 1
    result.tail_orgs = len(orgs - {None, "-"})


def run(session: Session, log) -> MemoryRun:
    opts = session.options
    configs = plugin_configs(keys=0, jwt=True)
    tokens = session.workdir / "tokens.txt"
    tokens.write_text("\n".join(bench_jwts(opts.memory_orgs)) + "\n")
    result = MemoryRun(opts.memory_orgs, opts.memory_requests, len(json.dumps(configs["api-key-auth"])))
    # The shipped layout: the four stages in mcp-mesh.wasm.
    envoy = session.start(Setup("composed chain", tuple(FILTERS), access_log="ours", layout="composed"), 2,
                          configs=configs)
    time.sleep(1.0)  # let start-up allocations settle
    result.rss_start_kib = envoy.memory()["VmRSS"]
    log(f"  composed chain, {opts.memory_orgs:,} organizations with a token each: "
        f"RSS at start {result.rss_start_kib / 1024:.1f} MiB")
    spec = rotating_mcp_request().write(session.workdir / "request-rotate.txt")

    def enough() -> bool:
        done = envoy.stat(COMPLETED)
        result.samples.append((done, envoy.memory()["VmRSS"]))
        return done >= opts.memory_requests

    # A busy machine may not reach the target within the bench's time budget:
    # the run then stops at the budget and the report says how far it got.
    seconds = max(MIN_SECONDS, session.remaining_s() - 20)
    r = run_wrk(envoy.url + "/mcp", spec, mode="rotate", threads=2, connections=64,
                duration_s=seconds, orgs=opts.memory_orgs, values=tokens, stop_when=enough, poll_s=1.0)
    time.sleep(0.5)
    mem = envoy.memory()
    result.rss_end_kib, result.hwm_kib = mem["VmRSS"], mem["VmHWM"]
    result.requests = envoy.stat(COMPLETED)
    result.duration_s = r.duration_s
    result.non_2xx = r.errors.get("status", 0)
    result.socket_errors = r.failed
    result.command = r.command
    session.stop(envoy)  # flushes the access log
    _read_log_tail(envoy.workdir / "access.log", result)
    log(f"  {result.requests:,} requests over {opts.memory_orgs:,} orgs in {r.duration_s:.0f}s "
        f"({result.rps:,.0f} rps, {result.non_2xx} non-2xx): RSS {result.rss_end_kib / 1024:.1f} MiB, "
        f"peak {result.hwm_kib / 1024:.1f} MiB; last {result.tail_lines:,} access-log lines: "
        f"{result.tail_orgs:,} organizations, auth {result.tail_auth}")
    return result
