"""The processes a benchmark runs: Envoys under test, the upstream Envoy, the
SSE upstream, and what is read from them (ports, stats, memory).

Every child goes through harness.ChildProcess: its own process group, killed
with SIGTERM then SIGKILL, and PR_SET_PDEATHSIG so nothing outlives the bench
even if the bench itself is killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

from harness import ChildProcess
from harness.envoy import ENVOY_BIN, REPO, wait_until_ready


class Envoy:
    """One running Envoy, found through its admin address file."""

    def __init__(self, name: str, proc: ChildProcess, argv: list[str], admin_port: int, port: int, workdir: Path):
        self.name = name
        self.workdir = workdir
        self.proc = proc
        self.argv = argv
        self.admin_url = f"http://127.0.0.1:{admin_port}"
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def admin(self, path: str, timeout: float = 10.0) -> str:
        with urllib.request.urlopen(self.admin_url + path, timeout=timeout) as r:
            return r.read().decode()

    def stats(self, pattern: str) -> dict[str, int]:
        """Counters and gauges whose name matches the regex `pattern`."""
        out = {}
        for line in self.admin(f"/stats?filter={pattern}").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def stat(self, name: str) -> int:
        """One exact counter or gauge (0 if Envoy has not created it yet)."""
        return self.stats(f"^{name.replace('.', '[.]')}$").get(name, 0)

    def memory(self) -> dict[str, int]:
        """Resident set size now and its peak (VmHWM), in KiB, from /proc."""
        return proc_memory(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time of all of Envoy's threads so far."""
        return proc_cpu_seconds(self.pid)

    def stop(self) -> None:
        self.proc.stop()


def proc_cpu_seconds(pid: int) -> float:
    # /proc/<pid>/stat: the command may contain spaces, so split after its ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def proc_memory(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


def start_envoy(workdir: Path, name: str, bootstrap: dict, concurrency: int, timeout: float = 60.0) -> Envoy:
    """Starts Envoy on `bootstrap` (listener and admin on port 0) and waits
    until it is ready and its listener port is known.

    Flags are the production ones except what a benchmark on a shared machine
    needs: a dynamic base id (several Envoys at once), an admin address file,
    and warning-level logs (an Istio sidecar's default)."""
    workdir.mkdir(parents=True, exist_ok=True)
    # JSON, not YAML: PyYAML needs half a minute for the memory run's 16 MB
    # pluginConfig; Envoy reads either by the file extension.
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(bootstrap, indent=1))
    admin_file = workdir / f"{name}.admin"
    log_path = workdir / f"{name}.log"
    argv = [
        str(ENVOY_BIN),
        "-c", str(config_path),
        "--concurrency", str(concurrency),
        "--use-dynamic-base-id",
        "--admin-address-path", str(admin_file),
        "--log-path", str(log_path),
        "-l", "warning",
        "--drain-time-s", "1",
        "--parent-shutdown-time-s", "2",
    ]
    proc = ChildProcess(name, argv, workdir, cwd=REPO)
    admin_port, port = wait_until_ready(proc, admin_file, log_path, timeout)
    return Envoy(name, proc, argv, admin_port, port, workdir)


def start_sse_upstream(workdir: Path) -> tuple[ChildProcess, int]:
    """bench/sse_upstream.py in its own process (a Python upstream in the
    bench process would share the GIL with the client that measures it)."""
    port_file = workdir / "sse_upstream.port"
    script = Path(__file__).resolve().parent / "sse_upstream.py"
    proc = ChildProcess("sse_upstream", [sys.executable, str(script), str(port_file)], workdir, cwd=REPO)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"SSE upstream exited:\n{proc.output()}")
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text())
        time.sleep(0.05)
    proc.stop()
    raise TimeoutError("SSE upstream did not start")
