"""Token-budget accuracy (issue 15): how close to its limit a budget stops
LLM calls under concurrency, locally and across replicas.

Every run is a fresh budget and the fake provider of `make run`
(local/demo/fake_llm.py, whose usage per call is known in advance): 32
clients post the same chat completion, each until it is refused; the run
reports the calls admitted, the tokens they used (admitted x usage per call)
against the limit, the overshoot (used beyond the limit, as a percentage of
it) and what was left unused at the end.

Runs:
- local: one Envoy with 2 workers, the budget in its shared data.
- global: two Envoy replicas (2 workers each) on one rate-limit service
  counting in a real redis-server (tests/rls-server), `limiter: global`.
- under-estimated, local and global: calls that use more than they reserve,
  the case where the documented overshoot bound applies (at most the excess
  of the calls in flight). Their prompt is punctuation, one token per byte
  (as much non-English text comes close to), so the default estimate of 4
  bytes per input token reserves a quarter of the input.
- the same with `bytes_per_input_token: 1`: the estimate is an upper bound
  again.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from configs import Setup
from harness.envoy import REPO
from harness.ratelimit import start_redis, start_rls

sys.path.insert(0, str(REPO / "local" / "demo"))
import fake_llm  # noqa: E402

CLIENTS = 32
CALLS_PER_LIMIT = 300  # the budget is about this many calls' usage


@dataclass
class BudgetRun:
    name: str
    limiter: str
    bytes_per_token: int
    replicas: int
    limit: int
    reserved: int  # per call
    used_per_call: int
    admitted: int
    denied: int
    seconds: float

    @property
    def used(self) -> int:
        return self.admitted * self.used_per_call

    @property
    def overshoot_pct(self) -> float:
        return max(0, self.used - self.limit) / self.limit * 100

    @property
    def unused_pct(self) -> float:
        return max(0, self.limit - self.used) / self.limit * 100


# Three-letter words: the 4-bytes-per-token input estimate is close. Or
# punctuation: a token per byte.
PROMPTS = {"words": "abc " * 500, "punctuation": "!" * 500}


def body(prompt: str) -> dict:
    # max_tokens is the fake provider's reply length: output is reserved exactly.
    return {"model": "gpt-4o-mini", "max_tokens": fake_llm.count_tokens(fake_llm.REPLY),
            "messages": [{"role": "user", "content": PROMPTS[prompt]}]}


def _post(port: int, payload: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions", body=payload,
                     headers={"content-type": "application/json", "x-mcp-org-id": "bench-org"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def _until_denied(ports: list[int], payload: bytes, max_calls: int) -> tuple[int, int]:
    """CLIENTS clients, alternating replicas, each posting until refused."""
    def client(i: int) -> tuple[int, int]:
        admitted = 0
        while admitted < max_calls:
            status = _post(ports[i % len(ports)], payload)
            if status == 429:
                return admitted, 1
            if status != 200:
                raise RuntimeError(f"LLM call answered {status}")
            admitted += 1
        return admitted, 0

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))
    return sum(a for a, _ in results), sum(d for _, d in results)


def _budgets(limiter: str, limit: int, bytes_per_token: int) -> dict:
    one = {"name": "bench", "window": "hour"}
    if limiter == "local":
        one["limit"] = limit
        return {"plans": {"*": [one]}, "bytes_per_input_token": bytes_per_token}
    return {"limiter": "global", "global": {"cluster": "ratelimit", "timeout_ms": 2000},
            "plans": {"*": [one]}, "bytes_per_input_token": bytes_per_token}


class _Service:
    """redis-server and the test rate-limit service, with the bench's limit."""

    def __init__(self, folder: Path, limit: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.redis, url = start_redis(folder)
        limits = [{"domain": "mcp_budgets", "descriptor": {"budget": "bench", "org_id": "*"},
                   "requests_per_unit": limit, "unit": "hour"}]
        self.rls, self.port = start_rls(folder, url, limits)

    def stop(self) -> None:
        self.rls.stop()
        self.redis.stop()


def one_run(session, log, name: str, limiter: str, prompt: str, bytes_per_token: int) -> BudgetRun:
    payload_dict = body(prompt)
    payload = json.dumps(payload_dict).encode()
    c = fake_llm.plan("openai_chat", payload_dict)
    used_per_call = c.input_tokens + c.output_tokens
    reserved = -(-len(payload) // bytes_per_token) + payload_dict["max_tokens"]
    limit = CALLS_PER_LIMIT * used_per_call + used_per_call // 2
    replicas = 1 if limiter == "local" else 2
    service = _Service(session.workdir / f"budget-{name}", limit) if limiter != "local" else None
    with fake_llm.FakeLLM() as fake:
        try:
            upstreams = {"llm_provider": fake.port}
            if service:
                upstreams["ratelimit"] = service.port
            configs = {"token-usage-metrics": {"service": "bench",
                                               "budgets": _budgets(limiter, limit, bytes_per_token)}}
            envoys = [session.start(Setup(f"budget {name}", ("token-usage-metrics",)), 2, configs, upstreams)
                      for _ in range(replicas)]
            started = time.monotonic()
            admitted, denied = _until_denied([e.port for e in envoys], payload, 4 * CALLS_PER_LIMIT)
            seconds = time.monotonic() - started
            for e in envoys:
                session.stop(e)
        finally:
            if service:
                service.stop()
    run = BudgetRun(name, limiter, bytes_per_token, replicas, limit, reserved, used_per_call, admitted, denied,
                    seconds)
    log(f"   {name:38s} admitted {admitted} calls, used {run.used:,} of {limit:,} tokens "
        f"(overshoot {run.overshoot_pct:.2f}%, unused {run.unused_pct:.2f}%)")
    return run


def run(session, log) -> list[BudgetRun]:
    runs = []
    plan = [("words, local", "local", "words", 4), ("punctuation, local", "local", "punctuation", 4),
            ("punctuation, local, 1 byte per token", "local", "punctuation", 1)]
    if shutil.which("redis-server"):
        plan += [("words, global", "global", "words", 4), ("punctuation, global", "global", "punctuation", 4),
                 ("punctuation, global, 1 byte per token", "global", "punctuation", 1)]
    else:
        log("   redis-server is missing (`make redis` installs it): no global runs")
    for name, limiter, prompt, bytes_per_token in plan:
        try:
            runs.append(one_run(session, log, name, limiter, prompt, bytes_per_token))
        except Exception as e:  # noqa: BLE001 - reported, the other runs still go
            log(f"   {name}: {type(e).__name__}: {e}")
    return runs
