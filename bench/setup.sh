#!/usr/bin/env bash
# Installs what `make bench` needs beyond the project virtualenv: wrk and
# valgrind (Debian packages). Idempotent; needs root (or sudo) only when one
# is missing.
set -euo pipefail

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v callgrind_control >/dev/null 2>&1 || missing+=(valgrind)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "bench/setup.sh: installing ${missing[*]} (Debian packages)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
command -v wrk >/dev/null && command -v callgrind_control >/dev/null
