// `worker/build.sh --models DIR`: the models a user chooses, compiled into the component beside
// the defaults and planned in its Wizer snapshot. Under the stock `wasmtime serve`, with no folder
// mounted: every model of models/parity.json (the test fixtures of models/test/ come from
// --models) answers 200 real digits within the independent f64 reference, and the repository
// index lists them all READY. tests/serverless/run.sh builds the component and passes it in:
//   MDEPLOY_CUSTOM_WASM  the snapshot `worker/build.sh --models models/test` printed
//   MDEPLOY_F64_REF      JSON from core/testkit/examples/reference.rs --spread 20
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { EMBEDDED_ORDER, kserveMatchesF64, ROOT, startServe, stopServe } from './support.mjs';

const WASM = process.env.MDEPLOY_CUSTOM_WASM;
if (!WASM) throw new Error('MDEPLOY_CUSTOM_WASM is not set: run `bash tests/serverless/run.sh`, which builds it with worker/build.sh --models');

test('a component built with --models models/test serves the fixtures compiled in, with no folder mounted', async (t) => {
  const s = await startServe(WASM, [], { healthPath: '/v2/health/ready' });
  const p = s.proc;
  const base = s.url;
  const log = s.log;
  try {
    const index = await (await fetch(`${base}/v2/repository/index`, { method: 'POST' })).json();
    // The defaults, then the chosen folder's models in file-name order (every fixture of models/test/).
    const chosen = readdirSync(join(ROOT, 'models/test')).filter((f) => f.endsWith('.mdm')).map((f) => f.slice(0, -4)).sort();
    assert.ok(chosen.includes('mobilenet-block') && chosen.includes('keras-cnn'), chosen.join());
    assert.deepEqual(index, [...EMBEDDED_ORDER, ...chosen].map((name) => ({ name, version: '1', state: 'READY' })));
    // Compiled in, not read from a file: the model's metadata says so through the usual route.
    const meta = await (await fetch(`${base}/v2/models/mobilenet-block`)).json();
    assert.equal(meta.name, 'mobilenet-block');
    await kserveMatchesF64(t, base);
    assert.doesNotMatch(log(), /mdeploy-worker:/, 'nothing to report: no folder, no skipped file');
  } finally {
    await stopServe(p);
  }
});
