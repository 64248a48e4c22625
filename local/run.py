"""`make run`: the demo MCP services behind a real Envoy with all four filters.

Starts the demo upstreams (mcp-debate stand-in on 127.0.0.1:8001, fake LLM
provider on 127.0.0.1:8002), then Envoy with local/envoy.yaml as it is
(listener 127.0.0.1:10000, admin 127.0.0.1:9901, access log run/access.log),
prints the demo API keys and copy-paste curl commands, and stops everything
cleanly on Ctrl-C (or when any of the processes dies).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "run"
VENV_BIN = Path(sys.executable).parent
LISTENER, ADMIN, MCP_PORT, LLM_PORT = 10000, 9901, 8001, 8002


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(port: int, proc: subprocess.Popen, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with {proc.returncode}; see {RUN / (name + '.log')}")
        if port_busy(port):
            return
        time.sleep(0.1)
    sys.exit(f"{name} did not listen on {port} within {timeout}s")


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL if this launcher dies without cleaning up."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start(name: str, argv: list[str]) -> subprocess.Popen:
    log = open(RUN / f"{name}.log", "wb")
    # Own session: a terminal's Ctrl-C reaches only this launcher, which then
    # stops the children in order.
    return subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=_die_with_parent)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def demo_keys() -> list[dict]:
    path = REPO / "local" / "demo" / "keys.json"
    return json.loads(path.read_text()) if path.exists() else []


def print_guide() -> None:
    keys = demo_keys()
    key = keys[0]["key"] if keys else "<no demo keys yet>"
    base = f"http://127.0.0.1:{LISTENER}"
    mcp_h = "-H 'content-type: application/json' -H 'accept: application/json, text/event-stream'"
    print("\nMCP mesh demo is up.")
    print(f"  Envoy listener  {base}   (all five filters, 2 workers)")
    print(f"  Envoy admin     http://127.0.0.1:{ADMIN}")
    print(f"  mcp-debate      127.0.0.1:{MCP_PORT}  (official MCP SDK server)")
    print(f"  fake LLM        127.0.0.1:{LLM_PORT}  (OpenAI / Anthropic / Gemini formats)")
    print(f"  logs            {RUN}/  (access.log is one JSON line per request)\n")
    if keys:
        print("Demo API keys (demo only, never use them anywhere else):")
        for k in keys:
            print(f"  {k['key']}   org={k['org_id']} plan={k['plan']} role={k['role']} id={k['id']}")
    print("\nTry it:\n")
    print("# 1. No credential: 401 with a JSON error")
    print(f"curl -si {base}/mcp -X POST {mcp_h} -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}}'\n")
    print("# 2. An MCP session: initialize, then tools/call (the session id comes back in a header)")
    print(f"KEY={key}")
    print(f"SID=$(curl -s -D - -o /dev/null {base}/mcp -H \"x-api-key: $KEY\" {mcp_h} \\\n"
          "  -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\","
          "\"capabilities\":{},\"clientInfo\":{\"name\":\"curl\",\"version\":\"1\"}}}' \\\n"
          "  | tr -d '\\r' | awk 'tolower($1)==\"mcp-session-id:\" {print $2}')")
    print(f"curl -s {base}/mcp -H \"x-api-key: $KEY\" -H \"mcp-session-id: $SID\" {mcp_h} \\\n"
          "  -d '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}'")
    print(f"curl -s {base}/mcp -H \"x-api-key: $KEY\" -H \"mcp-session-id: $SID\" {mcp_h} \\\n"
          "  -d '{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"create_debate\","
          "\"arguments\":{\"topic\":\"Tabs or spaces\"}}}'\n")
    print("# 3. LLM calls through the mesh: token usage becomes Prometheus metrics")
    print(f"curl -s {base}/v1/chat/completions -H \"x-api-key: $KEY\" -H 'content-type: application/json' \\\n"
          "  -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'")
    print(f"curl -sN {base}/v1/messages -H \"x-api-key: $KEY\" -H 'content-type: application/json' \\\n"
          "  -d '{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":64,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'")
    print(f"curl -s '{base}/v1beta/models/gemini-2.5-flash:generateContent' -H \"x-api-key: $KEY\" "
          "-H 'content-type: application/json' \\\n  -d '{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}'\n")
    print("# 4. Rate limiting: hammer until 429 (see the RateLimit-* and Retry-After headers)")
    print(f"for i in $(seq 1 80); do curl -s -o /dev/null -w '%{{http_code}} ' {base}/health -H \"x-api-key: $KEY\"; done; echo\n")
    print("# 5. MCP 2026-07-28 headers must match the body: 400 (-32020) with the real id, the service gets no byte of it")
    print(f"curl -s {base}/mcp -H \"x-api-key: $KEY\" {mcp_h} -H 'mcp-protocol-version: 2026-07-28' \\\n"
          "  -H 'mcp-method: tools/call' -H 'mcp-name: get_debate' \\\n"
          "  -d '{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"run_debate_round\","
          "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}'\n")
    print("# 6. Token budgets: globex's demo key has 1000 LLM tokens an hour (local/envoy.yaml `budgets`).")
    print("#    The tour below spends it; another call gets a 429 in OpenAI's format, naming the budget")
    print("GLOBEX=" + next((k["key"] for k in keys if k["id"] == "globex-user-1"), "<globex key>"))
    print(f"curl -si {base}/v1/chat/completions -H \"x-api-key: $GLOBEX\" -H 'content-type: application/json' \\\n"
          "  -d '{\"model\":\"gpt-4o-mini\",\"max_tokens\":500,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'\n")
    print("# 7. What the mesh saw")
    print(f"curl -s http://127.0.0.1:{ADMIN}/stats/prometheus | grep -E '^mcp_'")
    print(f"tail -n 5 {RUN}/access.log")


def budget_tour() -> None:
    """An LLM token budget running out, through the fake provider."""
    key = next((k["key"] for k in demo_keys() if k["id"] == "globex-user-1"), None)
    if key is None:
        return
    print("\nA token budget running out (globex's demo key: 1000 tokens an hour, local/envoy.yaml):")
    body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 100,
                       "messages": [{"role": "user", "content": "word " * 300}]}).encode()
    for i in range(1, 5):
        req = urllib.request.Request(f"http://127.0.0.1:{LISTENER}/v1/chat/completions", data=body, method="POST",
                                     headers={"content-type": "application/json", "x-api-key": key})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                usage = json.loads(r.read()).get("usage", {})
                print(f"  call {i} -> {r.status}: used {usage.get('total_tokens')} tokens, "
                      f"{r.headers.get('x-ratelimit-remaining-tokens')} left after its reservation")
        except urllib.error.HTTPError as e:
            error = json.loads(e.read() or b"{}").get("error", {})
            print(f"  call {i} -> {e.code} {error.get('code')}: {error.get('message')} "
                  f"(Retry-After {e.headers.get('retry-after')} s)")
            return
        except OSError as e:
            print(f"  call {i} -> {e}")
            return


def tour() -> None:
    """The official MCP client through the mesh, both eras, both roles."""
    keys = {k["role"]: k["key"] for k in demo_keys()}
    if not {"owner", "user"} <= set(keys):
        print("\nCtrl-C stops everything.")
        return
    print("\nMCP through the mesh (official SDK client; tool rules from local/envoy.yaml's mcp_guard):")
    subprocess.run([sys.executable, "local/demo/mcp_tour.py", f"http://127.0.0.1:{LISTENER}/mcp",
                    keys["owner"], keys["user"]], cwd=REPO, check=False)
    print("\nCtrl-C stops everything.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    # Ctrl-C and SIGTERM stop the demo whatever this process inherited: a
    # shell starts background jobs with SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    RUN.mkdir(exist_ok=True)
    for port in (LISTENER, ADMIN, MCP_PORT, LLM_PORT):
        if port_busy(port):
            sys.exit(f"127.0.0.1:{port} is already in use: stop whatever runs there first")
    procs: list[subprocess.Popen] = []
    try:
        mcp = start("mcp-debate", [sys.executable, "local/demo/mcp_debate.py", "--port", str(MCP_PORT)])
        procs.append(mcp)
        llm = start("fake-llm", [sys.executable, "local/demo/fake_llm.py", "--port", str(LLM_PORT)])
        procs.append(llm)
        wait_for(MCP_PORT, mcp, "mcp-debate")
        wait_for(LLM_PORT, llm, "fake-llm")
        envoy = start("envoy", [str(VENV_BIN / "envoy"), "-c", "local/envoy.yaml", "--concurrency",
                                str(args.concurrency), "--use-dynamic-base-id", "-l", "info"])
        procs.append(envoy)
        wait_for(LISTENER, envoy, "envoy")
        print_guide()
        budget_tour()
        tour()
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        dead = [p.args[1] if len(p.args) > 1 else p.args[0] for p in procs if p.poll() is not None]
        print(f"\n{dead} exited; stopping the demo (logs in {RUN}/)")
    except KeyboardInterrupt:
        print("\nStopping the demo...")
    finally:
        stop(procs)
    print("Stopped.")


if __name__ == "__main__":
    main()
