// Runs inside headless Chromium (browser.mjs serves the repo and reads the POSTed result).
//   ?mode=warm                      parity + warm timings, like bench.mjs
//   ?mode=cold&rt=<id>&model=<name> one cold start: import → load → first prediction
// The peers are loaded the way a page would: onnxruntime-web's `onnxruntime-web/wasm` bundle,
// tfjs-core's and tfjs-backend-wasm's ES bundles; mdeploy-wasm's index.js (which picks its
// relaxed-SIMD build where WebAssembly.validate accepts it, as in current Chromium).
const t0 = performance.now();
const post = (body) => fetch('/__result', { method: 'POST', body: JSON.stringify(body) });
addEventListener('error', (e) => post({ error: String(e.error?.stack ?? e.message) }));
addEventListener('unhandledrejection', (e) => post({ error: String(e.reason?.stack ?? e.reason) }));

const NM = '/bench/wasm/node_modules/';
const env = {
  // ?index=<file>: another entry beside wasm/index.js (A/B of a change to it, same dist/).
  importMdeploy: () => import(`/wasm/${new URLSearchParams(location.search).get('index') ?? 'index.js'}`),
  importOrt: () => import(`${NM}onnxruntime-web/dist/ort.wasm.bundle.min.mjs`),
  importTfjs: () => Promise.all([import('@tensorflow/tfjs-core'), import(`${NM}@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.fesm.min.js`)]),
  tfjsSetup: (backend) => backend.setWasmPaths(`${NM}@tensorflow/tfjs-backend-wasm/dist/`),
  readOut: async (file) => {
    const r = await fetch(`/bench/wasm/out/${file}`);
    if (!r.ok) throw new Error(`${file}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  },
};

const q = new URLSearchParams(location.search);
// ?marks=1 (cold-public-browser.mjs, with an index= copy from cold-marks.mjs): the steps inside
// Model.load, ms since this script started (the same origin as importToFirstPrediction).
const marks = {};
if (q.get('marks') === '1') globalThis.__mark = (k) => { if (!(k in marks)) marks[k] = performance.now() - t0; };
const { makeRuntimes } = await import('./runtimes-core.mjs');
const RUNTIMES = makeRuntimes(env);
if (q.get('mode') === 'cold') {
  marks['runtimesCore.end'] = performance.now() - t0;
  const m = await RUNTIMES[q.get('rt')].load(q.get('model'));
  marks['load.end'] = performance.now() - t0;
  const probs = await m.run(new Float32Array(784).fill(0.1), 1);
  const t1 = performance.now();
  // Each request's start → response end since navigation (cold-breakdown-browser.mjs prints them
  // with MDEPLOY_COLD_RESOURCES=1): network waits apart from script evaluation.
  const resources = performance.getEntriesByType('resource').filter((e) => !e.name.endsWith('/__result'))
    .map((e) => ({ file: e.name.replace(/^.*\//, ''), start: Math.round(e.startTime * 10) / 10, end: Math.round(e.responseEnd * 10) / 10 }));
  await post({ importToFirstPrediction: t1 - t0, sinceNavigation: t1, p0: probs[0], pageT0: Math.round(t0 * 10) / 10, resources, marks });
} else {
  const { checkParity, timeWarm } = await import('./measure.mjs');
  // The fixed test split: the last 200 digits of each <d>.json, digit 0's first (as wasm/test/support.mjs).
  const xs = new Float32Array(2000 * 784);
  const ys = new Int32Array(2000);
  for (let d = 0; d < 10; d++) {
    const { data } = await (await fetch(`/__digits/${d}.json`)).json();
    xs.set(data.slice(data.length - 200 * 784), d * 200 * 784);
    ys.fill(d, d * 200, (d + 1) * 200);
  }
  const split = { xs, ys, n: 2000 };
  const logs = [];
  const { ok, parity, loaded } = await checkParity(RUNTIMES, split, (s) => logs.push(s));
  if (!ok) {
    await post({ parityFailed: true, parity, logs });
  } else {
    const mdeployInfo = await (await import('/wasm/index.js')).init();
    const { warm, mdeployAsync } = await timeWarm(RUNTIMES, loaded, split, { log: (s) => logs.push(s) });
    await post({ parity, warm, mdeployAsync, logs, userAgent: navigator.userAgent, crossOriginIsolated, mdeployVariant: mdeployInfo?.variant, timerProbeUs: timerResolution() });
  }
}

// The smallest non-zero step of performance.now(): Chromium coarsens it (5 µs when
// crossOriginIsolated, 100 µs otherwise), which bounds what the batch-1 per-call numbers mean.
function timerResolution() {
  let best = Infinity;
  for (let i = 0; i < 200; i++) {
    const a = performance.now();
    let b = a;
    while (b === a) b = performance.now();
    best = Math.min(best, b - a);
  }
  return best * 1000;
}
