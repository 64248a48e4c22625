"""The rate-limit service of the global modes, for the tests and the bench:
a redis-server of its own on a unix socket, and tests/rls-server (the
envoy.service.ratelimit.v3 protocol) counting in it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .process import ChildProcess, wait_for_output

RLS_SERVER = Path(__file__).resolve().parents[1] / "rls-server" / "rls_server.py"


def start_redis(folder: Path) -> tuple[ChildProcess, str]:
    """redis-server on a unix socket in `folder` (a TCP port picked in
    advance could be taken by another test worker's server), and its URL."""
    sock = folder / "redis.sock"
    proc = ChildProcess("redis", ["redis-server", "--port", "0", "--unixsocket", str(sock),
                                  "--save", "", "--appendonly", "no"], folder)
    wait_for_output(proc, r"ready to accept connections")
    return proc, f"redis+unix://{sock}"


def start_rls(folder: Path, redis_url: str, limits: list[dict], name: str = "rls",
              extra: tuple[str, ...] = ()) -> tuple[ChildProcess, int]:
    """The test rate-limit service with these limits, and the port it serves."""
    proc = ChildProcess(name, [sys.executable, str(RLS_SERVER), "--port", "0", "--redis", redis_url,
                               "--limits", json.dumps(limits), *extra], folder)
    return proc, int(wait_for_output(proc, r"^listening on (\d+)$").group(1))
