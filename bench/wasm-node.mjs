// mdeploy-wasm in Node: cold start, batch-1 latency, batch-1024 throughput, on real test digits.
//   node bench/wasm-node.mjs                                   (simd128 build; Node 20 picks it)
//   node --experimental-wasm-relaxed-simd bench/wasm-node.mjs  (relaxed-SIMD build)
// Needs the package built (wasm/scripts/build.sh) and the digits (`npm install`).
// Prints one JSON object; bench/README.md says how the published numbers were taken.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { testSplit } from '../wasm/test/support.mjs';

const pkg = new URL('../wasm/index.js', import.meta.url).href;

// Cold start in a fresh process: import → Model.load → first prediction. `sinceProcessStart`
// adds Node's own start-up (performance.now() counts from the process's time origin).
const COLD = `
const t0 = performance.now();
const { Model } = await import(${JSON.stringify(pkg)});
const m = await Model.load(process.argv[1]);
const r = await m.predict(new Float32Array(784).fill(0.1));
const t1 = performance.now();
console.log(JSON.stringify({ importToFirstPrediction: t1 - t0, sinceProcessStart: t1, label: r.label }));
`;

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const { Model, init } = await import(pkg);
const rt = await init();
const { xs, n } = testSplit();
const out = { node: process.version, variant: rt.variant, kernel: rt.kernel, models: {} };

for (const name of ['mnist-mlp', 'mnist-cnn']) {
  const flags = process.execArgv.filter((a) => a.startsWith('--experimental-wasm'));
  const colds = [];
  for (let i = 0; i < 5; i++) {
    colds.push(JSON.parse(execFileSync(process.execPath, [...flags, '--input-type=module', '-e', COLD, name], { encoding: 'utf8' })));
  }
  const coldMs = colds.map((c) => c.importToFirstPrediction).sort((a, b) => a - b);
  const procMs = colds.map((c) => c.sinceProcessStart).sort((a, b) => a - b);

  const m = await Model.load(name, { maxBatch: 256 });
  // Batch 1: every test digit once after a warm-up pass (V8 tiers the wasm up on hot code).
  for (let i = 0; i < 500; i++) m.predictSync(xs.subarray((i % n) * 784, (i % n + 1) * 784));
  const lat = [];
  for (let i = 0; i < n; i++) {
    const x = xs.subarray(i * 784, (i + 1) * 784);
    const t0 = performance.now();
    m.predictSync(x);
    lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);

  // Batch 1024: whole calls, including the copy in and out of wasm memory.
  const B = 1024;
  const batch = xs.subarray(0, B * 784);
  m.predictBatchSync(batch, B);
  const reps = name === 'mnist-mlp' ? 20 : 5;
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) m.predictBatchSync(batch, B);
  const perCall = (performance.now() - t0) / reps;

  out.models[name] = {
    coldStartMs: { median: quantile(coldMs, 0.5), min: coldMs[0], sinceProcessStartMedian: quantile(procMs, 0.5) },
    batch1Ms: { median: quantile(lat, 0.5), p99: quantile(lat, 0.99), mean: lat.reduce((a, b) => a + b, 0) / lat.length },
    batch1024: { msPerCall: perCall, imagesPerSecond: (B / perCall) * 1000 },
  };
  m.dispose();
}
console.log(JSON.stringify(out, null, 2));
