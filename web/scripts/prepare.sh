#!/usr/bin/env bash
# Builds what the demo page needs, only when it is missing or older than its sources:
#   wasm/dist/ + wasm/models/  the npm package mdeploy-wasm (wasm/scripts/build.sh)
#   $CARGO_TARGET_DIR/wasm32-wasip2/release/mdeploy-worker.wizer.wasm  the function endpoint
#                              (worker/build.sh: the component with its models pre-loaded),
#                              when worker/ exists (cargo decides what is stale)
# Prints nothing on stdout but, as its last line, the component's path (empty without worker/).
# Used by scripts/start.sh (`npm start`) and web/test/run.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
export PATH="$HOME/.cargo/bin:$PATH"

pkg="wasm/dist/mdeploy_wasm_bg.wasm"
if [ ! -f "$pkg" ] || [ ! -f wasm/dist/mdeploy_wasm_relaxed.wasm ] ||
   [ -n "$(find core wasm/src wasm/Cargo.toml models -newer "$pkg" -print -quit 2>/dev/null)" ]; then
  echo "web: building the npm package (wasm/scripts/build.sh)" >&2
  bash wasm/scripts/build.sh >&2
else
  echo "web: the npm package in wasm/dist is up to date" >&2
fi

component=""
if [ -f worker/Cargo.toml ]; then
  echo "web: building the function component (worker/build.sh)" >&2
  component="$(bash worker/build.sh | tail -n 1)"
  [ -f "$component" ] || { echo "web: $component missing after the build" >&2; exit 1; }
else
  echo "web: no worker/ crate in this checkout: the function endpoint cannot be built" >&2
fi
echo "$component"
