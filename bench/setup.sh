#!/usr/bin/env bash
# Installs what `make bench` needs beyond the project virtualenv: wrk (Debian
# package). Idempotent; needs root (or sudo) only when wrk is missing.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
echo "bench/setup.sh: installing wrk (Debian package)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
command -v wrk >/dev/null
