#!/usr/bin/env bash
# `npm start`: the demo page (web/), live on 127.0.0.1.
#   1. set-up (bootstrap.sh) and a quick check: the default models on a sample digit, native CLI;
#   2. builds the npm package and the function component (web/scripts/prepare.sh, only if stale);
#   3. serves the function endpoint (`wasmtime serve`, 127.0.0.1:8081 or a free port) and the
#      page (web/serve.mjs, 127.0.0.1:8080 or a free port; it proxies /predict to the endpoint);
#   4. starts `mdeploy serve` on the default models (models/defaults.json, version 1 each, REST
#      127.0.0.1:8000 and gRPC 127.0.0.1:8001 or free ports);
#   5. prints the URLs; Ctrl-C stops everything.
# Ports: MDEPLOY_WEB_PORT, MDEPLOY_ENDPOINT_PORT, MDEPLOY_SERVE_PORT, MDEPLOY_GRPC_PORT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/bootstrap.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "quick check: the default models on samples/digit-7.png (native CLI)"
cargo build --release -p mdeploy-cli
MDEPLOY="$CARGO_TARGET_DIR/release/mdeploy"
for m in models/mnist-mlp.mdm models/mnist-cnn.mdm; do
  printf '%s: ' "$m"
  "$MDEPLOY" predict "$m" samples/digit-7.png --top 1
done

say "building the demo's pieces"
component="$(bash web/scripts/prepare.sh | tail -n 1)"

# A port: the wanted one if it is free on 127.0.0.1, else any free one.
port() {
  node -e '
    const net = require("net");
    const tryListen = (p) => { const s = net.createServer(); s.once("error", () => tryListen(0));
      s.listen(p, "127.0.0.1", () => { const got = s.address().port; s.close(() => console.log(got)); }); };
    tryListen(Number(process.argv[1]));' "$1"
}

pids=()
stop() {
  trap - INT TERM EXIT
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

endpoint=""
if [ -n "$component" ] && command -v wasmtime >/dev/null; then
  eport="$(port "${MDEPLOY_ENDPOINT_PORT:-8081}")"
  say "function endpoint: wasmtime serve $(basename "$component") on 127.0.0.1:$eport"
  wasmtime serve -Scli --addr "127.0.0.1:$eport" "$component" &
  pids+=($!)
  # Wait until it answers HTTP (the first start compiles the component).
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$eport/" && break
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "start: wasmtime serve exited; the page runs without the served column" >&2; break; }
    sleep 0.2
  done
  curl -s -o /dev/null "http://127.0.0.1:$eport/" && endpoint="http://127.0.0.1:$eport"
elif [ -z "$component" ]; then
  echo "start: no function component in this checkout (worker/ missing): the page's \"served\" column will say the endpoint is unavailable" >&2
else
  echo "start: wasmtime not found (scripts/bootstrap.sh installs it): serving the page without the endpoint" >&2
fi

# The native model server on the default models: a repository of links, DIR/<name>/1/model.mdm.
repo="$CARGO_TARGET_DIR/serve-repository"
rm -rf "$repo"
while read -r n f; do
  mkdir -p "$repo/$n/1"
  ln -s "$ROOT/models/$f" "$repo/$n/1/model.mdm"
done < <(node scripts/gen-defaults.mjs --list)
sport="$(port "${MDEPLOY_SERVE_PORT:-8000}")"
gport="$(port "${MDEPLOY_GRPC_PORT:-8001}")"
say "model server: mdeploy serve on $(ls "$repo" | tr '\n' ' ')"
"$MDEPLOY" serve --repository "$repo" --http "127.0.0.1:$sport" --grpc "127.0.0.1:$gport" &
pids+=($!)
served="http://127.0.0.1:$sport"
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$served/v2/health/ready" && break
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "start: mdeploy serve exited (see above); the demo runs without it" >&2; served=""; break; }
  sleep 0.1
done

wport="$(port "${MDEPLOY_WEB_PORT:-8080}")"
say "the demo page"
node web/serve.mjs --port "$wport" ${endpoint:+--endpoint "$endpoint"} &
pids+=($!)
sleep 0.5
printf '\n\033[1mOpen http://127.0.0.1:%s/ and draw a digit.\033[0m%s\n' "$wport" \
  "${endpoint:+ The function endpoint runs at $endpoint (proxied at /predict).}"
[ -n "$served" ] && printf 'Model server (mdeploy serve): REST %s (KServe v2 /v2, TF Serving /v1, /metrics), gRPC 127.0.0.1:%s.\n' "$served" "$gport"
printf 'Ctrl-C stops.\n'
wait "${pids[-1]}"
