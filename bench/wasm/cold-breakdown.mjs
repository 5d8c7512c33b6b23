// Where a Node cold start goes, step by step, in one fresh process (mdeploy-wasm only).
//   node bench/wasm/cold-breakdown.mjs [model] [simd|relaxed]   → one JSON line (milliseconds)
//   MDEPLOY_WASM_MODULE=full: the WebGPU-capable .wasm instead of the CPU-only one (the default:
//   what Model.load runs a CPU model on)
//   for i in 1 2 3 4 5; do node bench/wasm/cold-breakdown.mjs mnist-cnn; done
// Steps: node start (process origin → this line), glue + index.js import, .wasm read, compile
// (new WebAssembly.Module), instantiate, model bytes read, WebCrypto content hash, Engine (read + plan), first run,
// second run (to show what lazy compilation / tier-up added to the first). The public path
// (`Model.load` → predict) does the same steps; cold.mjs times that one end to end.
const tStart = performance.now();
const { engineSteps } = await import('./cold-steps.mjs');
const { readFileSync, writeSync } = await import('node:fs');
const marks = process.env.MDEPLOY_COLD_MARKS === '1';
const here = new URL('../../wasm/', import.meta.url);
const [name = 'mnist-cnn', variant = 'simd'] = process.argv.slice(2);
const t = { nodeStart: tStart };
// Wall time per step, and CPU time of the whole process (all threads: V8 compiles on helper
// threads) in `cpu`: on a shared, busy machine the CPU times are the steadier figure.
const cpu = {};
let last = performance.now(), lastCpu = process.cpuUsage();
const lap = (k) => {
  const now = performance.now(), c = process.cpuUsage(lastCpu);
  t[k] = now - last; cpu[k] = (c.user + c.system) / 1000;
  // MDEPLOY_COLD_MARKS=1: a line on stdout as each step ends (load-path.mjs places V8's
  // --trace-wasm-compilation-times lines in steps with them).
  if (marks) writeSync(1, `@@step ${k}\n`);
  last = now; lastCpu = process.cpuUsage();
};
// MDEPLOY_WASM_DIST: another build's dist/ folder (A/B comparisons of a change).
const dist = process.env.MDEPLOY_WASM_DIST ? new URL(`file://${process.env.MDEPLOY_WASM_DIST.replace(/\/?$/, '/')}`) : new URL('dist/', here);
const stem = process.env.MDEPLOY_WASM_MODULE === 'full' ? 'mdeploy_wasm' : 'mdeploy_wasm_cpu';
const glue = await import(new URL(`${stem}.js`, dist));
// The package's own WebCrypto hash, so this times what Model.load runs (importing index.js is
// part of every real start, so it is in this step too).
const { contentHash } = await import(new URL('index.js', here));
lap('importGlue');
const bytes = readFileSync(new URL(`${stem}${variant === 'relaxed' ? '_relaxed.wasm' : '_bg.wasm'}`, dist));
lap('readWasm');
const module = new WebAssembly.Module(bytes);
lap('compile');
glue.initSync({ module });
lap('instantiate');
const model = readFileSync(new URL(`models/${name}.mdm`, here));
lap('readModel');
// As Model.load does: WebCrypto hashes the content, the reader compares (MDM_FORMAT.md digest);
// MDEPLOY_COLD_NO_HASH=1 makes the engine hash the bytes itself (the path before this).
const noHash = process.env.MDEPLOY_COLD_NO_HASH === '1' || !glue.Engine.withHash;
await engineSteps(glue, noHash ? null : contentHash, model, lap);
t.total = performance.now() - tStart + 0; // since the process origin
cpu.total = process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000;
const r2 = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 100) / 100]));
console.log(JSON.stringify({ model: name, variant, module: stem, wasmBytes: bytes.length, ...r2(t), cpu: r2(cpu) }));
