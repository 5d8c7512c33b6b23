#!/usr/bin/env bash
# Builds the wasi:http component and its pre-initialised snapshot, and prints the path of the one
# to serve as the LAST line on stdout (everything else goes to stderr):
#
#   $CARGO_TARGET_DIR/wasm32-wasip2/release/mdeploy-worker.wasm        plain: models load lazily
#   $CARGO_TARGET_DIR/wasm32-wasip2/release/mdeploy-worker.wizer.wasm  snapshot: models planned
#
# The snapshot: `wasmtime wizer` instantiates the component once, calls its `wizer-initialize`
# export (reads and plans every embedded model, worker/src/main.rs) and writes the instance's
# memory back out as the component's initial memory, so each fresh instance of `wasmtime serve`
# starts with the plans ready. Same imports and exports as the plain component.
#
#   MDEPLOY_WORKER_SNAPSHOT=0 bash worker/build.sh   # build and print the plain component only
#   bash worker/build.sh --models DIR                 # also embed every DIR/<name>.mdm as <name>
#
# --models DIR: the models you choose, compiled in beside the three defaults and planned in the
# snapshot like them (serve/build.rs checks each one: a file that does not load, a name not
# usable in a URL or a default's name fails the build naming the file). Built in its own target
# folder ($CARGO_TARGET_DIR/custom-models) so the default component stays as it is.
#
# --trusted-keys DIR: a trust policy compiled in, the keys being every DIR/*.pub (`mdeploy keygen`
# writes them). Only signed models are served then: the unsigned default models are left out,
# every --models file must be signed by one of the keys (else the build fails naming it, checked
# by serve/build.rs), and every MDEPLOY_MODEL_DIR file is verified on first use (500 UNTRUSTED on
# its routes otherwise). Same target folder as --models. See worker/README.md, "Trust policy".
#
# Used by tests/serverless/run.sh, bench/serverless/run.sh and web/scripts/prepare.sh
# (scripts/start.sh). Needs wasmtime-cli 48 (`wasmtime wizer`), like `wasmtime serve` itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
export PATH="$HOME/.cargo/bin:$PATH"

unset MDEPLOY_EMBED_MODELS MDEPLOY_EMBED_TRUSTED_KEYS
while [[ $# -gt 0 ]]; do
  case "$1" in
    --trusted-keys)
      [[ -n "${2:-}" && -d "$2" ]] || { echo "worker/build.sh: --trusted-keys needs a folder of .pub files (got '${2:-}')" >&2; exit 2; }
      export MDEPLOY_EMBED_TRUSTED_KEYS="$(cd "$2" && pwd)"
      [[ "$CARGO_TARGET_DIR" == */custom-models ]] || export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/custom-models"
      shift 2 ;;
    --models)
      [[ -n "${2:-}" && -d "$2" ]] || { echo "worker/build.sh: --models needs a folder of .mdm files (got '${2:-}')" >&2; exit 2; }
      export MDEPLOY_EMBED_MODELS="$(cd "$2" && pwd)"
      [[ "$CARGO_TARGET_DIR" == */custom-models ]] || export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/custom-models"
      shift 2 ;;
    *) echo "worker/build.sh: unknown argument '$1'; usage: bash worker/build.sh [--models DIR] [--trusted-keys DIR]" >&2; exit 2 ;;
  esac
done

cargo build -q -p mdeploy-worker --release --target wasm32-wasip2 >&2
plain="$CARGO_TARGET_DIR/wasm32-wasip2/release/mdeploy-worker.wasm"
[[ -f "$plain" ]] || { echo "worker/build.sh: $plain missing after the build" >&2; exit 1; }
if [[ "${MDEPLOY_WORKER_SNAPSHOT:-1}" == 0 ]]; then
  echo "$plain"
  exit 0
fi

snap="$CARGO_TARGET_DIR/wasm32-wasip2/release/mdeploy-worker.wizer.wasm"
if [[ ! -f "$snap" || "$plain" -nt "$snap" || "${BASH_SOURCE[0]}" -nt "$snap" || -n "${MDEPLOY_EMBED_MODELS:-}" || -n "${MDEPLOY_EMBED_TRUSTED_KEYS:-}" ]]; then
  command -v wasmtime >/dev/null || { echo "worker/build.sh: wasmtime is not on PATH (scripts/bootstrap.sh installs wasmtime-cli 48.0.8)" >&2; exit 1; }
  # -Scli -Shttp: wizer instantiates the component with the host's WASI, so every import must be
  # linked, although the init calls none. --keep-init-func: wasmtime 48.0.8 removes the export
  # but leaves wit-component's alias to it, and the result fails to load ("core instance … has
  # no export named `wizer-initialize`"); kept, it is harmless (calling it again loads nothing).
  # Wizer prints the init's result, `()`, on stdout: keep stdout for the path alone.
  if ! wasmtime wizer -Scli -Shttp --keep-init-func=true --init-func wizer-initialize \
      -o "$snap.tmp" "$plain" >&2; then
    rm -f "$snap.tmp"
    echo "worker/build.sh: the snapshot failed. The init traps if an embedded model does not load: serve the plain $plain and ask GET /v2/models/<name> for the reason" >&2
    exit 1
  fi
  mv "$snap.tmp" "$snap"
  echo "worker/build.sh: $(basename "$plain") $(stat -c %s "$plain") bytes -> $(basename "$snap") $(stat -c %s "$snap") bytes" >&2
fi
echo "$snap"
