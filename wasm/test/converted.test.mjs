// Models that came from ONNX (models/test/converted.json: made by `mdeploy convert` from files real
// exporters wrote) run in the npm package and agree with their independent reference (the exporting
// framework's or onnxruntime's own outputs, committed beside the .onnx file) on all 2,000 test digits:
// max difference <= 1e-5, argmax identical. parity.test.mjs compares the same models with the
// native core; this compares them with what the model's authors' tools computed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Model, builtinModels, init } from '../index.js';
import { ROOT, argmax, modelSource, testSplit } from './support.mjs';

const TOL = 1e-5;
const entries = JSON.parse(readFileSync(join(ROOT, 'models/test/converted.json'), 'utf8'));
const { xs, ys, n } = testSplit();

test('models/test/converted.json lists at least one converted model', () => {
  assert.ok(entries.length > 0);
});

for (const e of entries) {
  const name = basename(e.model, '.mdm');
  test(`${name} (converted from ${basename(e.onnx)}): npm package matches ${e.reference_by ?? e.reference}`, async (t) => {
    await init();
    const m = await Model.load(modelSource(name, builtinModels));
    const ol = m.outputLen;
    const raw = readFileSync(join(ROOT, e.reference));
    assert.equal(raw.length, n * ol * 4, `${e.reference}: ${n} x ${ol} little-endian f32`);
    const want = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
    const { probs } = await m.predictBatch(xs, n);
    let worst = 0;
    let worstAt = -1;
    let mismatches = 0;
    let correct = 0;
    for (let i = 0; i < n; i++) {
      const a = argmax(probs, i * ol, ol);
      if (a !== argmax(want, i * ol, ol)) mismatches++;
      if (a === ys[i]) correct++;
      for (let j = 0; j < ol; j++) {
        const d = Math.abs(probs[i * ol + j] - want[i * ol + j]);
        if (d > worst) { worst = d; worstAt = i; }
      }
    }
    t.diagnostic(`${name}: ${correct}/${n} correct, max |Δ| vs reference = ${worst.toExponential(2)} (digit ${worstAt})`);
    assert.equal(mismatches, 0, `${name}: argmax differs from the reference on ${mismatches} digits`);
    assert.ok(worst <= TOL, `${name}: differs from the reference by ${worst} (digit ${worstAt}) > ${TOL}`);
  });
}
