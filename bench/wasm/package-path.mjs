// Where the npm package's batch path spends its time against the plan alone (issue 12: the
// binary-input MLP took 5.0 µs/image in Chromium's package against 3.9–4.3 µs of CPU in the WASI
// example). In one Node process, interleaved round by round, per model at batch 1024:
//   package   Model.predictBatchSync (index.js: checks, engine.run, labels)
//   glue      Engine.run of the wasm-bindgen glue itself (copy in, plan, copy out, frees)
//   copies    the glue's copies alone: malloc + 3.2 MB into the module's memory, the outputs'
//             slice out, the frees (what Engine.run adds to the plan)
// Process CPU time (process.cpuUsage, user + system) beside the wall time, minimum over the
// rounds: at a load above the 2 cores the wall minimum is the clock that misleads.
//   node [--experimental-wasm-relaxed-simd] bench/wasm/package-path.mjs ROUNDS MODEL[,MODEL...]
// A model is models/<name>.mdm or a path (e.g. bench/out/f32-binary-in-256x2.mdm, made by
// bench/binary-f32.sh). Node 20 loads the simd128 build unless started with the flag.
import { readFile } from 'node:fs/promises';
import { digitBatch } from './batch.mjs';
import * as lib from '../../wasm/index.js';

const rounds = Number(process.argv[2] ?? 20);
const names = (process.argv[3] ?? 'mnist-mlp-binary-in,bench/out/f32-binary-in-256x2.mdm').split(',');
const BATCH = 1024;
const xs = await digitBatch(BATCH);
const info = await lib.init();
// The same glue and wasm file index.js chose, instantiated a second time for the raw calls.
const relaxed = info.variant === 'relaxed';
const glue = await import('../../wasm/dist/mdeploy_wasm_cpu.js');
const wasm = await glue.default({ module_or_path: await readFile(new URL(`../../wasm/dist/mdeploy_wasm_cpu${relaxed ? '_relaxed' : '_bg'}.wasm`, import.meta.url)) });
const runs = [];
for (const name of names) {
  const path = name.includes('/') ? new URL(`../../${name}`, import.meta.url) : new URL(`../../models/${name}.mdm`, import.meta.url);
  const bytes = new Uint8Array(await readFile(path));
  const m = await lib.Model.load(bytes, { maxBatch: BATCH, backend: 'cpu' });
  const e = new glue.Engine(bytes, 'cpu', BATCH);
  const ol = e.outputLen;
  const stem = name.includes('/') ? name.slice(name.lastIndexOf('/') + 1).replace(/\.mdm$/, '') : name;
  runs.push({ name: stem, kernel: m.info().kernel, m, e, ol, t: { package: [], glue: [], copies: [] } });
}
// What Engine.run does around the plan, as the generated glue does it (passArrayF32ToWasm0,
// getArrayF32FromWasm0(...).slice(), __wbindgen_free), without the plan.
const copies = (ol) => {
  const p = wasm.__wbindgen_malloc(xs.length * 4, 4) >>> 0;
  new Float32Array(wasm.memory.buffer, p, xs.length).set(xs);
  const q = wasm.__wbindgen_malloc(BATCH * ol * 4, 4) >>> 0;
  const out = new Float32Array(wasm.memory.buffer, q, BATCH * ol).slice();
  wasm.__wbindgen_free(q, BATCH * ol * 4, 4);
  wasm.__wbindgen_free(p, xs.length * 4, 4);
  return out;
};
const steps = { package: (r) => r.m.predictBatchSync(xs, BATCH), glue: (r) => r.e.run(xs, BATCH), copies: (r) => copies(r.ol) };
for (const r of runs) for (const f of Object.values(steps)) f(r), f(r);
for (let round = 0; round < rounds; round++) {
  for (const r of runs) {
    for (const [k, f] of Object.entries(steps)) {
      const c = process.cpuUsage();
      const t = performance.now();
      f(r);
      const wall = ((performance.now() - t) * 1000) / BATCH;
      const cu = process.cpuUsage(c);
      r.t[k].push({ wall, cpu: (cu.user + cu.system) / BATCH });
    }
  }
}
const min = (v, k) => Math.min(...v.map((x) => x[k]));
const med = (v, k) => [...v.map((x) => x[k])].sort((a, b) => a - b)[v.length >> 1];
console.log(`Node ${process.version}, ${info.variant}, ${rounds} rounds, batch ${BATCH}, µs/image: CPU min / wall min / wall median`);
console.log('| model | kernel | package | glue Engine.run | copies alone |\n|---|---|---:|---:|---:|');
for (const r of runs) {
  const cell = (k) => `${min(r.t[k], 'cpu').toFixed(2)} / ${min(r.t[k], 'wall').toFixed(2)} / ${med(r.t[k], 'wall').toFixed(2)}`;
  console.log(`| ${r.name} | ${r.kernel} | ${cell('package')} | ${cell('glue')} | ${cell('copies')} |`);
}
