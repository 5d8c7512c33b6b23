// What V8 compiles on a cold start, step by step and function by function (issue 15).
//   node bench/wasm/load-path.mjs [model] [simd|relaxed] [names.wasm]
//   MDEPLOY_WASM_DIST=DIR: another build's dist/ (as cold-breakdown.mjs)
// Runs `cold-breakdown.mjs` once in a fresh process under `--trace-wasm-compilation-times` (stdout
// unbuffered with `stdbuf -o0`, so V8's lines and the step marks arrive in order) and prints, per
// step (compile, instantiate, hash, loadAndPlan = Engine, firstRun, secondRun), every function
// compiled by Liftoff in it: index, body bytes, name. Names come from `names.wasm`, the same
// build with a name section (`wasm-opt ... -g`, see wasm/DESIGN.md "What the load path
// compiles"); its body sizes are checked against the shipped module's, index by index, so a
// mismatched pair is refused instead of mislabelled. Output: a markdown table per step, then one
// JSON line of totals (functions and body bytes per step and tier).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const [name = 'mnist-cnn', variant = 'simd', namesPath] = process.argv.slice(2);
const here = new URL('./', import.meta.url);
const dist = process.env.MDEPLOY_WASM_DIST
  ? process.env.MDEPLOY_WASM_DIST.replace(/\/?$/, '/')
  : new URL('../../wasm/dist/', import.meta.url).pathname;
const stem = process.env.MDEPLOY_WASM_MODULE === 'full' ? 'mdeploy_wasm' : 'mdeploy_wasm_cpu';
const wasmPath = `${dist}${stem}${variant === 'relaxed' ? '_relaxed.wasm' : '_bg.wasm'}`;

// The function index space (imports first) → body size, and the name section if there is one.
function functions(bytes) {
  let p = 8;
  const u = () => { let r = 0, s = 0, b; do { b = bytes[p++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; };
  const str = () => { const n = u(); const t = new TextDecoder().decode(bytes.subarray(p, p + n)); p += n; return t; };
  let imports = 0; const sizes = []; const names = new Map();
  while (p < bytes.length) {
    const id = bytes[p++], len = u(), end = p + len;
    if (id === 2) { // imports: count the functions (kind 0)
      for (let n = u(); n > 0; n--) {
        str(); str(); const kind = bytes[p++];
        if (kind === 0) { u(); imports++; } else if (kind === 1) { p++; const f = u(); u(); if (f & 1) u(); }
        else if (kind === 2) { const f = u(); u(); if (f & 1) u(); } else if (kind === 3) { p += 2; } else { p++; u(); }
      }
    } else if (id === 10) {
      for (let n = u(); n > 0; n--) { const s = u(); sizes.push(s); p += s; }
    } else if (id === 0 && str() === 'name') {
      while (p < end) {
        const sub = bytes[p++], sl = u(), se = p + sl;
        if (sub === 1) for (let n = u(); n > 0; n--) { const i = u(); names.set(i, str()); }
        p = se;
      }
    }
    p = end;
  }
  return { imports, sizes, names };
}

const shipped = functions(readFileSync(wasmPath));
let names = new Map();
if (namesPath) {
  const named = functions(readFileSync(namesPath));
  const same = named.imports === shipped.imports && named.sizes.length === shipped.sizes.length
    && named.sizes.every((s, i) => s === shipped.sizes[i]);
  if (!same) {
    console.error(`load-path.mjs: ${namesPath} is not the same code as ${wasmPath} (function count or body sizes differ); names not used`);
  } else names = named.names;
}

const flags = ['--trace-wasm-compilation-times'];
if (variant === 'relaxed') flags.push('--experimental-wasm-relaxed-simd');
const r = spawnSync('stdbuf', ['-o0', process.execPath, ...flags, new URL('cold-breakdown.mjs', here).pathname, name, variant],
  { env: { ...process.env, MDEPLOY_COLD_MARKS: '1' }, encoding: 'utf8', maxBuffer: 64 << 20 });
if (r.status !== 0) { console.error(r.stderr); process.exit(1); }

// Lines: "Compiled function 0x…#IDX using Liftoff, took T ms and … bytes; bodysize B codesize C"
// and the marks "@@step NAME" written when a step ends (so a function belongs to the next mark).
const steps = []; let cur = [];
for (const line of r.stdout.split('\n')) {
  const m = /^Compiled function [^#]*#(\d+) using (\w+), took (\d+) ms .*bodysize (\d+)/.exec(line);
  if (m) cur.push({ idx: +m[1], tier: m[2], ms: +m[3], body: +m[4] });
  const k = /^@@step (\w+)/.exec(line);
  if (k) { steps.push({ step: k[1], fns: cur }); cur = []; }
}
const label = (i) => names.get(i) ?? `#${i}`;
const totals = {};
for (const { step, fns } of steps) {
  const lift = fns.filter((f) => f.tier === 'Liftoff');
  const turbo = fns.filter((f) => f.tier === 'TurboFan');
  totals[step] = { liftoffFns: lift.length, liftoffBytes: lift.reduce((a, f) => a + f.body, 0),
    turbofanFns: turbo.length, turbofanBytes: turbo.reduce((a, f) => a + f.body, 0) };
  if (!lift.length) continue;
  console.log(`\n### ${step}: ${lift.length} functions, ${totals[step].liftoffBytes} body bytes (Liftoff)\n`);
  console.log('| # | body bytes | function |\n|---:|---:|---|');
  for (const f of lift.sort((a, b) => b.body - a.body)) {
    if (f.body < (+process.env.MDEPLOY_LOADPATH_MIN || 1000)) continue;
    console.log(`| ${f.idx} | ${f.body} | \`${label(f.idx).replace(/\|/g, '\\|').slice(0, 110)}\` |`);
  }
}
console.log(JSON.stringify({ model: name, variant, module: stem, wasmBytes: readFileSync(wasmPath).length, totals }));
