#!/usr/bin/env bash
# Where the time goes inside a model's run in headless Chromium, by wasm function name: a copy of
# the package's relaxed CPU-only module rebuilt with its name section (the shipped one is
# stripped by wasm-opt, so V8 can only say `wasm-function[27]`), then `perf record -a` around
# bench/wasm/int8-ab.mjs with V8's perf map (`--perf-basic-prof`), and the shares of the wasm
# functions among themselves. The timings it prints are not figures (perf runs beside them).
#   bash bench/wasm/perf-chromium.sh [rounds=40] [models=mnist-cnn-int7]
# Needs a built package (wasm/dist, `bash wasm/scripts/build.sh`, whose cargo output it reuses),
# perf, wasm-bindgen and wasm/node_modules (binaryen). The named module is the same code as the
# shipped one (same wasm-opt passes, plus -g), so the shares carry over; it replaces
# wasm/dist/mdeploy_wasm_cpu_relaxed.wasm for the run and is put back after.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ROUNDS="${1:-40}" MODELS="${2:-mnist-cnn-int7}"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}/wasm-pkg-relaxed/wasm32-unknown-unknown/release/mdeploy_wasm.wasm"
DIST=wasm/dist/mdeploy_wasm_cpu_relaxed.wasm
TMP="$(mktemp -d)"
trap 'mv "$TMP/shipped.wasm" "$DIST" 2>/dev/null || true; rm -rf "$TMP"' EXIT
# The cargo output is the CPU-only build when build.sh made that last (it does: full, then CPU).
wasm-bindgen --target web --out-dir "$TMP" --out-name mdeploy_wasm_cpu --no-typescript "$TARGET"
cmp -s <(grep -o '__wbg_[a-z_0-9]*' "$TMP/mdeploy_wasm_cpu.js" | sort -u) <(grep -o '__wbg_[a-z_0-9]*' wasm/dist/mdeploy_wasm_cpu.js | sort -u) \
  || { echo "perf-chromium.sh: $TARGET is not the CPU-only build of wasm/dist (its imports differ): rebuild with wasm/scripts/build.sh" >&2; exit 1; }
wasm/node_modules/.bin/wasm-opt -g -O3 -ocimfs=200 --enable-bulk-memory --enable-nontrapping-float-to-int \
  "$TMP/mdeploy_wasm_cpu_bg.wasm" -o "$TMP/named.wasm"
cp "$DIST" "$TMP/shipped.wasm"
cp "$TMP/named.wasm" "$DIST"
INT8_AB_CHROMIUM_ARGS='--js-flags=--perf-basic-prof' perf record -q -a -F 4000 -o "$TMP/perf.data" -- \
  node bench/wasm/int8-ab.mjs "$ROUNDS" /wasm/ "$MODELS" | grep '^| /' || true
perf report -i "$TMP/perf.data" --comm chromium --sort sym --stdio 2>/dev/null | awk '
  /JS:/ && /-(turbofan|liftoff)$/ && $1 ~ /%$/ {
    name = $NF; sub(/^JS:/, "", name); sub(/-[0-9]+-(turbofan|liftoff)$/, "", name); sub(/::h[0-9a-f]+$/, "", name)
    pct = $1; sub(/%/, "", pct); s[name] += pct; total += pct
  }
  END { for (n in s) printf "%6.1f %%  %s\n", 100 * s[n] / total, n }' | sort -rn | head -20
