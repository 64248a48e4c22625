"""org-rate-limit's global mode: two Envoy processes ("replicas", 2 workers
each) share one rate-limit service (envoy.service.ratelimit.v3 over gRPC)
that counts in a real redis-server.

Needs `redis-server` (Debian package, `make test` installs it) and the
Python packages of requirements.txt (grpcio, protobuf, limits, redis).
"""

from __future__ import annotations

import sys
import time

import pytest

from harness import ChildProcess, HeldPort, wait_for_output
from harness.ratelimit import RLS_SERVER
from test_org_rate_limit import direct_response_route, hammer


def per_org(amount: int, unit: str = "hour", plan: str = "free") -> dict:
    return {"domain": "mcp", "descriptor": {"plan": plan, "org_id": "*"},
            "requests_per_unit": amount, "unit": unit}


def config(limiter: str = "global", **global_extra) -> dict:
    return {
        "limiter": limiter,
        "default_plan": "free",
        "plans": {"free": {"requests_per_hour": 1, "burst": 100000}},
        "global": {"cluster": "ratelimit", "domain": "mcp", **global_extra},
    }


def replica(envoy_factory, rls_port: int, cfg: dict):
    return envoy_factory(filters=["org-rate-limit"], configs={"org-rate-limit": cfg}, concurrency=2,
                         upstreams={"ratelimit": rls_port}, mutate=direct_response_route)


def org(name: str, plan: str = "free") -> dict:
    return {"x-mcp-org-id": name, "x-mcp-plan": plan}


def test_one_limit_holds_across_two_replicas(envoy_factory, rls_factory):
    limit = 300
    rls = rls_factory([per_org(limit)])
    # A generous timeout: this measures the shared count, not latency.
    cfg = config(timeout_ms=2000)
    a = replica(envoy_factory, rls.port, cfg)
    b = replica(envoy_factory, rls.port, cfg)
    results = hammer([a, b], total=500, connections=32, headers=org("acme"))
    admitted = results.count(200)
    assert results.count(429) + admitted == 500, {s: results.count(s) for s in set(results)}
    assert admitted == limit, f"admitted {admitted} of {limit} across both replicas"
    both = [a.metric("mcp_ratelimit_requests_total", decision="allowed", plan="free") or 0,
            b.metric("mcp_ratelimit_requests_total", decision="allowed", plan="free") or 0]
    assert sum(both) == limit and min(both) > 0, both
    # A local bucket per replica would have admitted up to twice the limit;
    # another organization still has its own full quota.
    assert a.request("GET", "/direct", org("globex")).status == 200


def test_global_429_carries_the_services_quota_and_jsonrpc_id(envoy_factory, rls_factory, upstream):
    rls = rls_factory([per_org(2, unit="minute")])
    cfg = config(timeout_ms=2000)
    cfg["costs"] = [{"mcp_method": "tools/call", "cost": 1}]
    envoy = envoy_factory(filters=["org-rate-limit"], configs={"org-rate-limit": cfg}, concurrency=2,
                          upstreams={"ratelimit": rls.port})
    for i in (1, 2):
        assert envoy.mcp_call("tools/call", {"name": "x"}, id=i, headers=org("acme")).status == 200
    r = envoy.mcp_call("tools/call", {"name": "x"}, id="third", headers=org("acme"))
    assert r.status == 429
    assert r.json()["id"] == "third" and r.json()["error"]["code"] == -32029
    assert r.header("ratelimit-policy") == '"free";q=2;w=60'
    assert r.header("x-ratelimit-limit") == "2" and r.header("x-ratelimit-remaining") == "0"
    assert 1 <= int(r.header("retry-after")) <= 61
    assert [l["ratelimit_result"] for l in envoy.access_log(expect=3)] == ["allowed", "allowed", "limited"]


def test_costs_travel_as_hits_addend(envoy_factory, rls_factory):
    rls = rls_factory([per_org(10)])
    cfg = config(timeout_ms=2000)
    cfg["costs"] = [{"path_prefix": "/direct/expensive", "cost": 4}]
    envoy = replica(envoy_factory, rls.port, cfg)
    paths = ["/direct/expensive", "/direct/expensive", "/direct/cheap", "/direct/cheap", "/direct/cheap"]
    statuses = [envoy.request("GET", p, org("acme")).status for p in paths]
    # 4 + 4 + 1 + 1 = 10, the 11th token is refused (counted as 1 each, all 5 would pass).
    assert statuses == [200, 200, 200, 200, 429]


@pytest.mark.parametrize("failure_mode, expected, decision", [
    ("open", 200, "fail_open"),
    ("closed", 429, "fail_closed"),
])
def test_service_down_gives_the_failure_mode(envoy_factory, failure_mode, expected, decision):
    dead = HeldPort()  # bound, never listening: connections are refused
    envoy = replica(envoy_factory, dead.port, config(failure_mode=failure_mode))
    statuses = [envoy.request("GET", "/direct", org("acme")).status for _ in range(5)]
    assert statuses == [expected] * 5
    assert envoy.metric("mcp_ratelimit_requests_total", decision=decision, plan="free") == 5
    errors = envoy.metric("mcp_ratelimit_service_errors_total")
    assert errors == 5, envoy.samples("mcp_ratelimit_service_errors_total")
    logs = envoy.access_log(expect=5)
    assert {l["ratelimit_result"] for l in logs} == {decision}
    dead.close()


def test_a_second_rate_limit_service_cannot_share_a_port(rls_factory, tmp_path):
    """Regression for the once-flaky shadow test: gRPC's default SO_REUSEPORT
    let two test services bind one port and split its connections."""
    first = rls_factory([per_org(2)])
    dup = ChildProcess("dup", [sys.executable, str(RLS_SERVER), "--port", str(first.port),
                               "--redis", "redis://127.0.0.1:1", "--limits", "[]"], tmp_path)
    try:
        with pytest.raises(RuntimeError, match="Failed to bind"):
            wait_for_output(dup, r"^listening on")
    finally:
        dup.stop()


def test_slow_service_hits_the_timeout(envoy_factory, rls_factory):
    rls = rls_factory([per_org(100)], delay_ms=300)
    envoy = replica(envoy_factory, rls.port, config(timeout_ms=20, failure_mode="open"))
    # The first call also opens the HTTP/2 connection to the service; measure
    # the ones after it.
    assert envoy.request("GET", "/direct", org("acme")).status == 200
    before = envoy.metric("mcp_ratelimit_service_errors_total", reason="timeout") or 0
    started = time.monotonic()
    statuses = [envoy.request("GET", "/direct", org("acme")).status for _ in range(3)]
    took = time.monotonic() - started
    assert statuses == [200, 200, 200]
    assert took < 0.9, f"3 requests took {took:.2f}s: the 20 ms timeout did not cut the 300 ms service"
    after = envoy.metric("mcp_ratelimit_service_errors_total", reason="timeout")
    assert after - before == 3, envoy.samples("mcp_ratelimit_service_errors_total")
    assert envoy.metric("mcp_ratelimit_requests_total", decision="fail_open", plan="free") == 4
    closed = replica(envoy_factory, rls.port, config(timeout_ms=20, failure_mode="closed"))
    r = closed.request("GET", "/direct", org("acme"))
    assert r.status == 429 and r.header("retry-after") == "1"


@pytest.mark.parametrize("hang", ["hang", "stall"])
@pytest.mark.parametrize("failure_mode, expected, decision", [
    ("open", 200, "fail_open"),
    ("closed", 429, "fail_closed"),
])
def test_a_service_that_never_answers_gets_the_failure_mode_within_the_timeout(
        envoy_factory, rls_factory, hang, failure_mode, expected, decision):
    """A service that accepts the call and never answers (`hang`), or sends
    its response headers and then nothing (`stall`): the timeout still fires
    (Kuadrant wasm-shim#425 saw it not fire for another shim)."""
    rls = rls_factory([per_org(100)], hang=hang)
    envoy = replica(envoy_factory, rls.port, config(timeout_ms=50, failure_mode=failure_mode))
    assert envoy.request("GET", "/direct", org("acme")).status == expected  # opens the connection
    started = time.monotonic()
    statuses = [envoy.request("GET", "/direct", org("acme")).status for _ in range(5)]
    took = time.monotonic() - started
    assert statuses == [expected] * 5
    assert took < 2.0, f"5 requests took {took:.2f}s against a 50 ms timeout"
    assert envoy.metric("mcp_ratelimit_requests_total", decision=decision, plan="free") == 6
    assert envoy.metric("mcp_ratelimit_service_errors_total", reason="timeout") == 6, \
        envoy.samples("mcp_ratelimit_service_errors_total")


def test_local_then_global_rejects_locally_first(envoy_factory, rls_factory):
    rls = rls_factory([per_org(1000)])
    cfg = config("local_then_global", timeout_ms=2000)
    cfg["plans"] = {"free": {"requests_per_hour": 1, "burst": 3}}
    envoy = replica(envoy_factory, rls.port, cfg)
    statuses = [envoy.request("GET", "/direct", org("acme")).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    # Only the three the local bucket let through reached the service: a
    # global replica's request is the 4th hit, 996 of 1000 left.
    probe = config(timeout_ms=2000)
    probe["response_headers"] = "always"
    other = replica(envoy_factory, rls.port, probe)
    r = other.request("GET", "/direct", org("acme"))
    assert r.status == 200
    assert r.header("x-ratelimit-limit") == "1000"
    assert r.header("x-ratelimit-remaining") == "996"


def test_shadow_mode_in_global_lets_everything_through(envoy_factory, rls_factory):
    rls = rls_factory([per_org(2)])
    cfg = config(timeout_ms=2000)
    cfg["mode"] = "shadow"
    envoy = replica(envoy_factory, rls.port, cfg)
    assert [envoy.request("GET", "/direct", org("acme")).status for _ in range(4)] == [200] * 4
    assert envoy.metric("mcp_ratelimit_requests_total", decision="shadow_limited", plan="free") == 2
