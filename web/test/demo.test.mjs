// The demo page (web/) in a real browser: Debian's Chromium driven by playwright-core, the page
// served by web/serve.mjs on 127.0.0.1, the function endpoint by `wasmtime serve` running the
// real wasi:http component (worker/). Digits are drawn the way a person draws them: mouse
// strokes along hand-designed paths (strokes.mjs) through real pointer events, never pasted
// pixels. Screenshots go to web/test/screenshots/ (gitignored): look at them.
//
// Env: MDEPLOY_WEB_ENDPOINT=http://127.0.0.1:PORT uses an endpoint you already run instead of
// starting `wasmtime serve` (MDEPLOY_WORKER_WASM / MDEPLOY_WASMTIME override the paths).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../serve.mjs';
import { drawDigit, strokePaths } from './strokes.mjs';
import { assertPackageBuilt, chromium, CHROMIUM, CHROMIUM_QUIET, WEB_DIR } from './support.mjs';
import { DEFAULT_MODELS, launchChromium, ROOT, testSplit } from '../../wasm/test/support.mjs';
import { readDefaults } from '../../scripts/gen-defaults.mjs';

const SHOTS = join(WEB_DIR, 'test/screenshots');
const TARGET = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/mdeploy/target');
const COMPONENT = process.env.MDEPLOY_WORKER_WASM ?? join(TARGET, 'wasm32-wasip2/release/mdeploy-worker.wizer.wasm');
const WASMTIME = process.env.MDEPLOY_WASMTIME ?? [join(homedir(), '.cargo/bin/wasmtime'), '/usr/local/bin/wasmtime', '/usr/bin/wasmtime'].find(existsSync) ?? 'wasmtime';

let web; // the page's server, with the endpoint proxied
let bare; // the same page with no endpoint configured
let endpoint; // { url, stop }

async function freePort() {
  const s = createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

/** `wasmtime serve` on the real component, on a free port; resolves once it answers HTTP. */
async function startEndpoint() {
  if (process.env.MDEPLOY_WEB_ENDPOINT) return { url: process.env.MDEPLOY_WEB_ENDPOINT, stop: async () => {} };
  assert.ok(existsSync(COMPONENT), `the function component ${COMPONENT} is missing: build it with \`bash worker/build.sh\` (web/test/run.sh does), or set MDEPLOY_WEB_ENDPOINT`);
  const port = await freePort();
  const child = spawn(WASMTIME, ['serve', '-Scli', '--addr', `127.0.0.1:${port}`, COMPONENT], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((ok) => child.once('exit', (code) => ok(code)));
  child.once('error', (e) => { stderr += `\n${e.message}`; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000; // a cold start compiles the component first
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      assert.fail(`wasmtime serve exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()} — is wasmtime installed (scripts/bootstrap.sh installs 48.0.8 into ~/.cargo/bin)?`);
    }
    try {
      await fetch(`${url}/predict`, { method: 'POST', body: new Uint8Array(784) });
      break; // any HTTP answer (even an error status) means it is up
    } catch {
      if (Date.now() > deadline) assert.fail(`wasmtime serve did not answer on ${url} within 60 s: ${stderr.trim()}`);
      await new Promise((ok) => setTimeout(ok, 200));
    }
  }
  return {
    url,
    stop: async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await exited; } },
  };
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: run scripts/bootstrap.sh (apt-get install chromium) or set MDEPLOY_CHROMIUM`);
  assertPackageBuilt();
  mkdirSync(SHOTS, { recursive: true });
  endpoint = await startEndpoint();
  web = await startServer({ port: 0, endpoint: endpoint.url });
  bare = await startServer({ port: 0, endpoint: null });
});
after(async () => {
  await web?.close();
  await bare?.close();
  await endpoint?.stop();
});

/** A fresh Chromium on the page; records page errors and every URL the page (or its worker) asks for. */
async function openPage({ webgpu = true, viewport = { width: 1000, height: 760 }, server = web, mobile = false } = {}) {
  const browser = await launchChromium(chromium, { executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_QUIET, ...(webgpu ? ['--enable-unsafe-webgpu'] : [])] });
  const context = await browser.newContext({ viewport, ...(mobile ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}) });
  const page = await context.newPage();
  const errors = [];
  const requests = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  context.on('request', (r) => requests.push(r.url()));
  await page.goto(server.url);
  await waitReady(page);
  return {
    browser, page, errors, requests,
    /** Every request stayed on the page's own origin (the CSP forbids others; this checks nothing tried). */
    sameOrigin: () => requests.filter((u) => !u.startsWith(server.url) && !u.startsWith('data:') && !u.startsWith('blob:')),
  };
}

/** The pad's drawing area (inside its border), in CSS pixels of the viewport. */
function padBox(page) {
  return page.locator('#pad').evaluate((c) => {
    const r = c.getBoundingClientRect();
    return { x: r.left + c.clientLeft, y: r.top + c.clientTop, width: c.clientWidth, height: c.clientHeight };
  });
}

/** Screenshot once the probability bars have finished their short transition. */
async function shot(page, name, fullPage = false) {
  await page.waitForTimeout(250);
  // Down to the end of the page's content, not the empty viewport below it.
  const bottom = await page.evaluate(() => Math.ceil(document.querySelector('footer').getBoundingClientRect().bottom + 12));
  const vp = page.viewportSize();
  await page.screenshot({ path: join(SHOTS, name), fullPage, ...(fullPage ? {} : { clip: { x: 0, y: 0, width: vp.width, height: Math.min(vp.height, bottom) } }) });
}

async function waitReady(page, model, backend) {
  await page.waitForFunction(([m, b]) => document.body.dataset.ready === '1' &&
    (!m || document.querySelector('#model').value === m) && (!b || document.querySelector('#backend').value === b), [model, backend], { timeout: 30_000 });
}

async function choose(page, model, backend) {
  if (model) await page.selectOption('#model', model);
  if (backend) await page.selectOption('#backend', backend);
  await waitReady(page, model, backend);
}

/** Clears, draws `digit` with the mouse and waits for the answer to that very drawing. */
async function drawAndRead(page, digit) {
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('#local').dataset.label);
  const before = Number(await page.getAttribute('body', 'data-draw-seq'));
  const box = await padBox(page);
  await drawDigit(page, box, digit);
  const seq = Number(await page.getAttribute('body', 'data-draw-seq'));
  await page.waitForFunction((s) => document.querySelector('#local').dataset.seq === String(s), seq, { timeout: 15_000 });
  const local = await page.locator('#local').evaluate((el) => ({ ...el.dataset }));
  return { label: Number(local.label), model: local.model, backend: local.backend, changes: seq - before };
}

/** The 28×28 preview's pixels: how much ink, and where its centre of mass is. */
async function seenStats(page) {
  return page.locator('#seen').evaluate((c) => {
    const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
    let mass = 0; let mx = 0; let my = 0; let lit = 0;
    for (let i = 0; i < 784; i++) {
      const v = d[i * 4] / 255;
      mass += v; mx += v * (i % 28); my += v * Math.floor(i / 28);
      if (v > 0.5) lit++;
    }
    return { mass, lit, cx: mass ? mx / mass : -1, cy: mass ? my / mass : -1, w: c.width, h: c.height, shownW: c.getBoundingClientRect().width };
  });
}

test('the CNN reads digits 0–9 drawn with the mouse (≥ 9/10), live while drawing, with the 28×28 it saw', async (t) => {
  const { browser, page, errors, requests, sameOrigin } = await openPage({ webgpu: true });
  try {
    await choose(page, 'mnist-cnn', 'cpu');
    const options = await page.locator('#model option').evaluateAll((os) => os.map((o) => [o.value, o.textContent]));
    assert.deepEqual(options.map(([v]) => v), DEFAULT_MODELS, 'the switcher lists the models the package ships (models/defaults.json)');
    for (const [name, text] of options) {
      // Size and accuracy beside each name, from the files themselves.
      const m = readDefaults(ROOT).models.find((d) => d.name === name);
      const kb = (statSync(join(ROOT, 'models', m.file)).size / 1024).toFixed(0);
      assert.equal(text, `${name} · ${kb} KB · ${(m.accuracy * 100).toFixed(2)} %`, 'size and test accuracy beside the name');
    }
    assert.match(await page.textContent('#local-backend'), /^CPU SIMD/);

    const got = [];
    for (let d = 0; d < 10; d++) {
      const r = await drawAndRead(page, d);
      got.push(r.label);
      assert.equal(r.model, 'mnist-cnn');
      assert.equal(r.backend, 'cpu');
      // Real pointer events: one drawing change per mouse event along the path.
      const moves = strokePaths(d).reduce((n, s) => n + s.length, 0);
      assert.ok(r.changes >= moves * 0.9, `digit ${d}: ${r.changes} drawing changes for ${moves} mouse positions`);
      const seen = await seenStats(page);
      // The MNIST recipe centres the ink's mass in the 28×28 and fits it in 20×20.
      assert.ok(seen.lit >= 20 && seen.lit <= 400, `digit ${d}: the 28×28 preview has ${seen.lit} lit pixels`);
      assert.ok(Math.abs(seen.cx - 13.5) < 2 && Math.abs(seen.cy - 13.5) < 2, `digit ${d}: preview mass centred, got (${seen.cx.toFixed(1)}, ${seen.cy.toFixed(1)})`);
      await shot(page, `cnn-digit-${d}.png`);
    }
    const right = got.filter((l, d) => l === d).length;
    t.diagnostic(`mnist-cnn read ${got.join(' ')} for 0 1 2 3 4 5 6 7 8 9: ${right}/10 right`);
    assert.ok(right >= 9, `only ${right}/10 digits right: ${got.join(' ')}`);

    // Live: answers arrive while the pen is still down, not only on pen-up.
    await page.keyboard.press('Escape');
    const box = await padBox(page);
    const [stroke] = strokePaths(0);
    await page.mouse.move(box.x + stroke[0][0], box.y + stroke[0][1]);
    await page.mouse.down();
    const seqs = new Set();
    for (const [i, [x, y]] of stroke.entries()) {
      await page.mouse.move(box.x + x, box.y + y);
      if (i % 10 === 0) seqs.add(await page.getAttribute('#local', 'data-seq'));
    }
    await page.waitForFunction(() => document.querySelector('#local').dataset.seq !== undefined);
    seqs.add(await page.getAttribute('#local', 'data-seq'));
    await page.mouse.up();
    seqs.delete(null);
    t.diagnostic(`${seqs.size} different answers shown during one ${stroke.length}-point stroke`);
    assert.ok(seqs.size >= 3, `only ${seqs.size} answers while drawing`);

    // Off the main thread: the page itself never fetched the .wasm or a model (the worker did).
    const mainThread = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
    assert.deepEqual(mainThread.filter((u) => /\.(wasm|mdm)$/.test(u)), [], 'the main thread loaded no wasm or model');

    const seen = await seenStats(page);
    assert.equal(seen.w, 28);
    assert.ok(seen.shownW >= 56, 'the 28×28 preview is shown enlarged');
    assert.match(await page.textContent('#local-time'), /ms model/);

    // The keyboard shortcut and the button both clear.
    await page.keyboard.press('c');
    assert.equal(await page.getAttribute('#local', 'data-label'), null);
    await drawAndRead(page, 1);
    await page.click('#clear');
    assert.equal(await page.getAttribute('#local', 'data-label'), null);
    assert.equal((await seenStats(page)).mass, 0, 'clearing clears the preview');

    // WebGPU (SwiftShader here) on request: the page names the adapter and the call runs there.
    await choose(page, 'mnist-cnn', 'webgpu');
    assert.match(await page.textContent('#local-backend'), /^WebGPU: .*swiftshader/i);
    const g = await drawAndRead(page, 7);
    assert.equal(g.backend, 'webgpu');
    assert.equal(g.label, 7);
    await shot(page, 'cnn-webgpu.png');

    // The recorder sees the worker's requests too (the model file is fetched there), so the
    // same-origin checks below are not vacuous.
    assert.ok(requests.some((u) => u.endsWith('/pkg/models/mnist-cnn.mdm')), `requests seen: ${requests.join(' ')}`);
    assert.deepEqual(sameOrigin(), [], 'no request left the page’s origin');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('switching to the MLP loads it and it reads a drawing', async () => {
  const { browser, page, errors, sameOrigin } = await openPage({ webgpu: true });
  try {
    await choose(page, 'mnist-cnn', 'cpu');
    await drawAndRead(page, 3);
    // Switching with a drawing on the pad re-reads that drawing with the new model.
    const seq = await page.getAttribute('body', 'data-draw-seq');
    await choose(page, 'mnist-mlp', 'cpu');
    await page.waitForFunction((s) => document.querySelector('#local').dataset.model === 'mnist-mlp' && document.querySelector('#local').dataset.seq === s, seq);
    assert.equal(Number(await page.getAttribute('#local', 'data-label')), 3);
    assert.match(await page.textContent('#status'), /mnist-mlp loaded/);
    const right = [];
    for (const d of [2, 4, 8]) right.push((await drawAndRead(page, d)).label === d);
    assert.ok(right.filter(Boolean).length >= 2, `the MLP read ${right}`);
    await shot(page, 'mlp.png');
    assert.deepEqual(sameOrigin(), []);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('without WebGPU (no --enable-unsafe-webgpu): auto falls back to the CPU and says so; asking for WebGPU too', async () => {
  const { browser, page, errors, sameOrigin } = await openPage({ webgpu: false });
  try {
    assert.equal(await page.evaluate(async () => (navigator.gpu ? await navigator.gpu.requestAdapter() : null) === null), true, 'this Chromium has no adapter');
    await choose(page, 'mnist-cnn', 'auto');
    assert.equal(await page.getAttribute('body', 'data-fallback'), '1');
    assert.match(await page.textContent('#local-backend'), /CPU SIMD.*no WebGPU/);
    const r = await drawAndRead(page, 4);
    assert.equal(r.backend, 'cpu');
    assert.equal(r.label, 4);

    await choose(page, 'mnist-cnn', 'webgpu');
    assert.match(await page.textContent('#status'), /WebGPU unavailable, using the CPU/);
    assert.match(await page.textContent('#local-backend'), /no WebGPU here, fell back/);
    const w = await drawAndRead(page, 7);
    assert.equal(w.backend, 'cpu');
    assert.equal(w.label, 7);
    await shot(page, 'no-webgpu.png');
    assert.deepEqual(sameOrigin(), []);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the endpoint toggle shows the served answer beside the browser one, and they agree', async (t) => {
  const { browser, page, errors, sameOrigin } = await openPage({ webgpu: true });
  try {
    await choose(page, 'mnist-cnn', 'cpu');
    assert.equal(await page.isVisible('#served'), false, 'the served column is hidden until asked for');
    await page.check('#served-toggle');
    assert.equal(await page.isVisible('#served'), true);
    // An int8 default too: the page's CPU engine and the served component both run it on integer kernels.
    for (const [model, digits] of [['mnist-cnn', [3, 0, 9]], ['mnist-mlp', [2]], ['mnist-cnn-int8', [4, 7]]]) {
      await choose(page, model, 'cpu');
      for (const d of digits) {
        const local = await drawAndRead(page, d);
        const seq = await page.getAttribute('body', 'data-draw-seq');
        await page.waitForFunction((s) => {
          const el = document.querySelector('#served');
          return el.dataset.seq === s && el.dataset.state === 'done';
        }, seq, { timeout: 30_000 }).catch(async (e) => {
          throw new Error(`no served answer: ${await page.textContent('#served')} (${e.message})`);
        });
        const served = Number(await page.getAttribute('#served', 'data-label'));
        t.diagnostic(`${model} digit ${d}: browser ${local.label}, served ${served}; ${await page.textContent('#served-bytes')}`);
        assert.equal(served, local.label, `${model} digit ${d}: browser ${local.label}, served ${served}`);
        assert.match(await page.textContent('#served-agree'), /^yes/);
        // The browser's own 28×28 sent as raw bytes: same input, the server's runtime.
        assert.match(await page.textContent('#served-bytes'), new RegExp(`^${local.label} \\(`));
        assert.match(await page.textContent('#served-time'), new RegExp(`ms round trip · ${model}`));
      }
    }
    // The README's picture (web/screenshot.png is a copy): a 6, which the CNN reads with less
    // than full confidence, so the bars show something.
    await choose(page, 'mnist-cnn', 'cpu');
    const six = await drawAndRead(page, 6);
    await page.waitForFunction(() => document.querySelector('#served').dataset.state === 'done' &&
      document.querySelector('#served').dataset.seq === document.body.dataset.drawSeq);
    assert.equal(Number(await page.getAttribute('#served', 'data-label')), six.label);
    await shot(page, 'served.png');
    assert.deepEqual(sameOrigin(), [], 'the endpoint is reached through the page’s own origin');
    assert.deepEqual(errors.filter((e) => !/502/.test(e)), []);
  } finally {
    await browser.close();
  }

  // The same page served without an endpoint: the column says so and the page keeps working.
  const b = await openPage({ webgpu: true, server: bare });
  try {
    await b.page.check('#served-toggle');
    const r = await drawAndRead(b.page, 1);
    assert.equal(r.label, 1);
    await b.page.waitForFunction(() => document.querySelector('#served').dataset.state === 'error');
    assert.equal(await b.page.textContent('#served-conf'), 'endpoint unavailable');
    await shot(b.page, 'served-unavailable.png');
    assert.deepEqual(b.sameOrigin(), []);
    assert.deepEqual(b.errors.filter((e) => !/502/.test(e)), []);
  } finally {
    await b.browser.close();
  }
});

test('a phone-sized viewport (375×667): no sideways scroll, the whole pad usable, touch strokes draw', async () => {
  const { browser, page, errors, sameOrigin } = await openPage({ webgpu: false, viewport: { width: 375, height: 667 }, mobile: true });
  try {
    const layout = await page.evaluate(() => {
      const r = document.querySelector('#pad').getBoundingClientRect();
      return { scrollW: document.documentElement.scrollWidth, innerW: window.innerWidth, left: r.left, right: r.right, w: r.width, h: r.height,
        touchAction: getComputedStyle(document.querySelector('#pad')).touchAction };
    });
    assert.ok(layout.scrollW <= layout.innerW, `page is ${layout.scrollW} px wide in a ${layout.innerW} px viewport`);
    assert.ok(layout.left >= 0 && layout.right <= layout.innerW, `pad at ${layout.left}..${layout.right}`);
    assert.ok(layout.w >= 260 && Math.abs(layout.w - layout.h) < 1, `pad ${layout.w}×${layout.h}`);
    assert.equal(layout.touchAction, 'none', 'a finger on the pad draws instead of scrolling');

    // A finger: touch events through CDP become pointer events of type "touch" in the page.
    const box = await padBox(page);
    const cdp = await page.context().newCDPSession(page);
    const k = box.width / 280;
    await page.keyboard.press('Escape');
    for (const stroke of strokePaths(7)) {
      const pt = ([x, y]) => [{ x: box.x + x * k, y: box.y + y * k, id: 1, radiusX: 6, radiusY: 6, force: 0.5 }];
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: pt(stroke[0]) });
      for (const p of stroke.slice(1)) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: pt(p) });
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    }
    const seq = await page.getAttribute('body', 'data-draw-seq');
    await page.waitForFunction((s) => document.querySelector('#local').dataset.seq === s, seq);
    assert.equal(Number(await page.getAttribute('#local', 'data-label')), 7, 'the finger-drawn 7');
    assert.equal(await page.evaluate(() => window.scrollY), 0, 'drawing did not scroll the page');
    await shot(page, 'phone.png', true);
    // The mouse still works at this size (the pad is scaled to its box).
    assert.equal((await drawAndRead(page, 0)).label, 0);
    assert.deepEqual(sameOrigin(), []);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the server: the package under /pkg/ with the right types, nothing else of the repo, 502 JSON without an endpoint', async () => {
  const get = (path, s = web) => fetch(new URL(path, s.url));
  const wasm = await get('/pkg/dist/mdeploy_wasm_bg.wasm');
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  assert.match((await get('/pkg/index.js')).headers.get('content-type'), /^text\/javascript/);
  assert.equal((await get('/pkg/models/mnist-cnn.mdm')).status, 200);
  assert.match((await get('/')).headers.get('content-security-policy'), /default-src 'self'/);
  for (const p of ['/pkg/Cargo.toml', '/pkg/src/lib.rs', '/pkg/../Cargo.toml', '/serve.mjs', '/test/demo.test.mjs', '/scripts/prepare.sh', '/%2e%2e/Cargo.toml']) {
    assert.equal((await get(p)).status, 404, p);
  }
  const r = await fetch(new URL('/predict', bare.url), { method: 'POST', body: new Uint8Array(784) });
  assert.equal(r.status, 502);
  assert.match((await r.json()).error, /endpoint unavailable/);
  // Through the proxy, the endpoint answers: a real MNIST test digit as 784 raw bytes.
  const { xs, ys } = testSplit();
  for (const i of [0, 1000, 1999]) {
    const bytes = Uint8Array.from(xs.subarray(i * 784, (i + 1) * 784), (v) => Math.round(v * 255));
    const res = await fetch(new URL('/predict?model=mnist-cnn', web.url), { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.label, String(ys[i]), `test digit ${i} through the proxy`);
    assert.equal(body.probs.length, 10);
  }
  const empty = await fetch(new URL('/predict', web.url), { method: 'POST', body: new Uint8Array(0) });
  assert.ok(empty.status >= 400 && empty.status < 500, `the endpoint’s own 4xx passes through the proxy, got ${empty.status}`);
  assert.ok((await empty.json()).error);
});

test('your own model: an .mdm chosen with the file input or dropped on the page runs in the browser; a broken one is refused, naming why, and the page keeps its model', async () => {
  const { browser, page, errors, requests, sameOrigin } = await openPage({ webgpu: false });
  const models = join(WEB_DIR, '../models');
  try {
    await choose(page, 'mnist-cnn', 'cpu');
    // The MLP's bytes under another name: the page must run the file, not a built-in by name.
    await page.setInputFiles('#model-file', { name: 'my-mlp.mdm', mimeType: 'application/octet-stream', buffer: readFileSync(join(models, 'mnist-mlp.mdm')) });
    await waitReady(page, 'file:my-mlp.mdm');
    assert.match(await page.textContent('#status'), /file:my-mlp\.mdm loaded in \d+ ms \(101,770 parameters/);
    const right = [];
    for (const d of [3, 7, 0]) {
      const r = await drawAndRead(page, d);
      assert.equal(r.model, 'file:my-mlp.mdm');
      right.push(r.label === d);
    }
    assert.ok(right.filter(Boolean).length >= 2, `the file's MLP read ${right}`);
    // The served column says the file stays here, and nothing was sent anywhere.
    await page.check('#served-toggle');
    await page.waitForFunction(() => /stays in this browser/.test(document.querySelector('#served-conf').textContent));
    assert.deepEqual(requests.filter((u) => /\/predict/.test(u)), []);
    await page.uncheck('#served-toggle');

    // Not a model: refused with the reader's error, the option removed, the MLP file kept.
    await page.setInputFiles('#model-file', { name: 'broken.mdm', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not a model, just some text') });
    await page.waitForFunction(() => /broken\.mdm did not load/.test(document.querySelector('#status').textContent));
    const status = await page.textContent('#status');
    assert.match(status, /BAD_MODEL/);
    assert.match(status, /still using file:my-mlp\.mdm/);
    assert.equal(await page.inputValue('#model'), 'file:my-mlp.mdm');
    assert.ok(!(await page.locator('#model option').allTextContents()).includes('file:broken.mdm'));
    assert.equal((await drawAndRead(page, 1)).model, 'file:my-mlp.mdm');

    // Dropped on the page: the CNN's bytes as a file.
    const cnn = readFileSync(join(models, 'mnist-cnn.mdm')).toString('base64');
    await page.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'dropped-cnn.mdm'));
      document.querySelector('main').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, cnn);
    await waitReady(page, 'file:dropped-cnn.mdm');
    const r = await drawAndRead(page, 4);
    assert.equal(r.model, 'file:dropped-cnn.mdm');
    // Both files stay in the switcher; switching back reloads the kept bytes.
    await choose(page, 'file:my-mlp.mdm', 'cpu');
    assert.match(await page.textContent('#status'), /file:my-mlp\.mdm loaded/);
    await shot(page, 'own-model.png');
    assert.deepEqual(sameOrigin(), []);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
