"""debate-access-log in a real Envoy 1.40: one JSON line per request, every
line parsed with json.loads, debate and MCP context as top-level fields, no
secrets, hostile values contained, sampling that keeps errors and denials.

The filter writes `mcp_*` filter state in on_log; local/envoy.yaml's
json_format maps it to fields and its CEL access-log filter applies the
sampling verdict. These tests use that bootstrap as shipped.
"""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from harness import Reply
from harness.envoy import config_field, expect_start_failure, hcm

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"

SECRETS = {
    "x-api-key": "sk-live-SECRET-api-key-0001",
    "authorization": "Bearer SECRET-bearer-token-0002",
    "cookie": "session=SECRET-cookie-0003",
}

CALL_PARAMS = {
    "name": "submit_argument",
    "arguments": {"debate_id": "d-42", "position": "pro", "text": "Wasm filters belong in the mesh."},
}


def only_line(envoy) -> dict:
    """Waits for the access log's single line; fails on zero or several."""
    lines = envoy.access_log(expect=1)
    time.sleep(0.2)  # a second line would have been flushed by now
    lines = envoy.access_log()
    assert len(lines) == 1, lines
    return lines[0]


def raw_lines(envoy) -> list[str]:
    """Every line of the access-log file, each checked to be one JSON object."""
    lines = envoy.access_log_raw().splitlines()
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    return lines


def start(envoy_factory, config: dict | None = None, **kwargs):
    configs = {"debate-access-log": config} if config is not None else None
    return envoy_factory(filters=kwargs.pop("filters", ["debate-access-log"]), configs=configs, **kwargs)


def test_tools_call_line_has_debate_and_mcp_context(envoy_factory, upstream):
    envoy = start(envoy_factory)
    r = envoy.mcp_call(
        "tools/call",
        CALL_PARAMS,
        id=7,
        path="/mcp?api_key=SECRET-query-0004&x=1",
        headers={"mcp-session-id": "sess-7f3a", "traceparent": TRACEPARENT, **SECRETS},
    )
    assert r.status == 200, r.body
    line = only_line(envoy)

    # Envoy's own operators.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"]), line
    assert line["request_id"] == upstream.last().header("x-request-id")
    assert line["method"] == "POST"
    assert line["path"] == "/mcp"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], int)
    assert line["bytes_received"] == len(upstream.last().body)
    assert line["bytes_sent"] == len(r.body)
    assert line["upstream_cluster"] == "mcp_debate"
    assert line["response_flags"] == "-"
    # What debate-access-log put into filter state.
    assert line["debate_id"] == "d-42"
    assert line["mcp_method"] == "tools/call"
    assert line["mcp_tool"] == "submit_argument"
    assert line["jsonrpc_id"] == "7"
    assert line["mcp_session_id"] == "sess-7f3a"
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == SPAN_ID
    assert line["mcp_batch_size"] is None
    assert line["mcp_body_truncated"] is None
    assert line["sample_rate"] == "1"
    # Fields of filters that did not run stay null rather than disappearing.
    for field in ("org_id", "key_id", "plan", "role", "auth_result", "ratelimit_result", "tokens_input"):
        assert field in line and line[field] is None, field

    # The upstream got the body untouched, and no credential reached the log.
    assert upstream.last().json()["params"] == CALL_PARAMS
    text = envoy.access_log_raw()
    for secret in [*SECRETS.values(), "SECRET-query-0004", "api_key"]:
        assert secret not in text


def test_debate_id_sources_in_configured_order(envoy_factory):
    envoy = start(envoy_factory)
    envoy.request("GET", "/debates/d-path/arguments?page=2", {"x-debate-id": "d-header"})
    envoy.request("GET", "/health", {"x-debate-id": "d-header"})
    envoy.mcp_call("tools/call", CALL_PARAMS, headers={"x-debate-id": "d-header"})
    lines = envoy.access_log(expect=3)
    assert [l["debate_id"] for l in lines] == ["d-path", "d-header", "d-header"]

    body_first = start(envoy_factory, {
        "debate_id_sources": [
            {"json_pointer": "/params/arguments/debate_id"},
            {"header": "x-debate-id"},
        ]
    })
    body_first.mcp_call("tools/call", CALL_PARAMS, headers={"x-debate-id": "d-header"})
    body_first.request("GET", "/debates/d-path", {"x-debate-id": "d-header"})
    assert [l["debate_id"] for l in body_first.access_log(expect=2)] == ["d-42", "d-header"]


def test_batch_request_lists_every_message(envoy_factory, upstream):
    envoy = start(envoy_factory)
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "open_debate", "arguments": {"debate_id": "d-9"}}},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}},
        {"jsonrpc": "2.0", "id": "b-2", "method": "tools/call", "params": {"name": "vote"}},
    ]
    r = envoy.request("POST", "/mcp", {"accept": "application/json, text/event-stream"}, batch)
    assert r.status == 200
    line = only_line(envoy)
    assert line["mcp_method"] == "tools/call,notifications/progress,tools/call"
    assert line["mcp_tool"] == "open_debate,vote"
    assert line["jsonrpc_id"] == '1,"b-2"'
    assert line["mcp_batch_size"] == "3"
    assert line["debate_id"] == "d-9"
    assert upstream.last().json() == batch


def chunked_post(port: int, path: str, chunks: list[bytes], delay: float, headers: dict) -> int:
    """A chunked upload sent slowly, chunk by chunk; returns the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        head = f"POST {path} HTTP/1.1\r\nhost: mcp\r\ntransfer-encoding: chunked\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        s.sendall(head.encode())
        for chunk in chunks:
            s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            time.sleep(delay)
        s.sendall(b"0\r\n\r\n")
        status_line = s.makefile("rb").readline()
    return int(status_line.split()[1])


def test_large_upload_streams_through_and_facts_survive_the_cap(envoy_factory, upstream):
    envoy = start(envoy_factory, {"max_body_bytes": 1024})
    message = {"jsonrpc": "2.0", "id": 99, "method": "tools/call",
               "params": {"name": "submit_evidence", "arguments": {"debate_id": "d-big", "blob": "x" * 300_000}}}
    body = json.dumps(message).encode()
    # Split at odd places, including inside the first JSON string.
    cuts = [0, 7, 13, 600, 1023, 1024, 1025, 5000, 100_000, len(body)]
    chunks = [body[a:b] for a, b in zip(cuts, cuts[1:])]
    status = chunked_post(envoy.port, "/mcp", chunks, 0.02,
                          {"content-type": "application/json", "accept": "application/json, text/event-stream"})
    assert status == 200
    assert upstream.last().body == body  # nothing lost, nothing held back
    line = only_line(envoy)
    assert line["mcp_method"] == "tools/call"
    assert line["mcp_tool"] == "submit_evidence"
    assert line["jsonrpc_id"] == "99"
    assert line["debate_id"] == "d-big"
    assert line["mcp_body_truncated"] == "1"
    assert line["bytes_received"] == len(body)
    assert envoy.metric("mcp_access_log_body_truncated_total") == 1


def test_body_of_exactly_the_cap_is_not_truncated(envoy_factory):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t"}}).encode()
    envoy = start(envoy_factory, {"max_body_bytes": len(body)})
    envoy.request("POST", "/mcp", {"content-type": "application/json"}, body)
    envoy.request("POST", "/mcp", {"content-type": "application/json"}, body[:-1] + b" }")
    exact, longer = envoy.access_log(expect=2)
    assert (exact["mcp_tool"], exact["mcp_body_truncated"]) == ("t", None)
    assert (longer["mcp_tool"], longer["mcp_body_truncated"]) == ("t", "1")


@pytest.mark.parametrize("body", [
    b"{not json",
    b'{"jsonrpc":"2.0","method":',
    b"\xff\xfe\x00garbage",
    b"[" * 5000,
    b'{"jsonrpc":"2.0","id":{"nested":"object"},"method":["not","a","string"]}',
])
def test_malformed_bodies_still_log_a_line(envoy_factory, upstream, body):
    envoy = start(envoy_factory)
    r = envoy.request("POST", "/mcp", {"content-type": "application/json", "x-debate-id": "d-m"}, body)
    assert r.status == 200
    assert upstream.last().body == body
    line = only_line(envoy)
    assert line["status"] == 200
    assert line["debate_id"] == "d-m"
    assert line["mcp_tool"] is None and line["jsonrpc_id"] is None
    # The VM is alive and still logging.
    envoy.mcp_call("ping", id=2)
    assert envoy.access_log(expect=2)[1]["mcp_method"] == "ping"


def test_upstream_reset_is_logged_with_its_context(envoy_factory, upstream):
    upstream.responder = lambda req: Reply(reset=True)
    envoy = start(envoy_factory, {"sampling": {"success_rate": 0}})
    r = envoy.mcp_call("tools/call", CALL_PARAMS, id="r-1", headers={"traceparent": TRACEPARENT})
    assert r.status == 503
    line = only_line(envoy)
    assert line["status"] == 503
    assert "UC" in line["response_flags"] or "UR" in line["response_flags"], line
    assert line["response_code_details"].startswith("upstream_reset_before_response_started")
    assert line["mcp_tool"] == "submit_argument"
    assert line["jsonrpc_id"] == '"r-1"'
    assert line["debate_id"] == "d-42"
    assert line["trace_id"] == TRACE_ID
    assert line["sample_rate"] == "1"  # an error: logged whatever the rate


HOSTILE = 'd-1", "org_id": "admin", "x": "\\u0000'


def test_hostile_values_cannot_break_the_line_or_forge_fields(envoy_factory, upstream):
    envoy = start(envoy_factory)
    # Headers: quotes, JSON fragments, a tab, obs-text bytes that are not UTF-8.
    envoy.request("GET", "/health", [
        ("x-debate-id", HOSTILE),
        ("mcp-session-id", b"s\t\"}{\xff\xfe"),
        ("user-agent", 'ua"}, "org_id": "admin'),
        ("traceparent", '00-"},{"org_id":"admin"}-x-01'),
    ])
    # A body whose values carry newlines, quotes, NUL and escape sequences.
    envoy.mcp_call(
        "tools/call",
        {"name": "a\"b\r\nc\u0000\u001b[31m\u2028", "arguments": {"debate_id": "d\n{\"role\":\"owner\"}"}},
        id="i\"d\n",
    )
    envoy.mcp_call("tools/list\n{\"org_id\":\"admin\"}", id=1)
    # A debate id far over the cap.
    envoy.request("GET", "/debates/" + "z" * 5000)
    lines = envoy.access_log(expect=4)
    raw = raw_lines(envoy)
    assert len(raw) == 4 == len(lines)
    for line in lines:
        assert line["org_id"] is None and line["role"] is None, line
        assert "x" not in line
        for key, value in line.items():
            if isinstance(value, str):
                assert not any(ord(c) < 0x20 or c in "\u2028\u2029" for c in value), (key, value)
    header_line, body_line, method_line, long_line = lines
    assert header_line["debate_id"].startswith('d-1", "org_id"')
    assert len(header_line["debate_id"]) <= 128
    assert header_line["trace_id"] is None  # malformed traceparent: not logged at all
    assert header_line["user_agent"] == 'ua"}, "org_id": "admin'
    assert method_line["mcp_method"] == 'tools/list\ufffd{"org_id":"admin"}'
    assert body_line["mcp_tool"].startswith('a"b')
    assert body_line["debate_id"].startswith("d\ufffd")
    assert body_line["jsonrpc_id"] == '"i\\"d\\n"'  # the id's JSON text, escaped by serde
    assert long_line["debate_id"] == "z" * 128
    assert len(long_line["path"]) <= 256


def test_success_sampling_keeps_errors_and_denials(envoy_factory, upstream):
    statuses = {"/ok": 200, "/missing": 404, "/limited": 429, "/broken": 500}
    upstream.responder = lambda req: Reply(status=statuses[req.path.split("?")[0]])
    envoy = start(envoy_factory, {"sampling": {"success_rate": 0}})
    # The CEL access-log filter that applies the verdict is in this Envoy build.
    assert "envoy.access_loggers.extension_filters.cel" in envoy.log()
    for path in ["/ok", "/missing", "/ok", "/limited", "/ok", "/broken", "/ok"]:
        envoy.request("GET", path)
    lines = envoy.access_log(expect=3)
    time.sleep(0.3)
    lines = envoy.access_log()
    assert [(l["path"], l["status"]) for l in lines] == [("/missing", 404), ("/limited", 429), ("/broken", 500)]
    assert all(l["sample_rate"] == "1" for l in lines)
    # The filter's own counters show what sampling dropped.
    assert envoy.metric("mcp_access_log_requests_total", decision="dropped") == 4
    assert envoy.metric("mcp_access_log_requests_total", decision="always") == 3
    assert envoy.metric("mcp_access_log_requests_total", decision="sampled") == 0


SALT = "mesh-sampling-salt-for-tests"


def test_sampling_cannot_be_evaded_by_chosen_trace_ids(envoy_factory):
    """Trace ids whose low 64 bits are all ones are never kept by the plain
    OpenTelemetry rule at any rate < 1; under the salted draw they are kept
    at the rate, and two sidecars with one salt keep the same ones."""
    cfg = {"sampling": {"success_rate": 0.5, "salt": SALT}}
    sidecars = [start(envoy_factory, cfg), start(envoy_factory, cfg)]
    kept = []
    for envoy in sidecars:
        for i in range(40):
            envoy.request("GET", f"/t{i}", {"traceparent": f"00-{i:016x}ffffffffffffffff-{SPAN_ID}-00"})
        envoy.request("GET", "/marker", {"x-debate-id": "end"})  # no trace id: always kept
        envoy.access_log(expect=1)
        time.sleep(0.3)
        lines = [l for l in envoy.access_log() if l["path"] != "/marker"]
        assert all(l["sample_rate"] == "0.5" for l in lines)
        kept.append([l["path"] for l in lines])
    assert 8 <= len(kept[0]) <= 32, kept[0]
    assert kept[0] == kept[1]
    # The salt is a secret: in no log.
    for envoy in sidecars:
        assert SALT not in envoy.log() and SALT not in envoy.access_log_raw()


def test_traced_requests_can_always_be_logged(envoy_factory):
    envoy = start(envoy_factory, {"sampling": {"success_rate": 0, "always_log_traced": True}})
    envoy.request("GET", "/untraced", {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00"})
    envoy.request("GET", "/traced", {"b3": f"{TRACE_ID}-{SPAN_ID}-1"})
    lines = envoy.access_log(expect=1)
    time.sleep(0.3)
    assert [l["path"] for l in envoy.access_log()] == ["/traced"]


def deny_before_access_log(prefix: str):
    """An RBAC filter ahead of debate-access-log that answers 403 locally, as
    auth or rate limiting do: this filter never sees the request headers."""
    def mutate(bootstrap):
        hcm(bootstrap)["http_filters"].insert(0, {
            "name": "envoy.filters.http.rbac",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": {"action": "DENY", "policies": {"deny": {
                    "permissions": [{"url_path": {"path": {"prefix": prefix}}}],
                    "principals": [{"any": True}],
                }}},
            },
        })
    return mutate


def test_request_answered_before_the_filter_still_logs_what_it_can(envoy_factory, upstream):
    envoy = start(envoy_factory, {"sampling": {"success_rate": 0}}, mutate=deny_before_access_log("/debates/"))
    r = envoy.mcp_call("tools/call", CALL_PARAMS, id=5, path="/debates/d-77/mcp",
                       headers={"mcp-session-id": "sess-d", "traceparent": TRACEPARENT})
    assert r.status == 403
    line = only_line(envoy)
    assert line["status"] == 403
    assert line["debate_id"] == "d-77"
    assert line["mcp_session_id"] == "sess-d"
    assert line["trace_id"] == TRACE_ID
    assert line["mcp_method"] is None  # the body never reached this filter
    assert line["sample_rate"] == "1"
    assert upstream.received == []


def test_session_id_from_the_initialize_response(envoy_factory, upstream):
    upstream.responder = lambda req: Reply(
        headers=[("content-type", "application/json"), ("mcp-session-id", "srv-assigned-1")],
        body=b'{"jsonrpc":"2.0","id":1,"result":{}}',
    )
    envoy = start(envoy_factory)
    envoy.mcp_call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})
    line = only_line(envoy)
    assert line["mcp_method"] == "initialize"
    assert line["mcp_session_id"] == "srv-assigned-1"


def test_streamed_sse_response_logs_once_at_the_end(envoy_factory, upstream):
    events = [b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"] * 3
    events.append(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n")
    upstream.responder = lambda req: Reply(headers=[("content-type", "text/event-stream")], body=events, chunk_delay=0.05)
    envoy = start(envoy_factory)
    r = envoy.mcp_call("tools/call", CALL_PARAMS, id=3)
    assert r.body == b"".join(events)
    line = only_line(envoy)
    assert line["bytes_sent"] == len(r.body)
    assert line["mcp_tool"] == "submit_argument"


@pytest.mark.parametrize("config, message", [
    ({"debate_id_sources": [{"path_pattern": "/debates/*"}]},
     "debate_id_sources[0].path_pattern: '/debates/*' must contain {debate_id} exactly once"),
    ({"debate_id_sources": [{"header": "cookie"}]},
     "debate_id_sources[0].header: cookie carries credentials and is never logged"),
    ({"sampling": {"success_rate": 2}}, "sampling.success_rate: must be between 0 and 1"),
    ({"sampling": {"success_rate": 0.1}}, "sampling.salt: required when success_rate is between 0 and 1"),
])
def test_bad_config_is_refused_naming_the_field(tmp_path, upstream, llm_upstream, layout, config, message):
    failure = expect_start_failure(
        tmp_path,
        upstreams={"mcp_debate": upstream.port, "llm_provider": llm_upstream.port},
        filters=["debate-access-log"],
        configs={"debate-access-log": config},
        layout=layout,
    )
    message = config_field(layout, "debate-access-log", message)
    assert f"invalid pluginConfig: {message}" in failure.log, failure.log[-2000:]


FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "llm"


def test_token_usage_lands_in_the_same_line(envoy_factory, llm_upstream):
    """token-usage-metrics writes mcp_tokens_*; the json_format puts them on
    the line debate-access-log completes."""
    llm_upstream.responder = lambda req: Reply(body=(FIXTURES / "openai_chat.json").read_bytes())
    envoy = start(envoy_factory, filters=["debate-access-log", "token-usage-metrics"])
    r = envoy.request("POST", "/v1/chat/completions", {"x-debate-id": "d-llm", "traceparent": TRACEPARENT},
                      {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Argue for the motion."}]})
    assert r.status == 200
    line = only_line(envoy)
    assert line["upstream_cluster"] == "llm_provider"
    assert line["debate_id"] == "d-llm"
    assert line["trace_id"] == TRACE_ID
    assert (line["tokens_input"], line["tokens_output"]) == ("1117", "23")
    assert line["tokens_cached_input"] == "1024"
    assert line["llm_provider"] == "openai"
    assert line["llm_model"] == "gpt-4.1-2025-04-14"
    assert line["llm_outcome"] == "ok"
    assert line["mcp_method"] is None  # an LLM API body is not JSON-RPC


def test_client_abort_mid_upload_logs_the_facts_read_so_far(envoy_factory, upstream):
    envoy = start(envoy_factory, {"sampling": {"success_rate": 0}})
    message = {"jsonrpc": "2.0", "id": 11, "method": "tools/call",
               "params": {"name": "submit_evidence", "arguments": {"debate_id": "d-abort", "blob": "y" * 50_000}}}
    body = json.dumps(message).encode()
    with socket.create_connection(("127.0.0.1", envoy.port), timeout=10) as s:
        s.sendall(f"POST /mcp HTTP/1.1\r\nhost: mcp\r\ncontent-type: application/json\r\n"
                  f"content-length: {len(body)}\r\n\r\n".encode() + body[:2000])
        time.sleep(0.3)
    line = only_line(envoy)
    assert "DC" in line["response_flags"], line
    assert line["mcp_tool"] == "submit_evidence"
    assert line["jsonrpc_id"] == "11"
    assert line["debate_id"] == "d-abort"
    assert line["mcp_body_truncated"] == "1"


def test_request_rejected_by_envoys_codec_is_logged_too(envoy_factory):
    """A header with a control character never reaches the filters: Envoy
    answers 400 itself, and the line (no verdict in filter state) is still
    written and still valid JSON."""
    envoy = start(envoy_factory, {"sampling": {"success_rate": 0}})
    with socket.create_connection(("127.0.0.1", envoy.port), timeout=10) as s:
        s.sendall(b"GET /debates/d-1?token=SECRET-0005 HTTP/1.1\r\nhost: mcp\r\nx-debate-id: a\x01\"b\r\n\r\n")
        status_line = s.makefile("rb").readline()
    assert int(status_line.split()[1]) == 400
    line = only_line(envoy)
    assert line["status"] == 400
    assert line["debate_id"] is None
    assert "SECRET-0005" not in envoy.access_log_raw()


def test_every_access_log_field_is_documented():
    """local/envoy.yaml's json_format is the one source of field names;
    docs/access-log.md must describe each, with the same operator or key."""
    from harness.envoy import REPO, load_template

    json_format = hcm(load_template())["access_log"][0]["typed_config"]["log_format"]["json_format"]
    doc = (REPO / "docs" / "access-log.md").read_text()
    fields_section = doc.split("\n## Fields\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for row in fields_section.splitlines():
        cells = [c.strip().strip("`") for c in row.strip().strip("|").split("|")]
        if row.startswith("| `") and len(cells) >= 3:
            rows[cells[0]] = cells[1]
    assert set(json_format) == set(rows), set(json_format) ^ set(rows)
    for field, operator in json_format.items():
        key = re.fullmatch(r"%FILTER_STATE\(wasm\.(\w+):PLAIN\)%", operator)
        assert rows[field] == (key.group(1) if key else operator), field


# --- with the real api-key-auth (and org-rate-limit) in front -----------------

import hashlib  # noqa: E402

API_KEY = "sk-acme-access-log-test-0006"
AUTH_CONFIG = {
    "keys": [{
        "id": "acme-k1",
        "sha256": hashlib.sha256(API_KEY.encode()).hexdigest(),
        "org_id": "acme",
        "plan": "free",
        "role": "moderator",
        "user_id": "u-17",
    }],
}


def auth_envoy(envoy_factory, log_config=None):
    configs = {"api-key-auth": AUTH_CONFIG}
    if log_config is not None:
        configs["debate-access-log"] = log_config
    return envoy_factory(filters=["api-key-auth", "debate-access-log"], configs=configs)


def test_401_from_api_key_auth_is_logged_with_its_reason(envoy_factory, upstream):
    envoy = auth_envoy(envoy_factory, {"sampling": {"success_rate": 0}})
    wrong_key = "sk-acme-WRONG-SECRET-0007"
    r = envoy.request("GET", "/debates/d-401/sse?api_key=SECRET-0008",
                      {"x-api-key": wrong_key, "mcp-session-id": "sess-401", "traceparent": TRACEPARENT})
    assert r.status == 401, r.body
    r = envoy.request("GET", "/sse", {"x-debate-id": "d-anon"})
    assert r.status == 401
    lines = envoy.access_log(expect=2)
    assert len(raw_lines(envoy)) == 2
    unknown, missing = lines
    assert unknown["status"] == 401 and missing["status"] == 401
    assert unknown["auth_result"] == "denied"
    assert unknown["auth_reason"] == "unknown_key"
    assert missing["auth_reason"] == "missing_credential"
    assert unknown["org_id"] is None and unknown["key_id"] is None
    # What debate-access-log could still tell, though auth answered first.
    assert unknown["debate_id"] == "d-401"
    assert missing["debate_id"] == "d-anon"
    assert unknown["mcp_session_id"] == "sess-401"
    assert unknown["trace_id"] == TRACE_ID
    assert unknown["path"] == "/debates/d-401/sse"
    assert unknown["sample_rate"] == "1"  # denials always logged, whatever the rate
    assert upstream.received == []
    text = envoy.access_log_raw()
    for secret in (wrong_key, "SECRET-0008"):
        assert secret not in text


def test_401_to_a_jsonrpc_call_is_logged(envoy_factory, upstream):
    envoy = auth_envoy(envoy_factory, {"sampling": {"success_rate": 0}})
    r = envoy.mcp_call("tools/call", CALL_PARAMS, id=21, path="/debates/d-401/mcp",
                       headers={"x-api-key": "sk-wrong-0009", "mcp-session-id": "sess-rpc"})
    assert r.status == 401, r.body
    line = only_line(envoy)
    assert (line["status"], line["auth_reason"]) == (401, "unknown_key")
    assert line["debate_id"] == "d-401"
    assert line["mcp_session_id"] == "sess-rpc"
    assert line["mcp_method"] is None  # auth answered before the body reached this filter
    assert line["sample_rate"] == "1"
    assert upstream.received == []


def test_authenticated_call_carries_the_identity(envoy_factory, upstream):
    envoy = auth_envoy(envoy_factory)
    r = envoy.mcp_call("tools/call", CALL_PARAMS, id=23, headers={"x-api-key": API_KEY})
    assert r.status == 200, r.body
    line = only_line(envoy)
    assert (line["org_id"], line["key_id"], line["plan"], line["role"], line["user_id"]) == \
        ("acme", "acme-k1", "free", "moderator", "u-17")
    assert (line["auth_result"], line["auth_reason"]) == ("allowed", "api_key")
    assert (line["mcp_tool"], line["debate_id"], line["jsonrpc_id"]) == ("submit_argument", "d-42", "23")
    assert API_KEY not in envoy.access_log_raw()


def test_429_from_org_rate_limit_is_logged_with_identity_and_budget(envoy_factory, upstream):
    envoy = envoy_factory(
        filters=["api-key-auth", "org-rate-limit", "debate-access-log"],
        configs={
            "api-key-auth": AUTH_CONFIG,
            "org-rate-limit": {"default_plan": "free", "plans": {"free": {"requests_per_minute": 1}}},
            "debate-access-log": {"sampling": {"success_rate": 0}},
        },
    )
    headers = {"x-api-key": API_KEY, "traceparent": TRACEPARENT, "mcp-session-id": "sess-429"}
    first = envoy.request("GET", "/debates/d-429/state", headers)
    assert first.status == 200, first.body
    limited = envoy.request("GET", "/debates/d-429/state", headers)
    assert limited.status == 429, limited.body
    # The allowed request is sampled out (rate 0); the denial is always logged.
    line = only_line(envoy)
    assert line["status"] == 429
    assert (line["ratelimit_result"], line["ratelimit_remaining"]) == ("limited", "0")
    assert (line["auth_result"], line["org_id"], line["key_id"], line["plan"]) == ("allowed", "acme", "acme-k1", "free")
    assert line["debate_id"] == "d-429"
    assert line["mcp_session_id"] == "sess-429"
    assert line["trace_id"] == TRACE_ID
    assert line["sample_rate"] == "1"
    assert len(upstream.received) == 1
    assert API_KEY not in envoy.access_log_raw()


def test_shipped_bootstrap_logs_through_the_whole_chain(envoy_factory, upstream):
    """local/envoy.yaml as shipped (all four filters, their demo configs)."""
    envoy = envoy_factory()
    r = envoy.mcp_call("tools/list", id=1, path="/debates/d-chain/mcp", headers={"traceparent": TRACEPARENT})
    assert r.status == 401, r.body
    line = only_line(envoy)
    assert (line["status"], line["auth_result"]) == (401, "denied")
    assert (line["debate_id"], line["trace_id"]) == ("d-chain", TRACE_ID)


def test_jsonrpc_errors_inside_200_responses_are_errors(envoy_factory, upstream):
    """MCP errors come back with HTTP 200: a JSON-RPC error in a JSON body,
    a tool result with isError in an SSE stream. Both are logged even at
    success_rate 0, with what went wrong; plain successes are sampled out."""
    sse_tool_error = [
        b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n",
        b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"res",
        b"ult\":{\"content\":[{\"type\":\"text\",\"text\":\"no such debate\"}],\"isError\":true}}\n\n",
    ]
    replies = {
        1: Reply(body=b'{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"unknown tool"}}'),
        2: Reply(headers=[("content-type", "text/event-stream")], body=sse_tool_error, chunk_delay=0.02),
        3: Reply(body=b'{"jsonrpc":"2.0","id":3,"result":{"content":[]}}'),
        4: Reply(headers=[("content-type", "text/event-stream")],
                 body=[b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{}}\n\n"]),
    }
    upstream.responder = lambda req: replies[req.json()["id"]]
    envoy = start(envoy_factory, {"sampling": {"success_rate": 0}})
    for i in (1, 2, 3, 4):
        r = envoy.mcp_call("tools/call", CALL_PARAMS, id=i)
        assert r.status == 200
    lines = envoy.access_log(expect=2)
    time.sleep(0.3)
    lines = envoy.access_log()
    assert [(l["jsonrpc_id"], l["jsonrpc_error"]) for l in lines] == [("1", "-32602"), ("2", "tool_error")]
    assert all(l["status"] == 200 and l["sample_rate"] == "1" for l in lines)
    assert envoy.metric("mcp_access_log_requests_total", decision="dropped") == 2
