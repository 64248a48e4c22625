"""Shared fixtures: `upstream`, `llm_upstream`, `envoy_factory`, and `redis`
plus `rls_factory` (the test rate-limit service on a real redis-server).

    def test_x(envoy_factory, upstream):
        envoy = envoy_factory(configs={"api-key-auth": {...}})
        r = envoy.request("GET", "/health")
        assert upstream.last().header("x-mcp-org-id") == "acme"
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Upstream  # noqa: E402
from harness import ChildProcess  # noqa: E402
from harness.envoy import COMPOSED, LAYOUTS, start_envoy  # noqa: E402
from harness.ratelimit import start_redis, start_rls  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "standalone_only(reason): the test is about separate filter modules; "
        "it runs in the standalone layout only",
    )


@pytest.fixture(params=LAYOUTS)
def layout(request):
    """Every test that starts Envoy runs twice: with each filter its own
    module, and with the filters as stages of dist/mcp-mesh.wasm."""
    marker = request.node.get_closest_marker("standalone_only")
    if request.param == COMPOSED and marker is not None:
        pytest.skip(marker.args[0] if marker.args else "standalone layout only")
    return request.param


@pytest.fixture
def upstream():
    """The mcp_debate cluster's upstream (every non-LLM route)."""
    with Upstream() as up:
        yield up


@pytest.fixture
def llm_upstream():
    """The llm_provider cluster's upstream (/v1/..., /v1beta/...)."""
    with Upstream() as up:
        yield up


@pytest.fixture
def envoy_factory(tmp_path, upstream, llm_upstream, layout):
    """Starts Envoys from local/envoy.yaml, in the test's layout; all are
    stopped after the test.

    Keyword arguments go to harness.envoy.start_envoy (filters, configs,
    concurrency, mutate, upstreams). Each call gets its own subfolder.
    """
    started = []

    def factory(**kwargs):
        upstreams = {"mcp_debate": upstream.port, "llm_provider": llm_upstream.port}
        upstreams.update(kwargs.pop("upstreams", {}))
        workdir = tmp_path / f"envoy{len(started)}"
        kwargs.setdefault("layout", layout)
        envoy = start_envoy(workdir, upstreams=upstreams, **kwargs)
        started.append(envoy)
        return envoy

    yield factory
    for envoy in started:
        envoy.stop()


@pytest.fixture
def mcp_server(tmp_path):
    """The demo MCP server (local/demo/mcp_debate.py, official SDK) on a free port."""
    from harness import REPO, ChildProcess, wait_for_output, wait_for_port

    proc = ChildProcess(
        "mcp_debate",
        [sys.executable, str(REPO / "local/demo/mcp_debate.py"), "--port", "0"],
        tmp_path,
    )
    try:
        # The server binds port 0 and prints the port it got: no port is
        # guessed in advance, so no other process can hold it.
        port = int(wait_for_output(proc, r"^listening on (\d+)$").group(1))
        wait_for_port(port, proc=proc)
        yield port
    finally:
        proc.stop()


@pytest.fixture
def redis(tmp_path):
    """A redis-server of this test's own, on a unix socket in its temp dir (a
    TCP port picked in advance could be taken by another worker's server)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: `make redis` installs it (make test does)")
    proc, url = start_redis(tmp_path)
    yield url
    proc.stop()


class Rls:
    def __init__(self, proc: ChildProcess, port: int):
        self.proc, self.port = proc, port

    def stop(self):
        self.proc.stop()


@pytest.fixture
def rls_factory(tmp_path, redis):
    started = []

    def start(limits: list[dict], delay_ms: int = 0, hang: str | None = None) -> Rls:
        extra = ("--delay-ms", str(delay_ms), *([f"--{hang}"] if hang else []))
        rls = Rls(*start_rls(tmp_path, redis, limits, f"rls{len(started)}", extra))
        started.append(rls)
        return rls

    yield start
    for r in started:
        r.stop()
