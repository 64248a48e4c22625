"""The official MCP Python SDK client, driven synchronously for tests."""

from __future__ import annotations

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def _session_run(url: str, headers: dict, steps):
    async with httpx2.AsyncClient(headers=headers, timeout=20) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                results = [init]
                for name, args in steps:
                    results.append(await session.call_tool(name, args))
                return results


def run_session(url: str, headers: dict | None = None, calls: list[tuple[str, dict]] | None = None):
    """initialize, then each tools/call in order; returns [InitializeResult, CallToolResult...]."""
    return anyio.run(_session_run, url, headers or {}, calls or [])


def tool_json(result):
    """A tool result's value: structured content, else the JSON of its first text block."""
    import json

    if getattr(result, "structured_content", None) is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


async def _client_run(url: str, headers: dict, mode: str, steps):
    from mcp.client.client import Client
    from mcp.shared.exceptions import MCPError

    async with httpx2.AsyncClient(headers=headers, timeout=20) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:
            out = []
            for step in steps:
                kind, *args = step
                try:
                    if kind == "list_tools":
                        out.append(await client.list_tools())
                    elif kind == "call_tool":
                        out.append(await client.call_tool(*args))
                    else:
                        raise ValueError(kind)
                except MCPError as err:
                    out.append(err)
            return out


def run_client(url: str, headers: dict | None = None, mode: str = "2026-07-28", steps=()):
    """The SDK's high-level `Client` in `mode` ('legacy': the initialize
    handshake; '2026-07-28': stateless). Steps are ("list_tools",) or
    ("call_tool", name, args); an MCP error is returned in its step's place."""
    return anyio.run(_client_run, url, headers or {}, mode, list(steps))
