// One Chromium cold start of mdeploy-wasm, step by step (cold-breakdown-browser.mjs opens this
// page in a fresh browser and reads what it POSTs). The Chromium twin of cold-breakdown.mjs.
//   ?model=mnist-mlp&variant=relaxed|simd&src=stream|bytes&adapter=1|0[&module=cpu|full][&dist=<folder under wasm/dist/>]
// module: the CPU-only .wasm (default: what Model.load runs a CPU model on) or the full one (with
// the WebGPU engine: what every model ran on before the CPU-only module, and WebGPU models now).
// Steps: WebGPU adapter request (what Model.load's default backend 'auto' asks first; adapter=0
// leaves it out), glue import, the .wasm fetched and compiled (src=stream: one
// WebAssembly.compileStreaming over the response, as the glue's instantiateStreaming does;
// src=bytes: fetch → arrayBuffer, then WebAssembly.compile), instantiate, model fetch, WebCrypto
// content hash, Engine (read + validate + lower + plan), first and second run.
// Wall times only: a page has no process CPU clock.
const t0 = performance.now();
const post = (body) => fetch('/__result', { method: 'POST', body: JSON.stringify(body) });
addEventListener('error', (e) => post({ error: String(e.error?.stack ?? e.message) }));
addEventListener('unhandledrejection', (e) => post({ error: String(e.reason?.stack ?? e.reason) }));

const q = new URLSearchParams(location.search);
const name = q.get('model') ?? 'mnist-mlp';
const variant = q.get('variant') ?? 'relaxed';
const src = q.get('src') ?? 'stream';
const t = {};
let last = t0;
const lap = (k) => {
  const now = performance.now();
  t[k] = now - last;
  last = now;
};
let adapterFound = null;
if (q.get('adapter') !== '0') {
  adapterFound = navigator.gpu ? (await navigator.gpu.requestAdapter()) !== null : false;
  lap('adapter');
}
const { contentHash } = await import('/wasm/index.js');
// dist: another build's glue + .wasm (A/B of a build change; its simd128 file only).
const dist = q.get('dist') === null ? '/wasm/dist/' : `/wasm/dist/${q.get('dist').replace(/[^a-z0-9-]/g, '')}/`;
const stem = q.get('module') === 'full' ? 'mdeploy_wasm' : 'mdeploy_wasm_cpu';
const glue = await import(`${dist}${stem}.js`);
lap('importJs');
const wasmUrl = `${dist}${stem}${variant === 'relaxed' ? '_relaxed.wasm' : '_bg.wasm'}`;
let module;
if (src === 'stream') {
  module = await WebAssembly.compileStreaming(fetch(wasmUrl));
  lap('fetchAndCompile');
} else {
  const buf = await (await fetch(wasmUrl)).arrayBuffer();
  lap('fetchWasm');
  module = await WebAssembly.compile(buf);
  lap('compile');
}
glue.initSync({ module });
lap('instantiate');
const model = new Uint8Array(await (await fetch(`/wasm/models/${name}.mdm`)).arrayBuffer());
lap('fetchModel');
const { engineSteps } = await import('./cold-steps.mjs');
last = performance.now(); // the helper's import is not a step of a real start
await engineSteps(glue, contentHash, model, lap);
const r2 = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 100) / 100]));
// Where the requests went (MDEPLOY_COLD_RESOURCES=1 prints them): each resource's request start
// and response end since navigation, so network waits and script evaluation can be told apart.
const resources = performance.getEntriesByType('resource').filter((e) => !e.name.endsWith('/__result'))
  .map((e) => ({ file: e.name.replace(/^.*\//, ''), start: Math.round(e.startTime * 10) / 10, end: Math.round(e.responseEnd * 10) / 10 }));
await post({ model: name, variant, src, adapterFound, resources, pageT0: Math.round(t0 * 10) / 10, ...r2(t), toFirstRun: Math.round((Object.values(t).reduce((a, b) => a + b, 0) - t.secondRun) * 100) / 100, sinceNavigation: Math.round(t0 * 100) / 100 });
