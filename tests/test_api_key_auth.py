"""api-key-auth in a real Envoy 1.40: every status, the identity hand-off the
upstream sees, key rotation and expiry, skip paths, JWT API tokens (HS256,
RS256 and ES256 from a JWKS), hostile input, counters and logs.

Each test starts only this filter (plus the router) with its own pluginConfig.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from harness.envoy import COMPOSED, config_field, expect_start_failure, section

IDENTITY_HEADERS = ["x-mcp-org-id", "x-mcp-key-id", "x-mcp-plan", "x-mcp-role", "x-mcp-user-id"]
SPOOFED = [(h, "spoofed") for h in IDENTITY_HEADERS] + [("x-mcp-org-id", "evil-corp")]

ACME_OLD = "mcpk_test_acme_old_4f9Qx2"
ACME_NEW = "mcpk_test_acme_new_8Kd1Vz"
GLOBEX = "mcpk_test_globex_7Hs3Lp"
EXPIRED = "mcpk_test_expired_2Jw9Rt"
FUTURE = "mcpk_test_future_6Nb4Cy"

HS_SECRET = b"integration-test-hs256-secret-0123456789"
ISSUER_HS = "https://tokens.test/hs"
ISSUER_RS = "https://tokens.test/rs"
ISSUER_ES = "https://tokens.test/es"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def entry(key_id: str, key: str, org: str, plan: str, role: str, **extra) -> dict:
    return {"id": key_id, "sha256": sha256(key), "org_id": org, "plan": plan, "role": role, **extra}


def jwk(public, **extra) -> dict:
    algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
    return {**json.loads(algorithm.to_jwk(public)), **extra}


def config(**overrides) -> dict:
    base = {
        "key_sources": [
            {"header": "x-api-key"},
            {"header": "authorization", "value_prefix": "Bearer "},
            {"query": "api_key"},
        ],
        "keys": [
            entry("acme-old", ACME_OLD, "acme", "pro", "owner", user_id="alice"),
            entry("acme-new", ACME_NEW, "acme", "pro", "user"),
            entry("globex-1", GLOBEX, "globex", "free", "user"),
            entry("expired-1", EXPIRED, "globex", "free", "user", expires_at="2020-01-01T00:00:00Z"),
            entry("future-1", FUTURE, "globex", "free", "user", not_before="2099-01-01T00:00:00Z"),
        ],
        "jwt_providers": [
            {"name": "hs", "issuer": ISSUER_HS, "audiences": ["mcp"],
             "local_jwks": {"keys": [{"kty": "oct", "kid": "hs-1", "alg": "HS256", "k": b64url(HS_SECRET)}]},
             "default_role": "user"},
            {"name": "rs", "issuer": ISSUER_RS,
             "local_jwks": {"keys": [jwk(RSA_KEY.public_key(), kid="rs-1", alg="RS256", use="sig")]},
             "claims": {"org_id": "org.id", "plan": "org.plan"}, "default_role": "service"},
            {"name": "es", "issuer": ISSUER_ES,
             "local_jwks": {"keys": [jwk(EC_KEY.public_key(), kid="es-1", alg="ES256")]}},
        ],
        "skip_paths": [{"exact": "/health"}, {"prefix": "/.well-known/"}],
        "rules": [{"prefix": "/admin/", "allowed_roles": ["owner"]},
                  {"prefix": "/billing/", "methods": ["POST"], "allowed_orgs": ["acme"]}],
        "realm": "mcp",
    }
    base.update(overrides)
    return base


@pytest.fixture
def auth_envoy(envoy_factory):
    return envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": config()})


def hs_token(claims: dict | None = None, **header) -> str:
    now = int(time.time())
    body = {"iss": ISSUER_HS, "aud": "mcp", "exp": now + 300, "org_id": "initech", "plan": "enterprise",
            "sub": "bob", "jti": "tok-42"}
    body.update(claims or {})
    return jwt.encode(body, HS_SECRET, algorithm="HS256", headers={"kid": "hs-1", **header})


def bearer(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


def error_code(response) -> str:
    """The reason code of a plain JSON error or of a JSON-RPC error."""
    body = response.json()
    return body["error"]["data"]["code"] if "jsonrpc" in body else body["error"]["code"]


def assert_denied(response, status: int, reason: str, challenge_error: str | None = "invalid_token"):
    assert response.status == status, (response.status, response.body)
    assert response.header("content-type") == "application/json"
    assert error_code(response) == reason, response.body
    challenge = response.header("www-authenticate")
    assert challenge is not None and challenge.startswith('Bearer realm="mcp"'), challenge
    if challenge_error:
        assert f'error="{challenge_error}"' in challenge, challenge
    else:
        assert "error=" not in challenge, challenge


# --- statuses -----------------------------------------------------------------


def test_every_status(auth_envoy, upstream):
    e = auth_envoy
    assert_denied(e.request("GET", "/mcp"), 401, "missing_credential", challenge_error=None)
    assert_denied(e.request("GET", "/mcp", {"x-api-key": "mcpk_nope"}), 401, "unknown_key")
    assert_denied(e.request("GET", "/mcp", {"x-api-key": "two words"}), 401, "malformed_credential")
    assert_denied(e.request("GET", "/mcp", {"x-api-key": ACME_OLD, "authorization": f"Bearer {ACME_NEW}"}),
                  401, "conflicting_credentials")
    assert_denied(e.request("GET", "/mcp", {"x-api-key": EXPIRED}), 401, "key_expired")
    assert_denied(e.request("GET", "/mcp", {"x-api-key": FUTURE}), 401, "key_not_yet_valid")
    assert_denied(e.request("GET", "/admin/users", {"x-api-key": ACME_NEW}), 403, "route_forbidden",
                  challenge_error="insufficient_scope")
    assert_denied(e.request("POST", "/billing/plan", {"x-api-key": GLOBEX}, body=b"x"), 403, "route_forbidden",
                  challenge_error="insufficient_scope")
    assert len(upstream.received) == 0, "no denied request may reach the upstream"

    assert e.request("GET", "/admin/users", {"x-api-key": ACME_OLD}).status == 200
    assert e.request("GET", "/billing/plan", {"x-api-key": GLOBEX}).status == 200  # rule is POST-only
    assert e.request("POST", "/billing/plan", {"x-api-key": ACME_NEW}, body=b"x").status == 200
    assert e.request("GET", "/mcp", {"authorization": f"bearer {GLOBEX}"}).status == 200
    assert len(upstream.received) == 4


def test_error_body_never_echoes_the_credential(auth_envoy):
    for headers in ({"x-api-key": "mcpk_secret_guess_123"}, bearer("abc.def.ghi")):
        r = auth_envoy.request("GET", "/mcp", headers)
        assert r.status == 401
        value = next(iter(headers.values())).split()[-1]
        assert value.encode() not in r.body
        assert all(value not in v for _, v in r.headers)


def test_jsonrpc_denials_are_jsonrpc_errors_decided_on_the_headers(auth_envoy, upstream):
    """A denied MCP call gets a JSON-RPC error. Its `id` is null (JSON-RPC 2.0
    §5: not determinable): Envoy's Proxy-Wasm host withholds the body from a
    filter that paused the headers, and a denied request must not reach the
    upstream to get it (proxy-wasm/proxy-wasm-cpp-host#143)."""
    r = auth_envoy.mcp_call("tools/call", {"name": "submit_argument", "arguments": {}}, id="req-7")
    assert r.status == 401
    assert r.header("www-authenticate") == 'Bearer realm="mcp"'
    body = r.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32001
    assert body["error"]["data"]["code"] == "missing_credential"
    assert body["error"]["message"] == "an API key or API token is required"

    r = auth_envoy.mcp_call("ping", id=99, headers={"x-api-key": ACME_NEW}, path="/admin/tools")
    assert r.status == 403
    assert r.json()["error"]["code"] == -32003 and r.json()["error"]["data"]["code"] == "route_forbidden"

    # Not JSON-RPC (a GET, or a POST of another content type): the plain JSON error.
    r = auth_envoy.request("GET", "/mcp")
    assert r.status == 401 and "jsonrpc" not in r.json() and error_code(r) == "missing_credential"
    r = auth_envoy.request("POST", "/mcp", {"content-type": "text/plain"}, body="hello")
    assert r.status == 401 and "jsonrpc" not in r.json()
    # A large denied upload is answered at once, without reading it.
    big = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"pad": "x" * 200_000}}
    r = auth_envoy.request("POST", "/mcp", {}, body=big)
    assert r.status == 401
    assert len(upstream.received) == 0

    # Allowed JSON-RPC POSTs pass at once with their body untouched.
    r = auth_envoy.mcp_call("ping", id=1, headers={"x-api-key": ACME_NEW})
    assert r.status == 200
    assert upstream.last().json() == {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert len(upstream.received) == 1


# --- identity hand-off ----------------------------------------------------------


def identity_of(received) -> dict:
    return {h: received.header_all(h) for h in IDENTITY_HEADERS}


def test_upstream_gets_exactly_the_verified_identity(auth_envoy, upstream):
    r = auth_envoy.request("POST", "/mcp", SPOOFED + [("x-api-key", ACME_OLD)], body=b"{}")
    assert r.status == 200
    got = upstream.last()
    assert identity_of(got) == {
        "x-mcp-org-id": ["acme"], "x-mcp-key-id": ["acme-old"], "x-mcp-plan": ["pro"],
        "x-mcp-role": ["owner"], "x-mcp-user-id": ["alice"],
    }
    assert got.header("x-api-key") is None, "the key is stripped"

    # A key without user: a spoofed x-mcp-user-id must not survive.
    auth_envoy.request("GET", "/mcp", SPOOFED + [("authorization", f"Bearer {GLOBEX}")])
    got = upstream.last()
    assert identity_of(got) == {
        "x-mcp-org-id": ["globex"], "x-mcp-key-id": ["globex-1"], "x-mcp-plan": ["free"],
        "x-mcp-role": ["user"], "x-mcp-user-id": [],
    }
    assert got.header("authorization") is None

    # Query credential: removed from the path, other parameters kept.
    auth_envoy.request("GET", f"/mcp?session=9&api_key={ACME_NEW}&x=1")
    got = upstream.last()
    assert got.path == "/mcp?session=9&x=1"
    assert got.header("x-mcp-key-id") == "acme-new"

    # A foreign Authorization scheme is not ours: forwarded untouched.
    auth_envoy.request("GET", "/mcp", [("x-api-key", ACME_NEW), ("authorization", "Basic dXNlcjpwdw==")])
    assert upstream.last().header("authorization") == "Basic dXNlcjpwdw=="


def test_forward_credential_keeps_it(envoy_factory, upstream):
    e = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": config(forward_credential=True)})
    assert e.request("GET", f"/mcp?api_key={ACME_NEW}", {"x-api-key": ACME_NEW}).status == 200
    got = upstream.last()
    assert got.header("x-api-key") == ACME_NEW
    assert got.path == f"/mcp?api_key={ACME_NEW}"
    assert got.header("x-mcp-org-id") == "acme"


def test_skip_paths_still_drop_spoofed_identity(auth_envoy, upstream):
    r = auth_envoy.request("GET", "/health", SPOOFED + [("x-api-key", ACME_OLD), ("authorization", "Bearer x")])
    assert r.status == 200
    assert identity_of(upstream.last()) == {h: [] for h in IDENTITY_HEADERS}
    # Not needed there, so not forwarded either.
    assert upstream.last().header("x-api-key") is None and upstream.last().header("authorization") is None
    assert auth_envoy.request("GET", "/.well-known/oauth-protected-resource").status == 200
    # Spellings that only look like a skip path are authenticated.
    for path in ["/health/", "/healthz", "/.well-known/../admin/users", "/.well-known/%2e%2e/mcp", "//health"]:
        r = auth_envoy.request("GET", path)
        assert r.status == 401, (path, r.status)
    log = auth_envoy.access_log(expect=7)
    assert [(l["path"], l["auth_result"], l["auth_reason"]) for l in log[:2]] == [
        ("/health", "skipped", "skip_path"), ("/.well-known/oauth-protected-resource", "skipped", "skip_path")]


def test_filter_state_reaches_the_access_log(auth_envoy):
    auth_envoy.request("GET", "/mcp", {"x-api-key": ACME_OLD})
    auth_envoy.request("GET", "/mcp", {"x-api-key": "mcpk_unknown"})
    allowed, denied = auth_envoy.access_log(expect=2)
    assert (allowed["org_id"], allowed["key_id"], allowed["plan"], allowed["role"], allowed["user_id"]) == (
        "acme", "acme-old", "pro", "owner", "alice")
    assert (allowed["auth_result"], allowed["auth_reason"]) == ("allowed", "api_key")
    assert (denied["status"], denied["auth_result"], denied["auth_reason"]) == (401, "denied", "unknown_key")
    assert denied["org_id"] in (None, "-", "")


# --- rotation and validity windows ---------------------------------------------------


def test_key_rotation(envoy_factory, upstream):
    both = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": config()})
    for key, key_id in [(ACME_OLD, "acme-old"), (ACME_NEW, "acme-new")]:
        assert both.request("GET", "/mcp", {"x-api-key": key}).status == 200
        assert (upstream.last().header("x-mcp-org-id"), upstream.last().header("x-mcp-key-id")) == ("acme", key_id)
    both.stop()
    rotated = config(keys=[k for k in config()["keys"] if k["id"] != "acme-old"])
    after = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": rotated})
    assert after.request("GET", "/mcp", {"x-api-key": ACME_NEW}).status == 200
    assert_denied(after.request("GET", "/mcp", {"x-api-key": ACME_OLD}), 401, "unknown_key")


def test_validity_window_follows_the_clock(envoy_factory):
    now = int(time.time())
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    keys = [
        entry("window", ACME_NEW, "acme", "pro", "user", not_before=iso(now - 60), expires_at=iso(now + 3600)),
        entry("ended", ACME_OLD, "acme", "pro", "user", not_before=iso(now - 7200), expires_at=iso(now - 1)),
        entry("later", GLOBEX, "globex", "free", "user", not_before=iso(now + 3600)),
    ]
    e = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": config(keys=keys)})
    assert e.request("GET", "/mcp", {"x-api-key": ACME_NEW}).status == 200
    assert_denied(e.request("GET", "/mcp", {"x-api-key": ACME_OLD}), 401, "key_expired")
    assert_denied(e.request("GET", "/mcp", {"x-api-key": GLOBEX}), 401, "key_not_yet_valid")


# --- JWT API tokens ------------------------------------------------------------------


def test_jwt_tokens_from_three_issuers(auth_envoy, upstream):
    now = int(time.time())
    r = auth_envoy.request("GET", "/mcp", SPOOFED + list(bearer(hs_token()).items()))
    assert r.status == 200, r.body
    assert identity_of(upstream.last()) == {
        "x-mcp-org-id": ["initech"], "x-mcp-key-id": ["tok-42"], "x-mcp-plan": ["enterprise"],
        "x-mcp-role": ["user"], "x-mcp-user-id": ["bob"],
    }
    assert upstream.last().header("authorization") is None

    rs = jwt.encode({"iss": ISSUER_RS, "exp": now + 60, "org": {"id": "umbrella", "plan": "pro"}},
                    RSA_KEY, algorithm="RS256", headers={"kid": "rs-1"})
    assert auth_envoy.request("GET", "/mcp", bearer(rs)).status == 200
    assert identity_of(upstream.last()) == {
        "x-mcp-org-id": ["umbrella"], "x-mcp-key-id": ["rs"], "x-mcp-plan": ["pro"],
        "x-mcp-role": ["service"], "x-mcp-user-id": [],
    }

    es = jwt.encode({"iss": ISSUER_ES, "org_id": "hooli", "plan": "free", "role": "moderator", "sub": "gavin",
                     "exp": now + 60},
                    EC_KEY, algorithm="ES256", headers={"kid": "es-1"})
    # A JWT works from any configured source, the x-api-key header included.
    assert auth_envoy.request("GET", "/mcp", {"x-api-key": es}).status == 200
    assert upstream.last().header("x-mcp-org-id") == "hooli"
    assert upstream.last().header("x-mcp-role") == "moderator"
    assert len(upstream.received) == 3


def test_jwt_refusals(auth_envoy, upstream):
    now = int(time.time())
    good = hs_token()
    head, body, sig = good.split(".")
    enc = lambda obj: b64url(json.dumps(obj).encode())  # noqa: E731
    rs_claims = {"iss": ISSUER_RS, "exp": now + 60, "org": {"id": "umbrella", "plan": "pro"}}
    cases = {
        "alg none": (f"{enc({'alg': 'none', 'typ': 'JWT'})}.{body}.", "token_algorithm_not_allowed"),
        "alg none with signature": (f"{enc({'alg': 'none'})}.{body}.{sig}", "token_algorithm_not_allowed"),
        # An HS256 token for the issuer whose only key is RSA (the key-confusion attack).
        "key confusion": (jwt.encode(rs_claims, HS_SECRET, algorithm="HS256"), "token_algorithm_not_allowed"),
        "wrong alg": (jwt.encode({**rs_claims}, RSA_KEY, algorithm="RS512", headers={"kid": "rs-1"}),
                      "token_algorithm_not_allowed"),
        "bad signature": (f"{head}.{body}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}", "token_bad_signature"),
        "forged claims": (f"{head}.{enc({'iss': ISSUER_HS, 'aud': 'mcp', 'org_id': 'evil'})}.{sig}", "token_bad_signature"),
        "truncated": (f"{head}.{body}", "token_malformed"),
        "truncated signature": (good[:-8], ("token_bad_signature", "token_malformed")),
        "garbage segments": ("eyJ.eyJ.x", "token_malformed"),
        "expired": (hs_token({"exp": now - 600}), "token_expired"),
        "not yet valid": (hs_token({"nbf": now + 600}), "token_not_yet_valid"),
        "wrong audience": (hs_token({"aud": "someone-else"}), "token_audience_mismatch"),
        "unknown issuer": (hs_token({"iss": "https://evil.test"}), "token_unknown_issuer"),
        "unknown kid": (hs_token(kid="hs-2"), "token_unknown_key_id"),
        "no org claim": (hs_token({"org_id": None}), "token_missing_claim"),
        "header injection claim": (hs_token({"org_id": "acme\r\nx-mcp-role: owner"}), "token_invalid_claim"),
        "huge claims": (hs_token({"pad": "x" * 5000}), "malformed_credential"),
    }
    for name, (token, reason) in cases.items():
        r = auth_envoy.request("GET", "/mcp", bearer(token))
        assert r.status == 401, (name, r.status, r.body)
        assert error_code(r) in ((reason,) if isinstance(reason, str) else reason), (name, r.body)
        assert 'error="invalid_token"' in r.header("www-authenticate"), name
    assert len(upstream.received) == 0
    assert auth_envoy.request("GET", "/mcp", bearer(good)).status == 200


def test_cached_token_still_expires_on_time(envoy_factory):
    """Verified tokens are cached per VM (jwt_cache_size); a cached token is
    refused the moment its `exp` passes, not when the cache forgets it."""
    e = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": config(clock_skew_seconds=0)})
    exp = int(time.time()) + 2
    token = hs_token({"exp": exp})
    for _ in range(3):
        assert e.request("GET", "/mcp", bearer(token)).status == 200
    time.sleep(max(0.0, exp - time.time()) + 1.1)
    assert_denied(e.request("GET", "/mcp", bearer(token)), 401, "token_expired")
    assert e.metric("mcp_auth_requests_total", decision="allowed", reason="jwt") == 3


# --- hostile input --------------------------------------------------------------------


def test_hostile_headers_get_401_and_envoy_keeps_serving(auth_envoy, upstream):
    e = auth_envoy
    hostile = {
        "huge": [("x-api-key", "k" * 30000)],
        "non-utf8": [("x-api-key", b"mcpk_\xff\xfe\xc3(")],
        "latin-1 in bearer": [("authorization", b"Bearer caf\xe9")],
        "tab inside": [("x-api-key", b"mcpk\tkey")],
        "repeated, different": [("x-api-key", ACME_OLD), ("x-api-key", ACME_NEW)],
        "repeated bearer": [("authorization", f"Bearer {ACME_OLD}"), ("authorization", "Bearer x")],
        "empty": [("x-api-key", "")],
        "only the scheme": [("authorization", "Bearer ")],
        "percent-encoded NUL in query": [],
    }
    for name, headers in hostile.items():
        path = "/mcp?api_key=%00abc" if name == "percent-encoded NUL in query" else "/mcp"
        r = e.request("GET", path, headers)
        assert r.status == 401, (name, r.status, r.body[:200])
        assert error_code(r) in ("malformed_credential", "conflicting_credentials", "missing_credential"), name
    # Bytes the HTTP/1 codec itself refuses never reach the filter: 400 from Envoy.
    r = e.request("GET", "/mcp", [("x-api-key", b"mcpk\x01key")])
    assert r.status in (400, 401)
    # Same key twice is one credential.
    assert e.request("GET", "/mcp", [("x-api-key", ACME_NEW), ("x-api-key", ACME_NEW)]).status == 200
    assert len(upstream.received) == 1
    assert e.request("GET", "/mcp", {"x-api-key": ACME_OLD}).status == 200
    assert "panicked" not in e.log() and "wasm vm crashed" not in e.log().lower()


# --- counters, logs, configuration -------------------------------------------------------


def test_counters_by_decision_and_reason(auth_envoy):
    e = auth_envoy
    for _ in range(3):
        e.request("GET", "/mcp", {"x-api-key": ACME_NEW})
    e.request("GET", "/mcp", bearer(hs_token()))
    e.request("GET", "/mcp")
    e.request("GET", "/mcp", {"x-api-key": "mcpk_nope"})
    e.request("GET", "/mcp", {"x-api-key": "mcpk_nope2"})
    e.request("GET", "/admin/x", {"x-api-key": ACME_NEW})
    e.request("GET", "/health")
    m = lambda **labels: e.metric("mcp_auth_requests_total", **labels)  # noqa: E731
    assert m(decision="allowed", reason="api_key") == 3
    assert m(decision="allowed", reason="jwt") == 1
    assert m(decision="denied", reason="missing_credential") == 1
    assert m(decision="denied", reason="unknown_key") == 2
    assert m(decision="denied", reason="route_forbidden") == 1
    assert m(decision="skipped", reason="skip_path") == 1
    assert m(decision="denied", reason="token_expired") == 0, "every reason is defined up front"
    assert m(decision="denied") == 4
    assert len(e.samples("mcp_auth_requests_total")) == 21


def test_counters_are_per_filter_instance(envoy_factory, layout):
    """Two api-key-auth instances in one Envoy (an internal one that skips
    everything after the edge one) count under their own `plugin` label."""
    import copy

    from harness.envoy import http_filters

    def add_second_instance(bootstrap):
        chain = http_filters(bootstrap)
        second = copy.deepcopy(chain[0])
        cfg = second["typed_config"]["config"]
        cfg["name"] = cfg["root_id"] = cfg["vm_config"]["vm_id"] = "api-key-auth-internal"
        internal = config(skip_paths=[{"prefix": "/"}])
        if e_layout == COMPOSED:
            internal = {section("api-key-auth"): internal}
        cfg["configuration"]["value"] = json.dumps(internal)
        chain.insert(1, second)

    e_layout = layout
    e = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": config()}, mutate=add_second_instance)
    for _ in range(2):
        assert e.request("GET", "/mcp", {"x-api-key": ACME_NEW}).status == 200
    assert e.request("GET", "/mcp").status == 401
    m = lambda **labels: e.metric("mcp_auth_requests_total", **labels)  # noqa: E731
    assert m(plugin=e.plugin("api-key-auth"), decision="allowed") == 2
    assert m(plugin=e.plugin("api-key-auth"), decision="denied") == 1
    assert m(plugin="api-key-auth-internal", decision="skipped") == 2
    assert m(plugin="api-key-auth-internal", decision="allowed") == 0
    assert m(decision="allowed") == 2, "the instances do not share counters"


@pytest.mark.parametrize("level", ["info", "debug"])
def test_no_credential_in_envoy_logs(envoy_factory, level):
    e = envoy_factory(filters=["api-key-auth"], configs={"api-key-auth": config()}, log_level=level)
    token = hs_token()
    secrets = [ACME_OLD, GLOBEX, "mcpk_wrong_guess_0001", token, token.split(".")[2], HS_SECRET.decode(),
               b64url(HS_SECRET)]
    e.request("GET", "/mcp", {"x-api-key": ACME_OLD})
    e.request("GET", "/mcp", {"authorization": f"Bearer {GLOBEX}"})
    e.request("GET", "/mcp", {"x-api-key": "mcpk_wrong_guess_0001"})
    e.request("GET", "/mcp", bearer(token))
    e.request("GET", "/mcp", bearer(token[:-3]))
    e.mcp_call("ping", id=3, headers={"x-api-key": "mcpk_wrong_guess_0001"})
    time.sleep(0.3)
    log = e.log()
    filter_lines = [l for l in log.splitlines() if "wasm log" in l]
    assert any("configured: 5 API keys, 3 JWT providers" in l for l in filter_lines), log[-2000:]
    if level == "debug":
        assert any("denied 401: unknown_key" in l for l in filter_lines), filter_lines
        assert any("allowed: org=acme key_id=acme-old" in l for l in filter_lines), filter_lines
        # Envoy's own debug logging prints request headers; the filter's lines never do.
        checked = filter_lines
    else:
        checked = log.splitlines()
    for secret in secrets:
        assert not any(secret in l for l in checked), secret


BAD_CONFIGS = [
    ({"keys": [entry("a", ACME_OLD, "acme", "pro", "owner"), entry("b", ACME_OLD, "acme", "pro", "user")]},
     "keys[1].sha256: duplicate of keys[0].sha256"),
    ({"keys": [entry("a", ACME_OLD, "acme", "pro", "owner"), entry("a", ACME_NEW, "acme", "pro", "user")]},
     "keys[1].id: duplicate of keys[0].id `a`"),
    ({"keys": [{**entry("a", ACME_OLD, "acme", "pro", "owner"), "sha256": "abc"}]},
     "keys[0].sha256: must be 64 hex digits"),
    ({"keys": [{**entry("a", ACME_OLD, "acme", "pro", "owner"), "expires_at": "next tuesday"}]},
     "keys[0].expires_at: must be an RFC 3339 date-time"),
    ({"jwt_providers": [{"name": "x", "issuer": "i", "local_jwks": {"keys": [{"kty": "oct", "k": b64url(b"short")}]}}]},
     "jwt_providers[0].local_jwks.keys[0]: HMAC secret must be at least 32 bytes"),
    ({"key_sources": [{"header": "x-mcp-org-id"}]}, "key_sources[0].header: must not be one of the identity headers"),
    ({"rules": [{"prefix": "/admin"}]}, "rules[0]: set allowed_roles and/or allowed_orgs"),
    ({"keyz": []}, "keyz: unknown field `keyz`"),
]


@pytest.mark.parametrize("overrides,message", BAD_CONFIGS, ids=[m.split(":")[0] for _, m in BAD_CONFIGS])
def test_bad_config_is_refused_naming_the_field(tmp_path, upstream, llm_upstream, layout, overrides, message):
    failure = expect_start_failure(
        tmp_path,
        upstreams={"mcp_debate": upstream.port, "llm_provider": llm_upstream.port},
        filters=["api-key-auth"],
        configs={"api-key-auth": {**config(), **overrides}},
        layout=layout,
    )
    message = config_field(layout, "api-key-auth", message)
    assert f"invalid pluginConfig: {message}" in failure.log, failure.log[-3000:]


def test_demo_config_in_envoy_yaml_works_with_the_demo_keys(envoy_factory, upstream):
    from harness.demo import demo_keys

    e = envoy_factory(filters=["api-key-auth"])
    keys = demo_keys()
    assert len(keys) >= 3 and all(k["demo_only"] for k in keys)
    for k in keys:
        assert e.request("GET", "/mcp", {"x-api-key": k["key"]}).status == 200, k["id"]
        got = upstream.last()
        assert (got.header("x-mcp-org-id"), got.header("x-mcp-plan"), got.header("x-mcp-role"),
                got.header("x-mcp-key-id")) == (k["org_id"], k["plan"], k["role"], k["id"])
    assert e.request("GET", "/health").status == 200
    assert e.request("GET", "/mcp").status == 401
