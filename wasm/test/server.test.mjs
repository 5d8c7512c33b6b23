// mdeploy-wasm/server in Node: createServer's options, the Fetch-API handler on every kind of
// route, all 2,000 test digits through KServe v2 and TF Serving against the native core and the
// independent f64 reference (core/testkit; every model of models/parity.json), the body
// limit (by Content-Length and while streaming), and wasm memory under the largest bodies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, MAX_BODY_BYTES } from '../server.js';
import { argmax, checkF64, DEFAULT_MODELS, f64Ref, nativeRef, parityModels, range, testSplit, WASM_DIR } from './support.mjs';

const { xs, n } = testSplit();
const ref = nativeRef();
const f64 = f64Ref();
const MODELS = parityModels();
const TOL = 1e-5;
const digit = (i) => Array.from(xs.subarray(i * 784, (i + 1) * 784));
const wasmPath = join(WASM_DIR, 'dist/server/mdeploy_wasm_server_bg.wasm');
const modelBytes = (name) => readFileSync(join(WASM_DIR, 'models', `${name}.mdm`));

const post = (server, path, body, contentType = 'application/json') =>
  server.fetch(new Request(`http://localhost${path}`, {
    method: 'POST',
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    headers: { 'content-type': contentType },
  }));
const get = (server, path, method = 'GET') => server.fetch(new Request(`http://localhost${path}`, { method }));

// The glue keeps one wasm instance per realm: the first server decides where it comes from. This
// one takes a compiled WebAssembly.Module, the way a Cloudflare Worker passes its import.
const module = new WebAssembly.Module(readFileSync(wasmPath));
const server = createServer({ wasm: module });

test('createServer: a WebAssembly.Module and the default models; routes answer JSON', async () => {
  await server.ready();
  assert.equal(server.maxBodyBytes, MAX_BODY_BYTES);
  assert.equal(MAX_BODY_BYTES, 10 * 1024 * 1024);
  let r = await get(server, '/v2/health/ready');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.deepEqual(await r.json(), { ready: true });
  r = await get(server, '/v2/models/mnist-mlp');
  assert.equal(r.status, 200);
  const meta = await r.json();
  assert.equal(meta.name, 'mnist-mlp');
  assert.deepEqual(meta.versions, ['1']);
  r = await get(server, '/v1/models/mnist-cnn/metadata');
  assert.equal(r.status, 200);
  r = await get(server, '/openapi.yaml');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/yaml');
  r = await get(server, '/v2/models/mnist-cnn', 'OPTIONS'); // CORS preflight: 204, no body
  assert.equal(r.status, 204);
  assert.equal(await r.text(), '');
});

// The parity models as a user would add them: the default models plus every other file of
// models/parity.json (the random-weight MobileNet fixture), passed as bytes.
const DEFAULTS = DEFAULT_MODELS;
const parityServer = createServer({
  wasm: module,
  models: Object.fromEntries([...new Set([...DEFAULTS, ...MODELS])].map((m) => [m, modelBytes(m)])),
});

test('all 2,000 test digits through KServe v2 and TF Serving, every parity model: the native core\'s answers and the f64 reference', async (t) => {
  const server = parityServer;
  const batch = 500; // 500 × 784 floats as JSON is ~4 MB, under the 10 MiB limit
  for (const model of MODELS) {
    const native = ref.models[model];
    assert.ok(native, `the native reference has no ${model}`);
    const byRoute = { 'KServe v2': [], 'TF Serving': [] };
    for (let s = 0; s < n; s += batch) {
      const rows = Array.from({ length: Math.min(batch, n - s) }, (_, k) => digit(s + k));
      const kr = await post(server, `/v2/models/${model}/infer`, {
        inputs: [{ name: 'input', shape: [rows.length, 1, 28, 28], datatype: 'FP32', data: rows.flat() }],
      });
      assert.equal(kr.status, 200, `${model} KServe v2`);
      const k = await kr.json();
      const probs = k.outputs.find((o) => o.name === 'probabilities');
      const labels = k.outputs.find((o) => o.name === 'label');
      assert.deepEqual(probs.shape, [rows.length, native.outputLen]);
      byRoute['KServe v2'].push(...probs.data);
      const tr = await post(server, `/v1/models/${model}:predict`, { instances: rows });
      assert.equal(tr.status, 200, `${model} TF Serving`);
      const { predictions } = await tr.json();
      assert.equal(predictions.length, rows.length);
      byRoute['TF Serving'].push(...predictions.flatMap((p) => p.probabilities));
      for (let r = 0; r < rows.length; r++) {
        const want = String(argmax(native.probs, (s + r) * native.outputLen, native.outputLen));
        assert.equal(String(labels.data[r]), want, `${model} KServe label of digit ${s + r}`);
        assert.equal(String(predictions[r].label), want, `${model} TF Serving label of digit ${s + r}`);
      }
    }
    for (const [route, probs] of Object.entries(byRoute)) {
      for (let i = 0; i < probs.length; i++) {
        const d = Math.abs(probs[i] - native.probs[i]);
        assert.ok(d <= TOL, `${model} ${route} digit ${Math.floor(i / native.outputLen)} class ${i % native.outputLen}: |Δp| = ${d}`);
      }
      const { worst, checked } = checkF64(`${model} ${route}`, f64, model, probs, range(0, n));
      t.diagnostic(`${model} ${route}: max |Δp| vs f64 reference ${worst.toExponential(2)}, argmax checked on ${checked}`);
    }
  }
});

test('POST /predict takes 784 raw bytes and answers { label, probs }', async () => {
  // Digit 7's first test sample, as grey bytes (ink high).
  const x = digit(7 * 200);
  const bytes = Uint8Array.from(x, (v) => Math.round(v * 255));
  const r = await post(server, '/predict?model=mnist-cnn', bytes, 'application/octet-stream');
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(Number(body.label), 7);
  assert.equal(body.probs.length, 10);
  assert.ok(Math.abs(body.probs.reduce((a, b) => a + b, 0) - 1) < 1e-4);
});

test('Triton binary tensors (tritonclient\'s default): the Inference-Header-Content-Length header reaches wasm', async () => {
  const i = 3 * 200 + 11;
  const x = Float32Array.from(digit(i));
  const raw = new Uint8Array(x.buffer); // little-endian on every JS host that runs wasm
  const head = new TextEncoder().encode(JSON.stringify({
    inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', parameters: { binary_data_size: raw.length } }],
    parameters: { binary_data_output: true },
  }));
  const body = new Uint8Array(head.length + raw.length);
  body.set(head);
  body.set(raw, head.length);
  const send = (headers) => server.fetch(new Request('http://localhost/v2/models/mnist-cnn/infer', {
    method: 'POST', body, headers: { 'content-type': 'application/octet-stream', ...headers },
  }));
  const r = await send({ 'Inference-Header-Content-Length': String(head.length) });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/octet-stream');
  const n = Number(r.headers.get('inference-header-content-length'));
  const bytes = new Uint8Array(await r.arrayBuffer());
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(0, n)));
  const [probs, label] = json.outputs;
  assert.deepEqual(probs.parameters, { binary_data_size: 40 });
  assert.equal(probs.data, undefined);
  const p = new Float32Array(bytes.slice(n, n + 40).buffer);
  for (let c = 0; c < 10; c++) {
    const d = Math.abs(p[c] - ref.models['mnist-cnn'].probs[i * 10 + c]);
    assert.ok(d <= TOL, `digit ${i} class ${c}: |Δp| = ${d}`);
  }
  const lab = bytes.subarray(n + 40);
  assert.equal(label.parameters.binary_data_size, lab.length);
  assert.equal(new DataView(lab.buffer, lab.byteOffset).getUint32(0, true), lab.length - 4);
  assert.equal(Number(new TextDecoder().decode(lab.subarray(4))), argmax(ref.models['mnist-cnn'].probs, i * 10, 10));
  // Without the header the binary part is refused with a message that says so.
  const bad = await send({});
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /Inference-Header-Content-Length header is missing/);
});

test('errors: JSON bodies with the right statuses, and the server keeps answering', async () => {
  const good = { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: digit(3) }] };
  const cases = [
    [() => post(server, '/v2/models/mnist-cnn/infer', '{"inputs": ['), 400, 'BAD_INPUT'],
    [() => post(server, '/v2/models/mnist-cnn/infer', ''), 400, 'BAD_INPUT'],
    [() => post(server, '/v2/models/mnist-cnn/infer', { inputs: [{ name: 'input', shape: [1, 783], datatype: 'FP32', data: digit(3).slice(1) }] }), 400, 'BAD_INPUT'],
    [() => post(server, '/v2/models/nope/infer', good), 404, 'NOT_FOUND'],
    [() => get(server, '/v2/models/mnist-cnn/versions/9'), 404, 'NOT_FOUND'],
    [() => get(server, '/v2/models/mnist-cnn/infer'), 405, 'METHOD_NOT_ALLOWED'],
  ];
  for (const [call, status, code] of cases) {
    const r = await call();
    assert.equal(r.status, status);
    const body = await r.json();
    assert.equal(body.code, code, body.error);
    assert.ok(body.error.length > 10);
    if (status === 405) assert.equal(r.headers.get('allow'), 'POST');
    const ok = await post(server, '/v2/models/mnist-cnn/infer', good);
    assert.equal(ok.status, 200);
  }
});

test('body limit: 413 from Content-Length, and a stream is cancelled at the limit', async () => {
  const small = createServer({ wasm: module, maxBodyBytes: 1000 });
  let r = await post(small, '/predict', new Uint8Array(1001), 'application/octet-stream');
  assert.equal(r.status, 413);
  assert.equal((await r.json()).code, 'BODY_TOO_LARGE');
  r = await post(small, '/predict', new Uint8Array(784), 'application/octet-stream'); // under the limit: read
  assert.notEqual(r.status, 413);
  // No Content-Length: an endless stream, pulled only until it passes the limit.
  let pulled = 0;
  let cancelled = false;
  const body = new ReadableStream({
    pull(c) { pulled += 1; c.enqueue(new Uint8Array(300)); },
    cancel() { cancelled = true; },
  });
  r = await server.fetch(new Request('http://localhost/predict', { method: 'POST', body, duplex: 'half' }));
  assert.equal(r.status, 413);
  // 10 MiB / 300 bytes per pull, plus what the stream queued ahead: the reading stopped there.
  assert.ok(pulled <= Math.ceil(MAX_BODY_BYTES / 300) + 2, `pulled ${pulled} chunks`);
  assert.ok(cancelled, 'the body stream was cancelled');
  r = await small.fetch(new Request('http://localhost/predict', {
    method: 'POST', duplex: 'half',
    body: new ReadableStream({ pull(c) { c.enqueue(new Uint8Array(600)); } }),
  }));
  assert.equal(r.status, 413);
});

test('options: custom models and versions, bad options throw, a bad model fails alone', async () => {
  const s = createServer({
    wasm: module,
    models: {
      digits: { bytes: modelBytes('mnist-mlp'), version: 3 },
      broken: new Uint8Array([1, 2, 3]),
      named: { bytes: new Uint8Array([1, 2, 3]), source: 'uploads/named.mdm' },
    },
  });
  await s.ready();
  let r = await get(s, '/v2/models/digits/versions/3/ready');
  assert.equal(r.status, 200);
  r = await get(s, '/v2/models/digits/versions/1');
  assert.equal(r.status, 404);
  r = await get(s, '/v2/models/mnist-cnn');
  assert.equal(r.status, 404, 'only the models given are served');
  r = await post(s, '/v2/models/broken/infer', { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: digit(0) }] });
  assert.equal(r.status, 500);
  assert.equal((await r.json()).code, 'BAD_MODEL');
  // A source, when given, is named in the error: where to look for the broken file.
  r = await get(s, '/v2/models/named');
  assert.equal(r.status, 500);
  assert.match((await r.json()).error, /^model 'named' version '1' \(uploads\/named\.mdm\) cannot be loaded: /);
  r = await post(s, '/v2/models/digits/infer', { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: digit(0) }] });
  assert.equal(r.status, 200);

  assert.throws(() => createServer({ model: {} }), /unknown option "model"/);
  assert.throws(() => createServer({ maxBodyBytes: MAX_BODY_BYTES + 1 }), RangeError);
  assert.throws(() => createServer({ maxBodyBytes: 1.5 }), RangeError);
  assert.throws(() => createServer({ models: ['mnist-cnn'] }), TypeError);
  assert.throws(() => createServer({ models: { x: 42 } }), /model "x" must be bytes/);
  const missing = createServer({ models: { gone: new URL('file:///nonexistent/model.mdm') } });
  await assert.rejects(missing.ready(), /cannot read model "gone"/);
  r = await get(missing, '/v2/health/live');
  assert.equal(r.status, 500);
  assert.match((await r.json()).error, /could not load/);
});

test('memory: the largest bodies keep wasm memory within Workers\' 128 MB', async (t) => {
  const limit = MAX_BODY_BYTES;
  const count = Math.floor((limit - 200) / 2);
  const zeros = `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[${'0,'.repeat(count - 1)}0]}]}`;
  const rows = Math.floor(limit / (784 * 2 + 4));
  const batch = `{"instances":[${Array.from({ length: rows }, () => `[${'0,'.repeat(783)}0]`).join(',')}]}`;
  let r = await post(server, '/v2/models/mnist-cnn/infer', zeros);
  assert.equal(r.status, 400); // 5 million values for a [1, 784] shape
  r = await post(server, '/v1/models/mnist-cnn:predict', batch);
  assert.equal(r.status, 200);
  assert.equal((await r.json()).predictions.length, rows);
  const mb = server.wasmMemoryBytes() / 2 ** 20;
  t.diagnostic(`wasm memory after the largest bodies: ${mb.toFixed(1)} MiB`);
  // Leaves room in the isolate's 128 MB for V8 and the request's JS copies (≤ 2 × 10 MiB).
  assert.ok(mb <= 96, `wasm memory grew to ${mb.toFixed(1)} MiB`);
});

test('server.d.ts: a strict TypeScript consumer compiles, misuse does not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mdeploy-server-types-'));
  try {
    writeFileSync(join(dir, 'main.ts'), `
import { createServer, MAX_BODY_BYTES, type Server, type ServerOptions } from ${JSON.stringify(join(WASM_DIR, 'server.js'))};
declare const wasm: WebAssembly.Module;
declare const mdm: ArrayBuffer;
const options: ServerOptions = { wasm, models: { a: mdm, b: { bytes: new Uint8Array(mdm), version: 2 }, c: { bytes: mdm, source: 'c.mdm' } }, maxBodyBytes: MAX_BODY_BYTES };
const s: Server = createServer(options);
export default { fetch: (req: Request): Promise<Response> => s.fetch(req) };
export const n: number = s.wasmMemoryBytes() + s.maxBodyBytes;
export const p: Promise<void> = s.ready();
// @ts-expect-error: models are bytes or URLs
createServer({ models: { a: 42 } });
// @ts-expect-error: unknown option
createServer({ model: {} });
`);
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022', 'dom'], types: [], allowJs: false },
      files: ['main.ts'],
    }));
    try {
      execFileSync(join(WASM_DIR, 'node_modules/.bin/tsc'), ['-p', dir], { cwd: dir, encoding: 'utf8' });
    } catch (e) {
      assert.fail(`tsc rejected server.d.ts:\n${e.stdout}${e.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
