// The CPU-only module in Node (DESIGN.md, "The CPU-only module"): a model that will not use WebGPU
// (every model in Node: it has no WebGPU) is loaded from dist/mdeploy_wasm_cpu*.wasm, never from
// the WebGPU-capable build, and answers like the native core on real test digits; a caller that
// hosts the full build itself (init({ wasm })) still gets that one module for everything.
// Each case is a fresh process (which-module.mjs) that records the files index.js reads.
// The Chromium side (which files a page fetches, WebGPU still on the full module) is in
// cold-start-browser.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argmax, nativeRef, WASM_DIR } from './support.mjs';

const COUNT = 100;
const ref = nativeRef();
const child = fileURLToPath(new URL('./which-module.mjs', import.meta.url));
const run = (cfg, flags = []) =>
  JSON.parse(execFileSync(process.execPath, [...flags, child, JSON.stringify({ count: COUNT, ...cfg })], { encoding: 'utf8', maxBuffer: 1 << 26 }));
const dist = (f) => join(WASM_DIR, 'dist', f);

function sameAsNative(name, probs) {
  const r = ref.models[name];
  assert.ok(r, `native reference has no ${name}`);
  let worst = 0;
  for (let i = 0; i < COUNT; i++) {
    assert.equal(argmax(probs, i * 10, 10), argmax(r.probs, i * 10, 10), `${name} digit ${i}: argmax differs from the native core`);
    for (let j = 0; j < 10; j++) worst = Math.max(worst, Math.abs(probs[i * 10 + j] - r.probs[i * 10 + j]));
  }
  // 1e-5 as in parity.test.mjs (the relaxed build's fused multiply-adds round differently).
  assert.ok(worst <= 1e-5, `${name}: max |Δp| vs native ${worst} > 1e-5`);
}

const LOADS = [['mnist-mlp', {}], ['mnist-cnn', { backend: 'cpu' }]];

test("Node: 'auto' and 'cpu' models load the CPU-only .wasm only, and answer like the native core", () => {
  const got = run({ init: null, loads: LOADS });
  assert.deepEqual(got.wasmReads, [dist('mdeploy_wasm_cpu_bg.wasm')], 'one .wasm read, the CPU-only simd128 one (Node 20 rejects relaxed SIMD without a flag)');
  for (const [name] of LOADS) {
    assert.equal(got.models[name].wasmModule, 'cpu-only', `${name} runs on the CPU-only module`);
    assert.equal(got.models[name].backend, 'cpu');
    sameAsNative(name, got.models[name].probs);
  }
  assert.equal(got.preprocessed, 784, 'preprocess ran on the module already loaded');
});

test('Node with relaxed SIMD: the CPU-only relaxed .wasm, same answers', () => {
  const got = run({ init: {}, loads: LOADS }, ['--experimental-wasm-relaxed-simd']);
  assert.deepEqual(got.wasmReads, [dist('mdeploy_wasm_cpu_relaxed.wasm')]);
  assert.equal(got.runtime.variant, 'relaxed');
  assert.equal(got.runtime.wasmModule, 'cpu-only', 'init() starts the CPU-only module');
  for (const [name] of LOADS) {
    assert.equal(got.models[name].wasmModule, 'cpu-only');
    sameAsNative(name, got.models[name].probs);
  }
});

test('Node: init({ wasm }) with the full build alone runs every model on that one module, as before', () => {
  const got = run({ init: { wasm: dist('mdeploy_wasm_bg.wasm') }, loads: LOADS });
  assert.deepEqual(got.wasmReads, [dist('mdeploy_wasm_bg.wasm')], 'the CPU-only module is not loaded when the caller hosts the full one');
  assert.equal(got.runtime.wasmModule, 'full');
  for (const [name] of LOADS) {
    assert.equal(got.models[name].wasmModule, 'full');
    sameAsNative(name, got.models[name].probs);
  }
});

test('Node: init({ cpuWasm }) is the CPU-only .wasm the caller hosts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mdeploy-cpuwasm-'));
  try {
    const hosted = join(dir, 'hosted-cpu.wasm');
    copyFileSync(dist('mdeploy_wasm_cpu_bg.wasm'), hosted);
    const got = run({ init: { cpuWasm: hosted }, loads: LOADS.slice(0, 1) });
    assert.deepEqual(got.wasmReads, [hosted], 'the hosted file, and nothing from dist/');
    assert.equal(got.models['mnist-mlp'].wasmModule, 'cpu-only');
    sameAsNative('mnist-mlp', got.models['mnist-mlp'].probs);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
