// One cold start, in a fresh process: import the runtime → load the model → first prediction.
//   node cold.mjs <mdeploy|ort|tfjs> <mnist-mlp|mnist-cnn>     → one JSON line on stdout
// `sinceProcessStart` adds Node's own start-up (performance.now() counts from the process's origin).
const t0 = performance.now();
const { RUNTIMES } = await import('./runtimes.mjs');
const [id, name] = process.argv.slice(2);
if (!RUNTIMES[id]) throw new Error(`cold.mjs: unknown runtime ${id}; one of ${Object.keys(RUNTIMES).join(', ')}`);
const m = await RUNTIMES[id].load(name);
const probs = await m.run(new Float32Array(784).fill(0.1), 1);
const t1 = performance.now();
console.log(JSON.stringify({ importToFirstPrediction: t1 - t0, sinceProcessStart: t1, p0: probs[0] }));
