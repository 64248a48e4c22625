"""Integration-test harness: real Envoy 1.40 processes, real upstreams, real HTTP.

Each test gets its own Envoy (dynamic base id, port 0 everywhere, its own temp
dir and access-log file) and its own upstreams. Every child process is started
with PR_SET_PDEATHSIG so it dies with the test worker, and is stopped by the
fixture even when the test fails.
"""

from .envoy import Envoy, EnvoyFailedToStart, FILTERS, REPO, load_template, start_envoy
from .upstream import Reply, Received, Upstream
from .process import ChildProcess, HeldPort, free_port, wait_for_output, wait_for_port

__all__ = [
    "HeldPort",
    "wait_for_output",
    "ChildProcess",
    "Envoy",
    "EnvoyFailedToStart",
    "FILTERS",
    "REPO",
    "Received",
    "Reply",
    "Upstream",
    "free_port",
    "load_template",
    "start_envoy",
    "wait_for_port",
]
