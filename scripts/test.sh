#!/usr/bin/env bash
# `npm test`: every test, from a clean machine. Set-up is in bootstrap.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/bootstrap.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "the default-model list (models/defaults.json) is written into every host that cannot read it"
node scripts/gen-defaults.mjs --check
node scripts/gen-bad-inputs.mjs --check

step "the core builds for every target it promises (native, wasm32 with simd128, wasm32-wasip2)"
RUSTFLAGS='-C target-feature=+simd128' cargo build -p mdeploy-core --release --target wasm32-unknown-unknown \
  --target-dir "$CARGO_TARGET_DIR/wasm-simd"
cargo build -p mdeploy-core --release --target wasm32-unknown-unknown
cargo build -p mdeploy-core --release --target wasm32-wasip2

LOG="$CARGO_TARGET_DIR/npm-test.log"
: > "$LOG"

step "int8 kernels in the relaxed wasm build: kernels_qparity for wasm32-wasip1 under wasmtime (7-bit tile) and Node 20 (its fallback)"
# About 75 s cold on 2 cores, seconds to run. The 7-bit tile exists only in this build and is
# chosen per engine at run time (dot_is_exact), so only here do both of its paths run.
bash scripts/wasi-qparity.sh 2>&1 | tee -a "$LOG"

step "serve/deploy: the Dockerfile and KServe manifests agree with defaults.json, mdeploy serve's flags and each other"
node --test serve/deploy/deploy.test.mjs 2>&1 | tee -a "$LOG"

step "ONNX backend node tests: the cases of onnx 1.23.2, written once into ~/.cache (core/onnx/node-tests)"
# Not shipped in onnx's wheel any more; regenerated from its Python definitions in a few seconds.
# core/onnx/tests/node.rs (run in the next step) reads them and fails if they are missing.
bash core/onnx/node-tests/generate.sh

step "Rust tests (core, format fuzzing, kernels, plan, training, CLI end to end; the native server with tritonclient.grpc and a real Prometheus)"
cargo test --workspace --profile ci --lib --bins --tests 2>&1 | tee -a "$LOG"

step "WebGPU engine natively on lavapipe (Vulkan): every kernel and the graph suite against f64 references"
# The same engine code as in the browser (wasm/src/gpu/engine.rs), through wgpu's Vulkan backend on
# Mesa's software rasterizer (mesa-vulkan-drivers, installed by the bootstrap).
XDG_RUNTIME_DIR="$(mktemp -d)" cargo test -p mdeploy-wasm --profile ci --features native-gpu --test gpu --test gpu_graph --test gpu_hostile 2>&1 | tee -a "$LOG"

step "mdeploy-wasm: package build, wasm-pack test --node, Node parity/error/package suites"
bash wasm/scripts/test.sh 2>&1 | tee -a "$LOG"

step "serverless: the wasi:http component under wasmtime serve (every route and error, 200 digits vs native, tritonclient)"
bash tests/serverless/run.sh 2>&1 | tee -a "$LOG"

step "Cloudflare Worker: worker/cloudflare in workerd (npm), every route and error vs the native core"
bash tests/serverless/run-workerd.sh 2>&1 | tee -a "$LOG"

step "demo page (web/): Chromium draws digits with the mouse, WebGPU fallback, the endpoint toggle, a phone viewport"
bash web/test/run.sh 2>&1 | tee -a "$LOG"

# One closing line over every runner above, so a reader sees the whole count at once.
awk '/^test result:/ { p += $4; f += $6 } /^# pass [0-9]/ { p += $3 } /^# fail [0-9]/ { f += $3 } END { printf "\ntests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$LOG"
