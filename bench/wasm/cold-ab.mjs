// A/B of Node cold starts: `cold-breakdown.mjs` in a fresh process per run, the builds alternating.
//   node bench/wasm/cold-ab.mjs <model> <rounds> <distA> <distB> [...]   (simd; MDEPLOY_AB_VARIANT=relaxed)
// Each dist is a folder like wasm/dist/ (at least mdeploy_wasm_cpu.js and the .wasm). Prints,
// per build, the median and minimum of every step over the rounds: wall ms and process CPU ms
// (all threads), and the load average before and after, so a figure is never quoted without it.
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';

const [model = 'mnist-cnn', roundsArg = '7', ...dists] = process.argv.slice(2);
// cold-breakdown.mjs takes an absolute folder (it builds a file: URL from it).
const dirs = dists.map((d) => resolve(d));
if (dists.length < 1) throw new Error('usage: cold-ab.mjs <model> <rounds> <distA> [distB ...]');
const variant = process.env.MDEPLOY_AB_VARIANT ?? 'simd';
const script = new URL('cold-breakdown.mjs', import.meta.url).pathname;
const flags = variant === 'relaxed' ? ['--experimental-wasm-relaxed-simd'] : [];
const runs = dists.map(() => []);
const load0 = loadavg()[0];
for (let r = 0; r < +roundsArg; r++) {
  // Alternate the order per round too, so neither build always runs right after the other.
  const order = r % 2 ? [...dists.keys()].reverse() : [...dists.keys()];
  for (const i of order) {
    const out = execFileSync(process.execPath, [...flags, script, model, variant],
      { env: { ...process.env, MDEPLOY_WASM_DIST: dirs[i] }, encoding: 'utf8' });
    runs[i].push(JSON.parse(out.trim().split('\n').pop()));
  }
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const r1 = (x) => Math.round(x * 10) / 10;
const steps = ['importGlue', 'readWasm', 'compile', 'instantiate', 'readModel', 'hash', 'loadAndPlan', 'firstRun', 'secondRun', 'total'];
console.log(`model ${model}, ${variant}, ${roundsArg} rounds alternating, load average ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}`);
console.log(`| step: median wall (CPU) [min wall] ms | ${dists.join(' | ')} |`);
console.log(`|---|${dists.map(() => '---:').join('|')}|`);
for (const k of steps) {
  const cells = runs.map((rs) => {
    const w = rs.map((x) => x[k]), c = rs.map((x) => x.cpu[k]);
    return `${r1(med(w))} (${r1(med(c))}) [${r1(Math.min(...w))}]`;
  });
  console.log(`| ${k} | ${cells.join(' | ')} |`);
}
// import → first prediction inside the process (what the goal counts, minus node's own start)
const firstPred = (x) => x.importGlue + x.readWasm + x.compile + x.instantiate + x.readModel + x.hash + x.loadAndPlan + x.firstRun;
console.log(`| import → first run (sum) | ${runs.map((rs) => `${r1(med(rs.map(firstPred)))} [${r1(Math.min(...rs.map(firstPred)))}]`).join(' | ')} |`);
