// The int8 models against their f32 models in headless Chromium, one thread, interleaved
// (issue 12: int8 ≥ 2× f32 at batch 1024 in the relaxed-SIMD build). µs per image, minimum and
// median over the rounds, and int8 ÷ f32 of each.
//   node bench/wasm/int8-ab.mjs [rounds] [pkg,pkg...] [model,model...]
//   (default 10 rounds, /wasm/: this checkout's wasm/dist, and the f32/int8/int7 MLP and CNN:
//   a model is fetched from /models/<name>.mdm; its f32 model is the name without -intN; the
//   int7 CNN is not shipped: make it first with
//   `mdeploy quantize models/mnist-cnn.mdm --out models/mnist-cnn-int7.mdm --bits 7`)
// A second package copy (e.g. a build of the base commit copied to bench/wasm/out/base/wasm/,
// with its dist/) is timed in the same rounds: an A/B of a kernel change in one browser process.
import { mnistDir } from '../../wasm/test/support.mjs';
import { serveRepo } from './browser-serve.mjs';

const rounds = Number(process.argv[2] ?? 10);
const pkgs = process.argv[3] ?? '/wasm/';
const models = process.argv[4] ?? 'mnist-mlp,mnist-mlp-int8,mnist-mlp-int7,mnist-cnn,mnist-cnn-int8,mnist-cnn-int7';
const server = await serveRepo(mnistDir());
try {
  const r = await server.visit(`/bench/wasm/int8-ab.html?rounds=${rounds}&pkgs=${pkgs}&models=${models}`, 1_200_000);
  console.log(r.userAgent);
  const f32 = (row) => r.rows.find((x) => x.pkg === row.pkg && x.model === row.model.replace(/-int\d$/, ''));
  console.log('| package | variant, kernel set | model | batch 1024 min / median µs | × f32 (min / median) | batch 1 min / median µs | × f32 (min / median) |');
  console.log('|---|---|---|---:|---:|---:|---:|');
  for (const row of r.rows) {
    const f = f32(row);
    const x = (k) => (f !== row ? `${(f[k].min / row[k].min).toFixed(2)}× / ${(f[k].median / row[k].median).toFixed(2)}×` : '');
    console.log(`| ${row.pkg} | ${row.variant}, ${row.kernel} | ${row.model} | ${row.batch1024.min} / ${row.batch1024.median} | ${x('batch1024')} | ${row.batch1.min} / ${row.batch1.median} | ${x('batch1')} |`);
  }
  for (const row of r.rows) console.log(`${row.pkg} ${row.model}: FNV-1a of the 2,000 outputs ${row.digest}`);
} finally {
  server.close();
}
