"""Issue 12: the holes adversarial testing found, each proven closed in a real
Envoy 1.40 (and, where the hole is a parser differential, against the real
MCP server of the official SDK).
"""

from __future__ import annotations

import http.client
import json
import time

import pytest

META = ('"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
        '"io.modelcontextprotocol/clientCapabilities":{}}')

# Values the official MCP server accepts and serde_json refuses.
HOSTILE_VALUES = {
    "nan": "NaN",
    "infinity": "Infinity",
    "huge_exponent": "1e400",
    "400_digits": "9" * 400,
    "deep_nesting": "[" * 150 + "1" + "]" * 150,
}


def tool_call(tool: str, extra: str, id: int = 1, debate_id: str = "d-1") -> bytes:
    """A tools/call whose params carry `extra` (a raw JSON value) as `x`."""
    return (f'{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{{META},'
            f'"name":"{tool}","arguments":{{"debate_id":"{debate_id}"}},"x":{extra}}}}}').encode()


def post(port: int, body: bytes, headers: dict | None = None, tool: str = "run_debate_round"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"content-type": "application/json", "accept": "application/json, text/event-stream",
         "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool,
         **(headers or {})}
    conn.request("POST", "/mcp", body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


@pytest.mark.parametrize("name", sorted(HOSTILE_VALUES))
def test_the_real_mcp_server_runs_tools_for_bodies_serde_refuses(mcp_server, name):
    """The differential is real: the SDK server runs the tool. (create_debate,
    since run_debate_round needs a debate.)"""
    status, data = post(mcp_server, tool_call("create_debate", HOSTILE_VALUES[name]).replace(
        b'"arguments":{"debate_id":"d-1"}', b'"arguments":{"topic":"t"}'), tool="create_debate")
    assert status == 200 and json.loads(data)["result"]["isError"] is False, data


def test_the_real_mcp_server_takes_the_last_duplicate_name(mcp_server):
    body = (f'{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{{META},"name":"get_debate",'
            f'"arguments":{{"topic":"t"}},"name":"create_debate"}}}}').encode()
    status, data = post(mcp_server, body, tool="create_debate")
    assert status == 200 and "debate_id" in json.loads(data)["result"]["content"][0]["text"], data


RATE = {
    "plans": {"free": {"requests_per_hour": 1, "burst": 12}},
    "costs": [{"mcp_method": "tools/call", "tool": "run_debate_round", "cost": 5}],
}


def chain(envoy_factory):
    return envoy_factory(filters=["org-rate-limit", "debate-access-log"],
                         configs={"org-rate-limit": RATE}, concurrency=2)


@pytest.mark.parametrize("name", sorted(HOSTILE_VALUES))
def test_bodies_serde_refuses_pay_their_tools_cost_and_are_logged(envoy_factory, upstream, name):
    envoy = chain(envoy_factory)
    org = {"x-mcp-org-id": f"fresh-{name}", "x-mcp-plan": "free"}
    body = tool_call("run_debate_round", HOSTILE_VALUES[name], debate_id="d-77")
    # burst 12 / cost 5: two calls, not twelve. The rest are read (2 tokens
    # left cover the cheapest cost) and refused for their real cost; the
    # refused ones are logged with the tool org-rate-limit read.
    assert [post(envoy.port, body, org)[0] for _ in range(4)] == [200, 200, 429, 429]
    logs = envoy.access_log(expect=4)
    assert [l["mcp_tool"] for l in logs] == ["run_debate_round"] * 4
    assert [l["mcp_method"] for l in logs] == ["tools/call"] * 4
    assert [l["debate_id"] for l in logs[:2]] == ["d-77"] * 2
    assert [l["ratelimit_result"] for l in logs] == ["allowed", "allowed", "limited", "limited"]


@pytest.mark.parametrize("shape", ["padding_before_params", "arguments_before_name", "duplicate_name"])
def test_a_tool_name_past_the_scan_cut_pays_the_worst_cost(envoy_factory, upstream, shape):
    envoy = chain(envoy_factory)
    pad = "a" * 20_000  # past max_body_bytes (16 KiB)
    body = {
        "padding_before_params": '{"jsonrpc":"2.0","id":1,"method":"tools/call","pad":"%s",'
                                 '"params":{"name":"run_debate_round","arguments":{}}}' % pad,
        "arguments_before_name": '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
                                 '"params":{"arguments":{"t":"%s"},"name":"run_debate_round"}}' % pad,
        "duplicate_name": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_debate",'
                          '"arguments":{"t":"%s"},"name":"run_debate_round"}}' % pad,
    }[shape].encode()
    org = {"x-mcp-org-id": f"cut-{shape}", "x-mcp-plan": "free"}
    assert [post(envoy.port, body, org)[0] for _ in range(3)] == [200, 200, 429]
    # A small honest call of a cheap tool still pays 1: the worst is only for
    # what could not be read.
    cheap = tool_call("get_debate", "1")
    fresh = {"x-mcp-org-id": f"cheap-{shape}", "x-mcp-plan": "free"}
    assert [post(envoy.port, cheap, fresh, tool="get_debate")[0] for _ in range(13)] == [200] * 12 + [429]


# --- identity headers spelled with underscores (defect 5) ---------------------

UNDERSCORE_SPOOFS = [("x_mcp_org_id", "evil"), ("X_MCP_PLAN", "enterprise"), ("x-mcp_role", "owner"),
                     ("x_mcp-key-id", "k"), ("X-Mcp-User_Id", "root")]


def allow_underscores(bootstrap: dict) -> None:
    """A mesh whose proxies let headers with underscores through (Istio's default)."""
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    manager["common_http_protocol_options"] = {"headers_with_underscores_action": "ALLOW"}


def _spoofed_names_at(upstream) -> list[str]:
    got = upstream.last()
    return [k for k, _ in got.headers if k.lower().replace("_", "-").startswith("x-mcp-")
            and "_" in k]


@pytest.mark.parametrize("mesh", ["shipped_bootstrap", "underscores_allowed"])
@pytest.mark.parametrize("path", ["/mcp", "/health"])
def test_identity_spelled_with_underscores_never_reaches_the_service(envoy_factory, upstream, mesh, path):
    from test_api_key_auth import ACME_OLD, config
    envoy = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": config()},
                          mutate=allow_underscores if mesh == "underscores_allowed" else None)
    r = envoy.request("GET", path, UNDERSCORE_SPOOFS + [("x-api-key", ACME_OLD)])
    assert r.status == 200
    assert _spoofed_names_at(upstream) == []
    assert upstream.last().header("x-mcp-org-id") == ("acme" if path == "/mcp" else None)


def test_the_mesh_drops_underscore_headers_like_the_local_bootstrap():
    import yaml
    from harness import REPO, load_template
    manager = load_template()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    local = manager["common_http_protocol_options"]["headers_with_underscores_action"]
    ef = yaml.safe_load((REPO / "wasm-plugins-yaml/base/headers-with-underscores.yaml").read_text())
    patch = ef["spec"]["configPatches"][0]
    assert patch["match"]["context"] == "SIDECAR_INBOUND"
    assert patch["patch"]["value"]["typed_config"]["common_http_protocol_options"] == {
        "headers_with_underscores_action": local}
    assert local == "DROP_HEADER"


# --- identity header names a client could send itself (defect 10) -----------

@pytest.mark.parametrize("filter_name, config, field", [
    ("org-rate-limit", {"org_header": "x-org"}, "org_header"),
    ("org-rate-limit", {"plan_header": "x-tier"}, "plan_header"),
    ("token-usage-metrics", {"org_header": "x-tenant"}, "org_header"),
])
def test_identity_header_names_outside_the_contract_are_refused(tmp_path, upstream, llm_upstream, layout,
                                                                filter_name, config, field):
    from harness.envoy import config_field, expect_start_failure
    failure = expect_start_failure(tmp_path, upstreams={"mcp_debate": upstream.port, "llm_provider": llm_upstream.port},
                                   filters=[filter_name], configs={filter_name: config}, layout=layout)
    field = config_field(layout, filter_name, field)
    assert (f"invalid pluginConfig: {field}: must be one of the identity headers api-key-auth strips and sets"
            in failure.log), failure.log[-2000:]


# --- LLM model names from clients (defects 4 and 6) -------------------------

def _provider(req):
    """An OpenAI-like provider that refuses unknown models, as real ones do."""
    from harness import REPO, Reply
    model = req.json().get("model", "")
    if model.startswith("junk"):
        return Reply(status=404, body=json.dumps({"error": {"type": "invalid_request_error",
                                                            "code": "model_not_found"}}).encode())
    answer = json.loads((REPO / "tests/fixtures/llm/openai_chat.json").read_text())
    answer["model"] = model
    return Reply(body=json.dumps(answer).encode())


def _llm_envoy(envoy_factory, provider_port, **config):
    def flush_fast(bootstrap):
        bootstrap["stats_flush_interval"] = "0.1s"
    cfg = {"service": "mcp-llm", "max_orgs": 10, "max_models": 3, **config}
    return envoy_factory(filters=["token-usage-metrics", "debate-access-log"], configs={"token-usage-metrics": cfg},
                         upstreams={"llm_provider": provider_port}, mutate=flush_fast)


def _chat(envoy, model: str, org: str) -> int:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "x"}]})
    return envoy.request("POST", "/v1/chat/completions", {"content-type": "application/json", "x-mcp-org-id": org},
                         body).status


def test_refused_junk_models_cannot_push_real_models_into_other(envoy_factory):
    from harness import Upstream
    with Upstream(_provider) as provider:
        envoy = _llm_envoy(envoy_factory, provider.port)
        for i in range(50):
            assert _chat(envoy, f"junk-{i}", "evil") == 404
        assert _chat(envoy, "gpt-4o", "evil") == 200
        assert _chat(envoy, "gpt-4o-mini", "acme") == 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            samples = envoy.samples("mcp_llm_requests_total")
            if sum(v for _, v in samples) >= 52:
                break
            time.sleep(0.1)
        ok_models = {(l["org_id"], l["gen_ai_request_model"]) for l, v in samples if l["outcome"] == "ok"}
        assert ok_models == {("evil", "gpt-4o"), ("acme", "gpt-4o-mini")}, samples
        junk = {l["gen_ai_request_model"] for l, _ in samples if l["outcome"] == "error"}
        assert junk == {"other"}


def test_logged_model_names_are_capped_and_cleaned(envoy_factory):
    from harness import Upstream
    with Upstream(_provider) as provider:
        envoy = _llm_envoy(envoy_factory, provider.port)
        long_model = "g" * 40_000
        r = envoy.request("POST", f"/v1beta/models/{long_model}:generateContent",
                          {"content-type": "application/json"}, b'{"contents":[]}')
        hostile = "gpt-4o\u001b[2J\r\n\u2028x"
        assert _chat(envoy, hostile, "acme") == 200
        lines = envoy.access_log(expect=2)
        models = [l["llm_model"] for l in lines]
        assert all(m is None or len(m.encode()) <= 128 for m in models), [len(m or "") for m in models]
        assert models[0] == "g" * 128
        assert models[1] == "gpt-4o\ufffd[2J\ufffd\ufffd\ufffdx"


# --- JWT API tokens without exp, or with a far-future exp (defect 9) --------

@pytest.mark.parametrize("claims, reason", [
    ({"exp": None}, "token_missing_claim"),
    ({"exp": "far"}, "token_invalid_claim"),
    ({"iat": "old"}, "token_invalid_claim"),
])
def test_jwt_without_exp_or_with_a_long_life_is_refused_by_default(envoy_factory, claims, reason):
    import test_api_key_auth as auth
    now = int(time.time())
    extra = {"exp": now + 10 * 365 * 86400} if claims.get("exp") == "far" else {}
    if claims.get("iat") == "old":
        extra = {"iat": now - 2 * 86400, "exp": now + 60}
    token = auth.hs_token(extra)
    if claims.get("exp", 0) is None:
        import jwt
        body = jwt.decode(token, options={"verify_signature": False})
        del body["exp"]
        token = jwt.encode(body, auth.HS_SECRET, algorithm="HS256", headers={"kid": "hs-1"})
    envoy = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": auth.config()})
    auth.assert_denied(envoy.request("GET", "/mcp", auth.bearer(token)), 401, reason)
    assert envoy.request("GET", "/mcp", auth.bearer(auth.hs_token())).status == 200


# --- the owner-only rule and its collection path (defect 8) ------------------

def test_the_owner_only_organizations_rule_guards_the_collection(envoy_factory, upstream):
    import test_api_key_auth as auth
    cfg = auth.config(rules=[{"prefix": "/organizations/", "methods": ["POST", "PUT", "PATCH", "DELETE"],
                              "allowed_roles": ["owner"]}])
    envoy = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": cfg})
    user, owner = {"x-api-key": auth.ACME_NEW}, {"x-api-key": auth.ACME_OLD}
    for path in ["/organizations", "/organizations/", "/organizations/o-1", "/organizations?x=1"]:
        assert envoy.request("POST", path, user, b"{}").status == 403, path
        assert envoy.request("POST", path, owner, b"{}").status == 200, path
    assert envoy.request("GET", "/organizations", user).status == 200


# --- anonymous traffic: a bucket per client (defect 7) -----------------------

def _from(port: int, source_ip: str, path: str, headers: dict | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source_ip, 0))
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    r.read()
    conn.close()
    return r.status


ANON = {"plans": {"free": {"requests_per_hour": 1, "burst": 20}}}


def test_one_anonymous_client_cannot_drain_the_bucket_of_the_others(envoy_factory, upstream):
    envoy = envoy_factory(filters=["org-rate-limit"], configs={"org-rate-limit": ANON}, concurrency=2)
    assert [_from(envoy.port, "127.0.0.2", "/ready") for _ in range(21)] == [200] * 20 + [429]
    # Another client still has its own full bucket.
    assert _from(envoy.port, "127.0.0.3", "/.well-known/oauth-protected-resource") == 200
    assert _from(envoy.port, "127.0.0.2", "/.well-known/oauth-protected-resource") == 429


def test_anonymous_clients_by_forwarded_for_past_trusted_hops(envoy_factory, upstream):
    cfg = {**ANON, "anonymous_client": {"from": "header", "header": "x-forwarded-for", "trusted_hops": 1}}
    envoy = envoy_factory(filters=["org-rate-limit"], configs={"org-rate-limit": cfg}, concurrency=2)
    # The client's own (spoofable) entries on the left do not matter; the
    # entry the trusted proxy appended (one from the right) does.
    spoofs = [{"x-forwarded-for": f"9.9.9.{i}, 203.0.113.7, 10.0.0.1"} for i in range(21)]
    assert [envoy.request("GET", "/ready", h).status for h in spoofs] == [200] * 20 + [429]
    other = {"x-forwarded-for": "203.0.113.8, 10.0.0.1"}
    assert envoy.request("GET", "/ready", other).status == 200


def test_the_shared_anonymous_bucket_is_still_there_when_asked_for(envoy_factory, upstream):
    cfg = {**ANON, "anonymous_client": {"from": "none"}}
    envoy = envoy_factory(filters=["org-rate-limit"], configs={"org-rate-limit": cfg}, concurrency=2)
    assert [_from(envoy.port, "127.0.0.2", "/ready") for _ in range(20)] == [200] * 20
    assert _from(envoy.port, "127.0.0.3", "/ready") == 429
