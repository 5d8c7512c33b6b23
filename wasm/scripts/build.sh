#!/usr/bin/env bash
# Builds the npm package `mdeploy-wasm` in place (wasm/ is the package root):
#   dist/mdeploy_wasm.js            the wasm-bindgen glue (identical for both variants: checked below)
#   dist/mdeploy_wasm_bg.wasm       simd128                 (runs everywhere: Node ≥ 20, current browsers)
#   dist/mdeploy_wasm_relaxed.wasm  simd128 + relaxed-simd  (chosen at run time where WebAssembly.validate
#                                                            accepts a relaxed-SIMD probe)
#   dist/mdeploy_wasm_cpu.js, dist/mdeploy_wasm_cpu_bg.wasm, dist/mdeploy_wasm_cpu_relaxed.wasm
#                                   the same two variants without the WebGPU engine (`--features
#                                   cpu-only`): what index.js loads when no WebGPU adapter is used
#   dist/server/mdeploy_wasm_server.js, _bg.wasm   `mdeploy-wasm/server` (server/: the REST routes of
#                                   mdeploy-serve for Fetch-API hosts), simd128 only (see DESIGN.md)
#   models/        the default models, copied from <repo>/models (separate assets, see DESIGN.md)
# Each variant: wasm-pack (--target web: one ESM build for browsers, workers, bundlers and, via
# the wrapper's initialisation from bytes, Node), then binaryen 132's wasm-opt from npm.
# Needs: wasm-pack and wasm-bindgen-cli (= Cargo.lock's wasm-bindgen) on PATH, `npm ci` in wasm/
# (scripts/bootstrap.sh does both). Never downloads anything (--mode no-install).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/mdeploy/target}"
WASM_OPT="$HERE/node_modules/.bin/wasm-opt"
[ -x "$WASM_OPT" ] || { echo "build.sh: $WASM_OPT missing: run \`npm ci\` in wasm/ (binaryen@132.0.0)" >&2; exit 1; }

# One wasm-pack build + binaryen's wasm-opt:
#   pack_build <crate dir> <out dir> <out name> <features> <target subdir> [cargo args...]
pack_build() {
  local crate="$1" out="$2" name="$3" features="$4" target="$5"
  shift 5
  RUSTFLAGS="-C target-feature=$features" CARGO_TARGET_DIR="$TARGET/$target" \
    wasm-pack --quiet build "$crate" --mode no-install --release --target web --no-typescript --no-pack \
      --out-dir "$out" --out-name "$name" ${1:+-- "$@"}
  # -O3, not -Oz: the wasm is small either way and the kernels are the point (measured in DESIGN.md).
  # -ocimfs=200: a function with one caller is merged into it only when small. By default binaryen
  # merges every such function, which rebuilt the load path (read → lower → pack) as one 65 KB
  # function that V8 compiled whole on the first load and then optimized whole (124–215 ms of
  # TurboFan on a background thread) because its packing loops ran hot (DESIGN.md, "Cold start").
  "$WASM_OPT" -O3 -ocimfs=200 --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$out/${name}_bg.wasm" -o "$out/${name}_bg.wasm.opt"
  mv "$out/${name}_bg.wasm.opt" "$out/${name}_bg.wasm"
  rm -f "$out/.gitignore"
}

build_variant() {
  local name="$1" features="$2"
  echo "build.sh: $name ($features)" >&2
  # A target dir per variant: the two RUSTFLAGS would otherwise rebuild each other's artifacts.
  pack_build "$HERE" "$HERE/dist/.build-$name" mdeploy_wasm "$features" "wasm-pkg-$name"
  # The CPU-only module: same target dir and RUSTFLAGS, so only this crate and the link are
  # redone (wgpu stays compiled as a dependency; nothing of it is linked without src/gpu/).
  echo "build.sh: $name, CPU only" >&2
  pack_build "$HERE" "$HERE/dist/.build-$name-cpu" mdeploy_wasm_cpu "$features" "wasm-pkg-$name" --features cpu-only
}

build_server() {
  echo "build.sh: server (+simd128)" >&2
  # simd128 only: Workers, Node ≥ 20, Deno and Bun all run it, and one build keeps the server
  # entry a single static import (a Worker cannot choose a module at run time). Same target dir
  # as the simd engine build: same RUSTFLAGS, so mdeploy-core is compiled once for both.
  pack_build "$HERE/server" "$HERE/dist/server" mdeploy_wasm_server "+simd128" wasm-pkg-simd
}

copy_models() {
  mkdir -p "$HERE/models"
  local name file src
  # The package's built-in models (models/defaults.json), and every model the parity suites check (models/parity.json:
  # paths under models/, e.g. test/mobilenet-block.mdm), which the suites load from here by file
  # stem when the package does not ship it by name. Only the built-in ones are in the package
  # ("files" in package.json); the others are test fixtures.
  while read -r name file; do
    src="${MDEPLOY_MODELS_DIR:-$ROOT/models}/$file"
    [ -f "$src" ] || { echo "build.sh: $src missing: train the default models first (see the root README); a file under models/test/ comes from \`cargo run -p mdeploy-testkit --example fixtures\`" >&2; exit 1; }
    cp "$src" "$HERE/models/$name.mdm"
  done < <({ node "$ROOT/scripts/gen-defaults.mjs" --list
    node -e 'const fs = require("fs"), path = require("path");
    for (const f of JSON.parse(fs.readFileSync(process.argv[1], "utf8"))) console.log(path.basename(f, ".mdm"), f)' "$ROOT/models/parity.json"
  } | awk '!seen[$1]++')
}

# `build.sh server`: only dist/server/ and models/ (what the Cloudflare Worker and its tests need),
# leaving the engine builds in dist/ as they are.
# One line per module: its bytes and its gzip size as test/package.test.mjs measures it (Node's
# zlib at level 9; the gzip tool's -9 differs by a few hundred bytes), so the figure printed here
# is the one the size bounds are checked against.
report_size() {
  printf 'build.sh: %s %d bytes, %d gzipped (zlib level 9)\n' "${1#"$HERE"/}" "$(wc -c <"$1")" \
    "$(node -e 'process.stdout.write(String(require("zlib").gzipSync(require("fs").readFileSync(process.argv[1]), { level: 9 }).length))' "$1")" >&2
}

if [ "${1:-}" = server ]; then
  rm -rf "$HERE/dist/server"
  build_server
  copy_models
  for f in "$HERE"/dist/server/*.wasm; do
    report_size "$f"
  done
  exit 0
fi

# `build.sh cpu`: only the CPU-only pair (dist/mdeploy_wasm_cpu*), leaving the rest of dist/ as it
# is: what a benchmark of the CPU backend needs (bench/wasm/int8-ab.mjs with backend 'cpu'), in
# a third of the full build's time. The package is incomplete without the full modules.
if [ "${1:-}" = cpu ]; then
  for v in "simd +simd128" "relaxed +simd128,+relaxed-simd"; do
    set -- $v
    echo "build.sh: $1, CPU only" >&2
    pack_build "$HERE" "$HERE/dist/.build-$1-cpu" mdeploy_wasm_cpu "$2" "wasm-pkg-$1" --features cpu-only
  done
  cmp -s "$HERE/dist/.build-simd-cpu/mdeploy_wasm_cpu.js" "$HERE/dist/.build-relaxed-cpu/mdeploy_wasm_cpu.js" || {
    echo "build.sh: the two CPU-only variants' wasm-bindgen glue differs" >&2; exit 1; }
  mv "$HERE/dist/.build-simd-cpu/mdeploy_wasm_cpu.js" "$HERE/dist/mdeploy_wasm_cpu.js"
  mv "$HERE/dist/.build-simd-cpu/mdeploy_wasm_cpu_bg.wasm" "$HERE/dist/mdeploy_wasm_cpu_bg.wasm"
  mv "$HERE/dist/.build-relaxed-cpu/mdeploy_wasm_cpu_bg.wasm" "$HERE/dist/mdeploy_wasm_cpu_relaxed.wasm"
  rm -rf "$HERE"/dist/.build-*
  copy_models
  for f in "$HERE"/dist/mdeploy_wasm_cpu*.wasm; do
    report_size "$f"
  done
  exit 0
fi

rm -rf "$HERE/dist"
build_variant simd "+simd128"
build_variant relaxed "+simd128,+relaxed-simd"
build_server

copy_models
# Both builds export the same functions, so wasm-bindgen writes the same glue; ship it once.
# The simd build keeps the glue's default file name, so bundlers that follow the glue's own
# `new URL('mdeploy_wasm_bg.wasm', import.meta.url)` find a file.
cmp -s "$HERE/dist/.build-simd/mdeploy_wasm.js" "$HERE/dist/.build-relaxed/mdeploy_wasm.js" || {
  echo "build.sh: the two variants' wasm-bindgen glue differs; ship both folders instead (see DESIGN.md)" >&2; exit 1; }
mv "$HERE/dist/.build-simd/mdeploy_wasm.js" "$HERE/dist/mdeploy_wasm.js"
mv "$HERE/dist/.build-simd/mdeploy_wasm_bg.wasm" "$HERE/dist/mdeploy_wasm_bg.wasm"
mv "$HERE/dist/.build-relaxed/mdeploy_wasm_bg.wasm" "$HERE/dist/mdeploy_wasm_relaxed.wasm"
# The CPU-only pair, the same way (its glue differs from the one above: no GpuEngine).
cmp -s "$HERE/dist/.build-simd-cpu/mdeploy_wasm_cpu.js" "$HERE/dist/.build-relaxed-cpu/mdeploy_wasm_cpu.js" || {
  echo "build.sh: the two CPU-only variants' wasm-bindgen glue differs; ship both folders instead (see DESIGN.md)" >&2; exit 1; }
mv "$HERE/dist/.build-simd-cpu/mdeploy_wasm_cpu.js" "$HERE/dist/mdeploy_wasm_cpu.js"
mv "$HERE/dist/.build-simd-cpu/mdeploy_wasm_cpu_bg.wasm" "$HERE/dist/mdeploy_wasm_cpu_bg.wasm"
mv "$HERE/dist/.build-relaxed-cpu/mdeploy_wasm_cpu_bg.wasm" "$HERE/dist/mdeploy_wasm_cpu_relaxed.wasm"
rm -rf "$HERE"/dist/.build-*

for f in "$HERE"/dist/*.wasm "$HERE"/dist/server/*.wasm; do
  report_size "$f"
done
