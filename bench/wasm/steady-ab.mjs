// Steady-state A/B of two (or more) builds' CPU-only modules in one Node process (issue 15: a
// build setting for the load path must not slow the run path). Each dist's glue is imported
// once (a module instance each), every model gets an Engine per build, and the runs interleave
// round by round: batch 1024 and batch 1 (µs per image, min and median), and a warm `Engine`
// (read + validate + lower + plan at maxBatch 64, process CPU ms: the load path's own run time
// once its code is compiled, what a build setting changes apart from the compile). The outputs over the
// 2,000 test digits (the last 200 of each) are FNV-1a hashed per build: the bits must agree.
//   node bench/wasm/steady-ab.mjs <rounds> <model,model...> <distA> <distB> [...]
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { mnistDir } from '../../wasm/test/support.mjs';

const [roundsArg = '15', namesArg = 'mnist-mlp,mnist-cnn', ...dists] = process.argv.slice(2);
const rounds = +roundsArg, names = namesArg.split(','), N = 2000, BATCH = 1024;
const xs = new Float32Array(N * 784);
for (let d = 0; d < 10; d++) {
  const { data } = JSON.parse(await readFile(`${mnistDir()}/${d}.json`, 'utf8'));
  xs.set(data.slice(data.length - 200 * 784), d * 200 * 784);
}
const fnv = (f32) => { let h = 0x811c9dc5; for (const b of new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength)) h = Math.imul(h ^ b, 0x01000193) >>> 0; return h.toString(16); };
const load0 = loadavg()[0];
const builds = [];
for (const d of dists) {
  const dir = resolve(d);
  const glue = await import(`file://${dir}/mdeploy_wasm_cpu.js?${builds.length}`);
  const wasm = glue.initSync({ module: new WebAssembly.Module(readFileSync(`${dir}/mdeploy_wasm_cpu_bg.wasm`)) });
  builds.push({ d, glue, wasm });
}
const cells = [];
for (const name of names) {
  const bytes = readFileSync(new URL(`../../wasm/models/${name}.mdm`, import.meta.url));
  for (const b of builds) {
    const e = new b.glue.Engine(bytes, 'cpu', BATCH);
    let h = '';
    for (let at = 0; at < N; at += BATCH) { const n = Math.min(BATCH, N - at); h += fnv(e.run(xs.subarray(at * 784, (at + n) * 784), n)); }
    cells.push({ name, d: b.d, e, glue: b.glue, bytes, digest: h, big: [], one: [], warm: [] });
  }
}
// Linear memory each instance grew to (every model loaded at maxBatch 1024, 2,000 digits run).
for (const b of builds) console.log(`${b.d}: linear memory ${(b.wasm.memory.buffer.byteLength / 2 ** 20).toFixed(1)} MiB after loading ${names.length} models`);
const x1024 = xs.subarray(0, BATCH * 784);
for (let r = 0; r < rounds; r++) {
  const order = r % 2 ? [...cells].reverse() : cells;
  for (const c of order) {
    let t = performance.now();
    c.e.run(x1024, BATCH);
    c.big.push(((performance.now() - t) * 1000) / BATCH);
    t = performance.now();
    for (let i = 0; i < 64; i++) c.e.run(xs.subarray(i * 784, (i + 1) * 784), 1);
    c.one.push(((performance.now() - t) * 1000) / 64);
    const c0 = process.cpuUsage();
    const e = new c.glue.Engine(c.bytes, 'cpu', 64);
    const cu = process.cpuUsage(c0);
    e.free();
    c.warm.push((cu.user + cu.system) / 1000);
  }
}
const st = (v, d = 1) => { const s = [...v].sort((a, b) => a - b); return `${s[0].toFixed(d)} / ${s[s.length >> 1].toFixed(d)}`; };
console.log(`${rounds} rounds interleaved, load average ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}; µs per image, min / median`);
console.log('| model | build | batch 1024 | batch 1 | warm Engine (ms CPU) | output digest (2,000 digits) |\n|---|---|---:|---:|---:|---|');
for (const c of cells) console.log(`| ${c.name} | ${c.d} | ${st(c.big)} | ${st(c.one)} | ${st(c.warm, 2)} | ${c.digest.slice(0, 16)} |`);
for (const name of names) {
  const ds = new Set(cells.filter((c) => c.name === name).map((c) => c.digest));
  console.log(`${name}: outputs ${ds.size === 1 ? 'bit-identical across builds' : 'DIFFER'}`);
}
