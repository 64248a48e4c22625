"""The demo credentials shipped in local/demo/keys.json (demo only)."""

from __future__ import annotations

import json

from .envoy import REPO

KEYS_FILE = REPO / "local" / "demo" / "keys.json"


def demo_keys() -> list[dict]:
    return json.loads(KEYS_FILE.read_text()) if KEYS_FILE.exists() else []


def auth_headers(index: int = 0) -> dict:
    """Headers that authenticate as the demo key `index` with the api-key-auth
    config in local/envoy.yaml (empty while no demo keys exist)."""
    keys = demo_keys()
    return {"x-api-key": keys[index]["key"]} if keys else {}
