#!/usr/bin/env bash
# `npm start`: the main job on the embedded default models.
# For now: show the default models, evaluate them on the fixed MNIST test split and classify
# a few sample digits with the native CLI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/bootstrap.sh

cargo build --release -p mdeploy-cli
MDEPLOY="$CARGO_TARGET_DIR/release/mdeploy"
for m in models/mnist-mlp.mdm models/mnist-cnn.mdm; do
  printf '\n\033[1m== %s\033[0m\n' "$m"
  "$MDEPLOY" info "$m"
  "$MDEPLOY" eval "$m"
done
printf '\n\033[1m== sample digits (samples/*.png, real MNIST test digits drawn dark on light at 140x140)\033[0m\n'
for f in samples/*.png; do
  printf '%s: ' "$f"
  "$MDEPLOY" predict models/mnist-cnn.mdm "$f" --top 1
done
