"""The requests wrk sends: an MCP `tools/call` (what the mesh mostly carries)
and an OpenAI Chat Completions call (what token-usage-metrics reads).

Every configuration gets byte-identical requests: a bench API key (used by
api-key-auth and native api_key_auth), and the organization header that
api-key-auth would set (read by org-rate-limit when it runs alone; replaced
by api-key-auth in the full chain)."""

from __future__ import annotations

import json

from configs import ORG_TEMPLATE, api_key_header, bench_key, bench_org, template
from harness.envoy import plugin_config
from wrkrun import Request

# Header names as the shipped configs have them.
KEY_HEADER = api_key_header(plugin_config(template(), "api-key-auth"))
ORG_HEADER = plugin_config(template(), "org-rate-limit").get("org_header", "x-mcp-org-id")

MCP_BODY = json.dumps({
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "get_debate_status", "arguments": {"debate_id": "d-42"}},
}, separators=(",", ":"))

# The same call in MCP 2026-07-28: the envelope in params._meta, and the
# method and tool repeated in headers (modern_mcp_request).
MODERN_BODY = json.dumps({
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "get_debate_status", "arguments": {"debate_id": "d-42"},
               "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                         "io.modelcontextprotocol/clientCapabilities": {}}},
}, separators=(",", ":"))

LLM_BODY = json.dumps({
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Argue for the motion in one sentence."}],
}, separators=(",", ":"))


def request_headers(key: str, org: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-session-id": "bench-session-1",
        KEY_HEADER: key,
        ORG_HEADER: org,
    }


def mcp_request(key: str | None = None, org: str | None = None) -> Request:
    return Request("POST", "/mcp", request_headers(key or bench_key(0), org or bench_org(0)), MCP_BODY)


def modern_mcp_request() -> Request:
    headers = request_headers(bench_key(0), bench_org(0))
    del headers["mcp-session-id"]  # no sessions in 2026-07-28
    headers.update({"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call",
                    "mcp-name": "get_debate_status"})
    return Request("POST", "/mcp", headers, MODERN_BODY)


def llm_request() -> Request:
    return Request("POST", "/v1/chat/completions", request_headers(bench_key(0), bench_org(0)), LLM_BODY)


def rotating_mcp_request() -> Request:
    """For bench.lua's rotate mode: the i-th organization's API token (line i
    of the values file) and, as in every bench request, its org header (which
    api-key-auth replaces)."""
    req = mcp_request(org=ORG_TEMPLATE)
    del req.headers[KEY_HEADER]  # two credentials would be refused
    req.headers["authorization"] = "Bearer {value}"
    return req


REQUESTS = {"mcp": mcp_request, "mcp-modern": modern_mcp_request, "llm": llm_request}
