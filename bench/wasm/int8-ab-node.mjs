// int8-ab.html's measurement in Node (issue 12): f32, int8 and int7 models in the npm package
// (this checkout's wasm/dist), one thread, interleaved round by round; µs per image at batch
// 1024, minimum and median, and × f32. Node 20 loads the simd128 build (it rejects relaxed SIMD
// unless started with --experimental-wasm-relaxed-simd; with it, the 7-bit tile stays off because
// Node 20's first tier computes the relaxed dot wrongly: `dot_is_exact`).
//   node [--experimental-wasm-relaxed-simd] bench/wasm/int8-ab-node.mjs [rounds] [model,model...]
// Models are read from models/<name>.mdm (make the int7 ones with `mdeploy quantize --bits 7`).
import { readFile } from 'node:fs/promises';
import { digitBatch } from './batch.mjs';
import * as lib from '../../wasm/index.js';

const rounds = Number(process.argv[2] ?? 10);
const names = (process.argv[3] ?? 'mnist-mlp,mnist-mlp-int8,mnist-mlp-int7,mnist-cnn,mnist-cnn-int8,mnist-cnn-int7').split(',');
const BATCH = 1024;
const xs = await digitBatch(BATCH);
const info = await lib.init();
const runs = [];
for (const name of names) {
  const bytes = await readFile(new URL(`../../models/${name}.mdm`, import.meta.url));
  const m = await lib.Model.load(new Uint8Array(bytes), { maxBatch: BATCH, backend: 'cpu' });
  m.predictBatchSync(xs, BATCH);
  runs.push({ name, m, t: [] });
}
for (let r = 0; r < rounds; r++) {
  for (const run of runs) {
    const t = performance.now();
    run.m.predictBatchSync(xs, BATCH);
    run.t.push(((performance.now() - t) * 1000) / BATCH);
  }
}
const stat = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return [s[0], s[s.length >> 1]];
};
console.log(`Node ${process.version}, ${info.variant}, ${info.kernel}, ${rounds} rounds, batch ${BATCH}`);
console.log('| model | min / median µs | × f32 (min / median) |\n|---|---:|---:|');
for (const run of runs) {
  const [mn, md] = stat(run.t);
  const f = runs.find((x) => x.name === run.name.replace(/-int\d$/, ''));
  const [fm, fd] = f ? stat(f.t) : [0, 0];
  console.log(`| ${run.name} | ${mn.toFixed(2)} / ${md.toFixed(2)} | ${f && f !== run ? `${(fm / mn).toFixed(2)}× / ${(fd / md).toFixed(2)}×` : ''} |`);
}
