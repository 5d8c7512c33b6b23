// The int8 models against their f32 models in headless Chromium, one thread, interleaved
// (issue 12: int8 ≥ 2× f32 at batch 1024 in the relaxed-SIMD build). µs per image, minimum and
// median over the rounds, and int8 ÷ f32 of each.
//   node bench/wasm/int8-ab.mjs [rounds] [pkg,pkg...] [model,model...]
//   (default 10 rounds, /wasm/: this checkout's wasm/dist, and the f32/int8/int7 MLP and CNN:
//   a model is fetched from /models/<name>.mdm; its f32 model is the name without -intN; the
//   int7 CNN is not shipped: make it first with
//   `mdeploy quantize models/mnist-cnn.mdm --out models/mnist-cnn-int7.mdm --bits 7`)
//   node bench/wasm/int8-ab.mjs ROUNDS PKGS MODELS REFS   (REFS: comma-separated model names or
//   paths; every row then gets its ratio to each of them instead of to its -intN-less name, and
//   the refs are timed too). A model given as a path (containing '/') is fetched as it is, e.g.
//   /bench/out/f32-binary-in-256x2.mdm (bench/binary-f32.sh), and named by its file stem.
//   INT8_AB_VARIANT=simd times the simd128 build (Chromium would pick the relaxed one).
//   INT8_AB_CHROMIUM_ARGS='--js-flags=--perf-basic-prof' (more Chromium flags): see perf-chromium.sh.
//   INT8_AB_COPIES=1 also times, in the same rounds, the copies the package's Engine.run makes
//   around the plan at batch 1024 (bench/wasm/package-path.mjs has the same in Node).
// The binary models against the f32 MLP and their own architectures in f32 (QUANT.md, "Binary stacks"):
//   bash bench/binary-f32.sh && node bench/wasm/int8-ab.mjs 10 /wasm/ \
//     mnist-mlp-binary-in,mnist-mlp-binary /bench/out/f32-binary-in-256x2.mdm,/bench/out/f32-binary-192x1.mdm,mnist-mlp
// A second package copy (e.g. a build of the base commit copied to bench/wasm/out/base/wasm/,
// with its dist/) is timed in the same rounds: an A/B of a kernel change in one browser process.
import { mnistDir } from '../../wasm/test/support.mjs';
import { serveRepo } from './browser-serve.mjs';

const rounds = Number(process.argv[2] ?? 10);
const pkgs = process.argv[3] ?? '/wasm/';
const refs = (process.argv[5] ?? '').split(',').filter((s) => s !== '');
const stem = (m) => (m.includes('/') ? m.slice(m.lastIndexOf('/') + 1).replace(/\.mdm$/, '') : m);
const models = [...(process.argv[4] ?? 'mnist-mlp,mnist-mlp-int8,mnist-mlp-int7,mnist-cnn,mnist-cnn-int8,mnist-cnn-int7').split(','), ...refs].filter((m, i, all) => all.indexOf(m) === i);
const variant = (process.env.INT8_AB_VARIANT ? `&variant=${process.env.INT8_AB_VARIANT}` : '') + (process.env.INT8_AB_COPIES ? '&copies=1' : '');
const server = await serveRepo(mnistDir());
try {
  // INT8_AB_CHROMIUM_ARGS: more Chromium flags, space-separated, e.g. '--js-flags=--perf-basic-prof'
  // for `perf record -a` (bench/wasm/perf-chromium.sh).
  const extra = (process.env.INT8_AB_CHROMIUM_ARGS ?? '').split(' ').filter((a) => a !== '');
  const r = await server.visit(`/bench/wasm/int8-ab.html?rounds=${rounds}&pkgs=${pkgs}&models=${models.join(',')}${variant}`, 1_200_000, extra);
  console.log(r.userAgent);
  // Each row's references: the REFS (by stem) or its f32 model (the name without -intN).
  const refsOf = (row) => (refs.length ? refs.map(stem) : [row.model.replace(/-int\d$/, '')]).map((m) => r.rows.find((x) => x.pkg === row.pkg && x.model === m)).filter((f) => f && f !== row);
  console.log('| package | variant, kernel set | model | batch 1024 min / median µs | × f32 (min / median) | batch 1 min / median µs | × f32 (min / median) |');
  console.log('|---|---|---|---:|---:|---:|---:|');
  for (const row of r.rows) {
    const fs = refsOf(row);
    const x = (k) => fs.map((f) => `${(f[k].min / row[k].min).toFixed(2)}× / ${(f[k].median / row[k].median).toFixed(2)}×${refs.length ? ` ${f.model}` : ''}`).join('; ');
    console.log(`| ${row.pkg} | ${row.variant}, ${row.kernel} | ${row.model} | ${row.batch1024.min} / ${row.batch1024.median} | ${x('batch1024')} | ${row.batch1.min} / ${row.batch1.median} | ${x('batch1')} |`);
  }
  if (r.copies) console.log(`copies alone (Engine.run's malloc, input in, outputs out, frees) at batch 1024: ${r.copies.min} / ${r.copies.median} µs/image min / median`);
  for (const row of r.rows) console.log(`${row.pkg} ${row.model}: FNV-1a of the 2,000 outputs ${row.digest}`);
} finally {
  server.close();
}
