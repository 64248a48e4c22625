"""Demo stand-in for mcp-debate: a real MCP server (official Python SDK, streamable HTTP).

Tools: create_debate, submit_argument, get_debate, list_debates, run_debate_round.
State lives in memory. It echoes the identity headers the mesh hands it
(x-mcp-org-id, ...) in get_debate so the demo shows what the service sees.
With --llm-url, run_debate_round asks the LLM service for an argument and
forwards the mesh's signed identity assertion (x-mcp-identity) and the
trace context on that call, as every service of the mesh does.

    python local/demo/mcp_debate.py --port 8001 [--llm-url http://127.0.0.1:10001]
"""

from __future__ import annotations

import argparse
import itertools
import socket
import time

import httpx2
import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer(
    name="mcp-debate",
    instructions="Demo debate engine behind the MCP mesh filters.",
)

_debates: dict[str, dict] = {}
_ids = itertools.count(1)
# Where run_debate_round asks for an argument (--llm-url); None: no LLM call.
LLM_URL: str | None = None
# Headers a service forwards on its own calls: the identity assertion and
# the trace context.
FORWARDED = ["x-mcp-identity", "traceparent", "tracestate"]


def _identity(ctx: Context | None) -> dict:
    """Identity headers as the service received them from the sidecar."""
    try:
        request = ctx.request_context.request  # starlette Request
        headers = request.headers
    except Exception:  # not over HTTP
        return {}
    names = ["x-mcp-org-id", "x-mcp-key-id", "x-mcp-plan", "x-mcp-role", "x-mcp-user-id"]
    return {n: headers.get(n) for n in names if headers.get(n) is not None}


@server.tool()
def create_debate(topic: str, ctx: Context, rounds: int = 3) -> dict:
    """Create a debate on a topic; returns its id."""
    debate_id = f"d-{next(_ids)}"
    org = _identity(ctx).get("x-mcp-org-id", "unknown")
    _debates[debate_id] = {
        "debate_id": debate_id,
        "topic": topic,
        "rounds": rounds,
        "org_id": org,
        "arguments": [],
        "created_at": time.time(),
    }
    return {"debate_id": debate_id, "topic": topic, "rounds": rounds}


@server.tool()
def submit_argument(debate_id: str, side: str, text: str) -> dict:
    """Add an argument (side: pro or con) to a debate."""
    debate = _debates.get(debate_id)
    if debate is None:
        raise ValueError(f"no debate {debate_id}")
    debate["arguments"].append({"side": side, "text": text})
    return {"debate_id": debate_id, "arguments": len(debate["arguments"])}


@server.tool()
def get_debate(debate_id: str, ctx: Context) -> dict:
    """A debate with its arguments, and the identity the service saw."""
    debate = _debates.get(debate_id)
    if debate is None:
        raise ValueError(f"no debate {debate_id}")
    return {**debate, "seen_identity": _identity(ctx)}


@server.tool()
def list_debates() -> list[str]:
    """Ids of every debate."""
    return sorted(_debates)


@server.tool()
async def run_debate_round(debate_id: str, ctx: Context) -> dict:
    """Run one round: the expensive call the rate limiter prices higher (with
    --llm-url, one LLM call through the mesh)."""
    debate = _debates.get(debate_id)
    if debate is None:
        raise ValueError(f"no debate {debate_id}")
    debate["rounds_done"] = debate.get("rounds_done", 0) + 1
    out = {"debate_id": debate_id, "rounds_done": debate["rounds_done"]}
    if LLM_URL:
        out["llm"] = await _ask_llm(ctx, debate)
    return out


async def _ask_llm(ctx: Context, debate: dict) -> dict:
    try:
        incoming = ctx.request_context.request.headers
    except Exception:  # not over HTTP
        incoming = {}
    headers = {h: incoming[h] for h in FORWARDED if h in incoming}
    headers["x-debate-id"] = debate["debate_id"]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Argue: {debate['topic']}"}]}
    async with httpx2.AsyncClient(timeout=20) as http:
        r = await http.post(f"{LLM_URL}/v1/chat/completions", json=body, headers=headers)
    return {"status": r.status_code, "usage": r.json().get("usage") if r.status_code == 200 else None}


def app():
    return server.streamable_http_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0: any free port (printed)")
    parser.add_argument("--llm-url", help="the LLM service (through its sidecar) run_debate_round calls")
    args = parser.parse_args()
    global LLM_URL
    LLM_URL = args.llm_url
    # Bound here, so that --port 0 works and the port in use is printed
    # (tests read it instead of guessing a free port, which races).
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    print(f"listening on {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app(), log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
