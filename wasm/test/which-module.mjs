// Child process of cpu-module.test.mjs: records every file index.js reads with node:fs/promises
// (the .wasm among them: that is how Node loads a module, DESIGN.md "The CPU-only module"), loads
// models through the public API and writes what was read, which module each model runs on and
// its probabilities on the first `count` test digits as JSON to stdout.
//   node which-module.mjs '{"init": {"wasm": "<path>"} | null, "loads": [["mnist-mlp", {"backend": "cpu"}]], "count": 100}'
import { createRequire, syncBuiltinESMExports } from 'node:module';

// Wrap readFile on the CommonJS object, then copy it into the ESM namespace that index.js's
// `import('node:fs/promises')` returns. Done before index.js is imported.
const fsp = createRequire(import.meta.url)('node:fs/promises');
const reads = [];
const readFile = fsp.readFile;
fsp.readFile = function (path, ...rest) {
  reads.push(path instanceof URL ? path.pathname : String(path));
  return readFile.call(this, path, ...rest);
};
syncBuiltinESMExports();

const { Model, init, preprocess } = await import('../index.js');
const { testSplit } = await import('./support.mjs');

const cfg = JSON.parse(process.argv[2]);
const runtime = cfg.init === null ? null : await init(cfg.init);
const { xs } = testSplit();
const models = {};
for (const [name, options] of cfg.loads) {
  const m = await Model.load(name, options);
  const probs = [];
  for (let i = 0; i < cfg.count; i++) probs.push(...(await m.predict(xs.subarray(i * 784, (i + 1) * 784))).probs);
  const info = m.info();
  models[name] = { wasmModule: info.wasmModule, backend: info.backend, variant: info.variant, probs };
}
// preprocess needs no model; it must not start another module either.
const pre = await preprocess({ width: 28, height: 28, data: new Uint8Array(784).fill(0).fill(255, 300, 320) });
process.stdout.write(JSON.stringify({ runtime, models, preprocessed: pre.length, wasmReads: reads.filter((p) => p.endsWith('.wasm')) }));
