// The browser start-up path of index.js (DESIGN.md, "Cold start"), in headless Chromium: the
// .wasm's streaming compile starts before the glue's import and Model.load fetches the model
// while it compiles. Checks that this path is the one taken (the .wasm is requested before the
// glue and downloaded once: the glue does not fetch it again; the model requested while the
// .wasm is still downloading), that its answers are the native core's on 50 real test digits,
// and that a server sending the .wasm with the wrong Content-Type (no streaming compile possible)
// still loads through the fallback with the same answers. And which module a page fetches
// (DESIGN.md, "The CPU-only module"): a model that will not use an adapter only the CPU-only .wasm
// and glue, a WebGPU model only the full ones, and the GPU path still answers like the native core.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { argmax, launchChromium, CHROMIUM, CHROMIUM_QUIET as QUIET, nativeRef, testSplit, WASM_DIR } from './support.mjs';
import { serve } from './browser/serve.mjs';

const COUNT = 50;
const ref = nativeRef();
const { xs } = testSplit();
let browser;
let gpuBrowser; // WebGPU on (SwiftShader), as test/browser.test.mjs

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: run scripts/bootstrap.sh (apt-get install chromium chromium-driver) or set MDEPLOY_CHROMIUM`);
  browser = await launchChromium(chromium, { executablePath: CHROMIUM, headless: true, args: QUIET });
  gpuBrowser = await launchChromium(chromium, { executablePath: CHROMIUM, headless: true, args: [...QUIET, '--enable-unsafe-webgpu'] });
});
after(async () => {
  await browser?.close();
  await gpuBrowser?.close();
});

// One fresh page on a server with `wasmType`: Model.load('mnist-mlp', options) then COUNT digits,
// one by one (predict) or as one batch (predictBatch, for the GPU).
// `initScript`: run in the page before its own scripts (context.addInitScript); whatever it
// leaves in `window.__order` is returned as `order`.
async function loadAndRun(wasmType, delayMs = () => 0, { options = { backend: 'cpu' }, batch = false, on = browser, initScript = null } = {}) {
  const requests = [];
  const server = await serve(WASM_DIR, xs.subarray(0, COUNT * 784), { wasmType, delayMs, seen: (p) => requests.push(p) });
  const context = await on.newContext();
  try {
    if (initScript !== null) await context.addInitScript(initScript);
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    const out = await page.evaluate(async ([count, options, batch]) => {
      const { Model } = await import('/index.js');
      const all = new Float32Array(await (await fetch('/split.bin')).arrayBuffer());
      const m = await Model.load('mnist-mlp', options);
      const probs = [];
      let backends = new Set();
      if (batch) {
        const r = await m.predictBatch(all.subarray(0, count * 784), count);
        probs.push(...r.probs);
        backends.add(r.backend);
      } else {
        for (let i = 0; i < count; i++) {
          const r = await m.predict(all.subarray(i * 784, (i + 1) * 784));
          probs.push(...r.probs);
          backends.add(r.backend);
        }
      }
      const info = m.info();
      return { probs, variant: info.variant, wasmModule: info.wasmModule, backend: info.backend, ran: [...backends], order: window.__order ?? null };
    }, [COUNT, options, batch]);
    return { ...out, errors, requests, wasmFetches: requests.filter((p) => p.endsWith('.wasm')), glues: requests.filter((p) => /^\/dist\/mdeploy_wasm.*\.js$/.test(p)) };
  } finally {
    await context.close();
    await server.close();
  }
}

function sameAsNative(probs) {
  const r = ref.models['mnist-mlp'];
  let worst = 0;
  for (let i = 0; i < COUNT; i++) {
    assert.equal(argmax(probs, i * 10, 10), argmax(r.probs, i * 10, 10), `digit ${i}: argmax differs from the native core`);
    for (let j = 0; j < 10; j++) worst = Math.max(worst, Math.abs(probs[i * 10 + j] - r.probs[i * 10 + j]));
  }
  assert.ok(worst <= 1e-5, `max |Δp| vs native ${worst} > 1e-5`);
}

const CPU_WASM = '/dist/mdeploy_wasm_cpu_relaxed.wasm';
const CPU_GLUE = '/dist/mdeploy_wasm_cpu.js';
const FULL_WASM = '/dist/mdeploy_wasm_relaxed.wasm';
const FULL_GLUE = '/dist/mdeploy_wasm.js';

test('Chromium: the .wasm is downloaded once, compiled while streaming, and answers like the native core', async () => {
  const got = await loadAndRun('application/wasm');
  assert.deepEqual(got.errors, []);
  assert.equal(got.variant, 'relaxed', 'Chromium accepts relaxed SIMD, so index.js picks that build');
  assert.deepEqual(got.wasmFetches, [CPU_WASM], "one download, of the CPU-only module ('cpu'): the early streaming compile is what the glue instantiated");
  assert.deepEqual(got.glues, [CPU_GLUE], 'only the CPU-only glue is imported');
  assert.equal(got.wasmModule, 'cpu-only');
  assert.ok(!got.requests.includes('/trust.js'), `trust.js is fetched only for a load with trustedKeys or decryptionKey: ${got.requests.join(' ')}`);
  const at = (p) => got.requests.indexOf(p);
  assert.ok(at(CPU_WASM) < at(CPU_GLUE), `the .wasm is requested before the glue, so they overlap: ${got.requests.join(' ')}`);
  sameAsNative(got.probs);
});

test("Chromium without WebGPU: 'auto' finds no adapter and fetches the CPU-only module only", async () => {
  const got = await loadAndRun('application/wasm', undefined, { options: {} });
  assert.deepEqual(got.errors, []);
  assert.deepEqual(got.wasmFetches, [CPU_WASM]);
  assert.deepEqual(got.glues, [CPU_GLUE]);
  assert.equal(got.wasmModule, 'cpu-only');
  assert.deepEqual(got.ran, ['cpu']);
  sameAsNative(got.probs);
});

test("Chromium with WebGPU (SwiftShader): 'webgpu' fetches the full module only and runs on the GPU like the native core", async () => {
  const got = await loadAndRun('application/wasm', undefined, { options: { backend: 'webgpu' }, batch: true, on: gpuBrowser });
  assert.deepEqual(got.errors, []);
  assert.deepEqual(got.wasmFetches, [FULL_WASM], 'the WebGPU-capable .wasm, once, and not the CPU-only one');
  assert.deepEqual(got.glues, [FULL_GLUE]);
  assert.equal(got.wasmModule, 'full');
  assert.equal(got.backend, 'webgpu');
  assert.deepEqual(got.ran, ['webgpu']);
  sameAsNative(got.probs);
});

test("Chromium with WebGPU (SwiftShader): 'auto' leaves a fallback adapter alone (CPU-only module); allowFallbackAdapter takes it (full module)", async () => {
  const cpu = await loadAndRun('application/wasm', undefined, { options: {}, on: gpuBrowser });
  assert.deepEqual(cpu.errors, []);
  assert.deepEqual(cpu.wasmFetches, [CPU_WASM], "'auto' never uses a fallback adapter unless told to, so no WebGPU code is fetched");
  assert.equal(cpu.wasmModule, 'cpu-only');
  assert.equal(cpu.backend, 'cpu');
  sameAsNative(cpu.probs);

  const gpu = await loadAndRun('application/wasm', undefined, { options: { allowFallbackAdapter: true }, batch: true, on: gpuBrowser });
  assert.deepEqual(gpu.errors, []);
  // The CPU-only module starts before the adapter is known (no wait added); the model is on the full one.
  assert.ok(gpu.wasmFetches.includes(FULL_WASM), `the full module is fetched for an adapter 'auto' accepts: ${gpu.wasmFetches.join(', ')}`);
  assert.equal(gpu.wasmModule, 'full');
  assert.equal(gpu.backend, 'webgpu');
  sameAsNative(gpu.probs);
});

test('Chromium: a server sending the .wasm as application/octet-stream still loads (fallback), same answers', async () => {
  const got = await loadAndRun('application/octet-stream');
  assert.deepEqual(got.errors, []);
  assert.ok(got.wasmFetches.length >= 2, `the fallback downloads again: ${got.wasmFetches.join(', ')}`);
  assert.ok(got.wasmFetches.every((p) => p === CPU_WASM));
  sameAsNative(got.probs);
});

test('Chromium: Model.load requests the model while the .wasm is still downloading', async () => {
  // The .wasm's answer is held for 1.5 s: the model's request must arrive meanwhile, not after.
  let wasmAnswered = false;
  let modelAsked = null;
  const got = await loadAndRun('application/wasm', (p) => {
    if (p.endsWith('.mdm')) modelAsked ??= !wasmAnswered;
    if (!p.endsWith('.wasm')) return 0;
    setTimeout(() => { wasmAnswered = true; }, 1500);
    return 1500;
  });
  assert.deepEqual(got.errors, []);
  assert.equal(modelAsked, true, `the model was requested only after the .wasm arrived: ${got.requests.join(' ')}`);
  sameAsNative(got.probs);
});

test("Chromium with WebGPU (SwiftShader): under 'auto' the .wasm and the model are requested before the adapter", async () => {
  // The call to requestAdapter() holds the page's main thread for 1-4 ms on a cold start
  // (DESIGN.md, "The public path, step by step"): both downloads go out first.
  // The fetches and the adapter call are recorded in the order the page makes them.
  const got = await loadAndRun('application/wasm', () => 0, {
    options: { backend: 'auto' },
    on: gpuBrowser,
    initScript: () => {
      window.__order = [];
      const f = window.fetch;
      window.fetch = (u, ...rest) => { window.__order.push(`fetch ${new URL(String(u), location.href).pathname}`); return f(u, ...rest); };
      const gpu = navigator.gpu;
      if (gpu) {
        const ra = gpu.requestAdapter.bind(gpu);
        gpu.requestAdapter = (...a) => { window.__order.push('requestAdapter'); return ra(...a); };
      }
    },
  });
  assert.deepEqual(got.errors, []);
  const at = (e) => got.order.indexOf(e);
  assert.ok(at('requestAdapter') >= 0, `'auto' asks for an adapter where navigator.gpu exists: ${got.order.join(', ')}`);
  assert.ok(at(`fetch ${CPU_WASM}`) >= 0 && at(`fetch ${CPU_WASM}`) < at('requestAdapter'), `the CPU-only .wasm is requested before the adapter: ${got.order.join(', ')}`);
  assert.ok(at('fetch /models/mnist-mlp.mdm') >= 0 && at('fetch /models/mnist-mlp.mdm') < at('requestAdapter'), `the model is requested before the adapter: ${got.order.join(', ')}`);
  assert.equal(got.wasmModule, 'cpu-only', "'auto' leaves SwiftShader (a fallback adapter) alone");
  sameAsNative(got.probs);
});
