// A bundler, for real: Vite builds test/vite-app (which imports the package by name), the output
// folder is served from 127.0.0.1 and opened in headless Chromium, and its answers on real test
// digits must equal the native core's. This proves the .wasm and .mdm assets survive bundling.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { argmax, launchChromium, CHROMIUM, CHROMIUM_QUIET as QUIET, nativeRef, testSplit, WASM_DIR } from './support.mjs';
import { serve } from './browser/serve.mjs';

const out = mkdtempSync(join(tmpdir(), 'mdeploy-vite-'));
const { xs, n } = testSplit();
const ref = nativeRef();
let server;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: run scripts/bootstrap.sh`);
  execFileSync(join(WASM_DIR, 'node_modules/.bin/vite'), ['build', '--config', join(WASM_DIR, 'test/vite-app/vite.config.mjs')], {
    env: { ...process.env, MDEPLOY_VITE_OUT: out }, stdio: ['ignore', 'inherit', 'inherit'],
  });
  server = await serve(out, xs);
});
after(async () => {
  await server?.close();
  rmSync(out, { recursive: true, force: true });
});

test('a Vite build of an app that imports mdeploy-wasm emits its assets and classifies real digits', async (t) => {
  const assets = readdirSync(join(out, 'assets'));
  t.diagnostic(`vite emitted: ${assets.join(', ')}`);
  assert.ok(assets.some((f) => f.endsWith('.wasm')), 'the .wasm was emitted');
  assert.ok(assets.some((f) => f.endsWith('.mdm')), 'the default models were emitted');
  const browser = await launchChromium(chromium, { executablePath: CHROMIUM, headless: true, args: QUIET });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url.replace(/\/$/, '/index.html'));
    await page.waitForFunction(() => window.mdeployReady === true);
    const from = 1500, count = 100;
    const r = await page.evaluate(([v, k]) => window.mdeployRun(v, k), [Array.from(xs.subarray(from * 784, (from + count) * 784)), count]);
    assert.equal(r.backend, 'cpu');
    const want = ref.models['mnist-cnn'].probs;
    let worst = 0;
    for (let k = 0; k < count; k++) {
      assert.equal(argmax(r.probs, k * 10, 10), argmax(want, (from + k) * 10, 10), `digit ${from + k}`);
      for (let j = 0; j < 10; j++) worst = Math.max(worst, Math.abs(r.probs[k * 10 + j] - want[(from + k) * 10 + j]));
    }
    t.diagnostic(`vite app: ${count} digits, argmax equal to native, max |Δp| ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-5);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
