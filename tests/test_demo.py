"""`make run` as a user runs it: local/run.py starts the demo services and a
real Envoy on 127.0.0.1:10000 (admin 9901), the printed key and commands work,
and Ctrl-C stops every process."""

import json
import signal
import socket
import sys
import time
import urllib.request

import pytest

from harness import REPO, ChildProcess
from harness.demo import demo_keys
from harness.mcp_client import run_session, tool_json

PORTS = (10000, 9901, 8001, 8002)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _post(url: str, body: dict, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture
def demo(tmp_path):
    busy = [p for p in PORTS if _listening(p)]
    assert not busy, f"ports {busy} are taken: stop the running `make run` first"
    proc = ChildProcess("make-run", [sys.executable, "-u", str(REPO / "local/run.py")], tmp_path, cwd=REPO)
    deadline = time.monotonic() + 60
    while "Ctrl-C stops everything" not in proc.output():
        assert proc.poll() is None, proc.output()
        assert time.monotonic() < deadline, proc.output()
        time.sleep(0.2)
    try:
        yield proc
    finally:
        proc.stop()


def test_make_run_serves_the_demo_and_stops_cleanly(demo):
    guide = demo.output()
    keys = demo_keys()
    assert keys, "local/demo/keys.json has the demo keys make run prints"
    assert keys[0]["key"] in guide
    # The tour: both eras, the owner-only tool refused for the user and run
    # for the owner, and the user's tools/list without it.
    for era in ["2026-07-28, stateless", "handshake era, 2025-11-25"]:
        owner = guide.split(f"[{era}] owner:")[1].split("[")[0]
        user = guide.split(f"[{era}] user:")[1].split("\n  [")[0]
        assert "run_debate_round -> ran" in owner, guide
        assert "run_debate_round" in owner.split("tools/list -> ")[1].splitlines()[0]
        assert "run_debate_round -> refused: -32003" in user, guide
        assert "run_debate_round" not in user.split("tools/list -> ")[1].splitlines()[0], guide

    # A token budget runs out: globex's demo key pays two calls, the third
    # gets OpenAI's rate-limit error naming the budget, with Retry-After.
    spent = guide.split("A token budget running out")[1].split("\n\n")[0]
    calls = [l.strip() for l in spent.splitlines()[1:] if l.strip().startswith("call ")]
    assert [c.split(" -> ")[1][:3] for c in calls] == ["200", "200", "429"], spent
    assert "rate_limit_exceeded: LLM token budget `demo-hourly` is spent" in calls[2], spent
    assert int(calls[2].split("Retry-After ")[1].split()[0]) >= 1
    # The printed 429 command really is refused now.
    globex = next(k["key"] for k in keys if k["id"] == "globex-user-1")
    status, body = _post("http://127.0.0.1:10000/v1/chat/completions",
                         {"model": "gpt-4o-mini", "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]},
                         {"x-api-key": globex})
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded", body

    # The printed credential opens an MCP session through all four filters.
    init, created = run_session("http://127.0.0.1:10000/mcp", headers={"x-api-key": keys[0]["key"]},
                                calls=[("create_debate", {"topic": "demo"})])
    assert init.server_info.name == "mcp-debate"
    assert tool_json(created)["debate_id"].startswith("d-")

    # No credential: 401 from the mesh, not the service.
    status, body = _post("http://127.0.0.1:10000/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, {})
    assert status == 401, body

    # The fake provider answers in OpenAI's format through Envoy.
    status, body = _post("http://127.0.0.1:10000/v1/chat/completions",
                         {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                         {"x-api-key": keys[0]["key"]})
    assert status == 200, body
    assert body["usage"]["prompt_tokens"] > 0

    with urllib.request.urlopen("http://127.0.0.1:9901/ready", timeout=5) as r:
        assert r.status == 200

    # Ctrl-C: everything stops, every port is free again.
    demo.proc.send_signal(signal.SIGINT)
    demo.proc.wait(timeout=20)
    assert "Stopped." in demo.output()
    deadline = time.monotonic() + 10
    while any(_listening(p) for p in PORTS) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in PORTS if _listening(p)]
