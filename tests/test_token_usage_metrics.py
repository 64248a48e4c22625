"""token-usage-metrics in a real Envoy: LLM token usage per organization,
provider and model from JSON and SSE responses of OpenAI, Anthropic and
Gemini, read from /stats/prometheus and the access log; the bytes the client
receives are never changed, whatever the upstream sends."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import sys
import time
from pathlib import Path

import pytest

from harness import REPO, Reply
from harness.envoy import config_field, expect_start_failure

sys.path.insert(0, str(REPO / "local" / "demo"))
import fake_llm  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "llm"
CASES = {k: v for k, v in json.loads((FIXTURES / "cases.json").read_text()).items() if not k.startswith("_")}
FILTERS = ["token-usage-metrics"]
CONFIG = {"service": "mcp-llm", "max_orgs": 10, "max_models": 20}
TOKEN_TYPES = ["input", "output", "cached_input", "cache_creation_input", "reasoning"]


def start(envoy_factory, config=None, **kwargs):
    def flush_stats_fast(bootstrap):
        # Histograms reach /stats/prometheus on the stats flush (default 5 s).
        bootstrap["stats_flush_interval"] = "0.1s"

    return envoy_factory(filters=FILTERS, configs={"token-usage-metrics": config or CONFIG},
                         mutate=flush_stats_fast, **kwargs)


def stream_request(envoy, path, body, headers=None, timeout=10.0):
    """POST through Envoy, reading the response the way a streaming client does;
    returns (status, headers, bytes received, whether the body completed)."""
    conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"content-type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        try:
            return resp.status, resp.getheaders(), resp.read(), True
        except http.client.IncompleteRead as cut:
            return resp.status, resp.getheaders(), cut.partial, False
    finally:
        conn.close()


def tokens(envoy, **labels):
    return envoy.metric("mcp_llm_tokens_total", **labels)


def requests_total(envoy, **labels):
    return envoy.metric("mcp_llm_requests_total", **labels)


def wait_for(fn, want=None, timeout=5.0):
    """Metrics of a stream are recorded when Envoy finishes it, a moment after
    the client read the last byte (histograms: at the next stats flush). Polls
    until `fn()` returns `want` (or anything truthy) and returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        done = value == want if want is not None else bool(value)
        if done or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def request_for(case) -> tuple[dict, str | None]:
    """A request body for a fixture's API and the model it names (Gemini: in the path)."""
    if "/models/" in case["path"]:
        return {"contents": [{"role": "user", "parts": [{"text": "Summarize the debate."}]}]}, None
    model = "debate-model-1"
    return {"model": model, "messages": [{"role": "user", "content": "Summarize the debate."}],
            "stream": case["content_type"].startswith("text/event-stream")}, model


# ---- every documented provider format, through a real Envoy -------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_counts_and_labels_and_unchanged_bytes(envoy_factory, upstream, llm_upstream, name):
    case = CASES[name]
    body = (FIXTURES / name).read_bytes()
    # 7-byte chunks: events split across body callbacks at arbitrary bytes.
    # (Paths outside /v1/ and /v1beta/, like Azure's, route to the other cluster.)
    upstream.responder = llm_upstream.responder = lambda req: Reply(
        status=case["status"], headers=[("content-type", case["content_type"])], body=iter(chunks_of(body, 7)))
    envoy = start(envoy_factory)
    request, request_model = request_for(case)
    path_model = case["path"].split("/models/")[1].split(":")[0] if "/models/" in case["path"] else None
    status, _, received, complete = stream_request(envoy, case["path"], request, {"x-mcp-org-id": "acme"})

    assert (status, received, complete) == (case["status"], body, True)
    model = request_model or path_model or case["response_model"]
    if 400 <= case["status"] < 500 and case["status"] != 429:
        # The provider refused the request: a model name nobody vouched for
        # takes no label slot (issue 12).
        model = "other"
    labels = {"org_id": "acme", "gen_ai_provider_name": case["provider"], "service": "mcp-llm",
              "gen_ai_request_model": model}
    assert wait_for(lambda: requests_total(envoy, outcome=case["outcome"], **labels)) == 1
    assert requests_total(envoy) == 1
    usage = case["usage"]
    if usage is None:
        assert envoy.samples("mcp_llm_tokens_total") == []
    else:
        response_model = case["response_model"] or "unknown"
        for token_type in TOKEN_TYPES:
            expected = usage[token_type] if usage[token_type] or token_type in ("input", "output") else None
            got = tokens(envoy, gen_ai_token_type=token_type, gen_ai_response_model=response_model, **labels)
            assert got == expected, (token_type, got, expected)
    if case["outcome"] == "usage_missing":
        assert envoy.metric("mcp_llm_usage_missing_total", reason=case["reason"],
                            gen_ai_provider_name=case["provider"]) == 1
    line = envoy.access_log(expect=1)[-1]
    assert line["llm_provider"] == case["provider"]
    if usage is not None:
        assert (line["tokens_input"], line["tokens_output"]) == (str(usage["input"]), str(usage["output"]))
    else:
        assert line["tokens_input"] is None


# ---- the fake provider: every API, JSON and streamed ---------------------------------

CALLS = [
    # (api, path, request body, label of the request model)
    ("openai_chat", "/v1/chat/completions",
     {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You judge debates."},
                                           {"role": "user", "content": "Who won, and why?"}]}),
    ("openai_chat", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "Score the rebuttal."}], "model": "o4-mini", "stream": True,
      "stream_options": {"include_usage": True}}),
    ("openai_responses", "/v1/responses", {"model": "gpt-4.1", "input": "Draft the closing statement."}),
    ("openai_responses", "/v1/responses", {"model": "o4-mini", "input": "Draft the opening.", "stream": True}),
    ("anthropic_messages", "/v1/messages",
     {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Moderate this."}]}),
    ("anthropic_messages", "/v1/messages",
     {"max_tokens": 1024, "messages": [{"role": "user", "content": "word " * 1500}], "model": "claude-opus-4-1",
      "stream": True}),
    ("gemini", "/v1beta/models/gemini-2.0-flash:generateContent",
     {"contents": [{"role": "user", "parts": [{"text": "Fact-check the claim."}]}]}),
    ("gemini", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
     {"contents": [{"role": "user", "parts": [{"text": "Fact-check the other claim."}]}]}),
    ("gemini", "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
     {"contents": [{"role": "user", "parts": [{"text": "Stream as a JSON array."}]}]}),
]


@pytest.fixture
def fake_provider():
    with fake_llm.FakeLLM() as fake:
        yield fake


def test_all_providers_json_and_streamed_exact_totals(envoy_factory, fake_provider):
    envoy = start(envoy_factory, upstreams={"llm_provider": fake_provider.port})
    expected: dict[tuple, int] = {}
    for i, (api, path, request) in enumerate(CALLS):
        org = f"org-{i % 3}"
        status, headers, received, complete = stream_request(
            envoy, path, request, {"x-mcp-org-id": org, "accept-encoding": "gzip, br"})
        assert (status, complete) == (200, True), received[:300]
        # The client gets exactly what the provider sent (uncompressed: the
        # filter asked the provider for identity encoding).
        direct = fake_llm.respond("POST", path, {}, json.dumps(request).encode())
        assert received == (direct.body if isinstance(direct.body, bytes) else b"".join(direct.body))
        assert fake_provider.received[-1][2].get("accept-encoding") == "identity"

        route = fake_llm.route(path)
        completion = fake_llm.plan(api, request, route[1])
        provider = {"anthropic_messages": "anthropic", "gemini": "gcp.gemini"}.get(api, "openai")
        request_model = route[1] or request["model"]
        for token_type, count in fake_llm.expected_usage(completion).items():
            if count or token_type in ("input", "output"):
                key = (org, provider, request_model, completion.model, token_type)
                expected[key] = expected.get(key, 0) + count
    assert wait_for(lambda: requests_total(envoy), len(CALLS)) == len(CALLS)
    assert requests_total(envoy, outcome="ok") == len(CALLS)
    samples = {}
    for labels, value in envoy.samples("mcp_llm_tokens_total"):
        key = (labels["org_id"], labels["gen_ai_provider_name"], labels["gen_ai_request_model"],
               labels["gen_ai_response_model"], labels["gen_ai_token_type"])
        assert labels["service"] == "mcp-llm"
        samples[key] = value
    assert samples == expected
    # Reasoning, cached input and streamed models really took part.
    assert any(k[4] == "reasoning" for k in samples) and any(k[4] == "cached_input" for k in samples)


def test_tokens_per_request_histogram(envoy_factory, fake_provider):
    envoy = start(envoy_factory, upstreams={"llm_provider": fake_provider.port})
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}]}
    for _ in range(3):
        assert stream_request(envoy, "/v1/chat/completions", request)[0] == 200
    c = fake_llm.plan("openai_chat", request)
    labels = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini", "service": "mcp-llm"}
    def histogram(kind, token_type, want):
        name = f"mcp_llm_request_tokens_{kind}"
        return wait_for(lambda: envoy.metric(name, gen_ai_token_type=token_type, **labels), want)

    assert histogram("count", "input", 3) == 3
    assert histogram("count", "output", 3) == 3
    # Envoy keeps histograms as log-linear bins: sums are within 5%.
    assert envoy.metric("mcp_llm_request_tokens_sum", gen_ai_token_type="input", **labels) \
        == pytest.approx(3 * c.input_tokens, rel=0.05)
    assert envoy.metric("mcp_llm_request_tokens_sum", gen_ai_token_type="output", **labels) \
        == pytest.approx(3 * c.output_tokens, rel=0.05)
    # Token buckets (local/envoy.yaml): powers of 4 from 1 to 4^13, on the
    # real scrape, and every request's input in the first bucket that holds it.
    buckets = sorted({float(l["le"]) for l, _ in envoy.samples("mcp_llm_request_tokens_bucket")} - {float("inf")})
    assert buckets == [float(4 ** i) for i in range(14)], buckets
    le = next(b for b in buckets if c.input_tokens <= b)
    below = max(b for b in buckets if b < le) if le > 1 else None
    bucket = lambda b: envoy.metric("mcp_llm_request_tokens_bucket", gen_ai_token_type="input",
                                    le=f"{b:g}" if b < 1e6 else str(int(b)), **labels)
    assert bucket(le) == 3
    if below is not None:
        assert bucket(below) == 0


def test_provider_errors_count_as_error(envoy_factory, fake_provider):
    envoy = start(envoy_factory, upstreams={"llm_provider": fake_provider.port})
    for path, request in [
        ("/v1/chat/completions", {"model": "gpt-error", "messages": []}),
        ("/v1/messages", {"model": "claude-error", "max_tokens": 5, "messages": []}),
        ("/v1beta/models/gemini-error:generateContent", {"contents": []}),
    ]:
        assert stream_request(envoy, path, request)[0] == 429
    assert wait_for(lambda: requests_total(envoy, outcome="error")) == 3
    assert {l["gen_ai_provider_name"] for l, _ in envoy.samples("mcp_llm_requests_total")} == \
        {"openai", "anthropic", "gcp.gemini"}
    assert envoy.samples("mcp_llm_tokens_total") == []


# ---- compression ---------------------------------------------------------------------

def test_compressed_responses_without_identity_are_passed_through_and_counted_missing(envoy_factory, fake_provider):
    config = dict(CONFIG, force_identity_encoding=False)
    envoy = start(envoy_factory, config, upstreams={"llm_provider": fake_provider.port})
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "compress me"}]}
    status, headers, received, _ = stream_request(envoy, "/v1/chat/completions", request,
                                                  {"accept-encoding": "gzip"})
    assert status == 200 and dict(headers).get("content-encoding") == "gzip"
    direct = fake_llm.respond("POST", "/v1/chat/completions", {"accept-encoding": "gzip"}, json.dumps(request).encode())
    assert gzip.decompress(received) == gzip.decompress(direct.body)
    assert fake_provider.received[-1][2].get("accept-encoding") == "gzip"
    assert wait_for(lambda: envoy.metric("mcp_llm_usage_missing_total", reason="compressed")) == 1
    assert requests_total(envoy, outcome="usage_missing") == 1


# ---- hostile, malformed and cut streams: the client sees exactly what was sent -------

def test_malformed_stream_reaches_the_client_unchanged(envoy_factory, llm_upstream):
    garbage = [b"data: {\"model\":\"gpt-4o\",\"usage\":{\"prompt_tokens\":", b"\xff\xfe\x00\r\r\n",
               b": comment\n", b"data: " + b"x" * 5000 + b"\n\n", b"event: \x80\x81\ndata: [1,2\n\n",
               b"data: {\"usage\": [5, 6]}\n\n", b"\n\n\n", b"data: {\"usage\":{\"prompt_tokens\":-4}}\n\n"]
    llm_upstream.responder = lambda req: Reply(headers=[("content-type", "text/event-stream")], body=iter(garbage))
    envoy = start(envoy_factory, dict(CONFIG, max_sse_event_bytes=1024))
    status, _, received, complete = stream_request(envoy, "/v1/chat/completions", {"model": "m", "stream": True})
    assert (status, received, complete) == (200, b"".join(garbage), True)
    assert wait_for(lambda: requests_total(envoy, outcome="usage_missing")) == 1
    assert envoy.samples("mcp_llm_tokens_total") == []
    assert "panic" not in envoy.log().lower()


def test_oversized_event_is_skipped_and_later_usage_still_counts(envoy_factory, llm_upstream):
    big = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"" + b"y" * 300_000 + b"\"}]}}]}\r\n\r\n"
    last = b"data: {\"usageMetadata\":{\"promptTokenCount\":11,\"candidatesTokenCount\":22},\"modelVersion\":\"gemini-2.0-flash\"}\r\n\r\n"
    llm_upstream.responder = lambda req: Reply(headers=[("content-type", "text/event-stream")],
                                               body=iter(chunks_of(big, 16384) + [last]))
    envoy = start(envoy_factory, dict(CONFIG, max_sse_event_bytes=4096))
    status, _, received, _ = stream_request(envoy, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                                            {"contents": []})
    assert (status, received) == (200, big + last)
    assert wait_for(lambda: tokens(envoy, gen_ai_token_type="output")) == 22
    assert tokens(envoy, gen_ai_token_type="input", gen_ai_request_model="gemini-2.0-flash") == 11
    assert envoy.metric("mcp_llm_sse_events_skipped_total", gen_ai_provider_name="gcp.gemini") == 1


def _cut_after(chunks):
    def body():
        yield from chunks
        raise ConnectionResetError("upstream dies mid-stream")
    return body()


def test_stream_cut_mid_event_is_truncated_and_client_gets_every_byte_sent(envoy_factory, llm_upstream):
    full = (FIXTURES / "anthropic_messages_stream.sse").read_bytes()
    cut_at = full.index(b"event: message_delta") + 30
    sent = chunks_of(full[:cut_at], 64)
    llm_upstream.responder = lambda req: Reply(headers=[("content-type", "text/event-stream")], body=_cut_after(sent))
    envoy = start(envoy_factory)
    status, _, received, complete = stream_request(envoy, "/v1/messages", {"model": "claude-opus-4-1", "stream": True})
    assert status == 200 and not complete
    assert received == full[:cut_at]
    # The call failed (the stream was cut), but message_start's usage came
    # through and those tokens were spent: they are counted.
    assert wait_for(lambda: requests_total(envoy, outcome="error")) == 1
    assert requests_total(envoy) == 1
    assert tokens(envoy, gen_ai_token_type="input", gen_ai_response_model="claude-opus-4-1-20250805") == 1525


def test_upstream_reset_before_headers_is_an_error(envoy_factory, llm_upstream):
    llm_upstream.responder = lambda req: Reply(reset=True)
    envoy = start(envoy_factory)
    status, _, _, _ = stream_request(envoy, "/v1/chat/completions", {"model": "gpt-4o"})
    assert status == 503
    assert wait_for(lambda: requests_total(envoy, outcome="error", gen_ai_request_model="gpt-4o")) == 1


def test_stream_is_not_buffered(envoy_factory, llm_upstream):
    """The first event reaches the client while the upstream still holds the rest."""
    release = []
    def body():
        yield b"data: {\"model\":\"gpt-4o\",\"choices\":[]}\n\n"
        deadline = time.monotonic() + 5
        while not release and time.monotonic() < deadline:
            time.sleep(0.02)
        yield b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n"
    llm_upstream.responder = lambda req: Reply(headers=[("content-type", "text/event-stream")], body=body())
    envoy = start(envoy_factory)
    sock = socket.create_connection(("127.0.0.1", envoy.port), timeout=5)
    try:
        payload = b'{"model":"gpt-4o","stream":true}'
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        seen = b""
        while b'"choices":[]}' not in seen:
            data = sock.recv(65536)
            assert data, "connection closed"
            seen += data
        assert b"usage" not in seen
        release.append(True)
        while b"[DONE]" not in seen:
            data = sock.recv(65536)
            assert data, "connection closed"
            seen += data
    finally:
        sock.close()
    assert wait_for(lambda: tokens(envoy, gen_ai_token_type="output")) == 4


# ---- request side --------------------------------------------------------------------

def test_model_after_a_large_messages_array_and_the_body_is_untouched(envoy_factory, fake_provider):
    envoy = start(envoy_factory, upstreams={"llm_provider": fake_provider.port})
    request = {"messages": [{"role": "user", "content": "argument " * 20_000}], "model": "gpt-4o"}
    raw = json.dumps(request).encode()
    assert stream_request(envoy, "/v1/chat/completions", raw)[0] == 200
    assert fake_provider.received[-1][3] == raw
    assert wait_for(lambda: requests_total(envoy, gen_ai_request_model="gpt-4o", outcome="ok")) == 1


def test_request_model_past_the_scan_budget_falls_back_to_the_response_model(envoy_factory, fake_provider):
    envoy = start(envoy_factory, dict(CONFIG, max_request_body_bytes=1024),
                  upstreams={"llm_provider": fake_provider.port})
    request = {"messages": [{"role": "user", "content": "argument " * 2_000}], "model": "gpt-4o"}
    assert stream_request(envoy, "/v1/chat/completions", request)[0] == 200
    assert wait_for(lambda: requests_total(envoy, gen_ai_request_model="gpt-4o-2024-08-06")) == 1


def test_other_traffic_is_not_counted(envoy_factory, upstream, llm_upstream):
    envoy = start(envoy_factory)
    assert envoy.mcp_call("tools/list").status == 200
    assert envoy.request("GET", "/v1/models").status == 200
    assert envoy.request("GET", "/v1/chat/completions?limit=5").status == 200
    assert envoy.request("POST", "/v1/threads/t1/messages", body={"role": "user"}).status == 200
    assert upstream.last().header("accept-encoding") is None
    assert envoy.samples("mcp_llm_requests_total") == []


# ---- the identity contract -------------------------------------------------------------

def test_org_label_comes_from_api_key_auth_not_from_the_client(envoy_factory, fake_provider):
    """With api-key-auth in front (its demo config in local/envoy.yaml), the
    organization is the key's, whatever org header the client sends."""
    keys = json.loads((REPO / "local" / "demo" / "keys.json").read_text())
    globex = next(k for k in keys if k["org_id"] == "globex")
    envoy = envoy_factory(filters=["api-key-auth", "token-usage-metrics"],
                          configs={"token-usage-metrics": CONFIG},
                          upstreams={"llm_provider": fake_provider.port})
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    status, _, _, _ = stream_request(envoy, "/v1/chat/completions", body,
                                     {"x-api-key": globex["key"], "x-mcp-org-id": "acme"})
    assert status == 200
    assert wait_for(lambda: requests_total(envoy, org_id="globex", outcome="ok")) == 1
    assert requests_total(envoy, org_id="acme") is None
    assert requests_total(envoy) == 1


# ---- labels, caps, config --------------------------------------------------------------

def test_cardinality_caps_send_new_values_to_other(envoy_factory, fake_provider):
    envoy = start(envoy_factory, dict(CONFIG, max_orgs=1, max_models=2),
                  upstreams={"llm_provider": fake_provider.port})
    for org, model in [("acme", "gpt-4o"), ("globex", "gpt-4o"), ("acme", "gpt-4.1")]:
        body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
        assert stream_request(envoy, "/v1/chat/completions", body, {"x-mcp-org-id": org})[0] == 200
    assert wait_for(lambda: requests_total(envoy), 3) == 3
    orgs = {l["org_id"] for l, _ in envoy.samples("mcp_llm_requests_total")}
    models = {l["gen_ai_request_model"] for l, _ in envoy.samples("mcp_llm_requests_total")}
    assert orgs == {"acme", "other"}
    # gpt-4o and its snapshot took the two model slots; gpt-4.1 is `other`.
    assert models == {"gpt-4o", "other"}


def test_hosts_config_names_openai_compatible_providers(envoy_factory, fake_provider):
    envoy = start(envoy_factory, dict(CONFIG, hosts={"vllm.internal": "vllm"}),
                  upstreams={"llm_provider": fake_provider.port})
    body = {"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "x"}]}
    assert stream_request(envoy, "/v1/chat/completions", body, {"host": "vllm.internal:8000"})[0] == 200
    assert wait_for(lambda: requests_total(envoy, gen_ai_provider_name="vllm", outcome="ok")) == 1


def test_routes_config_counts_an_internal_service_with_openai_style_usage(envoy_factory, upstream):
    body = (FIXTURES / "openai_chat.json").read_bytes()
    upstream.responder = lambda req: Reply(body=body)
    config = dict(CONFIG, routes=[{"path_prefix": "/internal/generate", "api": "openai_chat", "provider": "mcp-llm"}])
    envoy = start(envoy_factory, config)
    status, _, received, _ = stream_request(envoy, "/internal/generate", {"model": "house-model", "prompt": "x"},
                                            {"x-mcp-org-id": "acme"})
    assert (status, received) == (200, body)
    labels = {"gen_ai_provider_name": "mcp-llm", "gen_ai_request_model": "house-model", "org_id": "acme"}
    assert wait_for(lambda: tokens(envoy, gen_ai_token_type="input", **labels)) == 1117
    assert tokens(envoy, gen_ai_token_type="cached_input", **labels) == 1024


def test_bad_config_is_refused_naming_the_field(tmp_path, upstream, llm_upstream, layout):
    failure = expect_start_failure(
        tmp_path, upstreams={"mcp_debate": upstream.port, "llm_provider": llm_upstream.port},
        filters=FILTERS, configs={"token-usage-metrics": {"routes": [{"path_prefix": "/x", "api": "cohere"}]}},
        layout=layout)
    field = config_field(layout, "token-usage-metrics", "routes[0].api")
    assert f"invalid pluginConfig: {field}: unknown variant `cohere`" in failure.log


# ---- the official SDKs, through Envoy, read the same stream ------------------------------

def _sdk(name):
    return pytest.importorskip(name, reason=f"{name} SDK not installed (requirements.txt)")


def _through_envoy_and_direct(envoy_factory, fake_provider):
    envoy = start(envoy_factory, upstreams={"llm_provider": fake_provider.port})
    return envoy, f"http://127.0.0.1:{envoy.port}", f"http://127.0.0.1:{fake_provider.port}"


def test_openai_sdk_stream_is_unchanged(envoy_factory, fake_provider):
    openai = _sdk("openai")
    envoy, via_envoy, direct = _through_envoy_and_direct(envoy_factory, fake_provider)

    def run(base):
        client = openai.OpenAI(base_url=base + "/v1", api_key="sk-test-not-a-key", max_retries=0)
        chunks = list(client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Who won?"}],
            stream=True, stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        whole = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Who won?"}])
        resp = client.responses.create(model="gpt-4.1", input="Closing statement.")
        return text, chunks[-1].usage.model_dump(), whole.usage.model_dump(), resp.usage.model_dump()

    assert run(via_envoy) == run(direct)
    c = fake_llm.plan("openai_chat", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Who won?"}]})
    assert wait_for(lambda: tokens(envoy, gen_ai_token_type="input", gen_ai_request_model="gpt-4o-mini")) \
        == 2 * c.input_tokens
    assert requests_total(envoy, outcome="ok") == 3


def test_anthropic_sdk_stream_is_unchanged(envoy_factory, fake_provider):
    anthropic = _sdk("anthropic")
    envoy, via_envoy, direct = _through_envoy_and_direct(envoy_factory, fake_provider)
    messages = [{"role": "user", "content": "Moderate the debate."}]

    def run(base):
        client = anthropic.Anthropic(base_url=base, api_key="sk-ant-test", max_retries=0)
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=256, messages=messages) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        return text, final.model, final.usage.model_dump()

    assert run(via_envoy) == run(direct)
    c = fake_llm.plan("anthropic_messages", {"model": "claude-haiku-4-5", "messages": messages})
    labels = {"gen_ai_provider_name": "anthropic", "gen_ai_response_model": "claude-haiku-4-5-20251001"}
    assert wait_for(lambda: tokens(envoy, gen_ai_token_type="output", **labels)) == c.output_tokens
    assert tokens(envoy, gen_ai_token_type="input", **labels) == c.input_tokens


def test_google_genai_sdk_stream_is_unchanged(envoy_factory, fake_provider):
    _sdk("google.genai")
    from google import genai
    from google.genai import types
    envoy, via_envoy, direct = _through_envoy_and_direct(envoy_factory, fake_provider)

    def run(base):
        client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=base))
        chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Fact-check it."))
        text = "".join(c.text or "" for c in chunks)
        return text, chunks[-1].usage_metadata.model_dump()

    assert run(via_envoy) == run(direct)
    c = fake_llm.plan("gemini", {"contents": [{"role": "user", "parts": [{"text": "Fact-check it."}]}]},
                      "gemini-2.5-flash")
    labels = {"gen_ai_provider_name": "gcp.gemini", "gen_ai_request_model": "gemini-2.5-flash"}
    assert wait_for(lambda: tokens(envoy, gen_ai_token_type="output", **labels)) == c.output_tokens
    assert tokens(envoy, gen_ai_token_type="reasoning", **labels) == c.reasoning_tokens
