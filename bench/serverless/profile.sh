#!/usr/bin/env bash
# Where the server's CPU goes per request under `wasmtime serve`, by cause: `perf record -g` of
# the server process (guest frames named through `--profile perfmap`) over one wrk run, then the
# inclusive time of a few frames that name a cost, in µs per request. Several components or
# paths in one call run one after the other in the same run, one column each, so compare columns
# of one call (the machine's load moves absolute numbers):
#
#   bash bench/serverless/profile.sh NAME=COMPONENT.wasm@PATH[@BODY_FILE] ...
#   e.g. bash bench/serverless/profile.sh hello=$T/mdeploy-bench-hello.wasm@/ \
#          health=$SNAP@/v2/health/live mlp=$SNAP@/v2/models/mnist-mlp/infer@body.json
#
# A BODY_FILE is POSTed as application/json (make-bodies.mjs writes infer.json). wrk -t2 -c32
# for DUR seconds (5) after a 1 s warm-up; perf samples at 2000 Hz with call graphs, which
# slows the server (compare columns, not these totals with ab.sh's). Rows are inclusive (a row
# contains the rows indented under it and may overlap others). Needs perf, wasmtime, wrk, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
[[ $# -ge 1 ]] || { echo "usage: bash bench/serverless/profile.sh NAME=COMPONENT.wasm@PATH[@BODY_FILE] ..." >&2; exit 2; }
DUR="${DUR:-5}"
# shellcheck source=bench/serverless/common.sh
. bench/serverless/common.sh
COLS=()
for spec in "$@"; do
  name="${spec%%=*}"; IFS=@ read -r wasm path body <<<"${spec#*=}"
  [[ -f "$wasm" && -n "$path" ]] || { echo "profile.sh: '$spec' is not NAME=COMPONENT.wasm@PATH[@BODY_FILE]" >&2; exit 2; }
  args=(-t2 -c32 -d"${DUR}s")
  [[ -n "${body:-}" ]] && args+=(-s bench/serverless/post.lua)
  PORT="$(free_port)"
  wasmtime serve -Scli --profile perfmap --addr "127.0.0.1:$PORT" "$wasm" >"$TMP/serve.log" 2>&1 &
  PID=$!
  wait_listening
  BODY_FILE="${body:-}" CONTENT_TYPE=application/json wrk -t1 -c4 -d1s "http://127.0.0.1:$PORT$path" >/dev/null
  perf record -q -g -F 2000 -p "$PID" -o "$TMP/$name.data" 2>/dev/null &
  PERF=$!
  sleep 0.3
  BODY_FILE="${body:-}" CONTENT_TYPE=application/json wrk "${args[@]}" "http://127.0.0.1:$PORT$path" >"$TMP/wrk.out"
  kill -INT "$PERF"; wait "$PERF" || true
  grep -q 'Non-2xx\|Socket errors' "$TMP/wrk.out" && { cat "$TMP/wrk.out" >&2; echo "$name: errors under load" >&2; exit 1; }
  n="$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")"
  # perf report needs wasmtime's map of JIT code while the process's pid is known: report now.
  perf report -i "$TMP/$name.data" --children -g none -n --sort sym -q -t $'\t' 2>/dev/null >"$TMP/$name.txt"
  stop
  rm -f "/tmp/perf-$PID.map"
  COLS+=("$name" "$n")
done
echo "wasmtime $(wasmtime --version | awk '{print $2}') serve -Scli, wrk -t2 -c32 -d${DUR}s, perf -g -F 2000, $(date -u +%FT%TZ), load average $(cut -d' ' -f1 /proc/loadavg)"
python3 - "$TMP" "${COLS[@]}" <<'PY'
import sys
tmp, cols = sys.argv[1], sys.argv[2:]
ROWS = [
    ("whole process", None),
    ("guest export call (its page faults and host calls included)", "wasmtime::runtime::vm::traphandlers::catch_traps"),
    ("  Server::handle", "mdeploy_serve::Server::handle*"),
    ("    Plan::run", "mdeploy_runtime::plan::Plan::run*"),
    ("  dlmalloc", "dlmalloc"),
    ("page faults, all (guest and host)", "asm_exc_page_fault"),
    ("  read of an image page + fault-around (do_fault)", "do_fault"),
    ("  copy-on-write of a page a read mapped (do_wp_page)", "do_wp_page"),
    ("  TLB shootdown IPIs", "smp_call_function_many_cond"),
    ("teardown: madvise(DONTNEED) of the instance's memory (decommit_pages)", "wasmtime::runtime::vm::sys::unix::vm::decommit_pages"),
    ("network send", "__send"),
]
def load(name, n):
    rows = []
    for line in open(f"{tmp}/{name}.txt"):
        p = [x.strip() for x in line.split("\t") if x.strip()]
        if len(p) >= 4:
            rows.append((float(p[0].rstrip("%")), int(p[2]), " ".join(p[3:]).replace("[.] ", "").replace("[k] ", "")))
    total = sum(r[1] for r in rows)  # self samples add up to all samples
    us = 1e6 / 2000 / max(n, 1)
    d = {}
    for pct, _, sym in rows:
        d[sym] = d.get(sym, 0.0) + pct / 100 * total * us
    return d, total * us
data = [(cols[i], load(cols[i], int(cols[i + 1]))) for i in range(0, len(cols), 2)]
def get(d, sym):
    if sym.endswith("*"):  # guest symbols carry a hash suffix
        return sum(v for k, v in d.items() if k.startswith(sym[:-1]))
    return d.get(sym, 0.0)
print()
print("| µs per request (inclusive) | " + " | ".join(n for n, _ in data) + " |")
print("|---|" + "---|" * len(data))
for label, sym in ROWS:
    print(f"| {label} | " + " | ".join(f"{t if sym is None else get(d, sym):.0f}" for _, (d, t) in data) + " |")
PY
