// The browser start-up path of index.js (DESIGN.md, "Cold start"), in headless Chromium: the
// .wasm's streaming compile starts before the glue's import and Model.load fetches the model
// while it compiles. Checks that this path is the one taken (the .wasm is requested before the
// glue and downloaded once: the glue does not fetch it again; the model requested while the
// .wasm is still downloading), that its answers are the native core's on 50 real test digits,
// and that a server sending the .wasm with the wrong Content-Type (no streaming compile possible)
// still loads through the fallback with the same answers.
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

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: run scripts/bootstrap.sh (apt-get install chromium chromium-driver) or set MDEPLOY_CHROMIUM`);
  browser = await launchChromium(chromium, { executablePath: CHROMIUM, headless: true, args: QUIET });
});
after(async () => browser?.close());

// One fresh page on a server with `wasmType`: Model.load('mnist-mlp') then COUNT digits one by one.
async function loadAndRun(wasmType, delayMs = () => 0) {
  const requests = [];
  const server = await serve(WASM_DIR, xs.subarray(0, COUNT * 784), { wasmType, delayMs, seen: (p) => requests.push(p) });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    const out = await page.evaluate(async (count) => {
      const { Model } = await import('/index.js');
      const all = new Float32Array(await (await fetch('/split.bin')).arrayBuffer());
      const m = await Model.load('mnist-mlp', { backend: 'cpu' });
      const probs = [];
      for (let i = 0; i < count; i++) probs.push(...m.predictSync(all.subarray(i * 784, (i + 1) * 784)).probs);
      return { probs, variant: m.info().variant };
    }, COUNT);
    return { ...out, errors, requests, wasmFetches: requests.filter((p) => p.endsWith('.wasm')) };
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

test('Chromium: the .wasm is downloaded once, compiled while streaming, and answers like the native core', async () => {
  const got = await loadAndRun('application/wasm');
  assert.deepEqual(got.errors, []);
  assert.equal(got.variant, 'relaxed', 'Chromium accepts relaxed SIMD, so index.js picks that build');
  assert.deepEqual(got.wasmFetches, ['/dist/mdeploy_wasm_relaxed.wasm'], 'one download: the early streaming compile is what the glue instantiated');
  const at = (p) => got.requests.indexOf(p);
  assert.ok(at('/dist/mdeploy_wasm_relaxed.wasm') < at('/dist/mdeploy_wasm.js'), `the .wasm is requested before the glue, so they overlap: ${got.requests.join(' ')}`);
  sameAsNative(got.probs);
});

test('Chromium: a server sending the .wasm as application/octet-stream still loads (fallback), same answers', async () => {
  const got = await loadAndRun('application/octet-stream');
  assert.deepEqual(got.errors, []);
  assert.ok(got.wasmFetches.length >= 2, `the fallback downloads again: ${got.wasmFetches.join(', ')}`);
  assert.ok(got.wasmFetches.every((p) => p === '/dist/mdeploy_wasm_relaxed.wasm'));
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
