"""The official MCP Python client talks to a real MCP server through Envoy
with all four filters, and the service sees the identity the mesh hands it."""

from harness.demo import auth_headers, demo_keys
from harness.mcp_client import run_session, tool_json


def test_initialize_and_tools_call_through_the_full_chain(envoy_factory, mcp_server):
    envoy = envoy_factory(upstreams={"mcp_debate": mcp_server})
    init, created, fetched = run_session(
        f"{envoy.url}/mcp",
        headers=auth_headers(),
        calls=[
            ("create_debate", {"topic": "Tabs or spaces"}),
            ("get_debate", {"debate_id": "d-1"}),
        ],
    )
    assert init.server_info.name == "mcp-debate"
    assert not created.is_error, created
    assert tool_json(created)["debate_id"] == "d-1"
    debate = tool_json(fetched)
    assert debate["topic"] == "Tabs or spaces"
    keys = demo_keys()
    if keys:  # the service sees the organization of the key, not anything the client claimed
        assert debate["seen_identity"].get("x-mcp-org-id") == keys[0]["org_id"]
