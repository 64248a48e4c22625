"""mcp-guard in a real Envoy: MCP 2026-07-28 headers held to the body, tool-
level authorization in both eras of MCP, and lists filtered to what the
caller may call. Every test runs in both layouts (conftest)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from harness import Upstream
from harness.demo import auth_headers, demo_keys
from harness.mcp_client import run_client
from harness.upstream import Reply

MODERN = "2026-07-28"
OWNER, USER, MODERATOR = 0, 1, 3  # demo keys (local/demo/keys.json) of acme


def envelope(version: str = MODERN) -> dict:
    return {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "9.9"},
    }


def modern_message(method: str, name: str | None = None, id=7, version: str = MODERN) -> dict:
    params: dict = {"_meta": envelope(version)}
    if name is not None:
        params["name"] = name
        params["arguments"] = {"debate_id": "d-1"}
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params}


def modern_headers(method: str | None, name: str | None = None, version: str = MODERN, key: int = OWNER):
    h = [("accept", "application/json, text/event-stream"), ("content-type", "application/json"),
         ("mcp-protocol-version", version)]
    if method is not None:
        h.append(("mcp-method", method))
    if name is not None:
        h.append(("mcp-name", name))
    return h + list(auth_headers(key).items())


# --- the official client, both eras, every role -------------------------------------


@pytest.mark.parametrize("mode", [MODERN, "legacy"])
def test_the_official_client_sees_its_role_in_both_eras(envoy_factory, mcp_server, mode):
    """Owner, moderator and user of one organization, with the shipped rule
    that only owners and moderators run rounds."""
    envoy = envoy_factory(upstreams={"mcp_debate": mcp_server})
    steps = [
        ("list_tools",),
        ("call_tool", "create_debate", {"topic": "Tabs or spaces"}),
        ("call_tool", "run_debate_round", {"debate_id": "d-1"}),
    ]
    owner, moderator, user = (run_client(f"{envoy.url}/mcp", auth_headers(k), mode, steps)
                              for k in (OWNER, MODERATOR, USER))
    for who in (owner, moderator):
        assert "run_debate_round" in [t.name for t in who[0].tools]
        assert not who[1].is_error and not who[2].is_error, who
    # The user's list hides the owner-only tool; its other tools stay.
    user_tools = [t.name for t in user[0].tools]
    assert "run_debate_round" not in user_tools and "create_debate" in user_tools
    assert not user[1].is_error
    # The denied call raises the SDK's MCP error with our code, for that call.
    denied = user[2]
    assert getattr(denied, "code", None) == -32003, denied
    assert denied.data == {"code": "tool_denied", "rule": "rounds-need-a-moderator"}

    plugin = envoy.plugin("mcp-guard")
    assert envoy.metric("mcp_auth_requests_total", decision="denied", reason="tool_denied", plugin=plugin) == 1
    assert envoy.metric("mcp_guard_list_entries_removed_total") == 1
    lines = lines_until(envoy, lambda ls: any(l["authz_result"] == "denied" for l in ls))
    denial = [l for l in lines if l["authz_result"] == "denied"]
    assert len(denial) == 1, lines
    assert denial[0]["status"] == 403
    assert denial[0]["authz_rule"] == "rounds-need-a-moderator"
    assert denial[0]["mcp_name"] == "run_debate_round"
    calls = [l for l in lines if l["mcp_name"] == "create_debate"]
    assert len(calls) == 3 and all(l["authz_result"] == "allowed" for l in calls)
    if mode == MODERN:
        assert {l["mcp_protocol_version"] for l in calls} == {MODERN}
        assert {l["mcp_header_check"] for l in calls} == {"ok"}
        assert {l["mcp_client_name"] for l in calls} == {"mcp"}
    else:
        assert {l["mcp_protocol_version"] for l in calls} == {"2025-11-25"}
        assert {l["mcp_header_check"] for l in calls} == {None}


def lines_until(envoy, done, timeout: float = 10.0) -> list[dict]:
    """Access-log lines once `done(lines)` holds (Envoy flushes the file on a
    timer), or whatever is there at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        lines = envoy.access_log()
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# --- headers held to the body ---------------------------------------------------------


def body_bytes_received(upstream: Upstream) -> list[int]:
    """Body bytes of every request the recording upstream saw (a request cut
    by a reset is recorded with what arrived)."""
    time.sleep(0.2)  # a reset request's record lands after the response
    return [len(r.body) for r in upstream.received]


def _batch():
    return [modern_message("tools/call", "get_debate", id=1)]


MISMATCHES = {
    # name: (headers, body, JSON-RPC code)
    "method": (modern_headers("tools/list"), modern_message("tools/call", "get_debate"), -32020),
    "name": (modern_headers("tools/call", "get_debate"), modern_message("tools/call", "run_debate_round"), -32020),
    "version": (modern_headers("tools/call", "get_debate", version="2027-01-01"),
                modern_message("tools/call", "get_debate"), -32020),
    "header_without_body_field": (modern_headers("tools/call", "get_debate"),
                                  modern_message("tools/call", None), -32020),
    "body_field_without_header": (modern_headers("tools/call", None), modern_message("tools/call", "get_debate"), -32020),
    "no_mcp_method": (modern_headers(None), modern_message("tools/call", "get_debate"), -32020),
    "repeated_header": (modern_headers("tools/call", "get_debate") + [("Mcp-Name", "get_debate")],
                        modern_message("tools/call", "get_debate"), -32020),
    "case_variant_value": (modern_headers("tools/call", "GET_DEBATE"), modern_message("tools/call", "get_debate"), -32020),
    "case_variant_name_repeated": (modern_headers("tools/call", "get_debate") + [("MCP-METHOD", "tools/call")],
                                   modern_message("tools/call", "get_debate"), -32020),
    "missing_envelope": (modern_headers("tools/call", "get_debate"),
                         {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "get_debate"}}, -32602),
    "batch": (modern_headers("tools/call", "get_debate"), _batch(), -32600),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_no_body_byte_of_a_mismatch_reaches_the_service(envoy_factory, upstream, case):
    envoy = envoy_factory()
    headers, body, code = MISMATCHES[case]
    r = envoy.request("POST", "/mcp", headers, body)
    assert r.status == 400, (r.status, r.body)
    answer = r.json()
    assert answer["error"]["code"] == code, answer
    # The real id, read from the body (a batch has no single id).
    assert answer["id"] == (None if case == "batch" else 7)
    assert all(n == 0 for n in body_bytes_received(upstream)), upstream.received
    # The same request with agreeing headers goes through, body and all.
    good = modern_message("tools/call", "get_debate")
    ok = envoy.request("POST", "/mcp", modern_headers("tools/call", "get_debate"), good)
    assert ok.status == 200, ok.body
    assert upstream.last().json() == good
    line = envoy.access_log(expect=2)[0]
    assert line["mcp_header_check"].startswith("mismatch:"), line


def test_log_mode_lets_a_mismatch_through_and_counts_it(envoy_factory, upstream):
    envoy = envoy_factory(configs={"mcp-guard": {"header_check": "log"}})
    body = modern_message("tools/call", "run_debate_round")
    r = envoy.request("POST", "/mcp", modern_headers("tools/call", "get_debate"), body)
    assert r.status == 200
    assert upstream.last().json() == body
    assert envoy.metric("mcp_guard_header_mismatch_total", reason="name", decision="logged") == 1
    assert envoy.metric("mcp_guard_header_mismatch_total", reason="name", decision="refused") is None


# --- header-time decisions ------------------------------------------------------------


def _send_headers_only(port: int, headers: list[tuple[str, str]], length: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    lines = [f"POST /mcp HTTP/1.1", "host: mesh"] + [f"{k}: {v}" for k, v in headers]
    lines.append(f"content-length: {length}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def _read_status(sock: socket.socket) -> int | None:
    try:
        data = sock.recv(4096)
    except socket.timeout:
        return None
    return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else None


RATE = {"default_plan": "pro",
        "plans": {"pro": {"requests_per_minute": 6, "burst": 6}},
        "costs": [{"mcp_method": "tools/call", "tool": "run_debate_round", "cost": 5}],
        "response_headers": "always"}


def test_a_modern_call_is_charged_before_its_body_arrives(envoy_factory):
    envoy = envoy_factory(filters=["api-key-auth", "mcp-guard", "org-rate-limit"],
                          configs={"org-rate-limit": RATE})
    headers = modern_headers("tools/call", "run_debate_round")
    body = json.dumps(modern_message("tools/call", "run_debate_round")).encode()
    # The first call is charged 5 of 6 at its headers; its body is held back.
    first = _send_headers_only(envoy.port, headers, len(body))
    first.settimeout(0.5)
    assert _read_status(first) is None, "no answer while the body is held back"
    # The second is refused before its client sent a single body byte.
    second = _send_headers_only(envoy.port, headers, len(body))
    assert _read_status(second) == 429
    second.close()
    first.settimeout(5)
    first.sendall(body)
    assert _read_status(first) == 200
    first.close()


def test_a_handshake_call_waits_for_its_body(envoy_factory):
    envoy = envoy_factory(filters=["api-key-auth", "mcp-guard", "org-rate-limit"],
                          configs={"org-rate-limit": RATE})
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "run_debate_round"}}).encode()
    headers = [("content-type", "application/json")] + list(auth_headers(OWNER).items())
    socks = [_send_headers_only(envoy.port, headers, len(body)) for _ in range(2)]
    for s in socks:
        s.settimeout(0.5)
        assert _read_status(s) is None, "nothing is decided before the body"
    statuses = []
    for s in socks:
        s.settimeout(5)
        s.sendall(body)
        statuses.append(_read_status(s))
        s.close()
    assert statuses == [200, 429]


# --- batches --------------------------------------------------------------------------


def handshake_call(name: str, id: int) -> dict:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name}}


@pytest.mark.parametrize("version, key, status", [
    ("2025-06-18", OWNER, 400),   # refused whole from 2025-06-18 on
    ("2025-03-26", USER, 403),    # checked: the second call is the user's denied one
    ("2025-03-26", OWNER, 200),
])
def test_batches_are_refused_or_every_message_checked(envoy_factory, upstream, version, key, status):
    envoy = envoy_factory()
    batch = [handshake_call("get_debate", 1), handshake_call("run_debate_round", 2)]
    headers = {"mcp-protocol-version": version, **auth_headers(key)}
    r = envoy.request("POST", "/mcp", headers, batch)
    assert r.status == status, r.body
    if status == 403:
        assert r.json()["id"] == 2
        assert 'error="insufficient_scope"' in r.header("www-authenticate")
    if status != 200:
        assert all(n == 0 for n in body_bytes_received(upstream))


# --- lists -----------------------------------------------------------------------------


LIST_RESULT = {"jsonrpc": "2.0", "id": 3, "result": {"tools": [
    {"name": "get_debate", "inputSchema": {"type": "object"}},
    {"name": "run_debate_round", "inputSchema": {"type": "object"}},
    {"name": "delete_debate", "inputSchema": {"type": "object"}},
]}}


def sse(message: dict, term: str = "\r\n") -> bytes:
    return f"event: message{term}data: {json.dumps(message)}{term}{term}".encode()


def test_tools_list_filtering_holds_at_every_split_point_of_an_sse_response(envoy_factory, tmp_path):
    body = sse({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}) + sse(LIST_RESULT)
    split = {"at": 0}

    def responder(req):
        at = split["at"]
        return Reply(headers=[("content-type", "text/event-stream")], body=[body[:at], body[at:]])

    with Upstream(responder) as up:
        # No rate limiter: a few hundred calls in a row.
        envoy = envoy_factory(upstreams={"mcp_debate": up.port}, filters=["api-key-auth", "mcp-guard"])
        for at in range(1, len(body)):
            split["at"] = at
            r = envoy.request("POST", "/mcp", modern_headers("tools/list", key=USER),
                              modern_message("tools/list", id=3))
            assert r.status == 200
            events = [l[len("data: "):] for l in r.body.decode().replace("\r\n", "\n").split("\n")
                      if l.startswith("data: ")]
            assert len(events) == 2, (at, r.body)
            names = [t["name"] for t in json.loads(events[1])["result"]["tools"]]
            assert names == ["get_debate"], (at, names)
            assert json.loads(events[0])["method"] == "notifications/progress"


def test_a_json_list_is_filtered_and_its_length_stays_right(envoy_factory):
    def responder(req):
        return Reply(body=json.dumps(LIST_RESULT).encode())

    with Upstream(responder) as up:
        envoy = envoy_factory(upstreams={"mcp_debate": up.port})
        user = envoy.request("POST", "/mcp", modern_headers("tools/list", key=USER), modern_message("tools/list", id=3))
        owner = envoy.request("POST", "/mcp", modern_headers("tools/list", key=OWNER), modern_message("tools/list", id=3))
    # http.client read exactly the framed body: a stale content-length would
    # have cut it or hung.
    assert [t["name"] for t in user.json()["result"]["tools"]] == ["get_debate"]
    assert [t["name"] for t in owner.json()["result"]["tools"]] == ["get_debate", "run_debate_round", "delete_debate"]
    for r in (user, owner):
        length = r.header("content-length")
        assert length is None or int(length) == len(r.body)
    # The upstream was asked for an answer it can be read in.
    assert all(h[0].lower() != "accept-encoding" for h in up.received[0].headers)


def test_a_list_too_large_to_filter_takes_the_fail_mode(envoy_factory):
    big = {"jsonrpc": "2.0", "id": 3, "result": {"tools": [
        {"name": f"tool_{i}", "description": "x" * 200} for i in range(20)] + [{"name": "run_debate_round"}]}}

    def responder(req):
        return Reply(body=json.dumps(big).encode())

    for mode, want in [("block", "error"), ("pass", "result")]:
        config = {"rules": [{"tools": ["run_debate_round"], "allow": {"roles": ["owner"]}}],
                  "lists": {"max_bytes": 1024, "on_overflow": mode}}
        with Upstream(responder) as up:
            envoy = envoy_factory(upstreams={"mcp_debate": up.port}, configs={"mcp-guard": config})
            r = envoy.request("POST", "/mcp", modern_headers("tools/list", key=USER), modern_message("tools/list", id=3))
        assert want in r.json(), (mode, r.body[:200])
        assert r.json()["id"] == 3
        assert envoy.metric("mcp_guard_list_overflow_total", decision=mode) == 1
