#!/usr/bin/env bash
# Every test of the npm package mdeploy-wasm (called by the root scripts/test.sh, i.e. `npm test`):
#   1. build the package in place (scripts/build.sh: both SIMD variants, wasm-opt, models)
#   2. Rust-side tests inside a wasm engine: `wasm-pack test --node` (tests/node.rs) and
#      `wasm-pack test --headless --chrome` (tests/browser.rs: the same, plus WebGPU in Chromium)
#   3. the native reference: every test digit through the native core (examples/native_ref.rs),
#      and the f64 reference (core/testkit/examples/reference.rs), for models/parity.json
#   4. the Node suites (test/*.test.mjs): parity on all 2,000 test digits, error codes, and the
#      packed tarball installed into a fresh project and imported by name; test/browser.test.mjs
#      drives headless Chromium (playwright-core, /usr/bin/chromium): WebGPU on SwiftShader and
#      the CPU backend against the native reference, and the no-WebGPU fallbacks
#      test/trust.test.mjs: trust policies (trustedKeys) on files signed by the Rust API and the
#      bad-input table's key rows (core/examples/bad_key_fixtures.rs), and
#      test/trust-browser.test.mjs the same in Chromium (WebCrypto Ed25519 is the browser's there)
#      test/server.test.mjs: mdeploy-wasm/server (createServer().fetch) on all 2,000 test digits
#      against the native reference, its errors, body limit, options and memory
#      test/cpu-module.test.mjs and cold-start-browser.test.mjs: which module (CPU-only or full)
#      a load reads in Node and fetches in Chromium, and the WebGPU path on the full one
#      test/memory.test.mjs: the allocator under 150 rounds of loading and freeing every model
# Needs what scripts/bootstrap.sh installs (wasm-pack, wasm-bindgen-cli, `npm ci` here and at the
# root, Debian's chromium).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
export MDEPLOY_WASM_REF_DIR="${MDEPLOY_WASM_REF_DIR:-$CARGO_TARGET_DIR/wasm-ref}"
MODELS="${MDEPLOY_MODELS_DIR:-$ROOT/models}"

echo "wasm/test.sh: building the package" >&2
bash "$HERE/scripts/build.sh"

echo "wasm/test.sh: Rust tests in Node (wasm-pack test --node)" >&2
# From wasm/ so wasm/.cargo/config.toml turns simd128 on: the shipped kernels are under test.
(cd "$HERE" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/wasm-pack-test" wasm-pack test --node --release --mode no-install -- --test node)

echo "wasm/test.sh: Rust tests in headless Chromium (wasm-pack test --headless --chrome): CPU and WebGPU" >&2
# tests/browser.rs: node.rs's tests again plus the WebGPU engine on SwiftShader (webdriver.json turns
# WebGPU on); chromedriver is Debian's chromium-driver (bootstrap). Bounded: the page's tests get
# WASM_BINDGEN_TEST_TIMEOUT seconds (they take about 3 s; the runner's default, 20 s, is too
# tight for SwiftShader on a loaded 2-core machine), and the whole step, build included, 30 min
# (timeout signals the process group, so chromedriver and Chromium go too).
(cd "$HERE" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/wasm-pack-test" WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-180}" \
  timeout --kill-after=30 1800 wasm-pack test --headless --chrome --release --mode no-install -- --test browser)

# The models every parity suite checks: models/parity.json (one place; the suites read it too).
mapfile -t PARITY < <(node -e 'for (const f of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(f)' "$ROOT/models/parity.json")
PARITY_PATHS=()
for f in "${PARITY[@]}"; do PARITY_PATHS+=("$MODELS/$f"); done

echo "wasm/test.sh: native reference probabilities" >&2
(cd "$ROOT" && cargo run --release -q -p mdeploy-wasm --example native_ref -- \
  "$MDEPLOY_WASM_REF_DIR" "${PARITY_PATHS[@]}")

echo "wasm/test.sh: trust-policy fixtures (models signed by the Rust API, keys, weak keys)" >&2
(cd "$ROOT" && cargo run --release -q -p mdeploy-wasm --example trust_fixtures -- \
  "$MDEPLOY_WASM_REF_DIR/trust" "$MODELS/mnist-mlp.mdm")

echo "wasm/test.sh: the bad-input table's key rows (signed/encrypted files made by the Rust API)" >&2
(cd "$ROOT" && cargo run --release -q -p mdeploy-core --example bad_key_fixtures -- "$MDEPLOY_WASM_REF_DIR/bad-keys")

echo "wasm/test.sh: f64 reference probabilities (core/testkit, independent of the Plan)" >&2
(cd "$ROOT" && cargo run --release -q -p mdeploy-testkit --example reference -- \
  --out "$MDEPLOY_WASM_REF_DIR/f64-ref.json" "${PARITY_PATHS[@]}")

echo "wasm/test.sh: Node suites" >&2
(cd "$HERE" && node --test test/*.test.mjs)
