#!/usr/bin/env bash
# Runs every fuzz target (or those named) for FUZZ_SECONDS each, starting from
# the committed corpus; new finds go to a scratch copy, so the tree stays
# clean. A crash fails the run and leaves its input in fuzz/artifacts/<target>/:
# add it to fuzz/corpus/<target>/ (and a unit test) once fixed.
#   fuzz/run.sh [target...]      FUZZ_SECONDS=3 by default, FUZZ_STATS=file appends stats
# Stable Rust: RUSTC_BOOTSTRAP lets cargo-fuzz's instrumentation flags through;
# --sanitizer none because AddressSanitizer needs a nightly std (the filters
# forbid unsafe code, so ASan would add little).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-3}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none -O
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  if cargo fuzz run --sanitizer none -O "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -aoE 'DONE[[:space:]]+cov: [0-9]+ ft: [0-9]+' "$log" | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
    printf '%-24s ok   %12s runs in %ss  %s\n' "$t" "$runs" "$seconds" "$cov"
    if [ -n "${FUZZ_STATS:-}" ]; then
      printf '| `%s` | %s | %s | %s |\n' "$t" "$seconds" "$runs" "$cov" >>"$FUZZ_STATS"
    fi
  else
    printf '%-24s FAILED (input in fuzz/artifacts/%s/)\n' "$t" "$t"
    tail -40 "$log"
    status=1
  fi
done
exit $status
