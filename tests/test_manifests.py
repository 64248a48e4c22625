"""The Istio manifests in wasm-plugins-yaml/: every resource, after the
kustomize overlays, validates against Istio's CRD schemas; they attach the
right filters to the six services in the right order; the mesh config mirrors
local/envoy.yaml; and a real Envoy configured like Istio's sidecar (stats
config, the rendered pluginConfigs) behaves as the manifests promise."""

from __future__ import annotations

import copy
import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from harness import free_port
from harness.envoy import load_template

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "check-config"))

import manifests  # noqa: E402

YAML_DIR = REPO / "wasm-plugins-yaml"
OVERLAYS = ["wasm-plugins-yaml/base", "wasm-plugins-yaml/overlays/production", "wasm-plugins-yaml/overlays/staging"]
GLOBAL = "wasm-plugins-yaml/overlays/production-global-ratelimit"
SERVICES = ["mcp-gateway", "mcp-debate", "mcp-llm", "mcp-organization", "mcp-context", "mcp-rag"]
CHAIN = ["api-key-auth", "mcp-guard", "org-rate-limit", "debate-access-log", "token-usage-metrics"]
PHASES = ["AUTHN", "AUTHZ", "STATS"]
# The Istio phase each filter belongs to (a module takes its first stage's).
PHASE_OF = {"api-key-auth": "AUTHN", "mcp-guard": "AUTHZ", "org-rate-limit": "AUTHZ",
            "debate-access-log": "STATS", "token-usage-metrics": "STATS"}
AI_HOSTS = ["api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com"]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    manifests.binary()
    return {o: [e["resource"] for e in manifests.render(o)] for o in [*OVERLAYS, GLOBAL]}


def of_kind(resources: list[dict], kind: str) -> list[dict]:
    return [r for r in resources if r["kind"] == kind]


COMPOSED = "mcp-mesh"


def stages(plugin: dict) -> list[tuple[str, dict]]:
    """(filter, its pluginConfig) for each stage a WasmPlugin runs: one for a
    standalone module, one per section, in chain order, for mcp-mesh."""
    spec = plugin["spec"]
    config = spec.get("pluginConfig", {})
    if spec["pluginName"] != COMPOSED:
        return [(spec["pluginName"], config)]
    return [(f, config[f.replace("-", "_")]) for f in CHAIN if f.replace("-", "_") in config]


def stage_configs(resources: list[dict], name: str) -> list[dict]:
    """Every pluginConfig of filter `name`, standalone or a section."""
    return [c for p in of_kind(resources, "WasmPlugin") for f, c in stages(p) if f == name]


def service_stage(resources: list[dict], service: str, name: str) -> dict:
    """The pluginConfig filter `name` runs with on `service`."""
    [config] = [c for p in of_kind(resources, "WasmPlugin")
                if p["spec"]["selector"]["matchLabels"]["app"] == service
                for f, c in stages(p) if f == name]
    return config


def envoy_access_log() -> dict:
    hcm = load_template()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["access_log"][0]


def operator() -> dict:
    return yaml.safe_load((YAML_DIR / "mesh" / "istio-operator.yaml").read_text())


# ---- CRD schemas ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", [*OVERLAYS, GLOBAL])
def test_every_resource_validates_against_its_istio_crd_schema(rendered, overlay):
    kinds = {r["kind"] for r in rendered[overlay]}
    assert kinds == {"WasmPlugin", "Telemetry", "ServiceEntry", "DestinationRule", "EnvoyFilter",
                     "PeerAuthentication", "AuthorizationPolicy"}
    problems = manifests.check_paths([overlay])
    assert problems == [], "\n".join(problems)


def test_the_crd_check_names_file_resource_and_field_of_each_mistake():
    problems = manifests.check_paths(["tests/fixtures/manifests/bad-crd-fields.yaml"])
    prefix = "tests/fixtures/manifests/bad-crd-fields.yaml: WasmPlugin production/token-usage-metrics-llm: "
    assert sorted(problems) == sorted([
        prefix + "spec.failStrategy: 'FAIL_SOMETIMES' is not one of ['FAIL_CLOSE', 'FAIL_OPEN', 'FAIL_RELOAD']",
        prefix + "spec.imagePulPolicy: unknown field (not in the CRD schema)",
        prefix + "spec.priority: 'high' is not of type 'integer'",
    ])


def test_the_crds_cel_rules_are_evaluated(rendered):
    resources = rendered["wasm-plugins-yaml/overlays/production"]
    wasm = copy.deepcopy(plugin(resources, "mcp-mesh-gateway"))
    wasm["spec"]["targetRefs"] = [{"group": "", "kind": "Service", "name": "mcp-gateway"}]
    wasm["spec"]["url"] = "ftp://example.com/mcp-mesh.wasm"
    wasm["spec"]["selector"]["matchLabels"]["app*"] = "x"
    assert sorted(manifests.validate(wasm)) == [
        ("spec", "only one of targetRefs or selector can be set"),
        ("spec.selector.matchLabels", "wildcard not allowed in label key match"),
        ("spec.url", "url must have schema one of [http, https, file, oci]"),
    ]
    entry = copy.deepcopy(of_kind(resources, "ServiceEntry")[0])
    entry["spec"]["ports"].append(dict(entry["spec"]["ports"][0]))
    assert [f for f, _ in manifests.validate(entry)] == ["spec.ports"]


def test_kinds_without_a_crd_here_are_skipped_but_typos_are_not(tmp_path):
    skipped = []
    assert manifests.check_paths(["wasm-plugins-yaml/mesh"], skipped) == []
    assert skipped == ["wasm-plugins-yaml/mesh/istio-operator.yaml: IstioOperator istio-system/mcp-mesh-filters"]
    typo = tmp_path / "typo.yaml"
    typo.write_text("apiVersion: networking.istio.io/v1\nkind: ServiceEntri\nmetadata: {name: x}\nspec: {}\n")
    [line] = manifests.check_paths([str(typo)])
    assert line.startswith(f"{typo}: ServiceEntri x: apiVersion: no CRD schema for networking.istio.io/v1 ServiceEntri"), line


def test_metadata_is_checked_like_the_api_server_does():
    bad = {"name": "Org_Rate", "namespace": "prod.x", "labels": {"app": "a b"}}
    fields = [f for f, _ in manifests.metadata_errors(bad)]
    assert fields == ["metadata.name", "metadata.namespace", "metadata.labels.app"]


# ---- what runs where -------------------------------------------------------------


def attachments(resources: list[dict]) -> dict[str, list[dict]]:
    """service (app label) -> its WasmPlugins in Istio's order: phase, then
    higher priority first."""
    by_service = defaultdict(list)
    for p in of_kind(resources, "WasmPlugin"):
        by_service[p["spec"]["selector"]["matchLabels"]["app"]].append(p)
    for plugins in by_service.values():
        plugins.sort(key=lambda p: (PHASES.index(p["spec"]["phase"]), -p["spec"].get("priority", 0)))
    return by_service


def modes(plugin: dict) -> set[str]:
    return {m["mode"] for m in plugin["spec"].get("match", [{"mode": "CLIENT_AND_SERVER"}])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_gets_its_filters_in_chain_order(rendered, overlay):
    by_service = attachments(rendered[overlay])
    assert sorted(by_service) == sorted(SERVICES)
    names = {svc: [f for p in plugins for f, _ in stages(p)] for svc, plugins in by_service.items()}
    assert names["mcp-gateway"] == ["api-key-auth", "mcp-guard", "org-rate-limit", "debate-access-log"]
    assert names["mcp-llm"] == ["api-key-auth", "mcp-guard", "org-rate-limit", "debate-access-log",
                                "token-usage-metrics"]
    for svc in ["mcp-debate", "mcp-organization", "mcp-context", "mcp-rag"]:
        assert names[svc] == ["api-key-auth", "mcp-guard", "debate-access-log"], svc
    # Stages that see the same traffic share one module (bench/RESULTS.md:
    # cheaper than separate ones); a lone stage runs its small standalone one.
    modules = {svc: [p["spec"]["pluginName"] for p in plugins] for svc, plugins in by_service.items()}
    assert modules["mcp-gateway"] == [COMPOSED]
    assert modules["mcp-llm"] == [COMPOSED, "token-usage-metrics"]
    for svc in ["mcp-debate", "mcp-organization", "mcp-context", "mcp-rag"]:
        assert modules[svc] == [COMPOSED], svc
    for svc, plugins in by_service.items():
        ranks = [CHAIN.index(f) for p in plugins for f, _ in stages(p)]
        assert ranks == sorted(ranks), svc
        for p in plugins:
            first = stages(p)[0][0]
            assert p["spec"]["phase"] == PHASE_OF[first], p["metadata"]["name"]
    # Token usage reads mcp-llm's calls out to the providers, nothing else.
    token = by_service["mcp-llm"][-1]
    assert token["spec"]["match"] == [{"mode": "CLIENT", "ports": [{"number": 80}]}]
    assert all(modes(p) == {"SERVER"} for svc in by_service.values() for p in svc if p is not token)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_plugin_is_pinned_pulled_and_fails_as_chosen(rendered, overlay):
    for p in of_kind(rendered[overlay], "WasmPlugin"):
        spec, name = p["spec"], p["spec"]["pluginName"]
        repo, _, digest = spec["url"].partition("@sha256:")
        assert repo.startswith("oci://") and repo.rsplit("/", 1)[1].split(":")[0] == name, spec["url"]
        assert digest == spec["sha256"] and len(digest) == 64, spec["url"]
        assert spec["imagePullPolicy"] == "IfNotPresent"
        # Security filters never fail open; observability never fails closed
        # (unless it shares a module with a security stage).
        security = {f for f, _ in stages(p)} & {"api-key-auth", "mcp-guard", "org-rate-limit"}
        expected = "FAIL_RELOAD" if security else "FAIL_OPEN"
        assert spec["failStrategy"] == expected, p["metadata"]["name"]


# ---- overlays ----------------------------------------------------------------------


def per_second(limit: dict) -> float:
    for key, seconds in [("requests_per_second", 1), ("requests_per_minute", 60), ("requests_per_hour", 3600)]:
        if key in limit:
            return limit[key] / seconds
    raise KeyError(limit)


def plugin(resources: list[dict], name: str) -> dict:
    return next(p for p in of_kind(resources, "WasmPlugin") if p["metadata"]["name"] == name)


def test_production_is_stricter_and_sampled(rendered):
    base, prod = rendered["wasm-plugins-yaml/base"], rendered["wasm-plugins-yaml/overlays/production"]
    for service in ["mcp-llm", "mcp-gateway"]:
        b, p = service_stage(base, service, "org-rate-limit"), service_stage(prod, service, "org-rate-limit")
        assert p["mode"] == "enforce"
        for plan, limit in b["plans"].items():
            assert per_second(p["plans"][plan]) <= per_second(limit), (service, plan)
            assert p["plans"][plan].get("burst", 0) <= limit.get("burst", 0), (service, plan)
    llm_b = service_stage(base, "mcp-llm", "org-rate-limit")["plans"]
    llm_p = service_stage(prod, "mcp-llm", "org-rate-limit")["plans"]
    assert all(per_second(llm_p[k]) < per_second(llm_b[k]) for k in llm_b)
    # LLM limits are tighter than the gateway's for every plan.
    gw_p = service_stage(prod, "mcp-gateway", "org-rate-limit")["plans"]
    assert all(per_second(llm_p[k]) < per_second(gw_p[k]) for k in llm_p)
    logs = stage_configs(prod, "debate-access-log")
    assert len(logs) == 6 and all(c["sampling"]["success_rate"] < 1.0 for c in logs)
    assert all(len(c["sampling"]["salt"]) >= 16 for c in logs)
    assert {r["metadata"]["namespace"] for r in prod} == {"production"}
    assert {r["metadata"]["labels"]["environment"] for r in prod} == {"production"}


def test_staging_is_its_own_namespace_keys_and_shadow_limits(rendered):
    prod, stg = rendered["wasm-plugins-yaml/overlays/production"], rendered["wasm-plugins-yaml/overlays/staging"]
    assert {r["metadata"]["namespace"] for r in stg} == {"staging"}
    hashes = lambda rs: {k["sha256"] for k in service_stage(rs, "mcp-gateway", "api-key-auth")["keys"]}  # noqa: E731
    assert hashes(stg) and hashes(prod) and not hashes(stg) & hashes(prod)
    limiters = stage_configs(stg, "org-rate-limit")
    assert len(limiters) == 2 and all(c["mode"] == "shadow" for c in limiters)


def test_debate_id_sources_are_tailored_per_service(rendered):
    prod = rendered["wasm-plugins-yaml/overlays/production"]
    sources = {
        svc: json.dumps(service_stage(prod, svc, "debate-access-log")["debate_id_sources"]) for svc in SERVICES
    }
    assert len(sources) == 6 and len(set(sources.values())) == 6


# ---- mesh config mirrors local/envoy.yaml ------------------------------------------


def test_access_log_provider_and_telemetry_mirror_local_envoy_yaml(rendered):
    envoy_log = envoy_access_log()
    providers = {p["name"]: p for p in operator()["spec"]["meshConfig"]["extensionProviders"]}
    provider = providers["mcp-json-access-log"]["envoyFileAccessLog"]
    assert provider["logFormat"]["labels"] == envoy_log["typed_config"]["log_format"]["json_format"]
    expression = envoy_log["filter"]["extension_filter"]["typed_config"]["expression"]
    for overlay in OVERLAYS:
        [telemetry] = of_kind(rendered[overlay], "Telemetry")
        [logging] = telemetry["spec"]["accessLogging"]
        assert [p["name"] for p in logging["providers"]] == ["mcp-json-access-log"]
        assert logging["filter"]["expression"] == expression
        assert "selector" not in telemetry["spec"]  # every workload of the namespace


def istio_tag_regex(tag: str) -> str:
    # tools/packaging/common/envoy_bootstrap.json of istio/istio, per extraStatTag.
    return f"({tag}=\\.=(.*?);\\.;)"


def test_extra_stat_tags_give_the_same_tags_as_local_envoy_yaml():
    local = load_template()["stats_config"]["stats_tags"]
    default = operator()["spec"]["meshConfig"]["defaultConfig"]
    assert default["extraStatTags"] == [t["tag_name"] for t in local]
    for t in local:
        assert t["regex"] == istio_tag_regex(t["tag_name"]), t


# ---- AI providers: plaintext at the sidecar, TLS on the wire --------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ai_providers_get_tls_originated_by_the_sidecar(rendered, overlay):
    entries = {r["spec"]["hosts"][0]: r for r in of_kind(rendered[overlay], "ServiceEntry")}
    rules = {r["spec"]["host"]: r for r in of_kind(rendered[overlay], "DestinationRule")}
    assert sorted(entries) == sorted(AI_HOSTS) == sorted(rules)
    token = plugin(rendered[overlay], "token-usage-metrics-llm")
    token_ports = {p["number"] for m in token["spec"]["match"] for p in m["ports"]}
    for host in AI_HOSTS:
        se = entries[host]["spec"]
        assert se["location"] == "MESH_EXTERNAL" and se["resolution"] == "DNS"
        # Only the plaintext port: a direct https:// call is not routed here.
        assert [(p["number"], p["protocol"], p["targetPort"]) for p in se["ports"]] == [(80, "HTTP", 443)]
        assert {p["number"] for p in se["ports"]} == token_ports
        [setting] = rules[host]["spec"]["trafficPolicy"]["portLevelSettings"]
        assert setting["port"]["number"] == 80
        assert setting["tls"]["mode"] == "SIMPLE"
        assert setting["tls"]["sni"] == host and setting["tls"]["subjectAltNames"] == [host]
        assert entries[host]["spec"]["exportTo"] == ["."] == rules[host]["spec"]["exportTo"]


# ---- real Envoy -----------------------------------------------------------------------


def istio_stats_config(inclusion_regexps: list[str]) -> dict:
    """The stats_config Istio's bootstrap template builds from ProxyConfig
    extraStatTags and proxyStatsMatcher (its own fixed tags left out)."""
    tags = operator()["spec"]["meshConfig"]["defaultConfig"]["extraStatTags"]
    patterns = [{"prefix": "reporter="}]
    patterns += [{"safe_regex": {"regex": r}} for r in inclusion_regexps]
    patterns += [{"prefix": "component"}, {"prefix": "istio"}]
    return {
        "use_all_default_tags": False,
        "stats_tags": [{"tag_name": t, "regex": istio_tag_regex(t)} for t in tags],
        "stats_matcher": {"inclusion_list": {"patterns": patterns}},
    }


def mcp_series(envoy) -> set[tuple[str, tuple]]:
    from prometheus_client.parser import text_string_to_metric_families

    out = set()
    for family in text_string_to_metric_families(envoy.prometheus()):
        for s in family.samples:
            if s.name.startswith("mcp_"):
                out.add((s.name, tuple(sorted(s.labels.items()))))
    return out


def test_istio_proxy_stats_config_exposes_the_labeled_metrics(envoy_factory):
    """Three real Envoys, same traffic: local/envoy.yaml's stats config, the
    one Istio builds from our mesh config, and Istio's without our matcher."""
    default = operator()["spec"]["meshConfig"]["defaultConfig"]
    regexps = default["proxyStatsMatcher"]["inclusionRegexps"]

    def with_stats(stats):
        def mutate(b):
            b["stats_config"] = stats
        return mutate

    envoys = {
        "local": envoy_factory(),
        "istio": envoy_factory(mutate=with_stats(istio_stats_config(regexps))),
        "istio-default": envoy_factory(mutate=with_stats(istio_stats_config([]))),
    }
    # The whole chain, with traffic that makes every filter count something:
    # no key, a wrong key, an MCP call, an LLM call.
    for envoy in envoys.values():
        envoy.request("GET", "/debates")
        envoy.request("GET", "/debates", {"x-api-key": "not-a-key"})
        envoy.mcp_call("tools/call", {"name": "get_debate", "arguments": {"debate_id": "d-1"}})
        envoy.request("POST", "/v1/chat/completions", body={"model": "gpt-4.1-mini", "messages": []})
    local, istio = mcp_series(envoys["local"]), mcp_series(envoys["istio"])
    assert local, "the filters exposed no mcp_* metric with local/envoy.yaml"
    assert any(labels for _, labels in local), local
    assert istio == local
    # Istio's default matcher hides them: the proxyStatsMatcher is needed.
    assert mcp_series(envoys["istio-default"]) == set()


ASSERTION = "x-mcp-identity"


def assertion(resources: list[dict], **claims) -> str:
    """An identity assertion as the rendered gateway mints it (its own key)."""
    import time

    import jwt

    mint = service_stage(resources, "mcp-gateway", "api-key-auth")["identity_assertion"]
    key = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(mint["private_key"]))
    now = int(time.time())
    body = {"iss": mint["issuer"], "aud": mint["audience"], "iat": now, "exp": now + mint["ttl_seconds"],
            "org_id": "acme", "plan": "pro", "role": "owner", "jti": "acme-owner"} | claims
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": mint["key_id"]})


def start_service(rendered, envoy_factory, overlay: str, service: str):
    """A real Envoy with one service's chain from the rendered overlay, the
    pluginConfigs exactly as Istio hands them over (the Struct as JSON)."""
    plugins = attachments(rendered[overlay])[service]
    configs = {f: json.dumps(c) for p in plugins for f, c in stages(p)}
    envoy = envoy_factory(filters=[f for f in CHAIN if f in configs], configs=configs)
    assert "invalid pluginConfig" not in envoy.log(), (service, envoy.log()[-2000:])
    return envoy


@pytest.mark.parametrize("overlay", OVERLAYS[1:])
def test_every_rendered_chain_loads_in_a_real_envoy(rendered, envoy_factory, overlay):
    for service in SERVICES:
        envoy = start_service(rendered, envoy_factory, overlay, service)
        assert envoy.request("GET", "/health").status < 500, service
        envoy.stop()


def test_production_gateway_and_llm_chains_do_what_the_manifests_say(rendered, envoy_factory):
    prod = "wasm-plugins-yaml/overlays/production"
    gateway = start_service(rendered, envoy_factory, prod, "mcp-gateway")
    assert gateway.request("GET", "/health").status == 200  # skip_paths
    assert gateway.request("GET", "/debates").status == 401  # no key
    gateway.stop()

    llm = start_service(rendered, envoy_factory, prod, "mcp-llm")
    # Identity only from the gateway's assertion: plain headers are not one.
    assert llm.request("GET", "/generate", {"x-mcp-org-id": "initech", "x-mcp-plan": "free"}).status == 401
    # Production's free plan on mcp-llm: a burst of 3, then 429.
    identity = {ASSERTION: assertion(rendered[prod], org_id="initech", plan="free")}
    statuses = [llm.request("GET", "/generate", identity).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429], statuses


def test_staging_organization_service_logs_its_debate_ids(rendered, envoy_factory):
    staging = "wasm-plugins-yaml/overlays/staging"
    envoy = start_service(rendered, envoy_factory, staging, "mcp-organization")
    headers = {ASSERTION: assertion(rendered[staging])}
    assert envoy.request("GET", "/organizations/acme/debates/d-42/arguments", headers).status == 200
    [line] = envoy.access_log(expect=1)
    assert line["debate_id"] == "d-42", line


def test_global_rate_limit_overlay_points_both_limiters_at_the_service(rendered, envoy_factory):
    resources = rendered[GLOBAL]
    [entry] = [r for r in of_kind(resources, "ServiceEntry") if r["metadata"]["name"] == "ratelimit-service"]
    [port] = entry["spec"]["ports"]
    assert port["protocol"] == "GRPC"  # the RLS protocol needs HTTP/2
    cluster = f"outbound|{port['number']}||{entry['spec']['hosts'][0]}"
    limiters = stage_configs(resources, "org-rate-limit")
    assert len(limiters) == 2
    for c in limiters:
        assert c["limiter"] == "local_then_global"
        assert c["global"]["cluster"] == cluster
    # Everything else is production's.
    prod = {r["metadata"]["name"]: r for r in rendered["wasm-plugins-yaml/overlays/production"]}
    for r in resources:
        if r["kind"] == "WasmPlugin":
            mine, theirs = copy.deepcopy(r), copy.deepcopy(prod[r["metadata"]["name"]])
            for p in (mine, theirs):
                if p["spec"]["pluginName"] == COMPOSED:
                    p["spec"]["pluginConfig"].pop("org_rate_limit", None)
            assert mine == theirs

    # In a real Envoy with that cluster (nothing listening behind it): the
    # service call fails and failure_mode open lets the request through.
    def add_cluster(b):
        b["static_resources"]["clusters"].append({
            "name": cluster,
            "type": "STATIC",
            "connect_timeout": "0.25s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": free_port()}}}}]}]},
        })

    llm_limiter = service_stage(resources, "mcp-llm", "org-rate-limit")
    envoy = envoy_factory(filters=["org-rate-limit"], configs={"org-rate-limit": json.dumps(llm_limiter)},
                          mutate=add_cluster)
    assert "invalid pluginConfig" not in envoy.log()
    assert envoy.request("GET", "/generate", {"x-mcp-org-id": "initech", "x-mcp-plan": "free"}).status == 200
    # ...after asking the service on exactly that cluster.
    stats = envoy.admin("/stats?filter=upstream_cx_total")
    attempts = [int(line.rsplit(": ", 1)[1]) for line in stats.splitlines() if line.startswith(f"cluster.{cluster}.upstream_cx_total:")]
    assert attempts and attempts[0] >= 1, stats


@pytest.mark.parametrize("service, tool, allowed", [
    ("mcp-debate", "run_debate_round", {"owner", "moderator"}),
    ("mcp-debate", "get_debate", {"owner", "moderator", "user"}),
    ("mcp-organization", "delete_organization", {"owner"}),
    ("mcp-organization", "invite_member", {"owner"}),
    ("mcp-organization", "list_members", {"owner", "moderator", "user"}),
    ("mcp-rag", "ingest_documents", {"owner", "moderator"}),
])
def test_the_shipped_tool_rules_fit_each_service(rendered, envoy_factory, service, tool, allowed):
    envoy = start_service(rendered, envoy_factory, "wasm-plugins-yaml/overlays/production", service)
    for role in ["owner", "moderator", "user"]:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": tool, "arguments": {},
                           "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                     "io.modelcontextprotocol/clientCapabilities": {}}}}
        headers = {ASSERTION: assertion(rendered["wasm-plugins-yaml/overlays/production"], role=role),
                   "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool}
        status = envoy.request("POST", "/mcp", headers, body).status
        assert (status == 200) == (role in allowed), (service, tool, role, status)


def test_authorization_policies_allow_only_the_call_graph(rendered):
    """mTLS STRICT for the namespace, and each service reachable only from
    the callers docs/architecture.md names, in the overlay's namespace."""
    graph = {"mcp-gateway": {"istio-ingressgateway-service-account"}, "mcp-debate": {"mcp-gateway"},
             "mcp-organization": {"mcp-gateway"}, "mcp-context": {"mcp-gateway", "mcp-debate"},
             "mcp-rag": {"mcp-gateway", "mcp-debate"}, "mcp-llm": {"mcp-gateway", "mcp-debate", "mcp-rag"}}
    for overlay, ns in [("wasm-plugins-yaml/overlays/production", "production"),
                        ("wasm-plugins-yaml/overlays/staging", "staging")]:
        resources = rendered[overlay]
        [peer] = of_kind(resources, "PeerAuthentication")
        assert peer["spec"] == {"mtls": {"mode": "STRICT"}} and peer["metadata"]["namespace"] == ns
        seen = {}
        for policy in of_kind(resources, "AuthorizationPolicy"):
            spec = policy["spec"]
            assert spec["action"] == "ALLOW" and policy["metadata"]["namespace"] == ns
            [rule] = spec["rules"]
            [source] = [f["source"] for f in rule["from"]]
            app = spec["selector"]["matchLabels"]["app"]
            seen[app] = {p.removeprefix("*/sa/") for p in source["principals"]}
            assert source["namespaces"] == (["istio-system"] if app == "mcp-gateway" else [ns]), policy
        assert seen == graph, overlay


TRAFFIC_EXTENSION = "wasm-plugins-yaml/overlays/traffic-extension"


def test_the_traffic_extension_overlay_is_production_as_istio_1_30_resources(rendered, tmp_path):
    import subprocess

    # Generated from production with real kustomize, and current.
    out = subprocess.run([sys.executable, str(REPO / TRAFFIC_EXTENSION / "generate.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    resources = [e["resource"] for e in manifests.render(TRAFFIC_EXTENSION)]
    assert manifests.check_paths([TRAFFIC_EXTENSION]) == []
    extensions = of_kind(resources, "TrafficExtension")
    assert of_kind(resources, "WasmPlugin") == []
    plugins = {p["metadata"]["name"]: p["spec"] for p in of_kind(rendered["wasm-plugins-yaml/overlays/production"],
                                                                  "WasmPlugin")}
    assert {e["metadata"]["name"] for e in extensions} == set(plugins)
    for e in extensions:
        spec, plugin = e["spec"], plugins[e["metadata"]["name"]]
        for key in ["selector", "match", "phase", "priority"]:
            assert spec[key] == plugin[key], (e["metadata"]["name"], key)
        for key in ["url", "sha256", "pluginName", "pluginConfig", "failStrategy"]:
            assert spec["wasm"][key] == plugin[key], (e["metadata"]["name"], key)
    # check-config runs every pluginConfig through the filters' own parsers,
    # and names the TrafficExtension's own field path on a mistake.
    out = manifests.run(TRAFFIC_EXTENSION)
    assert out.returncode == 0 and "7 pluginConfig(s) checked" in out.stderr, out.stdout + out.stderr
    broken = tmp_path / "broken.yaml"
    text = (REPO / TRAFFIC_EXTENSION / "resources.yaml").read_text()
    assert "without_identity: deny" in text
    broken.write_text(text.replace("without_identity: deny", "without_identity: sometimes", 1))
    out = manifests.run(broken)
    assert out.returncode == 1
    assert any(l.startswith(f"{broken}: TrafficExtension production/mcp-mesh-llm: "
                            "spec.wasm.pluginConfig.org_rate_limit.without_identity") for l in out.stdout.splitlines()), out.stdout


@pytest.mark.parametrize("overlay", [*OVERLAYS, GLOBAL, TRAFFIC_EXTENSION])
def test_real_kustomize_renders_what_check_config_checks(rendered, overlay):
    """`kubectl kustomize` (kustomize v5.5) and check-config's own renderer
    (which keeps each field's source file for its messages) agree on every
    overlay, and check-config checks kustomize's output on standard input."""
    import subprocess

    real = subprocess.run(["kubectl", "kustomize", str(REPO / overlay)], capture_output=True, text=True, check=True)
    key = lambda r: (r["kind"], r["metadata"]["name"])  # noqa: E731
    theirs = sorted((d for d in yaml.safe_load_all(real.stdout) if d), key=key)
    ours = sorted((e["resource"] for e in manifests.render(overlay)), key=key)
    # Compared as values: YAML's 1.0 and JSON's 1 are the same number.
    assert theirs == ours
    out = subprocess.run([str(manifests.binary()), "-"], input=real.stdout, capture_output=True, text=True)
    assert out.returncode == 0 and "7 pluginConfig(s) checked" in out.stderr, out.stdout + out.stderr
    broken = real.stdout.replace("default_plan: free", "default_plan: platinum", 1)
    assert broken != real.stdout
    out = subprocess.run([str(manifests.binary()), "-"], input=broken, capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout.startswith("<stdin>: "), out.stdout
    assert "default_plan: unknown plan `platinum`" in out.stdout, out.stdout
