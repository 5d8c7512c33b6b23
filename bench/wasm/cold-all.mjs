// Cold starts only, the peers in the same run: import → first prediction, fresh Node processes
// (cold.mjs) and fresh headless Chromium pages (browser.html?mode=cold), runtimes interleaved
// round by round so load spikes hit all of them; median of `runs` (default 5) per cell.
//   node bench/wasm/cold-all.mjs [runs=5]                     → markdown on stdout
//   MDEPLOY_COLD_BASELINE=<file beside wasm/index.js>: an extra mdeploy-wasm column with that entry
//   (the before of an index.js change, same dist/ and same run)
// Needs what run.sh prepares: wasm/dist, bench/wasm/node_modules, out/*.onnx and out/*.tfjs.*.
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { serveRepo } from './browser-serve.mjs';
import { MODELS, quantile } from './measure.mjs';

const runs = Number(process.argv[2] ?? 5);
const HERE = new URL('./', import.meta.url);
const base = process.env.MDEPLOY_COLD_BASELINE;
const COLS = [
  { id: 'mdeploy', label: 'mdeploy-wasm', index: 'index.js' },
  ...(base ? [{ id: 'mdeploy', label: `mdeploy-wasm (${base})`, index: base }] : []),
  { id: 'ort', label: 'onnxruntime-web' },
  { id: 'tfjs', label: 'tfjs-wasm' },
];
const node = (c, name) => JSON.parse(execFileSync(process.execPath, [new URL('cold.mjs', HERE).pathname, c.id, name], {
  encoding: 'utf8', env: { ...process.env, ...(c.index ? { MDEPLOY_BENCH_INDEX: c.index } : {}) },
}).trim().split('\n').pop()).importToFirstPrediction;
const server = await serveRepo();
const chromium = async (c, name) => (await server.visit(`/bench/wasm/browser.html?mode=cold&rt=${c.id}&model=${name}${c.index ? `&index=${c.index}` : ''}`, 60_000)).importToFirstPrediction;

const got = {};
const load0 = loadavg()[0];
try {
  for (const name of MODELS) {
    for (const host of ['Node', 'Chromium']) {
      const cell = (got[`${host} ${name}`] = COLS.map(() => []));
      for (let r = 0; r < runs; r++) {
        for (const [i, c] of COLS.entries()) cell[i].push(host === 'Node' ? node(c, name) : await chromium(c, name));
      }
      process.stderr.write(`${host} ${name} done\n`);
    }
  }
} finally {
  server.close();
}
const med = (xs) => quantile(xs.slice().sort((a, b) => a - b), 0.5);
console.log(`${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; cold start, import → 1st prediction, median of ${runs} fresh processes/pages (ms); load average ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}`);
console.log('');
console.log(`| host, model | ${COLS.map((c) => c.label).join(' | ')} |`);
console.log(`|---|${COLS.map(() => '---:').join('|')}|`);
for (const [k, cell] of Object.entries(got)) console.log(`| ${k} | ${cell.map((xs) => `${med(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`).join(' | ')} |`);
