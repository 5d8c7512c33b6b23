// Parity: every digit of the fixed test split (2,000) through every parity model (models/parity.json) in wasm, in
// both SIMD variants, one at a time and as one batch, against the native core's probabilities
// (examples/native_ref.rs). Argmax must be identical on every digit, probabilities within 1e-5.
// Also against the independent f64 reference (core/testkit): probabilities within 1e-4, argmax
// equal wherever the reference's top-2 margin exceeds 1e-4. Models: models/parity.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { argmax, checkF64, f64Ref, nativeRef, parityModels, range, testSplit } from './support.mjs';

const TOL = 1e-5;
const MODELS = parityModels();
const ref = nativeRef();
const f64 = f64Ref();
const { ys, n } = testSplit();

function compare(t, what, probs, native, ol, model) {
  const { worst: w64, checked } = checkF64(what, f64, model, probs, range(0, n));
  t.diagnostic(`${what}: max |Δp| vs f64 reference = ${w64.toExponential(2)}, argmax checked on ${checked}`);
  assert.equal(probs.length, native.length, `${what}: output length`);
  let worst = 0;
  let worstAt = -1;
  let mismatches = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const a = argmax(probs, i * ol, ol);
    if (a !== argmax(native, i * ol, ol)) mismatches++;
    if (a === ys[i]) correct++;
    for (let j = 0; j < ol; j++) {
      const d = Math.abs(probs[i * ol + j] - native[i * ol + j]);
      if (d > worst) { worst = d; worstAt = i; }
    }
  }
  t.diagnostic(`${what}: ${correct}/${n} correct, max |Δp| vs native = ${worst.toExponential(2)} (digit ${worstAt})`);
  assert.equal(mismatches, 0, `${what}: argmax differs from native on ${mismatches} digits`);
  assert.ok(worst <= TOL, `${what}: probabilities differ from native by ${worst} (digit ${worstAt}) > ${TOL}`);
  return correct;
}

const child = fileURLToPath(new URL('./split-probs.mjs', import.meta.url));
const runChild = (model, variant, flags) =>
  JSON.parse(execFileSync(process.execPath, [...flags, child, model, variant], { maxBuffer: 1 << 28, encoding: 'utf8' }));

for (const name of MODELS) {
  test(`${name}: wasm matches native on all ${n} test digits`, async (t) => {
    const r = ref.models[name];
    assert.ok(r, `native reference has no ${name}`);
    assert.equal(r.probs.length, n * r.outputLen);

    const simd = runChild(name, 'simd', []);
    assert.equal(simd.variant, 'simd');
    compare(t, `${name} simd128 batch`, simd.batch, r.probs, r.outputLen, name);
    compare(t, `${name} simd128 one by one`, simd.single, r.probs, r.outputLen, name);

    // Node 20 rejects relaxed-SIMD modules unless the flag is on: with it, the runtime's
    // WebAssembly.validate probe picks the relaxed build.
    const relaxed = runChild(name, 'auto', ['--experimental-wasm-relaxed-simd']);
    assert.equal(relaxed.variant, 'relaxed', "'auto' picks the relaxed build where the engine accepts it");
    compare(t, `${name} relaxed-simd batch`, relaxed.batch, r.probs, r.outputLen, name);
    compare(t, `${name} relaxed-simd one by one`, relaxed.single, r.probs, r.outputLen, name);
  });
}

test("'auto' picks the simd128 build where relaxed SIMD is rejected (plain Node 20)", async () => {
  const { init, wasmFeatures } = await import('../index.js');
  const feats = wasmFeatures();
  const rt = await init();
  assert.equal(rt.variant, feats.relaxedSimd ? 'relaxed' : 'simd');
  assert.equal(rt.simd128, true);
  assert.equal(rt.relaxedSimd, rt.variant === 'relaxed', 'the loaded .wasm was compiled for the variant it claims');
  // A second init asking for something else cannot be honoured, and says so.
  const other = rt.variant === 'simd' ? 'relaxed' : 'simd';
  await assert.rejects(init({ variant: other }), (e) => e.code === 'UNSUPPORTED' && /already initialised/.test(e.message));
  assert.deepEqual(await init({ variant: rt.variant }), rt);
});
