// The .wasm's allocator under churn (DESIGN.md, "The allocator"): every built-in model loaded,
// run and freed 150 times over, at changing maxBatch, in one instance of the CPU-only simd128
// module. Linear memory never shrinks, so a leak or fragmentation that keeps asking for fresh
// pages shows as growth between round 10 and round 150; the bound says the models' working set
// stays where one load puts it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_MODELS, WASM_DIR } from './support.mjs';

test('allocator: loading and freeing every built-in model 150 times keeps linear memory flat', async (t) => {
  const glue = await import(pathToFileURL(join(WASM_DIR, 'dist', 'mdeploy_wasm_cpu.js')).href);
  const wasm = glue.initSync({ module: new WebAssembly.Module(readFileSync(join(WASM_DIR, 'dist', 'mdeploy_wasm_cpu_bg.wasm'))) });
  const models = DEFAULT_MODELS.map((name) => readFileSync(join(WASM_DIR, 'models', `${name}.mdm`)));
  const batches = [1, 64, 1024, 7, 300];
  const mib = () => wasm.memory.buffer.byteLength / 2 ** 20;
  let afterFirst = 0, afterTen = 0;
  for (let round = 0; round < 150; round++) {
    const engines = models.map((bytes, i) => new glue.Engine(bytes, 'cpu', batches[(round + i) % batches.length]));
    for (const e of engines) {
      const out = e.run(new Float32Array(e.inputLen).fill(0.25), 1);
      assert.ok(out.every(Number.isFinite));
    }
    // Freed in another order than loaded, so the free lists see holes, not a stack.
    for (const e of engines.reverse()) e.free();
    if (round === 0) afterFirst = mib();
    if (round === 9) afterTen = mib();
  }
  const last = mib();
  t.diagnostic(`linear memory: ${afterFirst.toFixed(1)} MiB after one round, ${afterTen.toFixed(1)} after 10, ${last.toFixed(1)} after 150`);
  assert.equal(last, afterTen, 'memory grew between round 10 and round 150: the allocator leaks or fragments');
  assert.ok(last <= 2 * afterFirst + 4, `memory ${last.toFixed(1)} MiB is more than twice one round's ${afterFirst.toFixed(1)} MiB`);
});
