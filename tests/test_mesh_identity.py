"""Identity no caller can forge, across three real Envoys on loopback wired
as the mesh is: the gateway's sidecar (api-key-auth verifies the API key and
mints a signed identity assertion) -> mcp-debate's sidecar -> the demo
mcp-debate service, whose run_debate_round calls the LLM service and
forwards the assertion -> mcp-llm's sidecar -> the fake LLM provider.
Behind the gateway, api-key-auth accepts identity only from a valid
assertion (an ordinary jwt_providers entry with the gateway's public key)."""

from __future__ import annotations

import json
import sys
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from harness import REPO, ChildProcess, Upstream, wait_for_output, wait_for_port
from harness.demo import auth_headers, demo_keys
from harness.envoy import load_template, plugin_config
from harness.mcp_client import run_client

sys.path.insert(0, str(REPO / "local" / "demo"))
import fake_llm  # noqa: E402

# fake_provider: its own fixture below (the LLM service's upstream).

# The gateway's signing key: the P-256 key of RFC 7515 appendix A.3 (public,
# for tests only). Verifiers get only x and y.
PRIVATE = {"kty": "EC", "crv": "P-256", "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
           "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
PUBLIC = {k: v for k, v in PRIVATE.items() if k != "d"} | {"kid": "gw-2026-12", "alg": "ES256", "use": "sig"}
# A key the verifiers do not know, made per run.
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
TTL = 10
ASSERTION = "x-mcp-identity"


def gateway_auth() -> dict:
    config = plugin_config(load_template(), "api-key-auth")
    config["identity_assertion"] = {"header": ASSERTION, "issuer": "mcp-gateway", "audience": "mcp-mesh",
                                    "key_id": "gw-2026-12", "private_key": PRIVATE, "ttl_seconds": TTL}
    return config


def verifier_auth(anonymous: bool = False) -> dict:
    """api-key-auth on a sidecar behind the gateway: the assertion is the only credential."""
    return {
        "key_sources": [{"header": ASSERTION}],
        "jwt_providers": [{"name": "mesh", "issuer": "mcp-gateway", "audiences": ["mcp-mesh"],
                           "local_jwks": {"keys": [PUBLIC]}, "require_exp": True, "max_lifetime_seconds": 600}],
        "skip_paths": [{"exact": "/health"}],
        # The service forwards it on its own calls.
        "forward_credential": True,
        "clock_skew_seconds": 0,
        "anonymous": anonymous,
    }


LLM_LIMIT = {"default_plan": "free", "without_identity": "deny", "response_headers": "always",
             "plans": {"free": {"requests_per_minute": 60, "burst": 2},
                       "pro": {"requests_per_minute": 600, "burst": 50}}}


@pytest.fixture
def fake_provider():
    with fake_llm.FakeLLM() as fake:
        yield fake.port


@pytest.fixture
def mesh(envoy_factory, fake_provider, tmp_path):
    """(gateway, debate, llm) Envoys, the demo service between debate and llm."""
    llm = envoy_factory(filters=["api-key-auth", "org-rate-limit", "token-usage-metrics"],
                        configs={"api-key-auth": verifier_auth(), "org-rate-limit": LLM_LIMIT},
                        upstreams={"llm_provider": fake_provider})
    service = ChildProcess("mcp_debate", [sys.executable, str(REPO / "local/demo/mcp_debate.py"), "--port", "0",
                                          "--llm-url", llm.url], tmp_path)
    try:
        port = int(wait_for_output(service, r"^listening on (\d+)$").group(1))
        wait_for_port(port, proc=service)
        debate = envoy_factory(filters=["api-key-auth", "mcp-guard", "debate-access-log"],
                               configs={"api-key-auth": verifier_auth()}, upstreams={"mcp_debate": port})
        gateway = envoy_factory(configs={"api-key-auth": gateway_auth()}, upstreams={"mcp_debate": debate.port})
        yield gateway, debate, llm
    finally:
        service.stop()


def tokens_by_org(envoy) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in envoy.samples("mcp_llm_tokens_total"):
        out[labels.get("org_id", "")] = out.get(labels.get("org_id", ""), 0) + value
    return out


def test_the_gateways_identity_reaches_mcp_llm_through_the_service(mesh):
    gateway, debate, llm = mesh
    owner = demo_keys()[0]
    steps = [("call_tool", "create_debate", {"topic": "Tabs or spaces"}),
             ("call_tool", "run_debate_round", {"debate_id": "d-1"})]
    created, ran = run_client(f"{gateway.url}/mcp", auth_headers(0), "2026-07-28", steps)
    assert not ran.is_error, ran
    result = json.loads(ran.content[0].text)
    assert result["llm"]["status"] == 200, result
    # mcp-llm's sidecar charged and counted the organization of the key.
    assert llm.metric("mcp_ratelimit_requests_total", decision="allowed", plan=owner["plan"]) == 1
    assert set(tokens_by_org(llm)) == {owner["org_id"]}
    # mcp-debate's sidecar took the identity from the assertion too.
    deadline = time.monotonic() + 10  # Envoy flushes the access log on a timer
    while not (lines := [l for l in debate.access_log() if l["mcp_name"] == "run_debate_round"]):
        assert time.monotonic() < deadline, debate.access_log()
        time.sleep(0.05)
    [line] = lines
    assert (line["org_id"], line["role"], line["key_id"]) == (owner["org_id"], owner["role"], owner["id"])


def _llm_call(llm, headers: dict):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return llm.request("POST", "/v1/chat/completions", {"content-type": "application/json", **headers}, body)


def _claims(**over) -> dict:
    now = int(time.time())
    return {"iss": "mcp-gateway", "aud": "mcp-mesh", "iat": now, "exp": now + TTL,
            "org_id": "globex", "plan": "enterprise", "role": "owner", "jti": "forged"} | over


def test_no_caller_chooses_the_organization_mcp_llm_charges(mesh, tmp_path):
    gateway, _debate, llm = mesh
    # A real assertion, as the gateway hands it on (a recording upstream in
    # the service's place).
    with Upstream() as recorder:
        from harness.envoy import start_envoy
        tap = start_envoy(tmp_path / "tap", upstreams={"mcp_debate": recorder.port, "llm_provider": recorder.port},
                          configs={"api-key-auth": gateway_auth()}, layout=gateway.layout)
        try:
            assert tap.request("GET", "/debates", auth_headers(1)).status == 200
        finally:
            tap.stop()
        real = recorder.last().header(ASSERTION)
    assert real and real.count(".") == 2
    # The signed identity works, so the refusals below are about the forgeries.
    assert _llm_call(llm, {ASSERTION: real}).status == 200

    header, payload, signature = real.split(".")
    altered_claims = json.loads(jwt.utils.base64url_decode(payload)) | {"org_id": "globex"}
    forgeries = {
        "plain identity headers": {"x-mcp-org-id": "globex", "x-mcp-plan": "enterprise", "x-mcp-role": "owner"},
        "plain headers, underscores": {"x_mcp_org_id": "globex"},
        "expired": {ASSERTION: jwt.encode(_claims(iat=int(time.time()) - 100, exp=int(time.time()) - 50),
                                          jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(PRIVATE)),
                                          algorithm="ES256", headers={"kid": "gw-2026-12"})},
        "re-signed with another key": {ASSERTION: jwt.encode(_claims(), OTHER_KEY, algorithm="ES256",
                                                             headers={"kid": "gw-2026-12"})},
        "altered": {ASSERTION: ".".join([header, jwt.utils.base64url_encode(
            json.dumps(altered_claims).encode()).decode(), signature])},
        "unsigned": {ASSERTION: jwt.encode(_claims(), None, algorithm="none")},
        "assertion plus plain headers": {ASSERTION: "x.y.z", "x-mcp-org-id": "globex"},
    }
    for name, headers in forgeries.items():
        r = _llm_call(llm, headers)
        assert r.status == 401, (name, r.status, r.body)
    # Replayed past its expiry (no clock skew on this sidecar).
    time.sleep(TTL + 1.5)
    assert _llm_call(llm, {ASSERTION: real}).status == 401
    # No spoofed organization in any metric or bucket.
    assert "globex" not in llm.prometheus()
    assert set(tokens_by_org(llm)) <= {demo_keys()[1]["org_id"]}
    reasons = {labels["reason"] for labels, v in llm.samples("mcp_auth_requests_total") if v > 0}
    assert {"missing_credential", "token_expired", "token_bad_signature"} <= reasons, reasons


def test_anonymous_mode_lets_requests_without_a_credential_on_without_identity(envoy_factory, upstream):
    envoy = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": verifier_auth(anonymous=True)})
    r = envoy.request("GET", "/debates", {"x-mcp-org-id": "globex", "x-mcp-role": "owner"})
    assert r.status == 200
    sent = upstream.last()
    assert sent.header("x-mcp-org-id") is None and sent.header("x-mcp-role") is None
    # A bad credential is still refused.
    assert envoy.request("GET", "/debates", {ASSERTION: "a.b.c"}).status == 401
    assert envoy.metric("mcp_auth_requests_total", decision="skipped", reason="anonymous") == 1
