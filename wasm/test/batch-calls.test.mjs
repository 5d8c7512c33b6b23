// A CPU batch goes to the engine in calls of about 64K input values (index.js `#runCpu`,
// DESIGN.md "The batch copies"). What the split must not change, checked here on the real
// engine: predictBatchSync and predictBatch give the very output bits of ONE Engine.run call over
// the whole batch (the wasm-bindgen class, called directly), for every model the package copies
// to wasm/models/ (defaults, parity and bit-exact models) and the binary-input MLP, on the 2,000
// test digits (random values for a model that does not take a 784-value digit) and on batch
// sizes around the call size, at the default maxBatch (calls of whole plan chunks) and at 1,024
// (calls of equal size); a batch with a value that is not finite in a late call is refused with
// the error one call gives (naming the sample in the whole batch), nothing half-run, and the
// model answers the next batch. Node's default variant (simd128; relaxed with the flag).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model, init } from '../index.js';
import { ROOT, WASM_DIR, fnv1a, testSplit } from './support.mjs';

const rt = await init();
// The glue index.js loaded (the same module instance), for the one-call reference.
const glue = await import('../dist/mdeploy_wasm_cpu.js');
await glue.default({ module_or_path: readFileSync(join(WASM_DIR, 'dist', rt.variant === 'relaxed' ? 'mdeploy_wasm_cpu_relaxed.wasm' : 'mdeploy_wasm_cpu_bg.wasm')) });

const { xs: digits, n: N } = testSplit();
const files = [
  ...readdirSync(join(WASM_DIR, 'models')).filter((f) => f.endsWith('.mdm')).sort().map((f) => join(WASM_DIR, 'models', f)),
  join(ROOT, 'models/mnist-mlp-binary-in.mdm'),
];

// Deterministic values in -1..1 for a model whose samples are not 784 values.
function values(count) {
  const v = new Float32Array(count);
  let s = 12345;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    v[i] = (s / 2 ** 31) - 1;
  }
  return v;
}

function sameBits(what, got, want) {
  assert.equal(got.length, want.length, `${what}: output length`);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const at = g.findIndex((b, i) => b !== w[i]);
  assert.equal(at, -1, `${what}: output ${at} is ${got[at]}, one call gives ${want[at]}`);
}

for (const file of files) {
  const name = file.slice(file.lastIndexOf('/') + 1, -4);
  test(`${name}: a batch in calls gives the bits of one engine call (${rt.variant})`, async (t) => {
    const bytes = new Uint8Array(readFileSync(file));
    for (const maxBatch of [64, 1024]) {
      const one = new glue.Engine(bytes, 'cpu', maxBatch);
      const m = await Model.load(bytes, { backend: 'cpu', maxBatch });
      try {
        const il = one.inputLen;
        const n = il === 784 ? N : Math.min(N, Math.max(40, Math.floor(4e6 / il)));
        const xs = il === 784 ? digits : values(n * il);
        const want = one.run(xs, n);
        sameBits(`${name} maxBatch ${maxBatch} predictBatchSync(${n})`, m.predictBatchSync(xs, n).probs, want);
        sameBits(`${name} maxBatch ${maxBatch} predictBatch(${n})`, (await m.predictBatch(xs, n)).probs, want);
        // 1,025 at maxBatch 1024 is left out: one call runs its last sample alone (the plan's
        // one-sample path, other f32 bits), which the calls of equal size avoid.
        for (const k of [83, 84, 85, 128, 129, 166, 167, 1000, ...(maxBatch === 64 ? [1025] : [])].filter((k) => k <= n)) {
          sameBits(`${name} maxBatch ${maxBatch} batch ${k}`, m.predictBatchSync(xs.subarray(0, k * il), k).probs, one.run(xs.subarray(0, k * il), k));
        }
        t.diagnostic(`${name} maxBatch ${maxBatch}: ${n} samples of ${il} values, FNV-1a ${fnv1a(want)}`);
        // A value that is not finite in the last call: one call's error, naming the sample.
        const bad = xs.slice(0, n * il);
        const s = n - 3;
        bad[s * il + 5] = NaN;
        let oneErr;
        try {
          one.run(bad, n);
        } catch (e) {
          oneErr = e;
        }
        assert.ok(oneErr, `${name}: one call accepted a NaN`);
        assert.throws(() => m.predictBatchSync(bad, n), (e) => e.code === 'BAD_INPUT' && e.message.includes(`sample ${s},`) && e.message === String(oneErr.message ?? oneErr).replace(/^BAD_INPUT: /, ''),
          `${name}: the error of a batch in calls is not the one-call error (${oneErr.message ?? oneErr})`);
        sameBits(`${name} maxBatch ${maxBatch} after a refused batch`, m.predictBatchSync(xs, n).probs, want);
      } finally {
        one.free();
        m.dispose();
      }
    }
  });
}
