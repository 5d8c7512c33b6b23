// The Wizer snapshot's memory layout (worker/src/heap.rs): the memory image must end well before
// the end of the initial memory, so that a request's allocations, which come from the heap's top
// chunk, are fresh anonymous pages and not copy-on-write copies of image pages. Until 2026-11-30
// a few bytes malloc left near the end of memory stretched the image over the whole top chunk
// (worker/README.md, "What a request costs"); this reads the component's own data segments.
//   MDEPLOY_WORKER_WASM  the snapshot (…/mdeploy-worker.wizer.wasm; tests/serverless/run.sh passes it)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const WASM = process.env.MDEPLOY_WORKER_WASM;
if (!WASM) throw new Error('MDEPLOY_WORKER_WASM is not set: run `bash tests/serverless/run.sh`, which builds the snapshot first');

function uleb(b, i) {
  let r = 0n, s = 0n;
  for (;;) {
    const x = b[i++];
    r |= BigInt(x & 0x7f) << s; s += 7n;
    if (x < 0x80) return [Number(r), i];
  }
}
function sleb(b, i) {
  let r = 0n, s = 0n, x;
  do { x = b[i++]; r |= BigInt(x & 0x7f) << s; s += 7n; } while (x >= 0x80);
  if (x & 0x40) r -= 1n << s;
  return [Number(r), i];
}

/** Defined memories (minimum pages) and active data segments ([offset, length]) of a core module. */
function coreModule(b) {
  const out = { memMin: [], segments: [] };
  for (let i = 8; i < b.length;) {
    const id = b[i++];
    let size; [size, i] = uleb(b, i);
    const end = i + size;
    if (id === 5) {
      let n, j = i; [n, j] = uleb(b, j);
      for (let k = 0; k < n; k++) {
        let flags, min; [flags, j] = uleb(b, j); [min, j] = uleb(b, j);
        if (flags & 1) [, j] = uleb(b, j);
        out.memMin.push(min);
      }
    } else if (id === 11) {
      let n, j = i; [n, j] = uleb(b, j);
      for (let k = 0; k < n; k++) {
        let flag, len; [flag, j] = uleb(b, j);
        if (flag === 1) { [len, j] = uleb(b, j); j += len; continue; }
        if (flag === 2) [, j] = uleb(b, j);
        assert.equal(b[j], 0x41, 'an active data segment with a constant i32 offset');
        let off; [off, j] = sleb(b, j + 1);
        assert.equal(b[j], 0x0b);
        [len, j] = uleb(b, j + 1);
        out.segments.push([off, len]);
        j += len;
      }
    }
    i = end;
  }
  return out;
}

/** Every core module of a component (nested components included). */
function coreModules(b, found = []) {
  for (let i = 8; i < b.length;) {
    const id = b[i++];
    let size; [size, i] = uleb(b, i);
    if (id === 1) found.push(coreModule(b.subarray(i, i + size)));
    else if (id === 4) coreModules(b.subarray(i, i + size), found);
    i += size;
  }
  return found;
}

test('the snapshot\'s memory image ends well before the end of its initial memory', (t) => {
  const mods = coreModules(readFileSync(WASM)).filter((m) => m.memMin.length === 1 && m.segments.length > 0);
  assert.equal(mods.length, 1, 'one core module with a memory and data (the worker)');
  const [{ memMin: [pages], segments }] = mods;
  const memEnd = pages * 65536;
  const imageEnd = Math.max(...segments.map(([off, len]) => off + len));
  const headroom = memEnd - imageEnd;
  t.diagnostic(`${segments.length} data segments; image ends at ${imageEnd} of ${memEnd} bytes (${(headroom / 1024).toFixed(0)} KiB of fresh pages past it)`);
  // At least one 64 KiB wasm page of the initial memory past the image: what a request allocates
  // (the body, its numbers, the answer) comes from there without growing the memory.
  assert.ok(headroom >= 65536, `the image ends ${headroom} bytes before the end of memory; worker/src/heap.rs's clear_past_top should leave the top chunk zero`);
});
