"""Runs wrk with bench/bench.lua and returns what its done() printed."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.process import _die_with_parent

LUA = Path(__file__).resolve().parent / "bench.lua"


@dataclass
class Request:
    """One HTTP request, written to a spec file that bench.lua reads."""

    method: str
    path: str
    headers: dict[str, str]
    body: str = ""

    def write(self, path: Path) -> Path:
        lines = [f"{self.method} {self.path}"] + [f"{k}: {v}" for k, v in self.headers.items()]
        path.write_text("\n".join(lines) + "\n\n" + self.body)
        return path


@dataclass
class WrkResult:
    command: str
    requests: int
    duration_s: float
    errors: dict[str, int]
    latency_us: dict[str, float]
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def failed(self) -> int:
        """Socket errors and timeouts (non-2xx statuses are counted apart)."""
        return sum(v for k, v in self.errors.items() if k != "status")


def run_wrk(
    url: str,
    spec: Path,
    mode: str = "static",
    threads: int = 2,
    connections: int = 32,
    duration_s: float = 3.0,
    orgs: int | None = None,
    values: Path | None = None,
    stop_when: Callable[[], bool] | None = None,
    poll_s: float = 0.5,
) -> WrkResult:
    """wrk at saturation (closed loop) for duration_s (whole seconds: wrk's
    unit), or until stop_when()
    returns true (checked every poll_s; wrk is then interrupted with SIGINT,
    which makes it print its summary as at a normal end)."""
    argv = [
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration_s))}s",
        "--timeout", "10s", "-s", str(LUA), url, "--", mode, str(spec),
    ]
    if orgs is not None:
        argv.append(str(orgs))
        if values is not None:
            argv.append(str(values))
    env = {**os.environ, "BENCH_WRK_THREADS": str(threads)}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        text=True, preexec_fn=_die_with_parent,
    )
    try:
        if stop_when is not None:
            while proc.poll() is None:
                time.sleep(poll_s)
                if stop_when():
                    proc.send_signal(signal.SIGINT)
                    break
        out, _ = proc.communicate(timeout=duration_s + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = next((l for l in out.splitlines() if l.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {shlex.join(argv)}\n{out[-3000:]}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    return WrkResult(
        command=shlex.join(["BENCH_WRK_THREADS=" + str(threads)] + argv),
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        errors=data["errors"],
        latency_us=data["latency_us"],
        statuses={int(k): v for k, v in data["statuses"].items()},
    )
