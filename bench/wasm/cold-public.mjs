// The public path (`Model.load` → first `predictSync`, what cold.mjs times) in one fresh Node
// process, with marks inside it: when each of the overlapped steps (glue import, .wasm read,
// compile + instantiate, model read, WebCrypto hash, Engine, first run) starts and ends, and the
// CPU time each thread of the process spent meanwhile (/proc/self/task/*/schedstat: main thread,
// V8's compile/tier-up workers, libuv's pool that runs file reads and WebCrypto).
//   node bench/wasm/cold-public.mjs [model] [index file beside wasm/index.js] → one JSON line
//   for i in 1 2 3 4 5; do node bench/wasm/cold-public.mjs mnist-cnn; done
// The marks come from a copy of index.js with `globalThis.__mark?.(name)` calls at named lines
// (cold-marks.mjs); the copy runs the same code otherwise. maxBatch 256, as cold.mjs
// (runtimes-core.mjs). Threads: Node names its V8 workers and libuv's pool alike ("node"), so
// `threadCpu` has the main thread and the sum of all others.
const { readFileSync, readdirSync } = await import('node:fs');
const { writeMarkedIndex, WASM_DIR: wasmDir } = await import('./cold-marks.mjs');
const [name = 'mnist-cnn', indexFile = 'index.js'] = process.argv.slice(2);

// Thread CPU (ns on CPU, from schedstat) by thread name.
function threads() {
  const out = {};
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const comm = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      const k = tid === String(process.pid) ? 'main' : comm;
      out[k] = (out[k] ?? 0) + ns / 1e6;
    } catch { /* thread gone */ }
  }
  return out;
}

const { file: marked, unmarked, remove } = writeMarkedIndex(indexFile);
process.on('exit', remove);

const marks = {};
const thr0 = threads();
const tImp = performance.now(); // marks count from the import of index.js
globalThis.__mark = (k) => { if (!(k in marks)) marks[k] = performance.now() - tImp; };
const { Model } = await import(new URL(marked, wasmDir));
marks['indexImport.end'] = performance.now() - tImp;
const m = await Model.load(name, { maxBatch: Number(process.env.MDEPLOY_PUBLIC_MAXBATCH ?? 256) });
marks['load.end'] = performance.now() - tImp;
const probs = m.predictSync(new Float32Array(784).fill(0.1)).probs;
const t1 = performance.now();
marks['firstRun.end'] = t1 - tImp;
const thr1 = threads();
const cpu = {};
for (const [k, v] of Object.entries(thr1)) cpu[k] = Math.round((v - (thr0[k] ?? 0)) * 100) / 100;
const r2 = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 100) / 100]));
console.log(JSON.stringify({ model: name, index: indexFile, importToFirstPrediction: Math.round((t1 - tImp) * 100) / 100, marks: r2(marks), unmarked, threadCpu: cpu, p0: probs[0] }));
