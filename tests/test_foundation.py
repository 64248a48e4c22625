"""The ground every filter stands on: all four modules load in a real Envoy,
traffic flows through the whole chain, and a bad pluginConfig for any filter
makes Envoy refuse to start with a message naming the field."""

import json

import pytest

from harness import FILTERS
from harness.envoy import COMPOSED, COMPOSED_MODULE, DIST, config_field, expect_start_failure, plugin_config, section


def test_all_four_filters_load_and_traffic_flows(envoy_factory, upstream):
    envoy = envoy_factory()
    dump = envoy.admin("/config_dump")
    if envoy.layout == COMPOSED:
        # One module, one section per filter.
        assert str(DIST / f"{COMPOSED_MODULE}.wasm") in dump
        assert all(str(DIST / f"{name}.wasm") not in dump for name in FILTERS)
        bootstrap = json.loads(dump)["configs"][0]["bootstrap"]
        assert list(plugin_config(bootstrap, COMPOSED_MODULE)) == [section(n) for n in FILTERS]
    else:
        for name in FILTERS:
            assert str(DIST / f"{name}.wasm") in dump, name
    r = envoy.request("GET", "/health")
    assert r.status == 200, r.body
    assert upstream.last().path == "/health"


BAD_CONFIGS = {
    "api-key-auth": ({"key_sources": [{"header": ""}]}, "key_sources[0].header: must not be empty"),
    "mcp-guard": ({"rules": [{"tools": ["run_debate_round"], "allow": {"roles": [""]}}]},
                  "rules[0].allow.roles[0]: must not be empty"),
    "org-rate-limit": ({"plans": {"free": {"requests_per_minute": 0}}, "default_plan": "free"},
                       "plans.free.requests_per_minute: must be > 0"),
    "debate-access-log": ({"max_body_bytes": "lots"}, "max_body_bytes: invalid type"),
    "token-usage-metrics": ({"max_orgs": 0}, "max_orgs: must be > 0"),
}


@pytest.mark.parametrize("name", FILTERS)
def test_bad_plugin_config_refuses_start_naming_the_field(tmp_path, upstream, llm_upstream, layout, name):
    config, message = BAD_CONFIGS[name]
    failure = expect_start_failure(
        tmp_path,
        upstreams={"mcp_debate": upstream.port, "llm_provider": llm_upstream.port},
        configs={name: config},
        layout=layout,
    )
    assert failure.exit_code != 0
    assert f"invalid pluginConfig: {config_field(layout, name, message)}" in failure.log, failure.log[-3000:]


# Every header any of our filters reads, with a value no filter may choke on.
HOSTILE = b"acme\xff\xfe\x01\"\x7f"
HOSTILE_HEADERS = [
    (name, HOSTILE)
    for name in (
        "x-api-key", "authorization", "x-mcp-org-id", "x-mcp-plan", "x-mcp-role", "x-mcp-key-id",
        "x-mcp-user-id", "content-type", "accept-encoding", "traceparent", "b3", "x-b3-traceid",
        "x-debate-id", "mcp-session-id", "x-request-id",
    )
]


@pytest.mark.parametrize("name", FILTERS)
@pytest.mark.parametrize("path", ["/mcp", "/v1/chat/completions"])
def test_non_utf8_headers_never_abort_a_filter(envoy_factory, upstream, name, path):
    """A VM abort (a panic in the filter) turns every later request into a 5xx:
    hostile bytes in every header we read must get an answer and leave the
    filter serving."""
    envoy = envoy_factory(filters=[name])
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}, "model": "gpt-4o"}
    for _ in range(3):
        r = envoy.request("POST", path, HOSTILE_HEADERS, body)
        assert r.status < 500, (r.status, r.body, envoy.log()[-2000:])
    assert "panicked" not in envoy.log()
    assert "Uncaught RuntimeError" not in envoy.log()


def test_counters_with_known_labels_exist_at_zero_before_any_traffic(envoy_factory):
    """`rate()` over a series that does not exist yet returns nothing, not 0:
    every counter whose labels are all known from the config is there from
    the start (the token series with an organization or a model come with
    their first call)."""
    envoy = envoy_factory()
    m = envoy.metric
    auth = envoy.plugin("api-key-auth")
    assert m("mcp_auth_requests_total", decision="denied", reason="key_expired", plugin=auth) == 0
    assert m("mcp_auth_requests_total", decision="allowed", reason="jwt", plugin=auth) == 0
    assert m("mcp_ratelimit_requests_total", decision="limited", plan="free") == 0
    assert m("mcp_ratelimit_requests_total", decision="fail_open", plan="enterprise") == 0
    assert m("mcp_ratelimit_service_errors_total", reason="timeout") == 0
    assert m("mcp_ratelimit_bucket_overflow_total") == 0
    assert m("mcp_access_log_requests_total", decision="dropped") == 0
    assert m("mcp_access_log_body_truncated_total") == 0
    for provider in ["openai", "anthropic", "gcp.gemini", "vllm"]:
        for reason in ["not_reported", "truncated", "compressed", "too_large", "unparsable"]:
            assert m("mcp_llm_usage_missing_total", gen_ai_provider_name=provider, reason=reason,
                     service="mcp-llm") == 0, (provider, reason)
        assert m("mcp_llm_sse_events_skipped_total", gen_ai_provider_name=provider, service="mcp-llm") == 0
