"""Writes the Grafana dashboard and the PrometheusRule from one source
(`make observability`; `--check` fails when a committed file is stale):

- dashboard.json: importable in Grafana, the Prometheus datasource as the
  variable `datasource`; every panel query is in PANELS below.
- prometheus-rule.yaml: alerts.rules.yaml as a prometheus-operator
  PrometheusRule (same groups, same rules).

tests/test_observability.py evaluates every panel query and every alert
against a real Prometheus scraping a real Envoy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RATE = "$__rate_interval"

# (title, unit, kind, [(legend, expr)]); kind: timeseries | heatmap.
PANELS = [
    ("Auth decisions by reason", "reqps", "timeseries", [
        ("{{decision}} {{reason}}", f'sum by (decision, reason) (rate(mcp_auth_requests_total[{RATE}]))'),
    ]),
    ("MCP tool denials and header mismatches", "reqps", "timeseries", [
        ("tool denied", f'sum(rate(mcp_auth_requests_total{{reason="tool_denied"}}[{RATE}]))'),
        ("header mismatch {{reason}}", f'sum by (reason) (rate(mcp_guard_header_mismatch_total[{RATE}]))'),
        ("list entries removed", f'sum(rate(mcp_guard_list_entries_removed_total[{RATE}]))'),
    ]),
    ("Rate limit decisions by plan", "reqps", "timeseries", [
        ("{{plan}} {{decision}}",
         f'sum by (plan, decision) (rate(mcp_ratelimit_requests_total{{decision=~"allowed|limited|shadow_limited"}}[{RATE}]))'),
    ]),
    ("Rate-limit service errors and fail-open", "reqps", "timeseries", [
        ("service error {{reason}}", f'sum by (reason) (rate(mcp_ratelimit_service_errors_total[{RATE}]))'),
        ("fail open", f'sum(rate(mcp_ratelimit_requests_total{{decision="fail_open"}}[{RATE}]))'),
    ]),
    ("Top organizations by LLM tokens", "short", "timeseries", [
        ("{{org_id}}", f'topk(10, sum by (org_id) (rate(mcp_llm_tokens_total{{gen_ai_token_type=~"input|output"}}[{RATE}])))'),
    ]),
    ("LLM tokens by provider, model and type", "short", "timeseries", [
        ("{{gen_ai_provider_name}} {{gen_ai_request_model}} {{gen_ai_token_type}}",
         f'sum by (gen_ai_provider_name, gen_ai_request_model, gen_ai_token_type) (rate(mcp_llm_tokens_total[{RATE}]))'),
    ]),
    ("Tokens per LLM call (p50, p90, p99)", "short", "timeseries", [
        (f"p{q} {{{{gen_ai_token_type}}}}",
         f'histogram_quantile(0.{q}, sum by (le, gen_ai_token_type) (rate(mcp_llm_request_tokens_bucket[{RATE}])))')
        for q in (50, 90, 99)
    ]),
    ("LLM call outcomes and usage missing", "reqps", "timeseries", [
        ("{{gen_ai_provider_name}} {{outcome}}",
         f'sum by (gen_ai_provider_name, outcome) (rate(mcp_llm_requests_total[{RATE}]))'),
        ("usage missing: {{reason}}", f'sum by (reason) (rate(mcp_llm_usage_missing_total[{RATE}]))'),
    ]),
    ("Access-log sampling and truncation", "reqps", "timeseries", [
        ("{{decision}}", f'sum by (decision) (rate(mcp_access_log_requests_total[{RATE}]))'),
        ("body truncated", f'sum(rate(mcp_access_log_body_truncated_total[{RATE}]))'),
    ]),
    ("Wasm VMs (Envoy)", "short", "timeseries", [
        ("active VMs", 'sum(envoy_wasm_envoy_wasm_runtime_v8_active)'),
        ("VMs created /s", f'sum(rate(envoy_wasm_envoy_wasm_runtime_v8_created[{RATE}]))'),
        ("reloads /s", f'sum(rate({{__name__=~"envoy_wasm_.+_vm_reload"}}[{RATE}]))'),
    ]),
    ("Requests per service (Envoy)", "reqps", "timeseries", [
        ("{{envoy_http_conn_manager_prefix}} {{envoy_response_code_class}}xx",
         f'sum by (envoy_http_conn_manager_prefix, envoy_response_code_class) (rate(envoy_http_downstream_rq_xx[{RATE}]))'),
    ]),
    ("Request latency per service, p99 (Envoy)", "ms", "timeseries", [
        ("{{envoy_http_conn_manager_prefix}}",
         f'histogram_quantile(0.99, sum by (le, envoy_http_conn_manager_prefix) (rate(envoy_http_downstream_rq_time_bucket[{RATE}])))'),
    ]),
]


def dashboard() -> dict:
    panels = []
    for i, (title, unit, kind, targets) in enumerate(PANELS):
        panels.append({
            "id": i + 1,
            "type": kind,
            "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [{"refId": chr(65 + j), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for j, (legend, expr) in enumerate(targets)],
        })
    return {
        "title": "MCP mesh filters",
        "uid": "mcp-mesh-filters",
        "description": "Auth, MCP guard, rate limits, LLM tokens and the Wasm VMs of the MCP mesh sidecars "
                       "(wasm-plugins-yaml/observability; docs/metrics.md).",
        "tags": ["mcp", "envoy", "istio", "wasm"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1,
        }]},
        "annotations": {"list": []},
        "panels": panels,
    }


def prometheus_rule() -> dict:
    rules = yaml.safe_load((HERE / "alerts.rules.yaml").read_text())
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "mcp-mesh-filters", "labels": {"app.kubernetes.io/part-of": "mcp-mesh-filters"}},
        "spec": {"groups": rules["groups"]},
    }


OUTPUTS = {
    "dashboard.json": lambda: json.dumps(dashboard(), indent=2) + "\n",
    "prometheus-rule.yaml": lambda: "# GENERATED by build.py from alerts.rules.yaml (make observability).\n"
                                    + yaml.safe_dump(prometheus_rule(), sort_keys=False, width=120),
}


def main() -> None:
    stale = []
    for name, make in OUTPUTS.items():
        text, path = make(), HERE / name
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        sys.exit(f"stale: {', '.join(stale)}: run `make observability` and commit them")


if __name__ == "__main__":
    main()
