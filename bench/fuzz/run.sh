#!/usr/bin/env bash
# Fuzzes every target (or the named ones) for SECONDS each and prints executions and findings.
#   bash bench/fuzz/run.sh [SECONDS] [TARGET...]        e.g. bash bench/fuzz/run.sh 3600 mdm_load
# Needs `cargo install cargo-fuzz --locked` (0.13.2). Runs on the stable toolchain without a
# sanitizer (-s none): panics, aborts, timeouts and out-of-memory are still caught. The corpus
# each target grows is kept in ~/.cache/mdeploy/fuzz-corpus/<target> (seeded from corpus/),
# findings land in bench/fuzz/artifacts/<target>/. A finding, once fixed, goes into
# regressions/<target>/ so that the replay test (tests/replay.rs, in npm test) keeps it fixed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(mdm_load kserve_json kserve_binary tfserving image)
command -v cargo-fuzz >/dev/null || { echo "run.sh: cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
# Its own target folder: fuzz builds are instrumented, they must not evict the test builds.
export CARGO_TARGET_DIR="${MDEPLOY_FUZZ_TARGET_DIR:-$HOME/.cache/mdeploy/target-fuzz}"
CORPORA="${MDEPLOY_FUZZ_CORPUS:-$HOME/.cache/mdeploy/fuzz-corpus}"
cd "$ROOT"
FLAGS=(--fuzz-dir bench/fuzz --features libfuzzer -s none -O)
cargo fuzz build "${FLAGS[@]}" >&2

printf '%-14s %8s %12s %10s %9s %s\n' target seconds executions execs/s corpus findings
for t in "${TARGETS[@]}"; do
  mkdir -p "$CORPORA/$t" "$HERE/artifacts/$t"
  cp -n "$HERE/corpus/$t/"* "$CORPORA/$t/" 2>/dev/null || true
  before=$(ls "$HERE/artifacts/$t" | wc -l)
  log="$CORPORA/$t.log"
  # -rss_limit_mb: a model or request that balloons memory is a finding. -timeout: a hang is.
  cargo fuzz run "${FLAGS[@]}" "$t" "$CORPORA/$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
    -timeout=10 -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || true
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  secs=$(grep -o 'stat::total_run_time: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "$SECONDS_EACH")
  found=$(( $(ls "$HERE/artifacts/$t" | wc -l) - before ))
  printf '%-14s %8s %12s %10s %9s %s\n' "$t" "$secs" "$runs" "$(( runs / (secs > 0 ? secs : 1) ))" "$(ls "$CORPORA/$t" | wc -l)" \
    "$([ "$found" -eq 0 ] && echo none || echo "$found in bench/fuzz/artifacts/$t (log: $log)")"
done
