"""What every benchmark section shares: options, the work folder, the upstream
Envoy, and the list of processes to stop (all of them, even on failure)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from configs import Setup, bootstrap
from harness.envoy import ENVOY_BIN
from procs import Envoy, start_envoy


@dataclass
class Options:
    # Many short rounds: the median shrugs off the bursts of other work on a
    # shared machine better than a few long ones.
    rounds: int = 5
    duration_s: float = 1.0
    warmup_s: float = 0.0
    wrk_threads: int = 1
    wrk_connections: int = 32
    workers: tuple[int, ...] = (1, 2)
    sse_sizes_mib: tuple[int, ...] = (1, 64)
    memory_requests: int = 1_000_000
    memory_orgs: int = 100_000
    accuracy_limit: int = 1000
    accuracy_runs: int = 2
    # Wall-clock budget of the whole bench; the memory run, last, gets what is
    # left. 22 minutes: the callgrind section takes about 11 of them (17
    # configurations under valgrind, two at a time).
    budget_s: float = 1320.0
    # --quick: fewer configurations where a section is slow by nature.
    quick: bool = False
    # --only: just these configurations (instructions, throughput).
    only: tuple[str, ...] = ()


@dataclass
class Session:
    options: Options
    workdir: Path
    upstream_port: int = 0
    # The same upstream over TLS, and the certificate both sides use.
    upstream_tls_port: int = 0
    certs: tuple[Path, Path] | None = None
    running: list = field(default_factory=list)
    envoy_commands: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _count: int = 0

    def remaining_s(self) -> float:
        return self.options.budget_s - (time.monotonic() - self.started)

    def track(self, proc):
        self.running.append(proc)
        return proc

    def start(
        self,
        setup: Setup,
        workers: int,
        configs: dict | None = None,
        upstreams: dict[str, int] | None = None,
    ) -> Envoy:
        """An Envoy for `setup` in its own folder, stopped by stop_all()."""
        self._count += 1
        slug = setup.name.replace(" ", "-").replace("_", "-")
        name = f"{self._count:02d}-{slug}-w{workers}"
        folder = self.workdir / name
        port = self.upstream_tls_port if setup.tls else self.upstream_port
        ups = {"mcp_debate": port, "llm_provider": port, **(upstreams or {})}
        b = bootstrap(setup, folder, ups, configs, self.certs)
        envoy = self.track(start_envoy(folder, name, b, workers))
        if setup.tls:
            envoy.url = envoy.url.replace("http://", "https://", 1)
        command = " ".join(envoy.argv).replace(str(self.workdir), "$WORK").replace(str(ENVOY_BIN), ".venv/bin/envoy")
        self.envoy_commands.setdefault(f"{setup.name} w{workers}", command)
        return envoy

    def stop(self, proc) -> None:
        proc.stop()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.running):
            try:
                proc.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                pass
        self.running.clear()
