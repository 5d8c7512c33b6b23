// Bit-exactness, Node: the integer models of models/bitexact.json (the int8 and 4-bit defaults)
// give the very same output bits in the npm package, in both SIMD builds (simd128; relaxed, which
// Node 20 accepts with --experimental-wasm-relaxed-simd), as one batch and one digit at a time, as
// the native core on every kernel set: the FNV-1a digest of all 2,000 × 10 f32 outputs equals the
// one examples/native_ref.rs computed (and checked across native sets) in this run. The other
// hosts check the same fixture: browser.test.mjs (Chromium), tests/serverless (component, Worker).
// Why it can hold: core/runtime/QUANT.md ("Bit-identical on every host").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bitexactRef, fnv1a, testSplit } from './support.mjs';

const bits = bitexactRef();
const { n } = testSplit();
const child = fileURLToPath(new URL('./split-probs.mjs', import.meta.url));
const runChild = (model, variant, flags) =>
  JSON.parse(execFileSync(process.execPath, [...flags, child, model, variant], { maxBuffer: 1 << 28, encoding: 'utf8' }));

for (const [model, want] of Object.entries(bits)) {
  test(`${model}: the same output bits as every native kernel set, simd128 and relaxed, batch and one by one`, (t) => {
    assert.equal(want.count, n);
    t.diagnostic(`${model}: native ${want.digest} (${want.runs.join('; ')})`);
    for (const [variant, flags] of [['simd', []], ['auto', ['--experimental-wasm-relaxed-simd']]]) {
      const r = runChild(model, variant, flags);
      assert.equal(r.variant, variant === 'auto' ? 'relaxed' : 'simd');
      assert.equal(r.batch.length, n * 10);
      const batch = fnv1a(r.batch);
      const single = fnv1a(r.single);
      t.diagnostic(`${model} ${r.variant}: batch ${batch}, one by one ${single}`);
      assert.equal(batch, want.digest, `${model} ${r.variant} batch: output bits differ from native`);
      assert.equal(single, want.digest, `${model} ${r.variant} one by one: output bits differ from native`);
    }
  });
}

test('fnv1a is the Rust digest: known values, and a value that is not an f32 is refused', () => {
  // FNV-1a offset basis for no input; one 0.0f32 (bits 0): basis × prime.
  assert.equal(fnv1a(new Float32Array(0)), 'cbf29ce484222325');
  assert.equal(fnv1a(new Float32Array([0])), ((0xcbf29ce484222325n * 0x100000001b3n) & 0xffffffffffffffffn).toString(16));
  // 1.0f32 = 0x3f800000 and -0.0 = 0x80000000 differ from +0.0: the digest is over bits, not values.
  assert.notEqual(fnv1a(new Float32Array([-0])), fnv1a(new Float32Array([0])));
  assert.throws(() => fnv1a([0.1]), /not an f32/);
  assert.equal(fnv1a([Math.fround(0.1)]), fnv1a(new Float32Array([0.1])));
});
