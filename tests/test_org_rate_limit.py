"""org-rate-limit in a real Envoy 1.40 with two worker threads.

Identity headers (x-mcp-org-id, x-mcp-plan) are sent by the test itself, as
api-key-auth would set them; only org-rate-limit runs.
"""

from __future__ import annotations

import http.client
import json
import re
import threading

import pytest

from harness.envoy import config_field, expect_start_failure

HOUR_ONE = {"requests_per_hour": 1}


def org(name: str, plan: str | None = None) -> dict:
    h = {"x-mcp-org-id": name}
    if plan:
        h["x-mcp-plan"] = plan
    return h


def direct_response_route(bootstrap: dict) -> None:
    """/direct is answered by Envoy itself (after the filter chain ran), so a
    load test measures the filter, not the test's Python upstream."""
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    routes.insert(0, {"match": {"prefix": "/direct"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}})


def start(envoy_factory, config: dict, concurrency: int = 2):
    return envoy_factory(filters=["org-rate-limit"], configs={"org-rate-limit": config},
                         concurrency=concurrency, mutate=direct_response_route)


def statuses(envoy, n: int, headers: dict, path: str = "/mcp") -> list[int]:
    return [envoy.request("GET", path, headers).status for _ in range(n)]


def hammer(envoys, total: int, connections: int, headers: dict, path: str = "/direct") -> list[int]:
    """`total` GETs over `connections` parallel keep-alive connections, spread
    round-robin over one Envoy or a list of them; the statuses, in any order."""
    envoys = envoys if isinstance(envoys, list) else [envoys]
    results: list[int] = []
    lock = threading.Lock()
    per = [total // connections + (1 if i < total % connections else 0) for i in range(connections)]
    start_gate = threading.Barrier(connections)

    def worker(i: int, count: int):
        port = envoys[i % len(envoys)].port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        start_gate.wait()
        for _ in range(count):
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(resp.status)
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(i, n)) for i, n in enumerate(per)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def worker_connections(envoy) -> dict[str, float]:
    """Downstream connections accepted per Envoy worker thread."""
    out = {}
    for line in envoy.admin("/stats").splitlines():
        m = re.match(r"listener\.127\.0\.0\.1_\d+\.(worker_\d+)\.downstream_cx_total: (\d+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_exact_admits_across_two_workers_and_64_connections(envoy_factory, upstream):
    burst = 1000
    envoy = start(envoy_factory, {
        "default_plan": "bulk",
        "plans": {"bulk": {**HOUR_ONE, "burst": burst}},
    })
    results = hammer(envoy, total=1600, connections=64, headers=org("acme"))
    admitted = results.count(200)
    assert len(results) == 1600
    counts = {s: results.count(s) for s in set(results)}
    assert admitted == burst, f"admitted {admitted}, expected exactly {burst}: {counts}"
    assert results.count(429) == 600
    workers = worker_connections(envoy)
    assert len(workers) == 2 and all(v > 0 for v in workers.values()), workers
    assert envoy.metric("mcp_ratelimit_requests_total", decision="allowed", plan="bulk") == burst
    assert envoy.metric("mcp_ratelimit_requests_total", decision="limited", plan="bulk") == 600


def test_429_carries_every_rate_limit_header_and_a_json_body(envoy_factory, upstream):
    envoy = start(envoy_factory, {
        "default_plan": "free",
        "plans": {"free": {"requests_per_minute": 2}},
    })
    assert statuses(envoy, 2, org("acme")) == [200, 200]
    r = envoy.request("GET", "/mcp", org("acme"))
    assert r.status == 429
    assert 1 <= int(r.header("retry-after")) <= 30
    assert r.header("ratelimit-policy") == '"free";q=2;w=60'
    assert re.fullmatch(r'"free";r=0;t=(\d+)', r.header("ratelimit")), r.header("ratelimit")
    assert r.header("x-ratelimit-limit") == "2"
    assert r.header("x-ratelimit-remaining") == "0"
    assert 30 < int(r.header("x-ratelimit-reset")) <= 60
    assert r.header("content-type") == "application/json"
    assert r.json() == {"error": {"code": "rate_limited", "message": "rate limit exceeded for this organization"}}
    assert len(upstream.received) == 2


def test_mcp_requests_get_jsonrpc_errors(envoy_factory, upstream):
    # No cost rule reads the body: the answer comes before the upstream sees
    # anything, so the id cannot be known and is null (JSON-RPC 2.0, 5.).
    envoy = start(envoy_factory, {"plans": {"free": {"requests_per_minute": 1}}})
    assert envoy.mcp_call("tools/list", id="req-1", headers=org("acme")).status == 200
    r = envoy.mcp_call("tools/list", id="req-7", headers=org("acme"))
    assert r.status == 429
    body = r.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32029
    assert body["error"]["data"]["code"] == "rate_limited"
    assert r.header("retry-after") and r.header("ratelimit")
    assert len(upstream.received) == 1


def test_jsonrpc_error_echoes_the_id_when_the_body_was_read(envoy_factory, upstream):
    envoy = start(envoy_factory, {
        "plans": {"free": {"requests_per_hour": 1, "burst": 3}},
        "costs": [{"mcp_method": "tools/call", "cost": 2}],
    })
    assert envoy.mcp_call("tools/call", {"name": "a"}, id="req-1", headers=org("acme")).status == 200
    r = envoy.mcp_call("tools/call", {"name": "a"}, id="req-7", headers=org("acme"))
    assert r.status == 429
    assert r.json()["id"] == "req-7"
    assert r.json()["error"]["code"] == -32029
    # Numeric ids too: 1 token left still affords the cheapest possible cost
    # (1, a non-tools/call message), so the body is read and costed.
    r = envoy.mcp_call("tools/call", {"name": "a"}, id=42, headers=org("acme"))
    assert r.status == 429 and r.json()["id"] == 42
    assert envoy.mcp_call("ping", id=43, headers=org("acme")).status == 200
    # Empty bucket: answered from the headers alone, id unknown.
    r = envoy.mcp_call("tools/call", {"name": "a"}, id=44, headers=org("acme"))
    assert r.status == 429 and r.json()["id"] is None
    # Denied after reading the body: the upstream saw the headers (Proxy-Wasm
    # in Envoy only hands a filter the body once the headers went on) but not
    # one byte of the body before the stream was reset.
    delivered = [json.loads(x.body)["id"] for x in upstream.received if x.body]
    assert delivered == ["req-1", 43]


def test_allowed_responses_carry_headers_when_asked(envoy_factory, upstream):
    envoy = start(envoy_factory, {
        "plans": {"free": {"requests_per_minute": 60, "burst": 5}},
        "response_headers": "always",
    })
    r = envoy.request("GET", "/mcp", org("acme"))
    assert r.status == 200
    assert r.header("x-ratelimit-limit") == "5"
    assert r.header("x-ratelimit-remaining") == "4"
    assert r.header("ratelimit-policy") == '"free";q=5;w=5'
    assert r.header("retry-after") is None
    # Default: only 429 answers carry them.
    plain = start(envoy_factory, {"plans": {"free": {"requests_per_minute": 60}}})
    assert plain.request("GET", "/mcp", org("acme")).header("x-ratelimit-limit") is None


def test_shadow_mode_counts_and_logs_but_lets_everything_through(envoy_factory, upstream):
    envoy = start(envoy_factory, {
        "mode": "shadow",
        "plans": {"free": {"requests_per_minute": 1}},
    })
    assert statuses(envoy, 4, org("acme")) == [200] * 4
    assert len(upstream.received) == 4
    assert envoy.metric("mcp_ratelimit_requests_total", decision="allowed", plan="free") == 1
    assert envoy.metric("mcp_ratelimit_requests_total", decision="shadow_limited", plan="free") == 3
    assert envoy.log().count("shadow: would limit org=acme plan=free class=default") == 3
    results = [line["ratelimit_result"] for line in envoy.access_log(expect=4)]
    assert results == ["allowed", "shadow_limited", "shadow_limited", "shadow_limited"]


def test_organizations_are_isolated(envoy_factory, upstream):
    envoy = start(envoy_factory, {"plans": {"free": {"requests_per_minute": 2}}})
    assert statuses(envoy, 3, org("acme")) == [200, 200, 429]
    assert statuses(envoy, 3, org("globex")) == [200, 200, 429]
    assert envoy.request("GET", "/mcp", org("acme")).status == 429


def test_plans_and_organization_overrides(envoy_factory, upstream):
    envoy = start(envoy_factory, {
        "default_plan": "free",
        "plans": {
            "free": {"requests_per_minute": 1},
            "pro": {"requests_per_minute": 3},
        },
        "organizations": {
            "acme": {"plan": "pro"},
            "bigco": {"requests_per_hour": 5},
        },
    })
    # The plan header picks the plan ...
    assert statuses(envoy, 4, org("o1", "pro")) == [200, 200, 200, 429]
    assert statuses(envoy, 2, org("o2", "free")) == [200, 429]
    # ... an unknown or missing plan gets the default ...
    assert statuses(envoy, 2, org("o3", "platinum")) == [200, 429]
    assert statuses(envoy, 2, org("o4")) == [200, 429]
    # ... and the organization override beats the header.
    assert statuses(envoy, 4, org("acme", "free")) == [200, 200, 200, 429]
    r = None
    for _ in range(6):
        r = envoy.request("GET", "/mcp", org("bigco", "free"))
    assert r.status == 429
    assert r.header("ratelimit-policy") == '"organization";q=5;w=3600'
    assert envoy.metric("mcp_ratelimit_requests_total", decision="allowed", plan="organization") == 5


def test_mcp_tool_costs_and_batches(envoy_factory, upstream):
    envoy = start(envoy_factory, {
        "plans": {"free": {"requests_per_hour": 1, "burst": 12}},
        "costs": [{"mcp_method": "tools/call", "tool": "run_debate_round", "cost": 5}],
    })
    h = org("acme")
    run = {"name": "run_debate_round", "arguments": {"debate_id": "d-1"}}
    assert envoy.mcp_call("tools/call", run, id=1, headers=h).status == 200
    assert envoy.mcp_call("tools/call", run, id=2, headers=h).status == 200
    r = envoy.mcp_call("tools/call", run, id=3, headers=h)  # 10 taken, 2 left < 5
    assert r.status == 429 and r.json()["id"] == 3
    assert r.header("x-ratelimit-remaining") == "2"
    # A cheap tool still fits, and the upstream got the body untouched.
    r = envoy.mcp_call("tools/call", {"name": "get_debate", "arguments": {}}, id=4, headers=h)
    assert r.status == 200
    assert upstream.last().json()["params"]["name"] == "get_debate"
    # A batch pays for every message: 2 x 1 = 2 > 1 left.
    batch = [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in (5, 6)]
    r = envoy.request("POST", "/mcp", org("acme"), batch)
    assert r.status == 429 and r.json()["id"] == 5
    logs = envoy.access_log(expect=5)
    assert [l["ratelimit_remaining"] for l in logs] == ["7", "2", "2", "1", "1"]


def test_route_classes_have_buckets_of_their_own(envoy_factory, upstream, llm_upstream):
    envoy = start(envoy_factory, {
        "plans": {"free": {"requests_per_minute": 2, "route_classes": {"llm": {"requests_per_minute": 1}}}},
        "route_classes": [{"name": "llm", "path_prefixes": ["/v1/"]}],
    })
    assert statuses(envoy, 2, org("acme"), "/v1/chat/completions") == [200, 429]
    assert statuses(envoy, 3, org("acme"), "/mcp") == [200, 200, 429]


def test_filter_state_reaches_the_access_log(envoy_factory, upstream):
    envoy = start(envoy_factory, {"plans": {"free": {"requests_per_minute": 2}}})
    statuses(envoy, 3, org("acme"))
    logs = envoy.access_log(expect=3)
    assert [(l["status"], l["ratelimit_result"], l["ratelimit_remaining"]) for l in logs] == [
        (200, "allowed", "1"), (200, "allowed", "0"), (429, "limited", "0"),
    ]


def test_without_identity_anonymous_bucket_or_deny(envoy_factory, upstream):
    envoy = start(envoy_factory, {"plans": {"free": {"requests_per_minute": 2}}})
    # Missing, empty and oversized org ids all share the anonymous bucket.
    huge = {"x-mcp-org-id": "x" * 5000}
    assert envoy.request("GET", "/mcp").status == 200
    assert envoy.request("GET", "/mcp", {"x-mcp-org-id": ""}).status == 200
    assert envoy.request("GET", "/mcp", huge).status == 429
    deny = start(envoy_factory, {"without_identity": "deny"})
    r = deny.request("GET", "/mcp")
    assert r.status == 403 and r.json()["error"]["code"] == "identity_required"
    assert deny.metric("mcp_ratelimit_requests_total", decision="no_identity", plan="none") == 1
    r = deny.mcp_call("ping", id="p1")
    assert r.status == 403 and r.json()["jsonrpc"] == "2.0" and r.json()["id"] is None


def test_hostile_headers_and_bodies_never_break_the_filter(envoy_factory, upstream):
    envoy = start(envoy_factory, {
        "plans": {"free": {"requests_per_minute": 100}},
        "costs": [{"mcp_method": "tools/call", "cost": 2}],
        "max_body_bytes": 64,
    })
    # Non-UTF-8 identity: treated as no identity (anonymous), no crash.
    assert envoy.request("GET", "/mcp", [("x-mcp-org-id", b"\xff\xfe\x80"), ("x-mcp-plan", b"\xc3")]).status == 200
    # Garbage, truncated and oversized JSON bodies.
    for body in [b"{not json", b'{"jsonrpc":"2.0","method":"tools/call","params":{"x":"' + b"a" * 10000 + b'"}}', b"\x00" * 100]:
        r = envoy.request("POST", "/mcp", {**org("acme"), "content-type": "application/json"}, body)
        assert r.status == 200, r.body
    assert upstream.last().body == b"\x00" * 100
    # The VM is still alive and counting.
    assert envoy.metric("mcp_ratelimit_requests_total", decision="allowed", plan="free") == 4


@pytest.mark.parametrize("config, message", [
    ({"plans": {"free": {"requests_per_minute": 60, "burst": 4}},
      "costs": [{"tool": "run_debate_round", "cost": 5}]},
     "plans.free.burst: must be >= cost 5 of costs[0]"),
    ({"default_plan": "gold"}, "default_plan: unknown plan `gold`"),
    ({"plans": {"free": {"requests_per_second": -1}}}, "plans.free.requests_per_second: invalid value"),
    ({"organizations": {"acme": {"plan": "platinum"}}}, "organizations.acme.plan: unknown plan `platinum`"),
])
def test_bad_config_is_refused_naming_the_field(tmp_path, upstream, llm_upstream, layout, config, message):
    failure = expect_start_failure(
        tmp_path,
        upstreams={"mcp_debate": upstream.port, "llm_provider": llm_upstream.port},
        filters=["org-rate-limit"],
        configs={"org-rate-limit": config},
        layout=layout,
    )
    message = config_field(layout, "org-rate-limit", message)
    assert f"invalid pluginConfig: {message}" in failure.log, failure.log[-2000:]


def test_demo_config_in_envoy_yaml_is_accepted_and_applied(envoy_factory, upstream, llm_upstream):
    # local/envoy.yaml's own pluginConfig (no override): free plan, llm class
    # burst 5, /health free of charge, headers on every response.
    envoy = envoy_factory(filters=["org-rate-limit"], concurrency=2)
    r = envoy.request("GET", "/v1/models", org("acme", "free"))
    assert r.status == 200
    assert r.header("ratelimit-policy") == '"free";q=5;w=30'
    assert r.header("x-ratelimit-remaining") == "4"
    assert envoy.request("GET", "/health", org("acme", "free")).header("x-ratelimit-remaining") == "20"


def test_max_buckets_bounds_shared_data_with_an_overflow_bucket(envoy_factory, upstream):
    # Two organization keys at most; later organizations share one overflow
    # bucket of their plan (burst 2), counted.
    envoy = start(envoy_factory, {"plans": {"free": {"requests_per_hour": 1, "burst": 2}}, "max_buckets": 2})
    assert statuses(envoy, 3, org("a")) == [200, 200, 429]
    assert statuses(envoy, 1, org("b")) == [200]
    assert statuses(envoy, 1, org("c")) == [200]
    assert statuses(envoy, 2, org("d")) == [200, 429]  # c and d share the overflow bucket
    assert statuses(envoy, 1, org("b")) == [200]  # b kept its own
    assert envoy.metric("mcp_ratelimit_bucket_overflow_total") == 3
