// `worker/build.sh --models DIR`: the models a user chooses, compiled into the component beside
// the defaults and planned in its Wizer snapshot. Under the stock `wasmtime serve`, with no folder
// mounted: every model of models/parity.json (the test fixtures of models/test/ come from
// --models) answers 200 real digits within the independent f64 reference, and the repository
// index lists them all READY. tests/serverless/run.sh builds the component and passes it in:
//   MDEPLOY_CUSTOM_WASM  the snapshot `worker/build.sh --models models/test` printed
//   MDEPLOY_F64_REF      JSON from core/testkit/examples/reference.rs --spread 20
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { EMBEDDED_ORDER, kserveMatchesF64, ROOT } from './support.mjs';

const WASM = process.env.MDEPLOY_CUSTOM_WASM;
if (!WASM) throw new Error('MDEPLOY_CUSTOM_WASM is not set: run `bash tests/serverless/run.sh`, which builds it with worker/build.sh --models');

const freePort = () => new Promise((resolve, reject) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on('error', reject);
});

test('a component built with --models models/test serves the fixtures compiled in, with no folder mounted', async (t) => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const p = spawn('wasmtime', ['serve', '-Scli', '--addr', `127.0.0.1:${port}`, WASM], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  p.stdout.on('data', (d) => { log += d; });
  p.stderr.on('data', (d) => { log += d; });
  try {
    const t0 = Date.now();
    for (;;) {
      if (p.exitCode !== null) throw new Error(`wasmtime serve exited (${p.exitCode}):\n${log}`);
      try {
        if ((await fetch(`${base}/v2/health/ready`)).status === 200) break;
      } catch { /* not listening yet */ }
      if (Date.now() - t0 > 60_000) throw new Error(`wasmtime serve not ready after 60 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const index = await (await fetch(`${base}/v2/repository/index`, { method: 'POST' })).json();
    // The defaults, then the chosen folder's models in file-name order (every fixture of models/test/).
    const chosen = readdirSync(join(ROOT, 'models/test')).filter((f) => f.endsWith('.mdm')).map((f) => f.slice(0, -4)).sort();
    assert.ok(chosen.includes('mobilenet-block') && chosen.includes('keras-cnn'), chosen.join());
    assert.deepEqual(index, [...EMBEDDED_ORDER, ...chosen].map((name) => ({ name, version: '1', state: 'READY' })));
    // Compiled in, not read from a file: the model's metadata says so through the usual route.
    const meta = await (await fetch(`${base}/v2/models/mobilenet-block`)).json();
    assert.equal(meta.name, 'mobilenet-block');
    await kserveMatchesF64(t, base);
    assert.doesNotMatch(log, /mdeploy-worker:/, 'nothing to report: no folder, no skipped file');
  } finally {
    if (p.exitCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await gone;
    }
  }
});
