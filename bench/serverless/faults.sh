#!/usr/bin/env bash
# Which page faults a request costs under `wasmtime serve`, and why: every user page fault of the
# server process (the `exceptions:page_fault_user` tracepoint: address, faulting instruction,
# error code) over one wrk run with ONE connection, so that instances follow each other and the
# kernel hands every instance the same addresses. Then, per request:
#
#   * by kind: read (a page of the memory image or of fresh memory mapped in), write to a page
#     not mapped yet (zero-fill, or copy of an image page), write to a page mapped read-only
#     before (copy-on-write after a read fault: two faults for one page);
#   * by instruction: the guest function (JIT code, named through wasmtime's perf map) or the
#     host function (wasmtime, libc) that touched the page;
#   * by place in the instance's linear memory (offset from the start of the memory; the
#     component's memory image, the pages past it, or the host's own memory).
#
#   bash bench/serverless/faults.sh COMPONENT.wasm PATH [BODY_FILE CONTENT_TYPE [HEADER_LEN]]
#   FAULTS_PAGES=1 adds every faulting 4 KiB page of linear memory (offset, the lowest address that
#   faulted in it, kind, instruction).
#   e.g. bash bench/serverless/faults.sh "$(bash worker/build.sh | tail -n 1)" /v2/models/mnist-mlp/infer body.json application/json
#
# Needs perf (run as root or with perf_event_paranoid <= 1 for tracepoints), wasmtime, wrk, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
[[ $# -ge 2 ]] || { echo "usage: bash bench/serverless/faults.sh COMPONENT.wasm PATH [BODY_FILE CONTENT_TYPE [HEADER_LEN]]" >&2; exit 2; }
WASM="$1" URLPATH="$2" BODY="${3:-}" CTYPE="${4:-}" HLEN="${5:-}"
DUR="${DUR:-3}"
# shellcheck source=bench/serverless/common.sh
. bench/serverless/common.sh
PORT="$(free_port)"
# shellcheck disable=SC2086 # SERVE_FLAGS is a list of flags
wasmtime serve -Scli ${SERVE_FLAGS:-} --profile perfmap --addr "127.0.0.1:$PORT" "$WASM" >"$TMP/serve.log" 2>&1 &
PID=$!
wait_listening
args=(-t1 -c1 -d"${DUR}s")
if [[ -n "$BODY" ]]; then args+=(-s bench/serverless/post.lua); fi
# Warm up (compile cache, first instances), then record.
BODY_FILE="$BODY" CONTENT_TYPE="$CTYPE" HEADER_LEN="$HLEN" wrk -t1 -c1 -d1s "http://127.0.0.1:$PORT$URLPATH" >/dev/null
perf record -q -e exceptions:page_fault_user -p "$PID" -o "$TMP/perf.data" 2>"$TMP/perf.err" &
PERF=$!
sleep 0.5
# Snapshots of the address space while instances come and go: where each instance's memory is.
( for _ in $(seq 1 $((DUR * 20))); do cat "/proc/$PID/maps"; echo "----"; sleep 0.05; done ) >"$TMP/maps" &
MAPS=$!
BODY_FILE="$BODY" CONTENT_TYPE="$CTYPE" HEADER_LEN="$HLEN" wrk "${args[@]}" "http://127.0.0.1:$PORT$URLPATH" >"$TMP/wrk.out"
wait "$MAPS" || true
kill -INT "$PERF"; wait "$PERF" || true
grep -q 'Non-2xx\|Socket errors' "$TMP/wrk.out" && { cat "$TMP/wrk.out" >&2; echo "errors under load" >&2; exit 1; }
N="$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")"
perf script -i "$TMP/perf.data" -F trace 2>/dev/null >"$TMP/trace"
cp "/tmp/perf-$PID.map" "$TMP/perf.map" 2>/dev/null || : >"$TMP/perf.map"
cat "/proc/$PID/maps" >"$TMP/maps.final"
python3 bench/serverless/faults.py "$TMP/trace" "$TMP/maps" "$TMP/perf.map" "$(readlink -f "$(command -v wasmtime)")" "$N"
