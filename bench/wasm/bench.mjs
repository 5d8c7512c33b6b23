// mdeploy-wasm vs onnxruntime-web (wasm EP) vs tfjs-backend-wasm, in one Node process, on the same
// two models (exact weights) and the same 2,000 fixed-split test digits. Run through run.sh, which
// builds the package and writes the peers' model files first:
//   node bench/wasm/bench.mjs            → markdown on stdout, everything in out/results.json
// Parity first: every peer's argmax must equal mdeploy-wasm's on all 2,000 digits and every
// probability must agree within 1e-4, or the bench exits 1 before timing anything.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { testSplit } from '../../wasm/test/support.mjs';
import { IDS, MODELS, ROUNDS, TOL, checkParity, quantile, timeWarm } from './measure.mjs';
import { OUT, RUNTIMES, pkgVersion } from './runtimes.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NM = `${HERE}node_modules/`;

const log = (s) => console.error(s);
const split = testSplit();
const { n } = split;

// ---- parity ----------------------------------------------------------------------------------
const { ok: parityOk, parity, loaded } = await checkParity(RUNTIMES, split, log);
if (!parityOk) {
  writeFileSync(`${OUT}parity.json`, JSON.stringify(parity, null, 2));
  console.error(`bench.mjs: parity FAILED (details in ${OUT}parity.json): a peer does not compute what mdeploy-wasm computes, so no speed is reported`);
  process.exit(1);
}

// ---- warm timings ----------------------------------------------------------------------------
const { warm, mdeployAsync } = await timeWarm(RUNTIMES, loaded, split, { log, cpuUsage: process.cpuUsage });

// ---- cold start: fresh processes, runtimes interleaved so load spikes hit all of them --------
const cold = {};
for (const name of MODELS) {
  cold[name] = Object.fromEntries(IDS.map((id) => [id, []]));
  for (let r = 0; r < 5; r++) {
    for (const id of IDS) {
      const out = execFileSync(process.execPath, [`${HERE}cold.mjs`, id, name], { encoding: 'utf8' });
      cold[name][id].push(JSON.parse(out.trim().split('\n').pop()));
    }
  }
  for (const id of IDS) {
    const a = cold[name][id].map((c) => c.importToFirstPrediction).sort((x, y) => x - y);
    const b = cold[name][id].map((c) => c.sinceProcessStart).sort((x, y) => x - y);
    cold[name][id] = { medianMs: quantile(a, 0.5), minMs: a[0], sinceProcessStartMedianMs: quantile(b, 0.5) };
  }
}

// ---- shipped bytes: what a browser page downloads to run the model on the CPU ------------------
// mdeploy: the CPU-only module's simd128 variant (what Model.load fetches for a CPU model in Node 20
// and browsers without relaxed SIMD; the relaxed one is the same size ±2 %) and the JS index.js
// imports (trust.js too), unminified, as published. onnxruntime-web: the `onnxruntime-web/wasm`
// entry (bundle with its Emscripten glue) + its one CPU wasm. tfjs: tfjs-core's and the wasm
// backend's minified ES bundles + the single-thread SIMD wasm.
const SHIPPED = {
  mdeploy: [`${ROOT}wasm/index.js`, `${ROOT}wasm/trust.js`, `${ROOT}wasm/dist/mdeploy_wasm_cpu.js`, `${ROOT}wasm/dist/mdeploy_wasm_cpu_bg.wasm`],
  ort: [`${NM}onnxruntime-web/dist/ort.wasm.bundle.min.mjs`, `${NM}onnxruntime-web/dist/ort-wasm-simd-threaded.wasm`],
  tfjs: [`${NM}@tensorflow/tfjs-core/dist/tf-core.fesm.min.js`, `${NM}@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.fesm.min.js`, `${NM}@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm`],
};
const MODEL_FILES = {
  mdeploy: (name) => [`${ROOT}wasm/models/${name}.mdm`],
  ort: (name) => [`${OUT}${name}.onnx`],
  tfjs: (name) => [`${OUT}${name}.tfjs.json`, `${OUT}${name}.tfjs.bin`],
};
const bytes = (files) => {
  let raw = 0, gz = 0;
  for (const f of files) {
    const b = readFileSync(f);
    raw += b.length;
    gz += gzipSync(b, { level: 9 }).length;
  }
  return { raw, gzip: gz };
};
const sizes = Object.fromEntries(IDS.map((id) => [id, {
  runtime: bytes(SHIPPED[id]),
  wasm: bytes(SHIPPED[id].filter((f) => f.endsWith('.wasm'))),
  js: bytes(SHIPPED[id].filter((f) => !f.endsWith('.wasm'))),
  models: Object.fromEntries(MODELS.map((name) => [name, bytes(MODEL_FILES[id](name))])),
  files: SHIPPED[id].map((f) => f.replace(ROOT, '')),
}]));

// ---- report ----------------------------------------------------------------------------------
const versions = { mdeploy: pkgVersion('mdeploy-wasm'), ort: pkgVersion('onnxruntime-web'), tfjs: pkgVersion('@tensorflow/tfjs-backend-wasm') };
const results = { node: process.version, cpu: cpus()[0]?.model, versions, parity, warm, mdeployAsync, cold, sizes };
writeFileSync(`${OUT}results.json`, JSON.stringify(results, null, 2));

const fmt = (v, d = 0) => v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const kb = (b) => `${fmt(b / 1024, b < 10240 ? 1 : 0)} KB`;
const rat = (x) => `${x >= 10 ? fmt(x, 0) : x.toFixed(2)}×`;
const head = `| model | metric | mdeploy-wasm ${versions.mdeploy} | onnxruntime-web ${versions.ort} | × | tfjs-wasm ${versions.tfjs} | × |`;
const sep = '|---|---|---:|---:|---:|---:|---:|';
const lines = [head, sep];
// lowerBetter: ratio = peer / mdeploy; else mdeploy / peer. Either way > 1 means mdeploy is better.
// `cell(id)` overrides what is shown; the ratio is always computed from get(id).
const row = (model, metric, get, show, lowerBetter, cell = (id, v) => show(v)) => {
  const v = Object.fromEntries(IDS.map((id) => [id, get(id)]));
  const r = (id) => rat(lowerBetter ? v[id] / v.mdeploy : v.mdeploy / v[id]);
  lines.push(`| ${model} | ${metric} | ${cell('mdeploy', v.mdeploy)} | ${cell('ort', v.ort)} | ${r('ort')} | ${cell('tfjs', v.tfjs)} | ${r('tfjs')} |`);
};
for (const name of MODELS) {
  const M = name === 'mnist-mlp' ? 'MLP' : 'CNN';
  const w = (id) => warm[name][id];
  row(M, 'batch 1, median (µs)', (id) => w(id).batch1.medianUs, (x) => fmt(x, 1), true);
  row(M, 'batch 1, p99 (µs)', (id) => w(id).batch1p99.p99Us, (x) => fmt(x, 1), true);
  row(M, 'batch 64 (images/s)', (id) => w(id).batch64.imagesPerSecond, (x) => fmt(x), false);
  row(M, 'batch 1024 (images/s)', (id) => w(id).batch1024.imagesPerSecond, (x) => fmt(x), false);
  row(M, 'cold start, import → 1st prediction, median of 5 (ms)', (id) => cold[name][id].medianMs, (x) => fmt(x, 1), true);
  row(M, 'model file, raw / gzip (× on gzip)', (id) => sizes[id].models[name].gzip, kb, true,
    (id) => `${kb(sizes[id].models[name].raw)} / ${kb(sizes[id].models[name].gzip)}`);
}
row('both', 'runtime shipped (wasm + JS), raw', (id) => sizes[id].runtime.raw, kb, true);
row('both', 'runtime shipped (wasm + JS), gzip', (id) => sizes[id].runtime.gzip, kb, true);
row('both', 'of which wasm / JS, gzip (× on wasm)', (id) => sizes[id].wasm.gzip, kb, true,
  (id) => `${kb(sizes[id].wasm.gzip)} / ${kb(sizes[id].js.gzip)}`);

const parityLine = MODELS.map((name) => `${name}: ` + ['ort', 'tfjs'].map((id) => `${RUNTIMES[id].label} max |Δp| ${parity[name][id].maxAbsDiff.toExponential(1)}, argmax ${parity[name][id].argmaxAgree}/${n}`).join('; ') + ` (accuracy ${(100 * parity[name].mdeploy.accuracy).toFixed(2)} %)`).join('. ');
console.log(`${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, Node ${process.version}, ${cpus().length} cores, ${cpus()[0]?.model}`);
console.log('');
console.log(lines.join('\n'));
console.log('');
console.log(`× = how many times better mdeploy-wasm is (peer time or bytes / ours; our throughput / peer's): above 1 mdeploy wins.`);
console.log(`Parity vs mdeploy-wasm on the ${n} test digits (tolerance ${TOL}): ${parityLine}.`);
console.log(`Warm rows: the better of ${ROUNDS} interleaved rounds. mdeploy-wasm's batch 1 uses predictSync; its Promise API (await model.predict) measured ${MODELS.map((name) => `${fmt(mdeployAsync[name].medianUs, 1)} µs (${name})`).join(', ')} median. CPU time / wall time at batch 1024: ${MODELS.map((name) => `${name} ` + IDS.map((id) => `${RUNTIMES[id].label} ${warm[name][id].batch1024.cpuOverWall.toFixed(2)}`).join(', ')).join('; ')} (≈ 1: one thread).`);
console.log(`Cold start min of 5 (ms): ${MODELS.map((name) => `${name} ` + IDS.map((id) => `${RUNTIMES[id].label} ${fmt(cold[name][id].minMs, 1)}`).join(', ')).join('; ')}. Process start → 1st prediction, median: ${MODELS.map((name) => `${name} ` + IDS.map((id) => `${RUNTIMES[id].label} ${fmt(cold[name][id].sinceProcessStartMedianMs, 0)}`).join(', ')).join('; ')}.`);
