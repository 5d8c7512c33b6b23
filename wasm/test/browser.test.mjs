// The package in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core, the built package served from 127.0.0.1. With --enable-unsafe-webgpu Chromium
// has a real WebGPU implementation on its SwiftShader adapter (a CPU emulation: this proves
// correctness, never speed). Parity: all 2,000 fixed-split test digits through WebGPU and through
// the CPU backend, every parity model, against the native core's probabilities
// (examples/native_ref.rs): same argmax on every digit, probabilities within 1e-5; and against
// the independent f64 reference (core/testkit): within 1e-4, argmax equal where its top-2
// margin exceeds 1e-4. Models: models/parity.json. Then Chromium without the flag (no adapter): 'webgpu' rejects with NO_WEBGPU, 'auto' runs on
// the CPU.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { argmax, bitexactRef, checkF64, fnv1a, launchChromium, CHROMIUM, CHROMIUM_QUIET as QUIET, f64Ref, nativeRef, parityModels, range, testSplit, WASM_DIR } from './support.mjs';
import { serve } from './browser/serve.mjs';

const TOL = 1e-5;
const MODELS = parityModels();

const ref = nativeRef();
const bits = bitexactRef();
const f64 = f64Ref();
const { xs, ys, n } = testSplit();
let server;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: run scripts/bootstrap.sh (apt-get install chromium chromium-driver) or set MDEPLOY_CHROMIUM`);
  server = await serve(WASM_DIR, xs);
});
after(async () => server?.close());

async function openPage(webgpu) {
  const browser = await launchChromium(chromium, { executablePath: CHROMIUM, headless: true, args: [...QUIET, ...(webgpu ? ['--enable-unsafe-webgpu'] : [])] });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(server.url);
  return { browser, page, errors };
}

/** Compares `probs` for digits [from, from + count) with the native and the f64 references. */
function compare(t, what, probs, model, from = 0, count = n) {
  const { worst: w64, checked } = checkF64(what, f64, model, probs, range(from, count));
  t.diagnostic(`${what}: max |Δp| vs f64 reference = ${w64.toExponential(2)}, argmax checked on ${checked}`);
  const r = ref.models[model];
  const ol = r.outputLen;
  assert.equal(probs.length, count * ol, `${what}: output length`);
  let worst = 0;
  let worstAt = -1;
  let mismatches = 0;
  let correct = 0;
  for (let k = 0; k < count; k++) {
    const i = from + k;
    const a = argmax(probs, k * ol, ol);
    if (a !== argmax(r.probs, i * ol, ol)) mismatches++;
    if (a === ys[i]) correct++;
    for (let j = 0; j < ol; j++) {
      const d = Math.abs(probs[k * ol + j] - r.probs[i * ol + j]);
      if (!(d <= worst)) { worst = d; worstAt = i; } // NaN counts as the worst
    }
  }
  t.diagnostic(`${what}: ${correct}/${count} correct, max |Δp| vs native = ${worst.toExponential(2)} (digit ${worstAt})`);
  assert.equal(mismatches, 0, `${what}: argmax differs from native on ${mismatches} digits`);
  assert.ok(worst <= TOL, `${what}: probabilities differ from native by ${worst} (digit ${worstAt}) > ${TOL}`);
}

// Runs in the page: loads `model` on `backend`, runs digits [from, from + count) as one batch and
// the first `single` of them one at a time.
async function runInPage({ model, backend, from, count, single, maxBatch }) {
  const { Model, builtinModels } = await import('/index.js');
  const all = new Float32Array(await (await fetch('/split.bin')).arrayBuffer());
  const xs = all.subarray(from * 784, (from + count) * 784);
  // A parity model the package does not ship by name: the copy build.sh puts in models/.
  const source = builtinModels.includes(model) ? model : `/models/${model}.mdm`;
  const m = await Model.load(source, { backend, maxBatch });
  const batch = await m.predictBatch(xs, count);
  const one = [];
  const oneBackends = new Set();
  for (let i = 0; i < single; i++) {
    const r = await m.predict(xs.subarray(i * 784, (i + 1) * 784));
    one.push(...r.probs);
    oneBackends.add(r.backend);
  }
  let syncError = null;
  try {
    m.predictSync(xs.subarray(0, 784));
  } catch (e) {
    syncError = { code: e.code, message: e.message, name: e.name };
  }
  const out = { backend: m.backend, batchBackend: batch.backend, oneBackends: [...oneBackends], probs: Array.from(batch.probs), one, info: m.info(), syncError };
  m.dispose();
  return out;
}

test('Chromium with WebGPU (SwiftShader): WebGPU and CPU match native on all 2,000 test digits', async (t) => {
  const { browser, page, errors } = await openPage(true);
  try {
    for (const model of MODELS) {
      // maxBatch 256: 8 GPU submits for the 2,000 digits, the last one partial.
      const gpu = await page.evaluate(runInPage, { model, backend: 'webgpu', from: 0, count: n, single: 20, maxBatch: 256 });
      assert.equal(gpu.backend, 'webgpu');
      assert.equal(gpu.batchBackend, 'webgpu');
      assert.deepEqual(gpu.oneBackends, ['webgpu']);
      assert.equal(gpu.info.kernel, 'webgpu-wgsl');
      // 256 asked; the memory budget for untrusted models (core/runtime/src/budget.rs) may cut it for
      // models with larger activations per sample (the ResNet).
      assert.ok(gpu.info.gpuChunk >= 1 && gpu.info.gpuChunk <= 256, `gpuChunk ${gpu.info.gpuChunk}`);
      t.diagnostic(`${model}: GPU chunk ${gpu.info.gpuChunk}`);
      assert.ok(gpu.info.adapter, 'info() describes the adapter');
      assert.equal(gpu.info.adapter.isFallbackAdapter, true, `SwiftShader is a fallback adapter: ${JSON.stringify(gpu.info.adapter)}`);
      t.diagnostic(`${model}: adapter ${JSON.stringify(gpu.info.adapter)}`);
      assert.equal(gpu.syncError?.code, 'UNSUPPORTED', 'predictSync on a WebGPU model');
      assert.match(gpu.syncError.message, /await predict/);
      compare(t, `${model} webgpu batch`, gpu.probs, model);
      compare(t, `${model} webgpu one by one`, gpu.one, model, 0, 20);

      const cpu = await page.evaluate(runInPage, { model, backend: 'cpu', from: 0, count: n, single: 20, maxBatch: 64 });
      assert.equal(cpu.backend, 'cpu');
      assert.equal(cpu.batchBackend, 'cpu');
      assert.equal(cpu.syncError, null);
      compare(t, `${model} cpu (Chromium) batch`, cpu.probs, model);
      compare(t, `${model} cpu (Chromium) one by one`, cpu.one, model, 0, 20);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('Chromium CPU and WebGPU engines: the integer models (models/bitexact.json) give the same output bits as every native kernel set', async (t) => {
  const { browser, page, errors } = await openPage(true);
  try {
    for (const [model, want] of Object.entries(bits)) {
      const cpu = await page.evaluate(runInPage, { model, backend: 'cpu', from: 0, count: n, single: 20, maxBatch: 64 });
      assert.equal(cpu.backend, 'cpu');
      // Page → Node as JSON numbers: each f32 widened to a double, printed so it parses back exactly.
      const got = fnv1a(cpu.probs);
      t.diagnostic(`${model}: Chromium cpu ${got}, native ${want.digest}`);
      assert.equal(got, want.digest, `${model}: Chromium's CPU engine gives other output bits than native`);
      assert.equal(fnv1a(cpu.one), fnv1a(cpu.probs.slice(0, cpu.one.length)), `${model}: one by one differs from the batch`);
      // The WGSL integer and binary kernels (wasm/src/gpu/qdense.wgsl, qconv2d.wgsl, qepi.wgsl,
      // sign.wgsl, bdense.wgsl, quantize.wgsl) on SwiftShader: the same bits, batched and one
      // by one (core/runtime/QUANT.md, "WebGPU").
      const gpu = await page.evaluate(runInPage, { model, backend: 'webgpu', from: 0, count: n, single: 20, maxBatch: 256 });
      assert.equal(gpu.backend, 'webgpu');
      assert.equal(gpu.batchBackend, 'webgpu');
      const gotGpu = fnv1a(gpu.probs);
      t.diagnostic(`${model}: Chromium webgpu ${gotGpu}, native ${want.digest}`);
      assert.equal(gotGpu, want.digest, `${model}: Chromium's WebGPU engine gives other output bits than native`);
      assert.equal(fnv1a(gpu.one), fnv1a(cpu.one), `${model}: WebGPU one by one differs from the CPU`);
    }
    // With an adapter 'auto' may use (SwiftShader allowed), a large batch of each integer or
    // binary model goes to the GPU, with the same bits as 'cpu'.
    for (const model of Object.keys(bits)) {
    const r = await page.evaluate(async ({ model, k }) => {
      const { Model } = await import('/index.js');
      const all = new Float32Array(await (await fetch('/split.bin')).arrayBuffer());
      const m = await Model.load(model, { backend: 'auto', maxBatch: k, allowFallbackAdapter: true });
      const b = await m.predictBatch(all.subarray(0, k * 784), k);
      const out = { backend: m.backend, batchBackend: b.backend, probs: Array.from(b.probs) };
      m.dispose();
      return out;
    }, { model, k: 128 });
    assert.equal(r.backend, 'webgpu', `${model} with 'auto' and a usable adapter`);
    assert.equal(r.batchBackend, 'webgpu');
    const cpu = await page.evaluate(runInPage, { model, backend: 'cpu', from: 0, count: 128, single: 0, maxBatch: 128 });
    assert.equal(fnv1a(r.probs), fnv1a(cpu.probs), `${model}: 'auto' differs from 'cpu'`);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test("'auto' on a fallback adapter (SwiftShader) picks the CPU, and says so", async (t) => {
  const { browser, page } = await openPage(true);
  try {
    const r = await page.evaluate(runInPage, { model: 'mnist-cnn', backend: 'auto', from: 400, count: 300, single: 5, maxBatch: 512 });
    assert.equal(r.backend, 'cpu');
    assert.equal(r.batchBackend, 'cpu', 'even a batch of 300 stays on the CPU on a fallback adapter');
    assert.equal(r.info.requestedBackend, 'auto');
    assert.equal(r.info.adapter?.isFallbackAdapter, true, 'the adapter is still described');
    compare(t, 'mnist-cnn auto (SwiftShader → cpu)', r.probs, 'mnist-cnn', 400, 300);
  } finally {
    await browser.close();
  }
});

test("'auto' with a usable adapter: batches ≥ AUTO_GPU_MIN_BATCH on the GPU, smaller calls on the CPU; concurrent calls; dispose", async (t) => {
  const { browser, page, errors } = await openPage(true);
  try {
    const r = await page.evaluate(async () => {
      const { Model, AUTO_GPU_MIN_BATCH } = await import('/index.js');
      const all = new Float32Array(await (await fetch('/split.bin')).arrayBuffer());
      // SwiftShader counts as a real GPU here, so the per-call rule is what decides.
      const m = await Model.load('mnist-cnn', { backend: 'auto', maxBatch: 128, allowFallbackAdapter: true });
      const k = AUTO_GPU_MIN_BATCH;
      const big = await m.predictBatch(all.subarray(0, k * 784), k);
      const small = await m.predictBatch(all.subarray(k * 784, (2 * k - 1) * 784), k - 1);
      const one = await m.predict(all.subarray(0, 784));
      const sync = m.predictSync(all.subarray(0, 784)); // 'auto' keeps predictSync (on the CPU)
      // Five batches at once share the model's GPU buffers: they must queue, not interleave.
      const starts = [500, 700, 900, 1100, 1300];
      const many = await Promise.all(starts.map((s) => m.predictBatch(all.subarray(s * 784, (s + 100) * 784), 100)));
      const backend = m.backend;
      m.dispose();
      let disposed = null;
      try {
        await m.predictBatch(all.subarray(0, 784), 1);
      } catch (e) {
        disposed = e.code;
      }
      return {
        k, backend, bigBackend: big.backend, smallBackend: small.backend, oneBackend: one.backend, syncBackend: sync.backend,
        manyBackends: many.map((b) => b.backend), disposed,
        big: Array.from(big.probs), small: Array.from(small.probs), many: many.map((b) => Array.from(b.probs)), starts,
      };
    });
    assert.equal(r.backend, 'webgpu');
    assert.equal(r.bigBackend, 'webgpu', `a batch of ${r.k} goes to the GPU`);
    assert.equal(r.smallBackend, 'cpu', `a batch of ${r.k - 1} stays on the CPU`);
    assert.equal(r.oneBackend, 'cpu');
    assert.equal(r.syncBackend, 'cpu');
    assert.deepEqual(r.manyBackends, ['webgpu', 'webgpu', 'webgpu', 'webgpu', 'webgpu']);
    assert.equal(r.disposed, 'DISPOSED');
    compare(t, 'mnist-cnn auto, GPU batch', r.big, 'mnist-cnn', 0, r.k);
    compare(t, 'mnist-cnn auto, CPU batch', r.small, 'mnist-cnn', r.k, r.k - 1);
    r.many.forEach((p, i) => compare(t, `mnist-cnn concurrent batch ${i}`, p, 'mnist-cnn', r.starts[i], 100));
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a lost GPU device switches the model to the CPU', async (t) => {
  const { browser, page } = await openPage(true);
  try {
    const r = await page.evaluate(async () => {
      const { Model } = await import('/index.js');
      const all = new Float32Array(await (await fetch('/split.bin')).arrayBuffer());
      const m = await Model.load('mnist-mlp', { backend: 'webgpu', maxBatch: 100 });
      const before = m.backend;
      const first = await m.predictBatch(all.subarray(0, 100 * 784), 100);
      m.__loseDeviceForTesting();
      // The loss is reported asynchronously (GPUDevice.lost); a batch in between must not fail either.
      const during = await m.predictBatch(all.subarray(100 * 784, 200 * 784), 100);
      await new Promise((ok) => setTimeout(ok, 100));
      const after = await m.predictBatch(all.subarray(200 * 784, 300 * 784), 100);
      const sync = m.predictSync(all.subarray(300 * 784, 301 * 784));
      return {
        before, firstBackend: first.backend, duringBackend: during.backend, afterBackend: after.backend, backend: m.backend,
        lost: m.info().deviceLost, syncBackend: sync.backend,
        probs: [...first.probs, ...during.probs, ...after.probs],
      };
    });
    assert.equal(r.before, 'webgpu');
    assert.equal(r.firstBackend, 'webgpu');
    assert.equal(r.afterBackend, 'cpu');
    assert.equal(r.backend, 'cpu', 'model.backend says where it runs now');
    assert.equal(r.syncBackend, 'cpu', 'predictSync works again once on the CPU');
    assert.ok(typeof r.lost === 'string' && r.lost.length > 0, `info().deviceLost says why: ${r.lost}`);
    t.diagnostic(`during the loss the batch ran on: ${r.duringBackend}; reason: ${r.lost}`);
    compare(t, 'mnist-mlp across a device loss', r.probs, 'mnist-mlp', 0, 300);
  } finally {
    await browser.close();
  }
});

test("Chromium without WebGPU: 'webgpu' rejects with NO_WEBGPU, 'auto' falls back to the CPU", async (t) => {
  const { browser, page } = await openPage(false);
  try {
    const e = await page.evaluate(async () => {
      const { Model } = await import('/index.js');
      try {
        await Model.load('mnist-cnn', { backend: 'webgpu' });
        return null;
      } catch (err) {
        return { code: err.code, name: err.name, message: err.message };
      }
    });
    assert.ok(e, "backend: 'webgpu' must reject without an adapter");
    assert.equal(e.code, 'NO_WEBGPU');
    assert.equal(e.name, 'MdeployError');
    assert.match(e.message, /backend: 'auto'/, 'says how to fix it');
    assert.match(e.message, /enable-unsafe-webgpu|enable WebGPU/);
    for (const model of MODELS) {
      const r = await page.evaluate(runInPage, { model, backend: 'auto', from: 1000, count: 200, single: 10, maxBatch: 64 });
      assert.equal(r.backend, 'cpu');
      assert.equal(r.batchBackend, 'cpu');
      assert.equal(r.info.adapter, null);
      compare(t, `${model} auto without WebGPU`, r.probs, model, 1000, 200);
      compare(t, `${model} auto without WebGPU, one by one`, r.one, model, 1000, 10);
    }
  } finally {
    await browser.close();
  }
});

// Runs in the page: the same work inside a module Web Worker.
async function runInWorker(msg) {
  const w = new Worker('/test/browser/worker.mjs', { type: 'module' });
  try {
    return await new Promise((ok, fail) => {
      w.onmessage = ({ data }) => ok({ ...data, probs: data.probs ? Array.from(data.probs) : null });
      w.onerror = (e) => fail(new Error(`worker error: ${e.message}`));
      w.postMessage(msg);
    });
  } finally {
    w.terminate();
  }
}

test('a module Web Worker imports the package and matches native (cpu and auto)', async (t) => {
  const { browser, page, errors } = await openPage(true);
  try {
    for (const [model, backend] of [['mnist-cnn', 'cpu'], ['mnist-mlp', 'auto']]) {
      const from = 1000;
      const r = await page.evaluate(runInWorker, { model, backend, from, count: 200 });
      assert.equal(r.error, undefined, `worker failed: ${JSON.stringify(r.error)}`);
      assert.equal(r.backend, 'cpu', `${backend} in a worker on SwiftShader runs on the CPU`);
      compare(t, `${model} ${backend} in a Web Worker`, r.probs, model, from, 200);
      assert.equal(String(r.singleLabel), String(argmax(ref.models[model].probs, from * 10, 10)));
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
