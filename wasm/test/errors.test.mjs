// Every way to misuse the API gives an MdeployError with its stable code and a message that
// says what to do, and the same Model keeps working afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createServer } from 'node:http';
import { Model, MdeployError, preprocess, builtinModels, builtinCatalog } from '../index.js';
import { argmax, DEFAULT_MODEL, DEFAULT_MODELS, nativeRef, refDir, testSplit, WASM_DIR } from './support.mjs';
import { TABLE, modelBytes } from '../../tests/bad-inputs/table.mjs';

const { xs } = testSplit();
const ref = nativeRef();
// What the native core says for test digit i (the wasm answer must be the same).
const native = (model, i) => argmax(ref.models[model].probs, i * 10, 10);
const digit = (i) => xs.slice(i * 784, (i + 1) * 784);

async function rejects(promiseOrFn, code, re) {
  let err;
  try {
    await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected an error with code ${code}, nothing was thrown`);
  assert.ok(err instanceof MdeployError, `expected an MdeployError, got ${err}`);
  assert.ok(err instanceof Error);
  assert.equal(err.code, code, `code of: ${err.message}`);
  if (re) assert.match(err.message, re);
  return err;
}

test('bad inputs give BAD_INPUT / UNSUPPORTED and the model still answers the same', async () => {
  const m = await Model.load('mnist-cnn');
  const x = digit(5);
  const before = await m.predict(x);

  await rejects(m.predict(new Float32Array(783)), 'BAD_INPUT', /783 values .* takes 784/);
  await rejects(m.predict(new Float32Array(785)), 'BAD_INPUT', /785/);
  await rejects(m.predict([]), 'BAD_INPUT');
  const nan = x.slice(); nan[123] = NaN;
  await rejects(m.predict(nan), 'BAD_INPUT', /index 123/);
  const inf = x.slice(); inf[7] = Infinity;
  await rejects(m.predict(inf), 'BAD_INPUT', /index 7/);
  await rejects(m.predict(new Uint8ClampedArray(100)), 'BAD_INPUT', /784 bytes/);
  await rejects(m.predict({ width: 10, height: 10, data: new Uint8ClampedArray(399) }), 'BAD_INPUT', /400 RGBA bytes/);
  await rejects(m.predict({ width: 8, height: 8, data: new Uint8ClampedArray(256) }), 'BAD_INPUT', /no ink/);
  await rejects(m.predict('a string'), 'BAD_INPUT');
  await rejects(m.predict(null), 'BAD_INPUT');
  await rejects(m.predictBatch(xs.subarray(0, 784 * 3 + 1)), 'BAD_INPUT', /whole number/);
  await rejects(m.predictBatch(xs.subarray(0, 784 * 3), 4), 'BAD_INPUT', /2352 input values for 4/);
  await rejects(m.predictBatch(xs.subarray(0, 784 * 3), 0), 'BAD_INPUT');
  await rejects(m.predictBatch(Array.from(x)), 'BAD_INPUT', /Float32Array/);
  const nanBatch = xs.slice(0, 784 * 3); nanBatch[784 * 2 + 5] = NaN;
  await rejects(m.predictBatch(nanBatch, 3), 'BAD_INPUT', /sample 2, element 5/);

  const after = await m.predict(x);
  assert.deepEqual(after.probs, before.probs, 'the model answers exactly as before the errors');
  assert.equal(after.label, native('mnist-cnn', 5));
});

test('garbage, truncated and corrupted model bytes give BAD_MODEL', async () => {
  const bytes = readFileSync(join(WASM_DIR, 'models/mnist-mlp.mdm'));
  await rejects(Model.load(new Uint8Array(0)), 'BAD_MODEL', /0 bytes/);
  await rejects(Model.load(new TextEncoder().encode('<!doctype html><title>404</title>')), 'BAD_MODEL');
  await rejects(Model.load(bytes.subarray(0, 1000)), 'BAD_MODEL');
  const flipped = new Uint8Array(bytes); flipped[flipped.length - 3] ^= 1;
  await rejects(Model.load(flipped), 'BAD_MODEL');
  // And the runtime is fine afterwards: the intact bytes (as an ArrayBuffer) load.
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const m = await Model.load(ab);
  assert.equal(m.info().name.length > 0, true);
  assert.equal((await m.predict(digit(0))).label, native('mnist-mlp', 0));
});

test('the bad-input table (tests/bad-inputs/table.json): every bad model file is refused with its code and message, and a good model loads after each', async () => {
  assert.ok(TABLE.models.length >= 10);
  for (const row of TABLE.models) {
    const bytes = modelBytes(row, new URL('../models/', import.meta.url));
    await rejects(Model.load(bytes), row.code, new RegExp(row.says.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i'));
    const m = await Model.load('mnist-mlp');
    assert.equal((await m.predict(digit(0))).label, native('mnist-mlp', 0), `a good model after "${row.name}"`);
  }
});

test('a model for another input shape: loads, then refuses MNIST inputs with a clear code', async () => {
  const other = await Model.load(join(refDir(), 'other-shape.mdm'));
  assert.deepEqual(other.info().inputShape, [3, 8, 8]);
  await rejects(other.predict(digit(0)), 'BAD_INPUT', /takes 192 .*\[3,8,8\]/);
  await rejects(other.predict(new Uint8ClampedArray(784)), 'UNSUPPORTED', /Float32Array/);
  const img = { width: 28, height: 28, data: new Uint8ClampedArray(28 * 28 * 4).fill(255) };
  await rejects(other.predict(img), 'UNSUPPORTED', /Float32Array\(192\)/);
  const r = await other.predict(new Float32Array(192).fill(0.5));
  assert.equal(r.probs.length, 4);
  assert.ok(['a', 'b', 'c', 'd'].includes(r.name));
  // MNIST models are unaffected by the other model's errors.
  const cnn = await Model.load('mnist-cnn');
  assert.equal((await cnn.predict(digit(1999))).label, native('mnist-cnn', 1999));
});

test('backends, options, sources and lifecycle', async () => {
  const e = await rejects(Model.load('mnist-cnn', { backend: 'webgpu' }), 'NO_WEBGPU', /not available/);
  assert.match(e.message, /backend: 'cpu'/, 'says how to fix it');
  await rejects(Model.load('mnist-cnn', { backend: 'gpu' }), 'BAD_INPUT', /'auto', 'cpu' or 'webgpu'/);
  await rejects(Model.load('mnist-cnn', { maxBatch: 0 }), 'BAD_INPUT', /maxBatch/);
  await rejects(Model.load('/nonexistent/model.mdm'), 'LOAD_FAILED', /nonexistent/);
  await rejects(Model.load(42), 'BAD_INPUT', /Model.load expects/);
  await rejects(async () => new Model(), 'BAD_INPUT', /Model.load/);

  // Paths, file: URLs and strings of file: URLs all load in Node.
  const path = join(WASM_DIR, 'models/mnist-mlp.mdm');
  for (const src of [path, pathToFileURL(path), pathToFileURL(path).href]) {
    const m = await Model.load(src, { backend: 'cpu' });
    assert.equal(m.backend, 'cpu');
    assert.equal((await m.predict(digit(300))).label, native('mnist-mlp', 300));
    m.dispose();
  }
  assert.deepEqual(builtinModels, DEFAULT_MODELS, 'the package ships models/defaults.json');
  // The catalog (known before loading) says what the shipped files say once loaded.
  assert.deepEqual(Object.keys(builtinCatalog), DEFAULT_MODELS);
  for (const name of builtinModels) {
    const m = await Model.load(name, { backend: 'cpu' });
    const info = m.info();
    assert.equal(builtinCatalog[name].fileBytes, info.fileBytes, `${name}: catalog size vs the file`);
    assert.ok(Math.abs(builtinCatalog[name].testAccuracy - info.provenance.testAccuracy) < 5e-5, `${name}: catalog accuracy ${builtinCatalog[name].testAccuracy} vs provenance ${info.provenance.testAccuracy}`);
    m.dispose();
  }

  const m = await Model.load();
  assert.equal(m.info().name, (await Model.load(DEFAULT_MODEL)).info().name, `the default model is '${DEFAULT_MODEL}'`);
  m.dispose();
  await rejects(m.predict(digit(0)), 'DISPOSED', /Model.load/);
  await rejects(async () => m.info(), 'DISPOSED');
  m.dispose(); // twice is fine

  await rejects(preprocess(new Float32Array(784)), 'BAD_INPUT', /ImageData/);
});

test('Response objects and http URLs load through fetch; HTTP errors give LOAD_FAILED', async () => {
  const bytes = readFileSync(join(WASM_DIR, 'models/mnist-mlp.mdm'));
  const fromResponse = await Model.load(new Response(bytes));
  assert.equal((await fromResponse.predict(digit(42))).label, native('mnist-mlp', 42));
  await rejects(Model.load(new Response('gone', { status: 404, statusText: 'Not Found' })), 'LOAD_FAILED', /HTTP 404/);

  const server = createServer((req, res) => {
    if (req.url === '/mnist-mlp.mdm') res.end(bytes);
    else if (req.url === '/empty.mdm') res.end();
    else { res.statusCode = 404; res.end('not found'); }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    const m = await Model.load(`${base}/mnist-mlp.mdm`);
    assert.equal((await m.predict(digit(43))).label, native('mnist-mlp', 43));
    await rejects(Model.load(new URL(`${base}/missing.mdm`)), 'LOAD_FAILED', /HTTP 404 .*missing\.mdm/);
    await rejects(Model.load(`${base}/empty.mdm`), 'BAD_MODEL', /0 bytes/);
  } finally {
    server.close();
    server.closeAllConnections(); // no kept-alive socket may serve the request below
  }
  await rejects(Model.load(`${base}/mnist-mlp.mdm`), 'LOAD_FAILED', /could not fetch/);
});
