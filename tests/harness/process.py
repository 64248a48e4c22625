"""Child processes that cannot outlive the test worker."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _die_with_parent() -> None:
    # The kernel sends SIGKILL to the child when the worker that started it dies,
    # so a crashed or killed pytest worker never leaves an Envoy behind.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A port that was free a moment ago. Racy by nature (another process,
    or another pytest worker, may take it before it is bound): prefer a
    server that binds port 0 and reports its port (`wait_for_output`), or
    `HeldPort` for a port nothing may listen on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, proc: "ChildProcess | None" = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.poll()} before listening on {port}:\n{proc.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class HeldPort:
    """A loopback port bound and never listened on, for as long as it is
    held: a connection to it is refused, and no other process can take it."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()


def wait_for_output(proc: "ChildProcess", pattern: str, timeout: float = 20.0) -> "re.Match":
    """Waits until the process prints a line matching `pattern` (a regex)."""
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern, re.MULTILINE)
    while time.monotonic() < deadline:
        match = regex.search(proc.output())
        if match:
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.poll()}:\n{proc.output()}")
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} printed no {pattern!r} in {timeout}s:\n{proc.output()}")


class ChildProcess:
    """A subprocess with its output in a file, killed with its process group."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict | None = None, cwd: Path | None = None):
        self.name = name
        self.log_path = workdir / f"{name}.out"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def poll(self):
        return self.proc.poll()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=timeout)
        self._log.close()
