"""The dashboard and the alert rules of wasm-plugins-yaml/observability,
proven against a real Prometheus (Debian's package, `make prometheus`)
scraping real Envoys: every panel query returns data for the traffic sent,
every alert expression fires in the scenario made for it and is quiet in
the baseline; promtool checks and unit-tests the rules and finds nothing to
say about our metrics on a real scrape beyond the HELP text Envoy never
writes. The main panels are drawn from the same answers (docs/dashboard.png)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from harness import REPO, ChildProcess, free_port
from harness.demo import auth_headers
from harness.envoy import COMPOSED, WASM_FILTER_TYPE, hcm, load_template, plugin_config, start_envoy

sys.path.insert(0, str(REPO / "local" / "demo"))
import fake_llm  # noqa: E402

OBS = REPO / "wasm-plugins-yaml" / "observability"
RULES = OBS / "alerts.rules.yaml"
NOOP_WASM = REPO / "target" / "wasm32-wasip1" / "release" / "noop_filter.wasm"
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
# Never skipped: without Prometheus these tests fail, saying how to get it.
assert PROMETHEUS and PROMTOOL, "prometheus and promtool are not on PATH: `make prometheus` installs them"


def alerts() -> dict[str, str]:
    return {r["alert"]: r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}


def panels() -> dict[str, list[str]]:
    board = json.loads((OBS / "dashboard.json").read_text())
    return {p["title"]: [t["expr"].replace("$__rate_interval", "1m") for t in p["targets"]] for p in board["panels"]}


def test_rules_check_and_pass_their_unit_tests_and_ship_as_a_prometheus_rule():
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(OBS / "alerts.test.yaml")]):
        out = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=OBS)
        assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([sys.executable, str(OBS / "build.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rule = yaml.safe_load((OBS / "prometheus-rule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    board = json.loads((OBS / "dashboard.json").read_text())
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]
    assert all(t["datasource"]["uid"] == "${datasource}" for p in board["panels"] for t in p["targets"])


class Prometheus:
    def __init__(self, workdir: Path, targets: dict[str, int]):
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [{"job_name": name, "metrics_path": "/stats/prometheus", "scrape_interval": "1s",
                                      "static_configs": [{"targets": [f"127.0.0.1:{port}"],
                                                          "labels": {"pod": name, "namespace": "test"}}]}
                                     for name, port in targets.items()]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = ChildProcess("prometheus", [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
                                                f"--storage.tsdb.path={workdir / 'tsdb'}",
                                                f"--web.listen-address=127.0.0.1:{self.port}"], workdir)
        self.wait(lambda: self.get("/-/ready") is not None, "ready")
        self.targets = list(targets)

    def get(self, path: str):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.read()
        except urllib.error.HTTPError as e:  # a bad query: Prometheus says why
            return e.read()
        except OSError:
            return None

    def wait(self, done, what: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while not done():
            assert self.proc.poll() is None, self.proc.output()
            assert time.monotonic() < deadline, f"prometheus: not {what}: {self.proc.output()[-2000:]}"
            time.sleep(0.2)

    def query(self, expr: str) -> list[dict]:
        body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        answer = json.loads(body)
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def query_range(self, expr: str, start: float, end: float) -> list[dict]:
        qs = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 1})
        return json.loads(self.get("/api/v1/query_range?" + qs))["data"]["result"]

    def scraped(self):
        """Waits until every target was scraped twice after now."""
        since = time.time()
        time.sleep(2.2)
        self.wait(lambda: all(self.query(f'timestamp(up{{job="{t}"}}) > {since + 1}') for t in self.targets),
                  "scraped")

    def stop(self):
        self.proc.stop()


def _with_trap_filter(b: dict) -> None:
    """The no-op module told to trap every request, reloaded on failure."""
    manager = hcm(b)
    manager["http_filters"] = [{
        "name": "trap",
        "typed_config": {"@type": WASM_FILTER_TYPE, "config": {
            "name": "trap", "root_id": "trap", "failure_policy": "FAIL_RELOAD",
            "vm_config": {"vm_id": "trap", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": str(NOOP_WASM)}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "trap 1"}}},
    }] + manager["http_filters"][-1:]


FAIL_OPEN = {"limiter": "global", "default_plan": "free", "failure_mode": "open",
             "plans": {"free": {"requests_per_minute": 60000, "burst": 1000}},
             "global": {"cluster": "nowhere", "domain": "mcp", "timeout_ms": 20}}


def _llm(envoy, api: str, words: int = 20, stream: bool = False, key: int = 0):
    prompt = " ".join(["word"] * words)
    paths = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
             "gemini": "/v1beta/models/gemini-2.5-flash:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")}
    if api == "gemini":
        body = {"contents": [{"parts": [{"text": prompt}]}]}
    else:
        body = {"model": "gpt-4o-mini" if api == "openai" else "claude-sonnet-4-5", "max_tokens": 64,
                "messages": [{"role": "user", "content": prompt}], "stream": stream}
        if api == "openai" and stream:
            body["stream_options"] = {"include_usage": True}
    r = envoy.request("POST", paths[api], {"content-type": "application/json", **auth_headers(key)}, body)
    assert r.status == 200, (api, r.status, r.body[:200])


def _mcp(envoy, key: int, method: str = "tools/call", name: str | None = "get_debate", modern: bool = True):
    body = {"jsonrpc": "2.0", "id": 1, "method": method,
            "params": {**({"name": name, "arguments": {"debate_id": "d-1"}} if name else {}),
                       "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    headers = {"accept": "application/json, text/event-stream", **auth_headers(key)}
    if modern:
        headers |= {"mcp-protocol-version": "2026-07-28", "mcp-method": method, **({"mcp-name": name} if name else {})}
    return envoy.request("POST", "/mcp", headers, body)


def test_every_panel_and_alert_against_a_real_prometheus(tmp_path, upstream):
    assert NOOP_WASM.exists(), "make noop-wasm"
    started = []
    try:
        with fake_llm.FakeLLM() as provider:
            ups = {"mcp_debate": upstream.port, "llm_provider": provider.port}
            # The shipped chain, with room on the pro plan's LLM class for the
            # token-spend scenario (the free plan keeps its burst of 20).
            limits = plugin_config(load_template(), "org-rate-limit")
            limits["plans"]["pro"]["route_classes"]["llm"]["burst"] = 1000
            main = start_envoy(tmp_path / "main", upstreams=ups, configs={"org-rate-limit": limits}, layout=COMPOSED)
            open_ = start_envoy(tmp_path / "open", upstreams=ups, filters=["org-rate-limit"],
                                configs={"org-rate-limit": FAIL_OPEN}, layout=COMPOSED)
            trap = start_envoy(tmp_path / "trap", upstreams=ups, filters=[], mutate=_with_trap_filter)
            started += [main, open_, trap]
            prom = Prometheus(tmp_path, {"main": main.admin_port, "open": open_.admin_port, "trap": trap.admin_port})
            started.append(prom)
            t0 = time.time()

            # Baseline: healthy MCP and LLM traffic of every provider, JSON and SSE.
            for i in range(10):
                assert _mcp(main, 0).status == 200
            for api in ["openai", "anthropic", "gemini"]:
                for stream in (False, True):
                    _llm(main, api, stream=stream)
            prom.scraped()
            for name, expr in alerts().items():
                assert prom.query(expr) == [], f"{name} fires in the baseline"

            # One scenario per alert.
            for _ in range(60):
                main.request("GET", "/debates", {"x-api-key": "mcpk_not_a_key"})
            for _ in range(50):  # globex: free plan, burst 20
                main.request("GET", "/debates", auth_headers(2))
            for _ in range(5):
                open_.request("GET", "/debates", {"x-mcp-org-id": "acme", "x-mcp-plan": "free"})
            # OpenAI streams usage only when asked (stream_options). The
            # series is born with its first call: one, a scrape, then more.
            stream = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            llm_headers = {"content-type": "application/json", **auth_headers(0)}
            assert main.request("POST", "/v1/chat/completions", llm_headers, stream).status == 200
            for _ in range(3):  # a trapping VM, reloaded (with a backoff) for the next request
                assert trap.request("GET", "/debates").status >= 500
            prom.scraped()
            for _ in range(4):
                assert main.request("POST", "/v1/chat/completions", llm_headers, stream).status == 200
            for _ in range(25):  # 2.5 M input tokens: over 2 M an hour
                _llm(main, "openai", words=100_000)
            # The guard's panels: a lying header, a denied tool, a filtered list.
            assert _mcp(main, 0, name="get_debate").status == 200
            main.request("POST", "/mcp", {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call",
                                          "mcp-name": "get_debate", **auth_headers(0)},
                         {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                             "name": "run_debate_round", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}})
            assert _mcp(main, 1, name="run_debate_round").status == 403
            prom.scraped()

            firing = {name: prom.query(expr) for name, expr in alerts().items()}
            assert all(firing.values()), {n: r for n, r in firing.items() if not r}
            by_pod = {name: {r["metric"].get("pod") for r in result} for name, result in firing.items()}
            assert by_pod["McpRateLimitFailingOpen"] == {"open"}
            assert by_pod["McpWasmVmFailure"] == {"trap"}
            assert {r["metric"]["org_id"] for r in firing["McpTokenSpendHigh"]} == {"acme"}
            assert {r["metric"]["plan"] for r in firing["McpPlanRateLimited"]} == {"free"}

            empty = {title: exprs for title, exprs in panels().items() if not any(prom.query(e) for e in exprs)}
            assert not empty, f"panels without data: {empty}"

            # promtool on a real scrape: nothing about our metrics but HELP.
            scrape = urllib.request.urlopen(f"http://127.0.0.1:{main.admin_port}/stats/prometheus").read()
            out = subprocess.run([PROMTOOL, "check", "metrics"], input=scrape, capture_output=True)
            ours = [l for l in out.stderr.decode().splitlines() + out.stdout.decode().splitlines()
                    if l.startswith("mcp_") and "no help text" not in l]
            assert ours == [], ours
            assert any(l.startswith("mcp_") for l in out.stderr.decode().splitlines()), "promtool saw our metrics"

            picture = tmp_path / "dashboard.png"
            draw(prom, t0, time.time(), picture)
            assert picture.stat().st_size > 20_000
            if (target := __import__("os").environ.get("MESH_DASHBOARD_PNG")):
                shutil.copy(picture, target)
    finally:
        for s in reversed(started):
            s.stop()


MAIN_PANELS = ["Auth decisions by reason", "Rate limit decisions by plan", "LLM tokens by provider, model and type",
               "Top organizations by LLM tokens", "LLM call outcomes and usage missing",
               "MCP tool denials and header mismatches"]


def draw(prom: Prometheus, start: float, end: float, path: Path) -> None:
    """The dashboard's main panels as an operator sees them, from Prometheus's
    answers (matplotlib; the queries are the dashboard's own)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board = {p["title"]: p for p in json.loads((OBS / "dashboard.json").read_text())["panels"]}
    fig, axes = plt.subplots(3, 2, figsize=(14, 11))
    for ax, title in zip(axes.flat, MAIN_PANELS):
        for target in board[title]["targets"]:
            expr = target["expr"].replace("$__rate_interval", "15s")
            answers = prom.query_range(expr, start, end)
            # The busiest series first: a legend of what moved.
            answers.sort(key=lambda r: -max(float(v) for _, v in r["values"]))
            for series in answers[:6]:
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                label = target["legendFormat"]
                for k, v in series["metric"].items():
                    label = label.replace("{{" + k + "}}", v)
                ax.plot(xs, ys, label=label[:48])
        ax.set_title(title)
        ax.set_xlabel("seconds into the test")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("MCP mesh filters: the dashboard's main panels, from a real Prometheus (tests/test_observability.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def test_istio_histogram_buckets_are_the_token_buckets(tmp_path, upstream):
    """The bucket annotation shipped for mcp-llm gives Envoy the same token
    buckets as local/envoy.yaml, matched by Istio's prefix rule."""
    patch = yaml.safe_load((OBS / "mcp-llm-histogram-buckets.yaml").read_text())
    annotation = patch["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/statsHistogramBuckets"]
    buckets = json.loads(annotation)
    local = load_template()["stats_config"]["histogram_bucket_settings"]
    [(prefix, values)] = buckets.items()
    assert values == local[0]["buckets"]

    def istio_style(b):  # what the annotation becomes in the sidecar's bootstrap
        b["stats_config"]["histogram_bucket_settings"] = [{"match": {"prefix": prefix}, "buckets": values}]

    with fake_llm.FakeLLM() as provider:
        envoy = start_envoy(tmp_path, upstreams={"mcp_debate": upstream.port, "llm_provider": provider.port},
                            mutate=istio_style, layout=COMPOSED)
        try:
            _llm(envoy, "openai")
            les = {labels["le"] for labels, _ in envoy.samples("mcp_llm_request_tokens_bucket")}
        finally:
            envoy.stop()
    assert {"1", "4", "16", "67108864", "+Inf"} <= les, les
