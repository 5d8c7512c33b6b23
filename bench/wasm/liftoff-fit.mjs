// What one lazily compiled function costs V8 on this machine (issue 15): Liftoff time against body
// bytes, locals and function count, fitted, so the cold-start floor of "compile less" can be said.
//   node bench/wasm/liftoff-fit.mjs [module.wasm] [index,index,...|all] [rounds]
// Re-runs itself with `--no-wasm-lazy-compilation --single-threaded --no-wasm-tier-up
// --no-wasm-native-module-cache-enabled` (every function compiled by Liftoff on the main thread, timed in process CPU,
// no module reused between compiles).
//
// 1. Per function: the module with every body replaced by `unreachable` (the base), and the same
//    plus K appended copies of one real body (same type: they validate, nothing calls them).
//    Liftoff time of that body = (min over rounds of compile(base + K copies) − min of
//    compile(base)) / K, K chosen so the copies are ≥ 32 KB (timer noise spread over K).
//    Fitted by least squares: µs = a + b·KB + c·(locals / 100).
// 2. The lazy path's own cost per function (trap into the runtime, compile, patch the jump table):
//    a module of N tiny functions called once each by one driver, the first call (lazy: N compiles)
//    against the second (all compiled), in fresh processes without the flags above.
// Prints a markdown summary and one JSON line.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const FLAGS = ['--no-wasm-lazy-compilation', '--single-threaded', '--no-wasm-tier-up', '--no-wasm-native-module-cache-enabled'];
const self = new URL(import.meta.url).pathname;
const [wasmArg, pick = 'all', roundsArg = '5'] = process.argv.slice(2);
const wasmPath = wasmArg ?? new URL('../../wasm/dist/mdeploy_wasm_cpu_bg.wasm', import.meta.url).pathname;

// --- wasm binary helpers --------------------------------------------------------------------
const leb = (n) => { const o = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return o; };
function reader(bytes, p = 0) {
  return {
    get p() { return p; }, set p(v) { p = v; },
    u() { let r = 0, s = 0, b; do { b = bytes[p++]; r += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80); return r; },
    byte() { return bytes[p++]; },
  };
}
function sections(bytes) {
  const r = reader(bytes, 8), out = [];
  while (r.p < bytes.length) {
    const id = r.byte(), len = r.u(), start = r.p;
    out.push({ id, start, end: start + len });
    r.p = start + len;
  }
  return out;
}
const section = (id, payload) => [id, ...leb(payload.length), ...payload];

function parse(bytes) {
  const secs = sections(bytes);
  const code = secs.find((s) => s.id === 10), funcs = secs.find((s) => s.id === 3);
  const r = reader(bytes, funcs.start), types = [];
  for (let n = r.u(); n > 0; n--) types.push(r.u());
  const bodies = [];
  r.p = code.start;
  for (let n = r.u(); n > 0; n--) {
    const size = r.u(), start = r.p;
    const b = reader(bytes, start);
    let locals = 0;
    for (let g = b.u(); g > 0; g--) { locals += b.u(); b.byte(); }
    bodies.push({ start, size, locals });
    r.p = start + size;
  }
  return { secs, types, bodies };
}

// The module with every body stubbed but those in `keep`, plus copies of `extra` (a body index) K times.
function build(bytes, m, extra = -1, k = 0, keep = new Set()) {
  const out = [...bytes.subarray(0, 8)];
  const stub = [3, 0, 0x00, 0x0b]; // size 3: no locals, unreachable, end
  for (const s of m.secs) {
    if (s.id === 0) continue; // custom sections (names): not compiled
    if (s.id === 3) {
      const t = [...leb(m.types.length + k)];
      for (const ty of m.types) t.push(...leb(ty));
      for (let i = 0; i < k; i++) t.push(...leb(m.types[extra]));
      out.push(...section(3, t));
    } else if (s.id === 10) {
      const c = [...leb(m.bodies.length + k)];
      for (let i = 0; i < m.bodies.length; i++) {
        const b = m.bodies[i];
        if (keep.has(i)) { c.push(...leb(b.size)); for (let j = 0; j < b.size; j++) c.push(bytes[b.start + j]); } else c.push(...stub);
      }
      const b = m.bodies[extra];
      for (let i = 0; i < k; i++) { c.push(...leb(b.size)); for (let j = 0; j < b.size; j++) c.push(bytes[b.start + j]); }
      out.push(...section(10, c));
    } else out.push(s.id, ...leb(s.end - s.start), ...bytes.subarray(s.start, s.end));
  }
  return new Uint8Array(out);
}

// Process CPU time, not wall: the machine is shared, and with --single-threaded the compile is all
// on this thread (Node's own idle threads add nothing).
function compileUs(bytes) {
  const c0 = process.cpuUsage();
  new WebAssembly.Module(bytes);
  const c = process.cpuUsage(c0);
  return c.user + c.system;
}

function fit(rows) { // least squares y = a + b·x1 + c·x2 (3×3 normal equations, Gauss)
  const X = rows.map((r) => [1, r.kb, r.locals / 100]), y = rows.map((r) => r.us);
  const A = [0, 1, 2].map((i) => [0, 1, 2].map((j) => X.reduce((s, x) => s + x[i] * x[j], 0)));
  const v = [0, 1, 2].map((i) => X.reduce((s, x, n) => s + x[i] * y[n], 0));
  for (let i = 0; i < 3; i++) for (let j = i + 1; j < 3; j++) {
    const f = A[j][i] / A[i][i];
    for (let k = i; k < 3; k++) A[j][k] -= f * A[i][k];
    v[j] -= f * v[i];
  }
  const c = [0, 0, 0];
  for (let i = 2; i >= 0; i--) c[i] = (v[i] - [0, 1, 2].slice(i + 1).reduce((s, k) => s + A[i][k] * c[k], 0)) / A[i][i];
  const mean = y.reduce((a, b) => a + b, 0) / y.length;
  const pred = X.map((x) => c[0] + c[1] * x[1] + c[2] * x[2]);
  const ssr = y.reduce((s, yi, n) => s + (yi - pred[n]) ** 2, 0), sst = y.reduce((s, yi) => s + (yi - mean) ** 2, 0);
  return { a: c[0], perKB: c[1], per100Locals: c[2], r2: 1 - ssr / sst };
}

// The lazy path: N tiny functions `(result i32) i32.const 1`, one driver calling each once.
function lazyModule(n) {
  const type = section(1, [1, 0x60, 0, 1, 0x7f]);
  const funcs = section(3, [...leb(n + 1), ...Array(n + 1).fill(0)]);
  const exp = section(7, [1, 3, ...Buffer.from('run'), 0, ...leb(n)]);
  const tiny = [4, 0, 0x41, 1, 0x0b];
  const drv = [0];
  for (let i = 0; i < n; i++) drv.push(0x10, ...leb(i), 0x1a); // call i; drop
  drv.push(0x41, 0, 0x0b);
  const code = section(10, [...leb(n + 1), ...Array(n).fill(tiny).flat(), ...leb(drv.length), ...drv]);
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...type, ...funcs, ...exp, ...code]);
}

if (process.argv[2] === '--lazy-child') {
  const n = +process.argv[3];
  const inst = new WebAssembly.Instance(new WebAssembly.Module(lazyModule(n)));
  const c0 = process.cpuUsage(); inst.exports.run(); const c1 = process.cpuUsage(); inst.exports.run();
  const c2 = process.cpuUsage();
  const us = (a, b) => b.user + b.system - a.user - a.system;
  console.log(JSON.stringify({ first: us(c0, c1), second: us(c1, c2) }));
  process.exit(0);
}

// 3. The selected functions together, once, in a fresh process (no warm-up of Liftoff by earlier
//    rounds, as a real cold start): compile(base + the set in place) − compile(base), CPU.
if (process.argv[2] === '--set-child') {
  const b = readFileSync(process.argv[3]), mm = parse(b), n = importsOf(b);
  const keep = new Set(process.argv[4].split(',').map((i) => +i - n));
  const base = build(b, mm), set = build(b, mm, -1, 0, keep);
  compileUs(lazyModule(10)); // V8's own first-compile costs out of the way
  const order = process.argv[5] === '1';
  const t1 = order ? compileUs(set) : compileUs(base), t2 = order ? compileUs(base) : compileUs(set);
  console.log(JSON.stringify({ setUs: order ? t1 : t2, baseUs: order ? t2 : t1 }));
  process.exit(0);
}

if (!FLAGS.every((f) => process.execArgv.includes(f))) {
  const r = spawnSync(process.execPath, [...FLAGS, self, ...process.argv.slice(2)], { stdio: 'inherit' });
  // 2. outside the flags: lazy compilation as shipped (but on one thread, as a first call is)
  const rows = [];
  for (const n of [200, 800]) {
    const runs = [];
    for (let i = 0; i < +roundsArg; i++) {
      const c = spawnSync(process.execPath, ['--single-threaded', self, '--lazy-child', String(n)], { encoding: 'utf8' });
      runs.push(JSON.parse(c.stdout));
    }
    const min = (k) => Math.min(...runs.map((x) => x[k]));
    rows.push({ n, firstMinUs: min('first'), secondMinUs: min('second'), perFunctionUs: (min('first') - min('second')) / n });
  }
  console.log('\nLazy path, N tiny functions called once (min of rounds, fresh process each, --single-threaded):');
  for (const x of rows) console.log(`  N = ${x.n}: first call ${x.firstMinUs.toFixed(0)} µs, second ${x.secondMinUs.toFixed(1)} µs → ${x.perFunctionUs.toFixed(2)} µs per function`);
  console.log(JSON.stringify({ lazy: rows }));
  if (pick !== 'all') {
    const runs = [];
    for (let i = 0; i < +roundsArg; i++) {
      const c = spawnSync(process.execPath, [...FLAGS, self, '--set-child', wasmPath, pick, String(i % 2)], { encoding: 'utf8' });
      runs.push(JSON.parse(c.stdout));
    }
    const d = runs.map((x) => x.setUs - x.baseUs).sort((a, b) => a - b);
    console.log(`\nThe selected functions at once, fresh process each (${runs.length}): compile(set) − compile(base) median ${(d[d.length >> 1] / 1000).toFixed(2)} ms CPU, min ${(d[0] / 1000).toFixed(2)}`);
  }
  process.exit(r.status ?? 1);
}

const bytes = readFileSync(wasmPath);
const m = parse(bytes);
const { loadavg } = await import('node:os');
const load0 = loadavg()[0];
const nImports = importsOf(bytes);
const idx = pick === 'all' ? m.bodies.map((_, i) => i).filter((i) => m.bodies[i].size >= 32)
  : pick.split(',').map((i) => +i - nImports);
function importsOf(b) { // function indices count imports first; bodies do not
  const s = sections(b).find((x) => x.id === 2); if (!s) return 0;
  const r = reader(b, s.start); let fns = 0;
  for (let n = r.u(); n > 0; n--) {
    for (let s2 = 0; s2 < 2; s2++) { const len = r.u(); r.p += len; } const kind = r.byte();
    if (kind === 0) { r.u(); fns++; } else if (kind === 1) { r.byte(); const f = r.u(); r.u(); if (f & 1) r.u(); }
    else if (kind === 2) { const f = r.u(); r.u(); if (f & 1) r.u(); } else if (kind === 3) { r.p += 2; } else { r.byte(); r.u(); }
  }
  return fns;
}
const rounds = +roundsArg;
const base = build(bytes, m);
compileUs(base); compileUs(base); // warm V8 itself
const rows = [];
let baseMin = Infinity;
for (const i of idx) {
  const b = m.bodies[i], k = Math.min(64, Math.max(1, Math.ceil(32768 / b.size)));
  const withK = build(bytes, m, i, k);
  let best = Infinity;
  for (let r = 0; r < rounds; r++) { // alternate, so a burst of load hits both
    baseMin = Math.min(baseMin, compileUs(base));
    best = Math.min(best, compileUs(withK));
  }
  rows.push({ index: i + nImports, bytes: b.size, kb: b.size / 1024, locals: b.locals, k, rawUs: best });
}
for (const r of rows) r.us = Math.max(0, (r.rawUs - baseMin) / r.k);
const f = fit(rows);
const sum = (k) => rows.reduce((s, r) => s + r[k], 0);
const big = rows.filter((r) => r.bytes >= 1024);
console.log(`${wasmPath}: ${rows.length} functions (${(sum('bytes') / 1024).toFixed(1)} KB of bodies), ${rounds} rounds, load average ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}`);
console.log(`base (all bodies stubbed) compiles in ${baseMin.toFixed(0)} µs (min)`);
console.log(`Liftoff, eager, one thread: ${(sum('us') / 1000).toFixed(2)} ms for all of them = ${(sum('us') / (sum('bytes') / 1024)).toFixed(1)} µs per KB overall`);
console.log(`fit µs = a + b·KB + c·(locals/100): a = ${f.a.toFixed(2)} µs, b = ${f.perKB.toFixed(2)} µs/KB, c = ${f.per100Locals.toFixed(2)} µs per 100 locals, R² = ${f.r2.toFixed(3)}`);
if (big.length > 2) { const g = fit(big); console.log(`  bodies ≥ 1 KB only (${big.length}): a = ${g.a.toFixed(2)}, b = ${g.perKB.toFixed(2)} µs/KB, c = ${g.per100Locals.toFixed(2)}, R² = ${g.r2.toFixed(3)}`); }
if (process.env.MDEPLOY_FIT_ROWS) for (const r of rows.sort((a, b) => b.bytes - a.bytes)) console.log(`  #${r.index} ${r.bytes} B, ${r.locals} locals: ${r.us.toFixed(1)} µs (${(r.us / r.kb).toFixed(1)} µs/KB)`);
console.log(JSON.stringify({ wasm: wasmPath, functions: rows.length, bytes: sum('bytes'), liftoffUs: sum('us'), fit: f, load: [load0, loadavg()[0]] }));
