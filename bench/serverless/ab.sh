#!/usr/bin/env bash
# Paired comparison of components under `wasmtime serve`, interleaved with the hello component in
# every round, so that a change is measured before and after in the same run: the machine's load
# moves absolute numbers by a third from minute to minute (bench/README.md), the ratio to the
# hello row of the same round much less.
#
#   bash bench/serverless/ab.sh before=/tmp/old.wizer.wasm after=$CARGO_TARGET_DIR/.../mdeploy-worker.wizer.wasm
#
# Environment: ROUNDS (3), DUR (5s per row), CONNS (32), THREADS (2), SCENARIOS (space-separated,
# default "health mlp cnn"; also mlp-bin, cnn-bin (KServe binary tensors), predict (784 raw
# bytes to /predict, CNN), mlp-int8, mlp-sparse, mlp-student (the MLP's smaller defaults, JSON)), SERVE_FLAGS (extra `wasmtime serve` flags for every server, hello
# included, e.g. "-O pooling-allocator=y": flags of the stock CLI), ALSO_FLAGS (a second set: every
# round then runs hello and every component again with these flags; those rows are marked `*` and
# compared with the hello row that had the same flags).
#
# Per row: requests/s, the ratio to the hello row of the same round, and the `wasmtime serve`
# process's CPU (user + system) and minor page faults per request over the wrk run (wrk's own
# CPU is not in them), and its resident memory half-way through the row (VmRSS and PSS from
# /proc/PID/smaps_rollup: RSS counts a page of the shared memory image once per instance that
# maps it, PSS divides it among them). Any non-2xx answer or socket error fails the script. Then
# the median over the rounds of each (component, scenario). Needs wasmtime, wrk, node, curl.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
export PATH="$HOME/.cargo/bin:$PATH"
ROUNDS="${ROUNDS:-3}"
DUR="${DUR:-5s}"
THREADS="${THREADS:-2}"
CONNS="${CONNS:-32}"
SCENARIOS="${SCENARIOS:-health mlp cnn}"
[[ $# -ge 1 ]] || { echo "usage: bash bench/serverless/ab.sh NAME=COMPONENT.wasm [NAME=COMPONENT.wasm ...]" >&2; exit 2; }
for tool in wasmtime wrk node curl; do
  command -v "$tool" >/dev/null || { echo "ab.sh: '$tool' is not on PATH (scripts/bootstrap.sh installs it)" >&2; exit 1; }
done
NAMES=(); FILES=()
for arg in "$@"; do
  [[ "$arg" == *=* && -f "${arg#*=}" ]] || { echo "ab.sh: '$arg' is not NAME=FILE with an existing FILE" >&2; exit 2; }
  NAMES+=("${arg%%=*}"); FILES+=("${arg#*=}")
done

cargo build -q -p mdeploy-bench-hello --release --target wasm32-wasip2
HELLO="$CARGO_TARGET_DIR/wasm32-wasip2/release/mdeploy-bench-hello.wasm"
# shellcheck source=bench/serverless/common.sh
. bench/serverless/common.sh
make_bodies

start() {
  PORT="$(free_port)"
  # shellcheck disable=SC2086 # SERVE_FLAGS and FLAGS are lists of flags
  wasmtime serve -Scli ${SERVE_FLAGS:-} ${FLAGS:-} --addr "127.0.0.1:$PORT" "$1" >"$TMP/serve.log" 2>&1 &
  PID=$!
  wait_listening
}
mem_mb() { awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { printf "%.1f %.1f", r / 1024, p / 1024 }' "/proc/$PID/smaps_rollup"; }

# scenario NAME -> "PATH BODY CONTENT_TYPE HEADER_LEN" (empty fields as -)
scenario() {
  case "$1" in
    health) echo "/v2/health/live - - -" ;;
    mlp) echo "/v2/models/mnist-mlp/infer $TMP/infer.json application/json -" ;;
    cnn) echo "/v2/models/mnist-cnn/infer $TMP/infer.json application/json -" ;;
    mlp-bin) echo "/v2/models/mnist-mlp/infer $TMP/infer.bin application/octet-stream $(cat "$TMP/infer.bin.len")" ;;
    cnn-bin) echo "/v2/models/mnist-cnn/infer $TMP/infer.bin application/octet-stream $(cat "$TMP/infer.bin.len")" ;;
    predict) echo "/predict $TMP/digit.raw application/octet-stream -" ;;
    # The MLP's smaller forms (same JSON body): how much of the f32 MLP's cost is reading its
    # 400 KB of weights in a fresh instance (int8: 100 KB, sparse90: 55 KB, student: 12 KB).
    mlp-int8) echo "/v2/models/mnist-mlp-int8/infer $TMP/infer.json application/json -" ;;
    mlp-sparse) echo "/v2/models/mnist-mlp-sparse90/infer $TMP/infer.json application/json -" ;;
    mlp-student) echo "/v2/models/mnist-mlp-student/infer $TMP/infer.json application/json -" ;;
    hello) echo "/ - - -" ;;
    *) echo "ab.sh: unknown scenario '$1' (health mlp cnn mlp-bin cnn-bin predict mlp-int8 mlp-sparse mlp-student)" >&2; exit 2 ;;
  esac
}

# load ROUND COMPONENT SCENARIO: one wrk run, one line in $TMP/rows (tab-separated).
load() {
  local round="$1" comp="$2" sc="$3" path body ctype hlen
  read -r path body ctype hlen <<<"$(scenario "$sc")"
  local args=(-t"$THREADS" -c"$CONNS" -d"$DUR" --latency) hdr=()
  [[ "$hlen" != - ]] && hdr=(-H "Inference-Header-Content-Length: $hlen")
  if [[ "$body" != - ]]; then
    local code; code="$(curl -sS -o "$TMP/check.out" -w '%{http_code}' -H "Content-Type: $ctype" "${hdr[@]}" --data-binary "@$body" "http://127.0.0.1:$PORT$path")"
    [[ "$code" == 200 ]] && grep -q 'label' "$TMP/check.out" || { echo "$comp $sc: $code $(head -c 300 "$TMP/check.out")" >&2; exit 1; }
    args+=(-s bench/serverless/post.lua)
  fi
  local before after secs="${DUR%s}"
  before="$(proc_cost)"
  ( sleep "$(awk -v s="$secs" 'BEGIN { print s / 2 }')"; mem_mb >"$TMP/mem" 2>/dev/null || echo "- -" >"$TMP/mem" ) &
  local sampler=$!
  BODY_FILE="${body#-}" CONTENT_TYPE="${ctype#-}" HEADER_LEN="${hlen#-}" wrk "${args[@]}" "http://127.0.0.1:$PORT$path" >"$TMP/wrk.out"
  wait "$sampler" || true
  after="$(proc_cost)"
  if grep -q 'Non-2xx\|Socket errors' "$TMP/wrk.out"; then cat "$TMP/wrk.out" >&2; echo "$comp $sc: errors under load" >&2; exit 1; fi
  local rps n
  rps="$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.out")"
  n="$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")"
  awk -v b="$before" -v a="$after" -v n="$n" -v hz="$(getconf CLK_TCK)" -v r="$round" -v c="$comp" -v s="$sc" -v rps="$rps" -v mem="$(cat "$TMP/mem")" 'BEGIN {
    split(b, x, " "); split(a, y, " "); split(mem, m, " ");
    printf "%s\t%s\t%s\t%.0f\t%.1f\t%.1f\t%s\t%s\n", r, c, s, rps, (y[1] - x[1]) * 1e6 / hz / n, (y[2] - x[2]) / n, m[1], m[2] }' >>"$TMP/rows"
}

for sc in $SCENARIOS; do scenario "$sc" >/dev/null; done
LOAD0="$(cut -d' ' -f1 /proc/loadavg)"
: >"$TMP/rows"
SETS=("")
[[ -n "${ALSO_FLAGS:-}" ]] && SETS+=("$ALSO_FLAGS")
for ((r = 1; r <= ROUNDS; r++)); do
  for FLAGS in "${SETS[@]}"; do
    mark=""; [[ -n "$FLAGS" ]] && mark="*"
    start "$HELLO"; load "$r$mark" "hello$mark" hello; stop
    # Rotate the order of the components every round, so none always runs right after hello.
    n=${#NAMES[@]}
    for ((k = 0; k < n; k++)); do
      i=$(( (k + r - 1) % n ))
      start "${FILES[$i]}"
      for sc in $SCENARIOS; do load "$r$mark" "${NAMES[$i]}$mark" "$sc"; done
      stop
    done
  done
done

echo "wasmtime $(wasmtime --version | awk '{print $2}') serve -Scli ${SERVE_FLAGS:-}, wrk -t$THREADS -c$CONNS -d$DUR, $ROUNDS rounds, $(nproc) cores, $(date -u +%FT%TZ), load average at the start: $LOAD0"
for i in "${!NAMES[@]}"; do echo "${NAMES[$i]} = ${FILES[$i]} ($(stat -c %s "${FILES[$i]}") bytes)"; done
[[ -n "${ALSO_FLAGS:-}" ]] && echo "rows marked * ran under wasmtime serve -Scli ${SERVE_FLAGS:-} $ALSO_FLAGS"
echo
echo "| round | component | scenario | requests/s | vs hello | server CPU / request | beyond hello | page faults / request | RSS / PSS MB (mid-row) |"
echo "|---|---|---|---|---|---|---|---|---|"
awk -F'\t' '
  { row[NR] = $0; if ($2 ~ /^hello\*?$/) { hr[$1] = $4; hc[$1] = $5 } }
  END { for (i = 1; i <= NR; i++) { split(row[i], f, "\t");
    printf "| %s | %s | %s | %s | %.0f %% | %.0f µs | %+.0f µs | %s | %s / %s |\n", f[1], f[2], f[3], f[4], 100 * f[4] / hr[f[1]], f[5], f[5] - hc[f[1]], f[6], f[7], f[8] } }' "$TMP/rows"
echo
echo "Medians over the rounds:"
echo
echo "| component | scenario | vs hello | server CPU / request | beyond hello | page faults / request |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '
  function median(list,   a, k, n, t) { n = split(list, a, " "); for (k = 2; k <= n; k++) { t = a[k]; j = k - 1; while (j > 0 && a[j] + 0 > t + 0) { a[j + 1] = a[j]; j-- } a[j + 1] = t } return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { if ($2 ~ /^hello\*?$/) { hr[$1] = $4; hc[$1] = $5 } row[NR] = $0 }
  END {
    for (i = 1; i <= NR; i++) { split(row[i], f, "\t"); key = f[2] "\t" f[3];
      if (!(key in seen)) { seen[key] = 1; order[++m] = key }
      ratio[key] = ratio[key] " " 100 * f[4] / hr[f[1]]; cpu[key] = cpu[key] " " f[5]; extra[key] = extra[key] " " f[5] - hc[f[1]]; pf[key] = pf[key] " " f[6] }
    for (k = 1; k <= m; k++) { split(order[k], f, "\t");
      printf "| %s | %s | %.0f %% | %.0f µs | %+.0f µs | %.1f |\n", f[1], f[2], median(ratio[order[k]]), median(cpu[order[k]]), median(extra[order[k]]), median(pf[order[k]]) } }' "$TMP/rows"
