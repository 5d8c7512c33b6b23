// What the wasm engine here makes of the multiply-add instructions the int8 and f32 tiles use
// (issue 12): throughput of K independent accumulator chains, one instruction (or pair) per
// chain per loop turn, in a hand-assembled module (no toolchain needed). Variants:
//
//   f32_mul_add     f32x4.mul + f32x4.add                     4 MACs per 2 ops (simd128 f32 tile)
//   f32_madd        f32x4.relaxed_madd                        4 MACs per op   (relaxed f32 tile)
//   i16_dot_add     i32x4.dot_i16x8_s + i32x4.add             8 MACs per 2 ops (today's int8 tile)
//   i7_dot_add      i32x4.relaxed_dot_i8x16_i7x16_add_s       16 MACs per op  (the relaxed lever)
//   i7_dot_i16      i16x8.relaxed_dot_i8x16_i7x16_s + extadd_pairwise + add  (16 MACs per 3 ops)
//
// Node:      node --experimental-wasm-relaxed-simd bench/wasm/relaxed-ops.mjs [K...]
// Chromium:  the same file imported by a page (bench/wasm/relaxed-ops.html), results in
//            document.title as JSON.
// Prints ns per instruction (per chain step) and MACs per ns, minimum of several rounds. The
// throughput ratio between variants is what matters (one process, alternated round by round);
// absolute ns move with the machine's load.

const leb = (n) => {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const simd = (op) => [0xfd, ...leb(op)];
const str = (s) => [...leb(s.length), ...[...s].map((c) => c.charCodeAt(0))];
const section = (id, body) => [id, ...leb(body.length), ...body];
const vec = (items) => [...leb(items.length), ...items.flat()];

const OPS = {
  f32_mul_add: { macs: 4, ops: 2, body: (acc, a, b) => [0x20, acc, 0x20, a, 0x20, b, ...simd(0xe6), ...simd(0xe4), 0x21, acc] },
  f32_madd: { macs: 4, ops: 1, body: (acc, a, b) => [0x20, a, 0x20, b, 0x20, acc, ...simd(0x105), 0x21, acc] },
  i16_dot_add: { macs: 8, ops: 2, body: (acc, a, b) => [0x20, acc, 0x20, a, 0x20, b, ...simd(0xba), ...simd(0xae), 0x21, acc] },
  i7_dot_add: { macs: 16, ops: 1, body: (acc, a, b) => [0x20, a, 0x20, b, 0x20, acc, ...simd(0x113), 0x21, acc] },
  i7_dot_i16: { macs: 16, ops: 3, body: (acc, a, b) => [0x20, acc, 0x20, a, 0x20, b, ...simd(0x112), ...simd(0x7e), ...simd(0xae), 0x21, acc] },
};

// One function per (variant, K): (param iters i32) (result i32). Every chain multiplies its
// own operand pair, so no engine can share a product between chains (V8 does CSE: with one pair
// for all chains, dot_i16x8 and i16x8.relaxed_dot ran once per turn). Locals: 0 = iters, 1..=3
// = a0..a2 (changed every turn by one add shared by the chains, so nothing leaves the loop),
// 4..=7 = b0..b3, 8.. = K accumulators; chain i uses (a[i / 4], b[i % 4]), K <= 12. a's bytes
// are small signed values, b's in 0..=127 (the i7 range) as the kernels keep them.
function func(kind, k) {
  const { body } = OPS[kind];
  const code = [];
  const c16 = (bytes) => [...simd(0x0c), ...bytes];
  const isF32 = kind.startsWith('f32');
  const f32 = (x) => [...new Uint8Array(new Float32Array([x, x, x, x]).buffer)];
  const na = Math.ceil(k / 4);
  for (let j = 0; j < na; j++) code.push(...c16(isF32 ? f32(0.999 - j / 8) : Array.from({ length: 16 }, (_, i) => ((i * 7 + j) % 5) - 2 & 0xff)), 0x21, 1 + j);
  for (let j = 0; j < 4; j++) code.push(...c16(isF32 ? f32(1e-7 * (j + 1)) : Array.from({ length: 16 }, (_, i) => (i * 13 + j) % 127)), 0x21, 4 + j);
  code.push(0x02, 0x40, 0x03, 0x40);
  for (let j = 0; j < na; j++) code.push(0x20, 1 + j, 0x20, 4 + j, ...simd(isF32 ? 0xe4 : 0xae), 0x21, 1 + j);
  for (let i = 0; i < k; i++) code.push(...body(8 + i, 1 + Math.floor(i / 4), 4 + (i % 4)));
  code.push(0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b, 0x0b);
  code.push(0x20, 8);
  for (let i = 1; i < k; i++) code.push(0x20, 8 + i, ...simd(0x51));
  code.push(...simd(0x1b), 0, 0x0b);
  const locals = [...leb(1), ...leb(7 + k), 0x7b];
  const fn = [...locals, ...code];
  return [...leb(fn.length), ...fn];
}

export function build(kinds, ks) {
  const names = [];
  for (const kind of kinds) for (const k of ks) names.push([kind, k]);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, 1, 0x7f, 1, 0x7f]])),
    ...section(3, vec(names.map(() => [0]))),
    ...section(7, vec(names.map(([kind, k], i) => [...str(`${kind}_${k}`), 0x00, ...leb(i)]))),
    ...section(10, vec(names.map(([kind, k]) => func(kind, k)))),
  ];
  return { bytes: new Uint8Array(bytes), names };
}

// rounds × (every variant once, in turn): minimum ns per chain step for each.
export async function measure({ kinds = Object.keys(OPS), ks = [4, 8], iters = 2_000_000, rounds = 7 } = {}) {
  const { bytes, names } = build(kinds, ks);
  const { instance } = await WebAssembly.instantiate(bytes);
  const best = new Map();
  let sink = 0;
  for (const [kind, k] of names) sink ^= instance.exports[`${kind}_${k}`](20_000); // tier up
  for (let r = 0; r < rounds; r++) {
    for (const [kind, k] of names) {
      const f = instance.exports[`${kind}_${k}`];
      const t0 = performance.now();
      sink ^= f(iters);
      const ns = ((performance.now() - t0) * 1e6) / (iters * k);
      const key = `${kind}_${k}`;
      best.set(key, Math.min(best.get(key) ?? Infinity, ns));
    }
  }
  return {
    sink,
    rows: names.map(([kind, k]) => {
      const ns = best.get(`${kind}_${k}`);
      return { kind, k, nsPerStep: +ns.toFixed(4), macsPerNs: +(OPS[kind].macs / ns).toFixed(2) };
    }),
  };
}

if (typeof process !== 'undefined' && process.argv?.[1]?.endsWith('relaxed-ops.mjs')) {
  const ks = process.argv.slice(2).map(Number).filter(Boolean);
  const { rows } = await measure(ks.length ? { ks } : {});
  console.log(`node ${process.version}`);
  for (const r of rows) console.log(`${r.kind.padEnd(12)} K=${String(r.k).padStart(2)}  ${r.nsPerStep.toFixed(3)} ns/step  ${r.macsPerNs.toFixed(1)} MAC/ns`);
}
