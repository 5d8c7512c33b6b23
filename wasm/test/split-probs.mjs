// Child process of parity.test.mjs: runs the whole test split through one model with a forced
// SIMD variant (the relaxed one needs Node started with --experimental-wasm-relaxed-simd) and
// writes the variant name and the probabilities as JSON to stdout.
import { Model, builtinModels, init } from '../index.js';
import { modelSource, testSplit } from './support.mjs';

const [model, variant] = process.argv.slice(2);
const rt = await init({ variant });
const m = await Model.load(modelSource(model, builtinModels));
const { xs, n } = testSplit();
const batch = await m.predictBatch(xs, n);
const single = new Float32Array(batch.probs.length);
for (let i = 0; i < n; i++) single.set((await m.predict(xs.subarray(i * 784, (i + 1) * 784))).probs, i * m.outputLen);
process.stdout.write(JSON.stringify({ variant: rt.variant, batch: Array.from(batch.probs), single: Array.from(single) }));
