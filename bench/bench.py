"""`make bench`: the cost of each filter and of the whole chain, side by side
with bare and native Envoy, in real Envoy 1.40 processes driven by wrk on
loopback. Prints and writes bench/RESULTS.md.

Sections (all by default, in this order):
  throughput  every configuration x {1, 2} workers, alternating rounds
  accuracy    rate-limit admits, org-rate-limit vs native local_ratelimit
  budgets     token-budget accuracy under concurrency, local and global
  sse         1 MiB and 64 MiB streams through token-usage-metrics vs bare
  memory      RSS over 1M requests across 100k organizations, full chain
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the integration-test harness
sys.path.insert(0, str(HERE))

import accuracy  # noqa: E402
import budgets  # noqa: E402
import instructions  # noqa: E402
import memory  # noqa: E402
import sse  # noqa: E402
import throughput  # noqa: E402
from configs import make_certs, upstream_bootstrap  # noqa: E402
from machine import Machine  # noqa: E402
from procs import start_envoy  # noqa: E402
from report import Report  # noqa: E402
from session import Options, Session  # noqa: E402

SECTIONS = ("instructions", "throughput", "accuracy", "budgets", "sse", "memory")
RESULTS = HERE / "RESULTS.md"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run of every section: 1 short round, 50k requests over 5k orgs; "
                        "does not touch bench/RESULTS.md unless --out says so")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ", ".join(SECTIONS))
    p.add_argument("--rounds", type=int, help="throughput rounds (default 5)")
    p.add_argument("--duration", type=float, help="whole seconds per configuration per round (default 1)")
    p.add_argument("--memory-requests", type=int, help="requests in the memory run (default 1,000,000)")
    p.add_argument("--memory-orgs", type=int, help="organizations (= API keys) in the memory run (default 100,000)")
    p.add_argument("--budget", type=float,
                   help="seconds the whole run may take (default 1320, less the build under `make bench`, so that "
                        "`make bench` stays under 22 minutes); "
                        "the memory run, last, gets what is left")
    p.add_argument("--only", help="comma-separated configuration names (instructions and throughput sections)")
    p.add_argument("--out", type=Path, help="where to write the results (default bench/RESULTS.md)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (configs, logs, access logs)")
    args = p.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}")
    return args


def options(args: argparse.Namespace) -> Options:
    o = Options()
    if args.quick:
        o.rounds, o.duration_s = 1, 1.0
        o.memory_requests, o.memory_orgs = 50_000, 5_000
        o.accuracy_runs = 1
        o.quick = True
    o.rounds = args.rounds or o.rounds
    o.duration_s = args.duration or o.duration_s
    o.memory_requests = args.memory_requests or o.memory_requests
    o.memory_orgs = args.memory_orgs or o.memory_orgs
    o.budget_s = args.budget or o.budget_s
    o.only = tuple(n.strip() for n in args.only.split(",")) if args.only else ()
    # Under `make bench` the budget covers the build that came first.
    if os.environ.get("BENCH_STARTED") and not args.budget:
        o.budget_s -= max(0.0, time.time() - float(os.environ["BENCH_STARTED"]))
    return o


def log(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    opts = options(args)
    sections = [s for s in SECTIONS if s in args.sections.split(",")]
    out = args.out or (None if args.quick else RESULTS)
    command = "make bench" if os.environ.get("MAKELEVEL") else " ".join(["bench/run.sh", *argv])
    if os.nice(0) > 0:
        command = f"nice -n {os.nice(0)} {command}"

    # A SIGTERM (CI timeout, Ctrl-C of make) still stops every child below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    machine = Machine.probe()
    if os.environ.get("BENCH_STARTED"):
        machine.build_s = max(0.0, time.time() - float(os.environ["BENCH_STARTED"]))
    session = Session(opts, workdir)
    started = time.monotonic()
    results: dict = {}
    try:
        upstream = start_envoy(workdir / "upstream", "upstream", upstream_bootstrap(), concurrency=2)
        session.track(upstream)
        session.upstream_port = upstream.port
        # TLS both ways for the sidecar-like configurations.
        session.certs = make_certs(workdir / "certs")
        upstream_tls = start_envoy(workdir / "upstream-tls", "upstream-tls", upstream_bootstrap(session.certs),
                                   concurrency=2)
        session.track(upstream_tls)
        session.upstream_tls_port = upstream_tls.port
        log(f"upstream Envoy (direct_response) on :{upstream.port}; work folder {workdir}")
        for name in sections:
            t = time.monotonic()
            log(f"== {name}")
            module = {"instructions": instructions, "throughput": throughput, "accuracy": accuracy,
                      "budgets": budgets, "sse": sse, "memory": memory}[name]
            results[name] = module.run(session, log)
            log(f"   ({time.monotonic() - t:.0f}s)")
    finally:
        session.stop_all()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    machine.finish(time.monotonic() - started)

    report = Report(machine, opts, command, charts_dir=out.parent / "charts" if out else None)
    report.header()
    report.machine()
    report.wasm()
    wrk_commands = []
    if "instructions" in results:
        report.instructions(results["instructions"])
    if "throughput" in results:
        report.throughput(results["throughput"])
        seen = set()
        for cell in results["throughput"]:
            if cell.request not in seen and cell.results:
                seen.add(cell.request)
                wrk_commands.append(cell.results[0].command)
    if "sse" in results:
        report.sse(results["sse"])
    if "memory" in results:
        report.memory(results["memory"])
        wrk_commands.append(results["memory"].command)
    if "accuracy" in results:
        report.accuracy(results["accuracy"])
        if results["accuracy"]:
            wrk_commands.append(results["accuracy"][0].command)
    if "budgets" in results:
        report.budgets(results["budgets"])
    report.commands(session.envoy_commands, wrk_commands)
    if "throughput" in results:
        report.notes()
    text = report.render()
    print("\n" + text)
    if out:
        out.write_text(text)
        log(f"wrote {out} ({machine.wall_s / 60:.1f} minutes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
