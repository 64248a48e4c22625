"""What `make run` shows of MCP through the mesh, with the official SDK client:
a 2026-07-28 (stateless) session and a handshake-era one, the owner-only
tool refused for a user and run for the owner, and the user's tools/list
filtered to what it may call.

    python local/demo/mcp_tour.py http://127.0.0.1:10000/mcp OWNER_KEY USER_KEY
"""

from __future__ import annotations

import sys

import anyio
import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


async def session(url: str, key: str, mode: str) -> list[str]:
    lines = []
    async with httpx2.AsyncClient(headers={"x-api-key": key}, timeout=20) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            lines.append(f"tools/list -> {', '.join(tools)}")
            created = await client.call_tool("create_debate", {"topic": "Tabs or spaces"})
            lines.append(f"create_debate -> {created.content[0].text.split(chr(10))[1].strip()}")
            try:
                await client.call_tool("run_debate_round", {"debate_id": "d-1"})
                lines.append("run_debate_round -> ran")
            except MCPError as err:
                lines.append(f"run_debate_round -> refused: {err.code} {err.message} (rule {err.data['rule']})")
    return lines


async def tour(url: str, owner: str, user: str) -> None:
    for mode, era in [("2026-07-28", "2026-07-28, stateless"), ("legacy", "handshake era, 2025-11-25")]:
        for who, key in [("owner", owner), ("user", user)]:
            print(f"  [{era}] {who}:")
            for line in await session(url, key, mode):
                print(f"      {line}")


def main() -> None:
    url, owner, user = sys.argv[1:4]
    anyio.run(tour, url, owner, user)


if __name__ == "__main__":
    main()
