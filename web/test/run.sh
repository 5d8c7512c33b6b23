#!/usr/bin/env bash
# The demo page's browser suite (web/test/demo.test.mjs): builds what it needs, then runs it.
# Needs Debian's chromium, wasmtime (scripts/bootstrap.sh installs both) and the worker/ crate
# for the endpoint test (or MDEPLOY_WEB_ENDPOINT pointing at an endpoint you run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
export PATH="$HOME/.cargo/bin:$PATH"
component="$(bash web/scripts/prepare.sh | tail -n 1)"
[ -n "$component" ] && export MDEPLOY_WORKER_WASM="$component"
node --test --test-concurrency=1 "$@" web/test/demo.test.mjs  # extra args, e.g. --test-name-pattern=served
