// Where a cold `Engine` spends its CPU, by thread and by what V8 is doing (issue 15): runs itself
// once in a fresh Node under `perf record` and classifies the samples taken between the start and
// the end of `Engine` (and of the first run) with bench/wasm/engine-perf.py.
//   node bench/wasm/engine-perf.mjs [model] [dist folder]      (needs `perf`, run as root here)
// Categories: main-thread lazy Liftoff compiles, TurboFan (tier-up, on a background thread),
// the load path's own generated code, kernel (page faults), other native code.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [model = 'mnist-mlp', distArg] = process.argv.slice(2);
const dist = resolve(distArg ?? new URL('../../wasm/dist/', import.meta.url).pathname);
if (process.env.MDEPLOY_ENGINE_PERF_CHILD === '1') {
  // The same steps as cold-breakdown.mjs up to the first run; marks in CLOCK_MONOTONIC ns
  // (process.hrtime), the clock `perf record -k CLOCK_MONOTONIC` stamps samples with.
  const glue = await import(`file://${dist}/mdeploy_wasm_cpu.js`);
  const { contentHash } = await import(new URL('../../wasm/index.js', import.meta.url).href);
  glue.initSync({ module: new WebAssembly.Module(readFileSync(`${dist}/mdeploy_wasm_cpu_bg.wasm`)) });
  const bytes = readFileSync(new URL(`../../wasm/models/${model}.mdm`, import.meta.url));
  const hash = await contentHash(bytes);
  const t0 = process.hrtime.bigint();
  const e = glue.Engine.withHash(bytes, 'cpu', 64, hash);
  const t1 = process.hrtime.bigint();
  e.run(new Float32Array(e.inputLen).fill(0.1), 1);
  const t2 = process.hrtime.bigint();
  writeSync(2, `@@ ${t0} ${t1} ${t2} ${process.pid}\n`);
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'engine-perf-'));
const data = join(dir, 'perf.data');
const r = spawnSync('perf', ['record', '-q', '-k', 'CLOCK_MONOTONIC', '-F', '25000', '-g', '-o', data,
  process.execPath, '--perf-basic-prof', new URL(import.meta.url).pathname, model, dist],
// cwd: the temporary folder, where V8's isolate log goes (removed below with perf.data).
{ cwd: dir, env: { ...process.env, MDEPLOY_ENGINE_PERF_CHILD: '1' }, encoding: 'utf8' });
const marks = /@@ (\d+) (\d+) (\d+) (\d+)/.exec(r.stderr);
if (!marks) { console.error(r.stderr); process.exit(1); }
const py = spawnSync('python3', [new URL('engine-perf.py', import.meta.url).pathname, data, ...marks.slice(1, 4)], { encoding: 'utf8' });
process.stdout.write(py.stdout + py.stderr);
rmSync(dir, { recursive: true, force: true });
rmSync(`/tmp/perf-${marks[4]}.map`, { force: true }); // --perf-basic-prof's JIT symbol map
