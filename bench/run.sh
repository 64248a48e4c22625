#!/usr/bin/env bash
# `make bench` runs this after building the release wasm and the virtualenv.
# Arguments go to bench/bench.py (`bench/run.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

bench/setup.sh
# The no-op Proxy-Wasm filter: the floor of the instruction counts.
cargo build --quiet --release --locked --target wasm32-wasip1 -p noop-filter
for f in api-key-auth mcp-guard org-rate-limit debate-access-log token-usage-metrics mcp-mesh; do
  if [ ! -f "dist/$f.wasm" ]; then
    echo "bench: dist/$f.wasm is missing: run \`make build\` (or \`make bench\`)" >&2
    exit 1
  fi
done
# No __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python bench/bench.py "$@"
