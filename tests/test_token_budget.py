"""LLM token budgets (token-usage-metrics `budgets`) in a real Envoy: the
official SDKs get their own rate-limit error once a budget is spent, the
reservation is reconciled with the reported usage exactly under concurrency
across two workers, a cut stream keeps its reservation, overrides and prices
apply, and windows reset on time."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import sys
import time

import pytest

from harness import REPO, HeldPort

sys.path.insert(0, str(REPO / "local" / "demo"))
import fake_llm  # noqa: E402

FILTERS = ["token-usage-metrics"]
PROMPT = [{"role": "user", "content": "Who won the debate?"}]


def config(**budgets):
    return {"service": "mcp-llm", "max_orgs": 10, "budgets": budgets}


def start(envoy_factory, fake, budgets, ratelimit=None, **kwargs):
    """An Envoy with these budgets before `fake`; `ratelimit`: the port of
    the rate-limit service of global budgets."""
    def flush_stats_fast(bootstrap):
        bootstrap["stats_flush_interval"] = "0.1s"

    upstreams = {"llm_provider": fake.port}
    if ratelimit is not None:
        upstreams["ratelimit"] = ratelimit
    return envoy_factory(filters=FILTERS, configs={"token-usage-metrics": config(**budgets)},
                         upstreams=upstreams, mutate=flush_stats_fast, **kwargs)


@pytest.fixture
def fake():
    with fake_llm.FakeLLM() as f:
        yield f


def post(envoy, path, body, org="acme", extra=None):
    conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=10)
    try:
        headers = {"content-type": "application/json", "x-mcp-org-id": org, **(extra or {})}
        conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def chat(model="gpt-4o-mini", max_tokens=None, stream=False):
    body = {"model": model, "messages": PROMPT}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def usage_of(body):
    c = fake_llm.plan("openai_chat", body)
    return c.input_tokens, c.output_tokens


def remaining(headers):
    return int(headers["x-ratelimit-remaining-tokens"])


def test_reservation_is_replaced_by_the_actual_usage(envoy_factory, fake):
    envoy = start(envoy_factory, fake, {"plans": {"*": [{"name": "hourly", "window": "hour", "limit": 100000}]}})
    body = chat(max_tokens=500)
    status, headers, _ = post(envoy, "/v1/chat/completions", body)
    assert status == 200
    size = len(json.dumps(body).encode())
    reserved = -(-size // 4) + 500
    # The header reports what is left after the reservation.
    assert remaining(headers) == 100000 - reserved
    inp, out = usage_of(body)
    # The next call sees the reconciled counter: only the actual usage spent.
    _, headers, _ = post(envoy, "/v1/chat/completions", body)
    assert remaining(headers) == 100000 - (inp + out) - reserved
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    # The gauge shows what is left after both calls' usage was charged.
    deadline = time.monotonic() + 5
    want = 100000 - 2 * (inp + out)
    while envoy.metric("mcp_llm_budget_remaining", budget="hourly", org_id="acme", service="mcp-llm") != want:
        assert time.monotonic() < deadline, "remaining-budget gauge never showed the reconciled counter"
        time.sleep(0.05)
    # The access log names the decision, the reservation and the charge.
    line = envoy.access_log(expect=2)[0]
    assert (line["llm_budget_decision"], line["llm_budget_name"]) == ("allowed", "hourly")
    assert (int(line["llm_budget_reserved"]), int(line["llm_budget_charged"])) == (reserved, inp + out)


def test_spent_budget_raises_each_sdks_rate_limit_error(envoy_factory, fake):
    openai = pytest.importorskip("openai")
    anthropic = pytest.importorskip("anthropic")
    genai = pytest.importorskip("google.genai")
    envoy = start(envoy_factory, fake, {"plans": {"*": [{"name": "tiny", "window": "day", "limit": 10}]}})
    base = f"http://127.0.0.1:{envoy.port}"
    org = {"x-mcp-org-id": "acme"}
    client = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0, default_headers=org)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=100)
    assert e.value.response.headers["retry-after"].isdigit()
    assert e.value.response.headers["ratelimit-policy"] == '"tiny";q=10;w=86400'
    assert e.value.code == "rate_limit_exceeded"
    ac = anthropic.Anthropic(base_url=base, api_key="sk-ant", max_retries=0, default_headers=org)
    with pytest.raises(anthropic.RateLimitError) as e:
        ac.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=PROMPT)
    assert e.value.body["error"]["type"] == "rate_limit_error"
    gc = genai.Client(api_key="g-test", http_options={"base_url": base, "headers": org,
                                                       "retry_options": {"attempts": 1}})
    with pytest.raises(genai.errors.ClientError) as e:
        gc.models.generate_content(model="gemini-2.5-flash", contents="Who won?")
    assert e.value.code == 429 and e.value.status == "RESOURCE_EXHAUSTED"
    # No request body reached the provider (Proxy-Wasm only gets the body
    # once the headers went on, so the provider may see headers, then a
    # reset), and the denials were counted.
    assert not [r for r in fake.received if r[3]]
    assert envoy.metric("mcp_llm_budget_denied_total", service="mcp-llm") == 3
    # Another organization has its own counter of the same plan budget, and
    # 10 tokens cannot cover its prompt's estimate either.
    status, _, _ = post(envoy, "/v1/chat/completions", chat(max_tokens=1), org="globex")
    assert status == 429


def test_two_workers_32_concurrent_streams_charge_exactly_the_usage(envoy_factory, fake):
    limit = 1_000_000
    envoy = start(envoy_factory, fake, {"plans": {"*": [{"name": "big", "window": "day", "limit": limit}]}},
                  concurrency=2)
    body = chat(max_tokens=2000, stream=True)
    inp, out = usage_of(body)

    def one(_):
        status, _, data = post(envoy, "/v1/chat/completions", body)
        return status, data

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    assert all(s == 200 and b"[DONE]" in d for s, d in results)
    # The counter after the run: exactly 32 x the usage (no reservation left).
    time.sleep(0.3)
    status, headers, _ = post(envoy, "/v1/chat/completions", chat(max_tokens=0))
    size = len(json.dumps(chat(max_tokens=0)).encode())
    assert remaining(headers) == limit - 32 * (inp + out) - (-(-size // 4))


def test_concurrent_calls_never_overshoot_the_budget(envoy_factory, fake):
    body = chat(max_tokens=200)
    size = len(json.dumps(body).encode())
    reserve = -(-size // 4) + 200
    limit = reserve * 10 + reserve // 2
    envoy = start(envoy_factory, fake, {"plans": {"*": [{"name": "ten", "window": "day", "limit": limit}]}},
                  concurrency=2)
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda _: post(envoy, "/v1/chat/completions", body)[0], range(32)))
    inp, out = usage_of(body)
    ok = statuses.count(200)
    # At most 10 reservations fit at once; refunds let more in later, but
    # the usage admitted never passes the limit.
    assert ok >= 10 and statuses.count(429) == 32 - ok
    assert ok * (inp + out) <= limit


def test_cut_stream_keeps_its_reservation(envoy_factory):
    with fake_llm.FakeLLM(chunk_delay=0.2) as slow:
        envoy = start(envoy_factory, slow, {"plans": {"*": [{"name": "h", "window": "hour", "limit": 100000}]}})
        body = chat(max_tokens=300, stream=True)
        conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=10)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                     headers={"content-type": "application/json", "x-mcp-org-id": "acme"})
        resp = conn.getresponse()
        first = remaining({k.lower(): v for k, v in resp.getheaders()})
        resp.read1(64)
        conn.sock.close()  # the client goes away mid-stream
        conn.close()
        deadline = time.monotonic() + 5
        while envoy.metric("mcp_llm_budget_charged_without_usage_total", service="mcp-llm") != 1:
            assert time.monotonic() < deadline, "the cut stream was not charged"
            time.sleep(0.05)
        _, headers, _ = post(envoy, "/v1/chat/completions", chat(max_tokens=300))
        cut = envoy.access_log(expect=1)[0]
        assert cut["llm_budget_decision"] == "charged_reservation"
        assert cut["llm_budget_charged"] == cut["llm_budget_reserved"]
        # The whole reservation stayed charged: the next call's reservation
        # comes off what the first left.
        assert remaining(headers) == first - (-(-len(json.dumps(chat(max_tokens=300)).encode()) // 4) + 300)


def test_overrides_prices_and_unknown_models(envoy_factory, fake):
    # The unknown model's reservation is priced at exactly $1.50.
    mystery = chat("mystery-1", max_tokens=5)
    estimate = -(-len(json.dumps(mystery).encode()) // 4) + 5
    budgets = {
        "plans": {"free": [{"name": "usd", "window": "day", "limit": 1, "count": "cost"}],
                  "*": [{"name": "out", "window": "day", "limit": 1000, "count": "output"}]},
        "orgs": {"acme": [{"name": "usd", "window": "day", "limit": 2, "count": "cost"}]},
        "keys": {"k-small": [{"name": "out", "window": "day", "limit": 5, "count": "output", "per": "key"}]},
        "prices": {"gpt-4o*": {"input": 100, "output": 100}},
        "default_price": {"input": 1.5e6 / estimate, "output": 1.5e6 / estimate},
    }
    envoy = start(envoy_factory, fake, budgets)
    # Key override: 5 output tokens cannot cover max_tokens 50; without the key the plan's 1000 can.
    status, headers, _ = post(envoy, "/v1/chat/completions", chat(max_tokens=50), org="initech",
                              extra={"x-mcp-key-id": "k-small"})
    assert status == 429 and '"out";q=5' in headers["ratelimit-policy"]
    status, _, _ = post(envoy, "/v1/chat/completions", chat(max_tokens=50), org="initech")
    assert status == 200
    # Cost: $1/day on free; gpt-4o at $100 per million tokens fits.
    free = {"x-mcp-plan": "free"}
    status, _, _ = post(envoy, "/v1/chat/completions", chat("gpt-4o", max_tokens=5), org="globex", extra=free)
    assert status == 200
    # An unknown model pays the default price: $1.50 does not fit in $1.
    status, headers, body = post(envoy, "/v1/chat/completions", mystery,
                                 org="globex", extra=free)
    assert status == 429 and b"usd" in body
    # Cost budgets show millionths of their unit.
    assert '"usd";q=1000000' in headers["ratelimit-policy"]
    # acme's override doubles the dollars: the same call fits once.
    status, _, _ = post(envoy, "/v1/chat/completions", mystery, org="acme", extra=free)
    assert status == 200
    assert post(envoy, "/v1/chat/completions", mystery, org="acme", extra=free)[0] == 429


def test_minute_window_resets_on_time(envoy_factory, fake):
    body = chat(max_tokens=20)
    size = len(json.dumps(body).encode())
    envoy = start(envoy_factory, fake, {"plans": {"*": [{"name": "m", "window": "minute",
                                                         "limit": -(-size // 4) + 20}]}})
    # Start just after a minute boundary so both calls fall in one window.
    time.sleep(60.5 - time.time() % 60 if time.time() % 60 > 50 else 0)
    assert post(envoy, "/v1/chat/completions", body)[0] == 200
    # The budget is exactly one reservation: after the first call's usage
    # (> 0) is charged, the same reservation no longer fits.
    status, headers, _ = post(envoy, "/v1/chat/completions", body)
    assert status == 429
    wait = int(headers["retry-after"])
    assert 1 <= wait <= 60
    time.sleep(wait + 0.5)
    assert post(envoy, "/v1/chat/completions", body)[0] == 200


def test_bad_budget_config_names_the_field(tmp_path, upstream, llm_upstream, layout):
    from harness.envoy import config_field, expect_start_failure
    failure = expect_start_failure(
        tmp_path, upstreams={"mcp_debate": upstream.port, "llm_provider": llm_upstream.port},
        filters=FILTERS, configs={"token-usage-metrics": config(plans={"*": [{"name": "x", "window": "week",
                                                                              "limit": 1}]})},
        layout=layout)
    assert "budgets.plans.*[0].window" in failure.log or "unknown variant `week`" in failure.log
    field = config_field(layout, "token-usage-metrics", "budgets.plans.*[0].limit")
    failure = expect_start_failure(
        tmp_path / "b", upstreams={"mcp_debate": upstream.port, "llm_provider": llm_upstream.port},
        filters=FILTERS, configs={"token-usage-metrics": config(plans={"*": [{"name": "x", "window": "day",
                                                                              "limit": 0}]})},
        layout=layout)
    assert f"invalid pluginConfig: {field}: must be > 0" in failure.log


# ---- global budgets: one rate-limit service on a real redis-server ----------

def global_budgets(limiter="global", failure_mode="allow", **extra):
    return {"limiter": limiter, "failure_mode": failure_mode,
            "global": {"cluster": "ratelimit", "timeout_ms": 2000},
            "plans": {"*": [{"name": "fleet", "window": "hour", **extra}]}}


def fleet_limit(amount, org="*"):
    return {"domain": "mcp_budgets", "descriptor": {"budget": "fleet", "org_id": org},
            "requests_per_unit": amount, "unit": "hour"}


def service_count(redis_url, amount, org="acme"):
    """The service's counter of the `fleet` budget of `org`, read from Redis."""
    from limits import RateLimitItemPerHour
    from limits.storage import storage_from_string
    item = RateLimitItemPerHour(amount)
    return storage_from_string(redis_url).get(item.key_for("mcp_budgets", f"budget=fleet|org_id={org}"))


def test_global_budget_holds_across_two_replicas_within_one_percent(envoy_factory, fake, rls_factory, redis):
    # Words of 3 letters and a space: the 4-bytes-per-token estimate is close
    # to the real count, and max_tokens is the reply's length, so a call
    # reserves a little more than it uses (what it does not use is taken off
    # the replica's next charge).
    body = chat(max_tokens=fake_llm.count_tokens(fake_llm.REPLY))
    body["messages"] = [{"role": "user", "content": "abc " * 500}]
    inp, out = usage_of(body)
    reserved = -(-len(json.dumps(body).encode()) // 4) + body["max_tokens"]
    assert inp + out <= reserved <= (inp + out) * 1.05
    limit = 300 * (inp + out) + (inp + out) // 2
    rls = rls_factory([fleet_limit(limit)])
    replicas = [start(envoy_factory, fake, global_budgets(), concurrency=2,
                      ratelimit=rls.port) for _ in range(2)]

    def worker(i):
        admitted = 0
        while admitted < 1000:
            status, _, _ = post(replicas[i % 2], "/v1/chat/completions", body)
            if status != 200:
                assert status == 429
                return admitted
            admitted += 1
        return admitted

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        admitted = sum(pool.map(worker, range(32)))
    used = admitted * (inp + out)
    # Never more than the budget, and at most 1% of it left unused at the end.
    assert used <= limit, (used, limit)
    assert used >= 0.99 * limit, (used, limit, admitted)
    # The service was never charged less than what was used.
    assert service_count(redis, limit) >= used
    allowed = [r.metric("mcp_llm_budget_denied_total", service="mcp-llm") for r in replicas]
    assert all(a and a >= 1 for a in allowed), allowed


def test_global_budget_denial_is_the_sdks_rate_limit_error(envoy_factory, fake, rls_factory, redis):
    openai = pytest.importorskip("openai")
    rls = rls_factory([fleet_limit(50)])
    envoy = start(envoy_factory, fake, global_budgets(),
                  ratelimit=rls.port)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{envoy.port}/v1", api_key="sk-test", max_retries=0,
                           default_headers={"x-mcp-org-id": "acme"})
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=100)
    assert e.value.code == "rate_limit_exceeded"
    assert e.value.response.headers["ratelimit-policy"] == '"fleet";q=50;w=3600'
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 3601
    assert not [r for r in fake.received if r[3]]
    # A call that fits: the service's remaining comes back as the header,
    # and the access log names the global budget.
    status, headers, _ = post(envoy, "/v1/chat/completions", chat(max_tokens=1), org="globex")
    size = len(json.dumps(chat(max_tokens=1)).encode())
    assert status == 200 and remaining(headers) == 50 - (-(-size // 4) + 1)
    lines = envoy.access_log(expect=2)
    assert [(l["llm_budget_decision"], l["llm_budget_name"]) for l in lines] == [
        ("denied", "fleet"), ("allowed", "fleet")]


def test_local_then_global_stops_at_the_local_ceiling_without_asking(envoy_factory, fake, rls_factory, redis):
    body = chat(max_tokens=10)
    reserved = -(-len(json.dumps(body).encode()) // 4) + 10
    rls = rls_factory([fleet_limit(1_000_000)])
    budgets = {"limiter": "local_then_global", "global": {"cluster": "ratelimit", "timeout_ms": 2000},
               "plans": {"*": [{"name": "fleet", "window": "hour", "limit": reserved}]}}
    envoy = start(envoy_factory, fake, budgets, ratelimit=rls.port)
    assert post(envoy, "/v1/chat/completions", body)[0] == 200
    charged = service_count(redis, 1_000_000)
    assert charged == reserved
    # The local ceiling is spent (usage > 0): denied here, the service is not asked.
    assert post(envoy, "/v1/chat/completions", body)[0] == 429
    assert service_count(redis, 1_000_000) == charged


@pytest.mark.parametrize("failure_mode, expected", [("allow", 200), ("deny", 429)])
def test_global_budget_without_a_service_takes_the_failure_mode(envoy_factory, fake, failure_mode, expected):
    dead = HeldPort()  # bound, never listening: connections are refused
    envoy = start(envoy_factory, fake, global_budgets(failure_mode=failure_mode),
                  ratelimit=dead.port)
    assert post(envoy, "/v1/chat/completions", chat(max_tokens=5))[0] == expected
    errors = sum(envoy.metric("mcp_llm_budget_service_errors_total", reason=r, service="mcp-llm") or 0
                 for r in ("unavailable", "timeout", "error"))
    assert errors == 1
