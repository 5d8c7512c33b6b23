// The public path (Model.load → first prediction) with its steps marked (cold-marks.mjs), for one
// or more index.js versions alternating round by round, in Node (a fresh cold-public.mjs process
// per run) or Chromium (a fresh browser per page, browser.html?mode=cold&marks=1, as cold-all.mjs).
//   node bench/wasm/cold-public-ab.mjs <node|chromium> <model> <rounds> <index file>...   → markdown
//   (index files beside wasm/index.js; e.g. index-main.js = main's index.js, same dist/)
// Prints per version the median (and minimum) of every mark, ms since the import of index.js
// (Node) or since the page's script started (Chromium), the total, and in Node the median CPU
// of the main thread and of all other threads; the load average before and after.
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { writeMarkedIndex } from './cold-marks.mjs';

const [host, model = 'mnist-cnn', roundsArg = '7', ...indexes] = process.argv.slice(2);
if (!['node', 'chromium'].includes(host) || indexes.length === 0) throw new Error('usage: cold-public-ab.mjs <node|chromium> <model> <rounds> <index file>...');
const runs = indexes.map(() => []);
const load0 = loadavg()[0];
let server = null;
const copies = [];
if (host === 'chromium') server = await (await import('./browser-serve.mjs')).serveRepo();
try {
  const files = host === 'chromium' ? indexes.map((f, i) => { const c = writeMarkedIndex(f, `ab${i}-${process.pid}`); copies.push(c); return c.file; }) : indexes;
  for (let r = 0; r < +roundsArg; r++) {
    const order = r % 2 ? [...indexes.keys()].reverse() : [...indexes.keys()];
    for (const i of order) {
      if (host === 'node') {
        const out = execFileSync(process.execPath, [new URL('cold-public.mjs', import.meta.url).pathname, model, files[i]], { encoding: 'utf8' });
        const j = JSON.parse(out.trim().split('\n').pop());
        runs[i].push({ ...j.marks, total: j.importToFirstPrediction, cpuMain: j.threadCpu.main, cpuOther: Object.entries(j.threadCpu).filter(([k]) => k !== 'main').reduce((a, [, v]) => a + v, 0) });
      } else {
        const j = await server.visit(`/bench/wasm/browser.html?mode=cold&rt=mdeploy&model=${model}&index=${files[i]}&marks=1`, 60_000);
        runs[i].push({ ...j.marks, total: j.importToFirstPrediction });
      }
    }
  }
} finally {
  server?.close();
  for (const c of copies) c.remove();
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const keys = [...new Set(runs.flatMap((rs) => rs.flatMap((x) => Object.keys(x))))];
const at = (k, rs) => rs.map((x) => x[k]).filter((v) => v !== undefined);
keys.sort((a, b) => (med(at(a, runs.flat())) ?? 0) - (med(at(b, runs.flat())) ?? 0));
console.log(`${host}, ${model}, ${roundsArg} rounds alternating, load average ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}`);
console.log(`| mark: median [min] ms | ${indexes.join(' | ')} |`);
console.log(`|---|${indexes.map(() => '---:').join('|')}|`);
for (const k of keys) {
  console.log(`| ${k} | ${runs.map((rs) => { const v = at(k, rs); return v.length ? `${med(v).toFixed(2)} [${Math.min(...v).toFixed(2)}]` : '—'; }).join(' | ')} |`);
}
// Steps: per-run differences between marks (then the median over runs), so a slow start in one
// run does not shift every later mark of the table above.
const STEPS = [
  ['index.js import (Chromium: from the bench page\'s own import, runtimes-core.mjs)', host === 'node' ? null : 'runtimesCore.end', 'load.start'],
  ['Model.load → .wasm requested (read or fetch issued)', 'load.start', host === 'node' ? 'glueImport.start' : 'runtime.fetchCalled'],
  ['Model.load → model requested', 'load.start', 'load.modelRequested'],
  ['requestAdapter() call (sync part)', 'load.adapterCall', 'load.adapterCalled'],
  ['glue import', 'glueImport.start', 'glueImport.end'],
  ['Model.load → runtime instantiated', 'load.start', 'compileInstantiate.end'],
  ['Model.load → model bytes in', 'load.start', 'modelRead.end'],
  ['model bytes in → hash done', 'modelRead.end', 'hash.end'],
  ['instantiated → Engine starts (runtime ready, bytes, hash)', 'compileInstantiate.end', 'build.hashReady'],
  ['Engine (read + validate + lower + plan)', 'build.hashReady', 'build.engineReady'],
  ['first prediction (after Model.load)', 'load.end', 'total'],
];
console.log('');
console.log(`| step: median of per-run differences [min] ms | ${indexes.join(' | ')} |`);
console.log(`|---|${indexes.map(() => '---:').join('|')}|`);
for (const [label, a, b] of STEPS) {
  console.log(`| ${label} | ${runs.map((rs) => {
    const d = rs.map((x) => (b === 'total' ? x.total : x[b]) - (a === null ? 0 : x[a])).filter((v) => Number.isFinite(v));
    return d.length ? `${med(d).toFixed(2)} [${Math.min(...d).toFixed(2)}]` : '—';
  }).join(' | ')} |`);
}
