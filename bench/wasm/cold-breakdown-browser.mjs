// Where a Chromium cold start of mdeploy-wasm goes, step by step: fresh headless Chromium per
// page (own profile: no HTTP or code cache), configurations interleaved round by round so load
// spikes hit all of them, median per step.
//   node bench/wasm/cold-breakdown-browser.mjs [model=mnist-mlp] [runs=5]   → markdown on stdout
//   MDEPLOY_COLD_BASELINE=<file beside wasm/index.js>: also time the public path with that entry
//   (an A/B of a change to index.js against the same dist/); MDEPLOY_COLD_STEPS=0: the public
//   path only (more rounds of the A/B in the same time)
// Every configuration uses the CPU-only module (what Model.load runs a CPU model on) except the
// one marked "full module" (the WebGPU-capable .wasm every model ran on before).
// Steps (cold-breakdown-page.mjs): adapter request, JS import, .wasm fetch + compile (streaming
// or from bytes), instantiate, model fetch, hash, Engine, first and second run. The last rows
// time the public path, Model.load → first predictSync (browser.html?mode=cold, as browser.mjs).
import { serveRepo } from './browser-serve.mjs';
import { quantile } from './measure.mjs';

const [name = 'mnist-mlp', runsArg = '5'] = process.argv.slice(2);
const runs = Number(runsArg);
const STEP_PAGE = '/bench/wasm/cold-breakdown.html';
const CONFIGS = process.env.MDEPLOY_COLD_STEPS === '0' ? [] : [
  { id: 'streaming', query: 'src=stream', args: [] },
  { id: 'streaming, full module (WebGPU code in)', query: 'src=stream&module=full', args: [] },
  { id: 'from bytes', query: 'src=bytes', args: [] },
  { id: 'streaming, no adapter request', query: 'src=stream&adapter=0', args: [] },
  { id: 'streaming, WebGPU on (SwiftShader adapter)', query: 'src=stream', args: ['--enable-unsafe-webgpu'] },
  { id: 'streaming, --no-wasm-lazy-compilation', query: 'src=stream', args: ['--js-flags=--no-wasm-lazy-compilation'] },
];
// MDEPLOY_COLD_ONLY=0,5: only those configurations (indexes into the list above): fewer fresh
// browsers per round on a shared machine.
if (process.env.MDEPLOY_COLD_ONLY) {
  const keep = new Set(process.env.MDEPLOY_COLD_ONLY.split(',').map(Number));
  CONFIGS.splice(0, CONFIGS.length, ...CONFIGS.filter((_, i) => keep.has(i)));
}
// MDEPLOY_COLD_DISTS=a,b: the same steps (simd128 build, streaming) for other builds' folders
// under wasm/dist/ (e.g. one built with `--features cpu-only`, DESIGN.md "Cold start").
for (const d of process.env.MDEPLOY_COLD_STEPS === '0' ? [] : (process.env.MDEPLOY_COLD_DISTS ?? '').split(',').filter(Boolean)) {
  CONFIGS.push({ id: `dist ${d} (simd128), streaming`, query: `src=stream&dist=${d}`, variant: 'simd', args: [] });
  // MDEPLOY_COLD_DIST_JSFLAGS='--flag ...': each dist once more under those V8 flags (probes such
  // as --wasm-tiering-budget=1000000000: no tier-up during the load; DESIGN.md, "What a cold
  // Engine costs V8").
  const flags = process.env.MDEPLOY_COLD_DIST_JSFLAGS;
  if (flags) CONFIGS.push({ id: `dist ${d} (simd128), streaming, ${flags}`, query: `src=stream&dist=${d}`, variant: 'simd', args: [`--js-flags=${flags}`] });
}
// MDEPLOY_COLD_INDEX=<entry beside wasm/index.js>: time that entry instead of index.js (with
// MDEPLOY_COLD_BASELINE, an A/B of two builds, each a folder holding index.js, dist/ and models/).
const mainIndex = process.env.MDEPLOY_COLD_INDEX ?? 'index.js';
const PUBLIC = [{ id: `Model.load → 1st prediction (${mainIndex})`, index: mainIndex }];
if (process.env.MDEPLOY_COLD_BASELINE) PUBLIC.push({ id: `Model.load → 1st prediction (${process.env.MDEPLOY_COLD_BASELINE})`, index: process.env.MDEPLOY_COLD_BASELINE });

const server = await serveRepo();
const got = Object.fromEntries([...CONFIGS, ...PUBLIC].map((c) => [c.id, []]));
try {
  for (let r = 0; r < runs; r++) {
    for (const c of CONFIGS) got[c.id].push(await server.visit(`${STEP_PAGE}?model=${name}&variant=${c.variant ?? 'relaxed'}&${c.query}`, 60_000, c.args));
    for (const c of PUBLIC) got[c.id].push(await server.visit(`/bench/wasm/browser.html?mode=cold&rt=mdeploy&model=${name}&index=${c.index}`, 60_000));
    process.stderr.write(`round ${r + 1}/${runs}\n`);
  }
} finally {
  server.close();
}

const med = (xs) => quantile(xs.slice().sort((a, b) => a - b), 0.5);
const STEPS = ['adapter', 'importJs', 'fetchAndCompile', 'fetchWasm', 'compile', 'instantiate', 'fetchModel', 'hash', 'loadAndPlan', 'firstRun', 'secondRun', 'toFirstRun'];
const fmt = (v) => (v === undefined ? '' : v.toFixed(1));
console.log(`${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${name}, relaxed-SIMD build unless said, median of ${runs} fresh headless Chromium pages (ms, wall); load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log('');
if (CONFIGS.length > 0) {
  console.log(`| step | ${CONFIGS.map((c) => c.id).join(' | ')} |`);
  console.log(`|---|${CONFIGS.map(() => '---:').join('|')}|`);
  for (const s of STEPS) {
    const vals = CONFIGS.map((c) => (got[c.id][0][s] === undefined ? undefined : med(got[c.id].map((x) => x[s]))));
    if (vals.every((v) => v === undefined)) continue;
    console.log(`| ${s === 'toFirstRun' ? '**page start → 1st run**' : s} | ${vals.map(fmt).join(' | ')} |`);
  }
  console.log(`| adapter found | ${CONFIGS.map((c) => String(got[c.id][0].adapterFound)).join(' | ')} |`);
  console.log('');
}
// MDEPLOY_COLD_RESOURCES=1: the requests of the first configuration and the public path, page by page (ms since navigation:
// request start → response end), to tell network waits from script evaluation.
if (process.env.MDEPLOY_COLD_RESOURCES === '1') {
  for (const c of [...CONFIGS.slice(0, 1), ...PUBLIC]) {
    for (const [i, r] of got[c.id].entries()) {
      console.log(`page ${i + 1} (${c.id}): script t0 ${r.pageT0}; ${r.resources.map((e) => `${e.file} ${e.start}→${e.end}`).join(', ')}`);
    }
  }
  console.log('');
}
for (const c of PUBLIC) {
  const xs = got[c.id].map((x) => x.importToFirstPrediction);
  console.log(`${c.id}: median ${fmt(med(xs))} ms (all: ${xs.map(fmt).join(', ')})`);
}
