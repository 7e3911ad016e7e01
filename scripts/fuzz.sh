#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ and runs each for SECONDS (default 600), from its committed seed corpus;
# prints the executions of each and exits non-zero if any target crashed, leaked past the memory limits or
# failed to build. Crashing inputs land in fuzz/artifacts/<target>/; see docs/testing.md, Fuzzing.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs only stable Rust and a C++ compiler (libfuzzer-sys compiles libFuzzer): the nightly features the
# fuzz build uses (per-crate coverage flags, `profile-rustflags`) are switched on with RUSTC_BOOTSTRAP=1,
# for this build only. `cargo fuzz` (with nightly) runs the same targets, instrumenting every crate.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-600}
shift || true
case "$seconds" in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for file in fuzz_targets/*.rs; do targets+=("$(basename "$file" .rs)"); done
fi

# A single allocation larger than this fails the run (enforced by fuzz/src/lib.rs, and by libFuzzer under a
# sanitizer); so does a process growing past the RSS limit.
malloc_limit_mb=256
rss_limit_mb=2048

export CARGO_TARGET_DIR="${CONNECTOR_FUZZ_TARGET_DIR:-$HOME/.cache/connector-fuzz-target}"
export RUSTC_BOOTSTRAP=1
command -v c++ >/dev/null || {
  echo "libfuzzer-sys needs a C++ compiler: install one (Debian: apt-get install g++)" >&2
  exit 1
}
host=$(rustc -vV | sed -n 's/^host: //p')

start=$(date +%s)
# An explicit --target keeps the coverage flags off build scripts and proc macros, as cargo-fuzz does.
cargo build --release --locked --target "$host" $(printf -- '--bin %s ' "${targets[@]}")
echo "built the fuzz targets in $(($(date +%s) - start)) s"

runs="$CARGO_TARGET_DIR/runs"
mkdir -p "$runs"
failed=()
summary=()
for target in "${targets[@]}"; do
  # New inputs libFuzzer finds go to a corpus outside the checkout; the committed seeds stay as they are.
  found="$CARGO_TARGET_DIR/corpus/$target"
  mkdir -p "$found" "artifacts/$target" "corpus/$target"
  log="$runs/$target.log"
  echo "fuzzing $target for $seconds s (log: $log)"
  status=0
  "$CARGO_TARGET_DIR/$host/release/$target" "$found" "corpus/$target" \
    -max_total_time="$seconds" -rss_limit_mb="$rss_limit_mb" -malloc_limit_mb="$malloc_limit_mb" \
    -timeout=10 -artifact_prefix="artifacts/$target/" -print_final_stats=1 > "$log" 2>&1 || status=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "$target FAILED (exit $status); the input is in fuzz/artifacts/$target/:" >&2
    grep -E 'panicked|ERROR: libFuzzer|memory allocation|out-of-memory|deadly signal|Test unit written' "$log" | head -20 >&2
  fi
  summary+=("$(printf '%-18s %12s executions  %6s coverage points  %s' "$target" "${executions:-?}" \
    "${coverage:-?}" "$([ "$status" -eq 0 ] && echo ok || echo CRASHED)")")
done

echo
echo "fuzzed for $seconds s each:"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]}" >&2
  exit 1
fi
