// Runs inside headless Chromium (int8-ab.mjs serves the repository and reads the POSTed result):
// the int8 models against their f32 models in the npm package (mdeploy-wasm's index.js picks
// the relaxed-SIMD build here, as in any current Chromium), one thread, interleaved round by
// round. ?pkgs=/wasm/,/bench/wasm/out/base/wasm/ times every listed package copy in the same
// rounds (A/B of a kernel change: one index.js per copy, each with its own runtime).
const post = (body) => fetch('/__result', { method: 'POST', body: JSON.stringify(body) });
addEventListener('error', (e) => post({ error: String(e.error?.stack ?? e.message) }));
addEventListener('unhandledrejection', (e) => post({ error: String(e.reason?.stack ?? e.reason) }));

const q = new URLSearchParams(location.search);
const PKGS = (q.get('pkgs') ?? '/wasm/').split(',');
const ROUNDS = Number(q.get('rounds') ?? 10);
const MODELS = (q.get('models') ?? 'mnist-mlp,mnist-mlp-int8,mnist-cnn,mnist-cnn-int8').split(',');

// The fixed test split's digits (the last 200 of each <d>.json), 1,024 of them for the batch.
const xs = new Float32Array(2000 * 784);
for (let d = 0; d < 10; d++) {
  const { data } = await (await fetch(`/__digits/${d}.json`)).json();
  xs.set(data.slice(data.length - 200 * 784), d * 200 * 784);
}
const BATCH = 1024;
const ONE = 200;
const batch = xs.subarray(0, BATCH * 784);

const runs = [];
for (const pkg of PKGS) {
  const lib = await import(`${pkg}index.js`);
  // ?variant=simd times the simd128 build where the engine would pick the relaxed one.
  const info = await lib.init(q.get('variant') ? { variant: q.get('variant') } : {});
  for (const entry of MODELS) {
    // A path (e.g. /bench/out/f32-binary-in-256x2.mdm, made by bench/binary-f32.sh) is fetched
    // as it is and named by its file stem; a bare name is a file of /models/.
    const path = entry.includes('/') ? entry : `/models/${entry}.mdm`;
    const name = entry.includes('/') ? entry.slice(entry.lastIndexOf('/') + 1).replace(/\.mdm$/, '') : entry;
    const res = await fetch(path);
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const m = await lib.Model.load(bytes, { maxBatch: BATCH, backend: 'cpu' });
    runs.push({ pkg, variant: info.variant, kernel: info.kernel, name, m, b1024: [], b1: [] });
  }
}
// Warm-up: every plan once at both sizes (tier-up, buffers).
for (const r of runs) {
  r.m.predictBatchSync(batch, BATCH);
  for (let i = 0; i < 20; i++) r.m.predictSync(xs.subarray(i * 784, (i + 1) * 784));
}
// ?copies=1: what the package's Engine.run does around the plan at batch 1024, without the plan
// (as the generated glue does it: malloc, the 3.2 MB into the module's memory, the 10 outputs'
// slice out, the frees), timed in the same rounds in a second instance of the first package's
// CPU-only module (package-path.mjs measures the same in Node).
let copies = null;
if (q.get('copies')) {
  const glue = await import(`${PKGS[0]}dist/mdeploy_wasm_cpu.js`);
  const file = runs[0].variant === 'relaxed' ? 'mdeploy_wasm_cpu_relaxed.wasm' : 'mdeploy_wasm_cpu_bg.wasm';
  const wasm = await glue.default({ module_or_path: `${PKGS[0]}dist/${file}` });
  const ol = 10;
  const once = () => {
    const p = wasm.__wbindgen_malloc(batch.length * 4, 4) >>> 0;
    new Float32Array(wasm.memory.buffer, p, batch.length).set(batch);
    const o = wasm.__wbindgen_malloc(BATCH * ol * 4, 4) >>> 0;
    const out = new Float32Array(wasm.memory.buffer, o, BATCH * ol).slice();
    wasm.__wbindgen_free(o, BATCH * ol * 4, 4);
    wasm.__wbindgen_free(p, batch.length * 4, 4);
    return out;
  };
  once();
  copies = { once, t: [] };
}
for (let round = 0; round < ROUNDS; round++) {
  if (copies) {
    const t = performance.now();
    copies.once();
    copies.t.push(((performance.now() - t) * 1000) / BATCH);
  }
  for (const r of runs) {
    let t = performance.now();
    r.m.predictBatchSync(batch, BATCH);
    r.b1024.push(((performance.now() - t) * 1000) / BATCH);
    t = performance.now();
    for (let i = 0; i < ONE; i++) r.m.predictSync(xs.subarray(i * 784, (i + 1) * 784));
    r.b1.push(((performance.now() - t) * 1000) / ONE);
  }
}
// FNV-1a over the f32 bits of the 2,000 test digits' outputs, as core/tests/plan_int8.rs and
// plan_nbit.rs print it (digit-major order, the same xs): an integer model's digest must equal
// the native one (same bits in Chromium's relaxed build as on every native set).
const digest = (m) => {
  let h = 0xcbf29ce484222325n;
  for (let at = 0; at < 2000; at += BATCH) {
    const n = Math.min(BATCH, 2000 - at);
    const out = m.predictBatchSync(xs.subarray(at * 784, (at + n) * 784), n);
    for (const v of new Uint32Array(Float32Array.from(out.probs).buffer)) h = ((h ^ BigInt(v)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
};
const stats = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return { min: +s[0].toFixed(3), median: +s[s.length >> 1].toFixed(3) };
};
await post({
  userAgent: navigator.userAgent,
  copies: copies && stats(copies.t),
  rows: runs.map((r) => ({ pkg: r.pkg, variant: r.variant, kernel: r.kernel, model: r.name, batch1024: stats(r.b1024), batch1: stats(r.b1), digest: digest(r.m) })),
});
