"""Every Envoy configuration the benchmark runs, generated from local/envoy.yaml
(harness.envoy.build_bootstrap + mutate) so the bench measures the bootstrap
that ships, and the upstream Envoy that answers them all.

Our filters run with the pluginConfigs of local/envoy.yaml, overridden only
where a benchmark must: bench API keys added to api-key-auth, every plan of
org-rate-limit raised far above what a run sends (or, for the accuracy run,
set to an exact limit).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.envoy import FILTERS, build_bootstrap, hcm, load_template, plugin_config

# --- credentials and organizations the load generator sends ------------------

KEY_TEMPLATE = "mcpk_bench_{i}_7c1e0d9a4b2f4e6aa51f"  # {i}: %06d, as bench.lua fills it in
ORG_TEMPLATE = "org-{i}"


def bench_key(i: int) -> str:
    return KEY_TEMPLATE.replace("{i}", f"{i:06d}")


def bench_org(i: int) -> str:
    return ORG_TEMPLATE.replace("{i}", f"{i:06d}")


# Far above anything a run sends, so org-rate-limit decides but never rejects.
UNLIMITED_PER_MINUTE = 600_000_000
UNLIMITED_BURST = 100_000_000


def template() -> dict:
    return load_template()


def rate_limit_plan(rl: dict) -> str:
    """The plan the bench keys get: org-rate-limit's default plan."""
    return rl.get("default_plan") or next(iter(rl["plans"]))


def _hash_field(auth: dict) -> str:
    """The key entries' SHA-256 field, as the shipped config spells it."""
    sample = next(iter(auth.get("keys") or []), {})
    return "hash" if "hash" in sample else "sha256"


def api_key_header(auth: dict) -> str:
    for source in auth.get("key_sources") or []:
        if source.get("header") and not source.get("value_prefix"):
            return source["header"]
    return auth.get("header", "x-api-key")


def api_key_auth_config(keys: int) -> dict:
    """local/envoy.yaml's api-key-auth config plus `keys` bench keys, one
    organization each (bench key i belongs to org i)."""
    t = template()
    auth = plugin_config(t, "api-key-auth")
    plan = rate_limit_plan(plugin_config(t, "org-rate-limit"))
    hash_field = _hash_field(auth)
    entries = list(auth.get("keys") or [])
    for i in range(keys):
        entries.append({
            "id": f"bench-{i:06d}",
            hash_field: hashlib.sha256(bench_key(i).encode()).hexdigest(),
            "org_id": bench_org(i),
            "plan": plan,
            "role": "user",
        })
    auth["keys"] = entries
    return auth


def _set_limit(spec: dict, per_minute: int, burst: int) -> None:
    for other in ("requests_per_second", "requests_per_hour"):
        spec.pop(other, None)
    spec["requests_per_minute"] = per_minute
    spec["burst"] = burst
    for route_class in (spec.get("route_classes") or {}).values():
        _set_limit(route_class, per_minute, burst)


def org_rate_limit_config(per_minute: int = UNLIMITED_PER_MINUTE, burst: int = UNLIMITED_BURST) -> dict:
    """local/envoy.yaml's org-rate-limit config, enforcing, in this Envoy's
    shared data, with every plan, route class and organization override set
    to the same limit."""
    rl = plugin_config(template(), "org-rate-limit")
    if "limiter" in rl:
        rl["limiter"] = "local"
    if "mode" in rl:
        rl["mode"] = "enforce"
    for plan in rl["plans"].values():
        _set_limit(plan, per_minute, burst)
    for org in (rl.get("organizations") or {}).values():
        if set(org) - {"plan"}:
            _set_limit(org, per_minute, burst)
    return rl


# --- JWT API tokens for many organizations ---------------------------------------
#
# 100,000 organizations are not 100,000 static keys in a pluginConfig (that
# would be a 16 MB WasmPlugin; Kubernetes objects stop at about 1.5 MB): they
# are signed tokens. The bench adds its own HS256 issuer to api-key-auth.

BENCH_JWT_SECRET = b"bench-only-hs256-secret-not-for-production-0001"
BENCH_JWT_ISSUER = "https://bench.mcp-mesh.invalid"
BENCH_JWT_AUDIENCE = "mcp-bench"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bench_jwt_provider() -> dict:
    return {
        "name": "bench-idp",
        "issuer": BENCH_JWT_ISSUER,
        "audiences": [BENCH_JWT_AUDIENCE],
        "local_jwks": {"keys": [{"kty": "oct", "kid": "bench-hs256", "alg": "HS256",
                                 "k": _b64url(BENCH_JWT_SECRET)}]},
    }


def bench_jwt(i: int, plan: str, now: int) -> str:
    """The HS256 API token of organization i, valid for a day."""
    header = {"alg": "HS256", "typ": "JWT", "kid": "bench-hs256"}
    claims = {"iss": BENCH_JWT_ISSUER, "aud": BENCH_JWT_AUDIENCE, "sub": f"bench-user-{i:06d}",
              "jti": f"bench-{i:06d}", "org_id": bench_org(i), "plan": plan, "role": "user",
              "iat": now, "exp": now + 86400}
    signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    signature = hmac.new(BENCH_JWT_SECRET, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)


def bench_jwts(count: int) -> list[str]:
    plan = rate_limit_plan(plugin_config(template(), "org-rate-limit"))
    now = int(time.time())
    return [bench_jwt(i, plan, now) for i in range(count)]


def plugin_configs(keys: int = 1, jwt: bool = False) -> dict[str, dict]:
    """Every filter's bench pluginConfig: `keys` bench API keys, and with
    `jwt` the bench's token issuer."""
    t = template()
    auth = api_key_auth_config(keys)
    if jwt:
        auth["jwt_providers"] = list(auth.get("jwt_providers") or []) + [bench_jwt_provider()]
    return {
        "api-key-auth": auth,
        "mcp-guard": plugin_config(t, "mcp-guard"),
        "org-rate-limit": org_rate_limit_config(),
        "debate-access-log": plugin_config(t, "debate-access-log"),
        "token-usage-metrics": plugin_config(t, "token-usage-metrics"),
    }


# --- Envoy's native equivalents --------------------------------------------------

def native_api_key_auth(keys: int) -> dict:
    """envoy.filters.http.api_key_auth with as many credentials as our filter
    has keys, reading the same header and stripping it the same way."""
    auth = api_key_auth_config(0)
    credentials = [{"key": f"mcpk_demo_{n:06d}_padding_to_key_length", "client": f"demo-{n}"}
                   for n in range(len(auth.get("keys") or []))]
    credentials += [{"key": bench_key(i), "client": bench_org(i)} for i in range(keys)]
    return {
        "name": "envoy.filters.http.api_key_auth",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
            "credentials": credentials,
            "key_sources": [{"header": api_key_header(auth)}],
            "forwarding": {"header": "x-mcp-key-id", "hide_credentials": True},
        },
    }


def native_local_ratelimit(max_tokens: int, tokens_per_fill: int, fill_interval: str) -> dict:
    """envoy.filters.http.local_ratelimit: one token bucket shared by all
    workers (its default), always enabled and enforced."""
    percent = {"numerator": 100, "denominator": "HUNDRED"}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench_native_rl",
            "token_bucket": {
                "max_tokens": max_tokens,
                "tokens_per_fill": tokens_per_fill,
                "fill_interval": fill_interval,
            },
            "filter_enabled": {"runtime_key": "bench_rl_enabled", "default_value": percent},
            "filter_enforced": {"runtime_key": "bench_rl_enforced", "default_value": percent},
        },
    }


# --- the configurations ----------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    """One Envoy configuration under test.

    access_log: None (no access log), "native" (the file access log of
    local/envoy.yaml with its json_format, minus the fields only our filters
    fill and the sampling filter that reads their verdict), or "ours" (the
    access log of local/envoy.yaml as shipped, which debate-access-log's
    filter state fills)."""

    name: str
    filters: tuple[str, ...] = ()
    access_log: str | None = None
    native: tuple[dict, ...] = ()
    what: str = ""
    # "standalone": each filter its own module; "composed": the filters as
    # stages of dist/mcp-mesh.wasm.
    layout: str = "standalone"
    # The no-op module's pluginConfig: "<host call> <n>" prices one host call.
    probe: str = ""
    # Sidecar-like: TLS from the client and TLS to the upstream, as mTLS in
    # a mesh costs (certificates made at run time, `make_certs`).
    tls: bool = False
    # The request the instructions section sends (traffic.REQUESTS): "mcp"
    # (handshake era), "mcp-modern" (2026-07-28 headers) or "llm" (a chat
    # completion, answered with its usage).
    request: str = "mcp"
    # token-usage-metrics with a local token budget every call answers to.
    budgets: bool = False


def throughput_setups() -> list[Setup]:
    unlimited = native_local_ratelimit(4_000_000_000, 4_000_000_000, "1s")
    return [
        Setup("bare", what="router only: the floor"),
        Setup("api-key-auth", ("api-key-auth",), what="our filter alone"),
        Setup("mcp-guard", ("mcp-guard",), what="our filter alone, the shipped rules: the body held until checked"),
        Setup("org-rate-limit", ("org-rate-limit",), what="our filter alone, limit far above the load"),
        Setup("debate-access-log", ("debate-access-log",), access_log="ours",
              what="our filter + Envoy's file access log with the full json_format"),
        Setup("token-usage-metrics", ("token-usage-metrics",), what="our filter alone"),
        Setup("full chain", tuple(FILTERS), access_log="ours",
              what="the five standalone modules + the access log"),
        Setup("composed chain", tuple(FILTERS), access_log="ours", layout="composed",
              what="mcp-mesh.wasm with the five stages + the access log"),
        Setup("bare TLS", tls=True, what="router only, TLS from the client and to the upstream: a sidecar's floor"),
        Setup("composed chain TLS", tuple(FILTERS), access_log="ours", layout="composed", tls=True,
              what="the composed chain behind TLS both ways"),
        Setup("native api_key_auth", native=(native_api_key_auth(1),),
              what="envoy.filters.http.api_key_auth, same header, same key count"),
        Setup("native local_ratelimit", native=(unlimited,),
              what="envoy.filters.http.local_ratelimit, one shared bucket far above the load"),
        Setup("native access log", access_log="native",
              what="Envoy's file access log, json_format, the standard fields of local/envoy.yaml's format"),
    ]


def _is_filter_state(value: str) -> bool:
    return isinstance(value, str) and "%FILTER_STATE(" in value


def make_certs(folder: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 / localhost, made now."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


def _tls_socket(kind: str, certs: tuple[Path, Path] | None) -> dict:
    context: dict = {"@type": f"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.{kind}TlsContext"}
    if certs:
        cert, key = certs
        context["common_tls_context"] = {"tls_certificates": [{
            "certificate_chain": {"filename": str(cert)}, "private_key": {"filename": str(key)}}]}
    else:
        context["sni"] = "localhost"
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def with_tls(b: dict, certs: tuple[Path, Path]) -> None:
    """TLS on the listener and on every upstream cluster of bootstrap `b`."""
    for listener in b["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            chain["transport_socket"] = _tls_socket("Downstream", certs)
    for cluster in b["static_resources"].get("clusters", []):
        if cluster["name"] in ("mcp_debate", "llm_provider"):
            cluster["transport_socket"] = _tls_socket("Upstream", None)


def bootstrap(
    setup: Setup,
    workdir: Path,
    upstreams: dict[str, int],
    configs: dict[str, dict] | None = None,
    certs: tuple[Path, Path] | None = None,
) -> dict:
    """local/envoy.yaml turned into `setup`: its filters (with bench
    pluginConfigs), natives inserted before the router, its access log, and
    TLS both ways for a `tls` setup (`certs` then required)."""

    def mutate(b: dict) -> None:
        if setup.tls:
            if certs is None:
                raise ValueError(f"{setup.name} needs certificates")
            with_tls(b, certs)
        manager = hcm(b)
        if setup.access_log is None:
            manager.pop("access_log", None)
        else:
            logger = manager["access_log"][0]
            log = logger["typed_config"]
            if setup.access_log == "native":
                logger.pop("filter", None)  # the CEL sampling filter reads debate-access-log's verdict
                fmt = log["log_format"]["json_format"]
                log["log_format"]["json_format"] = {k: v for k, v in fmt.items() if not _is_filter_state(v)}
        chain = manager["http_filters"]
        manager["http_filters"] = chain[:-1] + [copy.deepcopy(n) for n in setup.native] + chain[-1:]

    all_configs = configs if configs is not None else plugin_configs()
    return build_bootstrap(
        workdir,
        upstreams,
        filters=list(setup.filters),
        configs={name: all_configs[name] for name in setup.filters},
        mutate=mutate,
        layout=setup.layout,
    )


# --- the upstream -----------------------------------------------------------------

MCP_RESPONSE = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {"content": [{"type": "text", "text": "Debate d-42: round 2 of 3, pro leads."}], "isError": False},
}
LLM_RESPONSE = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1764000000,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "The motion carries."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 17, "completion_tokens": 5, "total_tokens": 22},
}


def upstream_bootstrap(certs: tuple[Path, Path] | None = None) -> dict:
    """A second Envoy answering every request itself (direct_response): a
    loopback upstream much faster than the proxy it serves (over TLS with
    `certs`)."""

    def answer(prefix: str, body: dict) -> dict:
        return {
            "match": {"prefix": prefix},
            "direct_response": {"status": 200, "body": {"inline_string": json.dumps(body)}},
            "response_headers_to_add": [{
                "header": {"key": "content-type", "value": "application/json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }],
        }

    b = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "upstream",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                 "http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "upstream",
                        "route_config": {"virtual_hosts": [{
                            "name": "all",
                            "domains": ["*"],
                            "routes": [answer("/v1/", LLM_RESPONSE), answer("/", MCP_RESPONSE)],
                        }]},
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                        }],
                    },
                }]}],
            }],
        },
    }
    if certs:
        with_tls(b, certs)
    return b
