// The Cloudflare Worker (worker/cloudflare) in a real workerd process (npm `workerd`, the runtime
// of Cloudflare Workers and of wrangler's local mode), on a free loopback port, against the native
// core: every route and error status, the body limit, and 200 real test digits through three
// routes with the same answers as mdeploy_serve::Server compiled natively, and every parity model
// (models/parity.json) within the independent f64 reference (core/testkit).
// Run by tests/serverless/run-workerd.sh (it builds wasm/dist/server first).
// The parity fixtures that are not default models (models/test/, e.g. the random-weight MobileNet
// block) reach the Worker the way a user's own models do: as data bindings MDEPLOY_MODEL_<name>
// (src/index.js), added to a copy of workerd.capnp; the Worker's code and modules are unchanged.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_MODELS, ROOT, WORKER_MODELS, assertSameAnswer, json, kserveBitExact, kserveMatchesF64, nativeAnswers, pngGray, rawPost, req, send, testDigits, toBytes } from './support.mjs';
import { decryptionKeyFromBindings, modelsFromBindings } from '../../worker/cloudflare/src/models.js';
import { TABLE, assertErrorAnswer, keyRows, modelBytes, requestInit } from '../bad-inputs/table.mjs';

const WORKERD = process.env.MDEPLOY_WORKERD ?? join(ROOT, 'node_modules/.bin/workerd');
const CONFIG = join(ROOT, 'worker/cloudflare/workerd.capnp');
const LIMIT = 10 * 1024 * 1024;

let proc = null;
let base = null;
let stderr = '';

/** The files of models/parity.json that are not default models (the fixtures under models/test/). */
const EXTRA_PARITY = JSON.parse(readFileSync(join(ROOT, 'models/parity.json'), 'utf8'))
  .filter((f) => !DEFAULT_MODELS.includes(basename(f, '.mdm')))
  .map((f) => join(ROOT, 'models', f));

/**
 * workerd.capnp with `bindings` added (capnp text, e.g. `(name = "MDEPLOY_MODEL_x", data = embed
 * "…")`), written beside it (its embeds are relative to its folder) under a name of this process;
 * returns its path. Fails if workerd.capnp no longer has the empty `bindings` list to fill.
 */
function configWith(bindings) {
  const text = readFileSync(CONFIG, 'utf8');
  const slot = 'bindings = [\n  ],';
  if (!text.includes(slot)) throw new Error(`${CONFIG} has no empty "${slot}" list for the test's model bindings`);
  const path = join(dirname(CONFIG), `.workerd-test-${process.pid}-${configs.length}.capnp`);
  writeFileSync(path, text.replace(slot, `bindings = [\n${bindings.map((b) => `    ${b},\n`).join('')}  ],`));
  configs.push(path);
  return path;
}
const configs = [];
const embed = (file) => JSON.stringify(relative(dirname(CONFIG), file));
const modelBinding = (name, file) => `(name = "MDEPLOY_MODEL_${name}", data = embed ${embed(file)})`;

/** Starts workerd on 127.0.0.1, port 0; its control fd reports the port once it listens. */
function startWorkerd(config = configWith(EXTRA_PARITY.map((f) => modelBinding(basename(f, '.mdm'), f)))) {
  for (const f of [WORKERD, join(ROOT, 'wasm/dist/server/mdeploy_wasm_server_bg.wasm'), join(ROOT, 'wasm/models/mnist-cnn.mdm')]) {
    if (!existsSync(f)) throw new Error(`${f} missing: run tests/serverless/run-workerd.sh (it runs \`npm ci\` at the root for workerd and \`bash wasm/scripts/build.sh server\`)`);
  }
  return new Promise((resolve, reject) => {
    const p = spawn(WORKERD, ['serve', config, '--socket-addr', 'http=127.0.0.1:0', '--control-fd', '3'], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    proc = p;
    p.stdout.on('data', (d) => { stderr += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => reject(new Error(`workerd did not listen within 30 s: ${stderr}`)), 30_000);
    p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`workerd exited (${code}) before listening: ${stderr}`)); });
    let ctl = '';
    p.stdio[3].on('data', (d) => {
      ctl += d;
      for (const line of ctl.split('\n').slice(0, -1)) {
        const ev = JSON.parse(line);
        if (ev.event === 'listen' && ev.socket === 'http') {
          clearTimeout(timer);
          resolve(`http://127.0.0.1:${ev.port}`);
        }
      }
    });
  });
}

function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k) => Number((status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) ?? [])[1]);
  return { rss: get('VmRSS'), peak: get('VmHWM') };
}

const { xs, ys } = testDigits(20); // 200 digits, 20 of each class, from the test split
const flat = (rows) => rows.flatMap((x) => Array.from(x));
const goodInferFor = (model) => json('POST', `/v2/models/${model}/infer`, { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: Array.from(xs[7]) }] }, 200);
const goodInfer = goodInferFor('mnist-mlp');

// Every route once, then every error: each with the status it must have.
const ROUTES = [
  req('GET', '/v2/health/live', '', null, 200),
  req('GET', '/v2/health/ready', '', null, 200),
  req('GET', '/v2', '', null, 200),
  req('GET', '/v2/models/mnist-cnn', '', null, 200),
  req('GET', '/v2/models/mnist-cnn/versions/1', '', null, 200),
  req('GET', '/v2/models/mnist-mlp/ready', '', null, 200),
  req('GET', '/v2/models/mnist-mlp/versions/1/ready', '', null, 200),
  req('GET', '/v1/models/mnist-cnn', '', null, 200),
  req('GET', '/v1/models/mnist-mlp/metadata', '', null, 200),
  req('GET', '/openapi.yaml', '', null, 200),
  req('POST', '/v2/repository/index', '', null, 200),
  json('POST', '/v2/repository/index', { ready: true }, 200),
  goodInfer,
  json('POST', '/v2/models/mnist-cnn/versions/1/infer', { inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: Array.from(xs[42]) }] }, 200),
  json('POST', '/v1/models/mnist-cnn:predict', { inputs: [Array.from(xs[99])] }, 200),
  json('POST', '/v1/models/mnist-mlp:predict', { instances: [Array.from(xs[150]), Array.from(xs[3])] }, 200),
];
const ERRORS = [
  json('POST', '/v2/models/mnist-cnn/infer', '{"inputs": [', 400), // malformed JSON
  json('POST', '/v2/models/mnist-cnn/infer', '', 400), // empty body
  json('POST', '/v2/models/mnist-cnn/infer', { inputs: [{ name: 'input', shape: [1, 783], datatype: 'FP32', data: Array.from(xs[0]).slice(1) }] }, 400), // wrong shape
  json('POST', '/v2/models/mnist-cnn/infer', { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: Array.from(xs[0]).slice(1) }] }, 400), // shape ≠ data
  json('POST', '/v2/models/mnist-cnn/infer', { inputs: [{ name: 'input', shape: [1, 784], datatype: 'STRING', data: Array.from(xs[0]) }] }, 400), // wrong dtype
  json('POST', '/v2/models/mnist-cnn/infer', `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[NaN${',0'.repeat(783)}]}]}`, 400), // NaN literal
  json('POST', '/v2/models/mnist-cnn/infer', `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[1e999${',0'.repeat(783)}]}]}`, 400), // overflows to Infinity
  json('POST', '/v2/models/mnist-cnn/infer', { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: ['NaN', ...new Array(783).fill(0)] }] }, 400), // "NaN" string
  json('POST', '/v1/models/mnist-mlp:predict', { instances: [Array.from(xs[0]).slice(2)] }, 400), // TF: wrong row length
  json('POST', '/v1/models/mnist-mlp:predict', { neither: [] }, 400), // TF: no instances/inputs
  req('POST', '/predict', '', 'application/octet-stream', 400), // empty image
  req('POST', '/predict', new Uint8Array(100), 'application/octet-stream', 415), // neither PNG nor 784 bytes
  req('POST', '/predict?model=mnist-mlp&x=1', toBytes(xs[0]), 'application/octet-stream', 400), // unknown query parameter
  req('GET', '/v2/models/nope', '', null, 404), // unknown model
  json('POST', '/v2/models/nope/infer', { inputs: [] }, 404),
  req('GET', '/v2/models/mnist-cnn/versions/7', '', null, 404), // unknown version
  json('POST', '/v2/models/mnist-cnn/versions/7/infer', { inputs: [] }, 404),
  json('POST', '/v1/models/nope:predict', { instances: [] }, 404),
  req('POST', '/predict?model=nope', toBytes(xs[0]), 'application/octet-stream', 404),
  req('GET', '/nowhere', '', null, 404), // unknown route
  req('GET', '/v2/models/mnist-cnn/infer', '', null, 405), // wrong method
  req('POST', '/v2/health/live', '', null, 405),
  req('PUT', '/predict', toBytes(xs[0]), 'application/octet-stream', 405),
  req('DELETE', '/v1/models/mnist-cnn', '', null, 405),
];
// 200 test digits: a batch through KServe (CNN), a batch through TF Serving (MLP), and each
// digit alone through POST /predict as 784 raw bytes (both models), plus some as PNG files.
const PARITY = [
  json('POST', '/v2/models/mnist-cnn/infer', { inputs: [{ name: 'input', shape: [xs.length, 1, 28, 28], datatype: 'FP32', data: flat(xs) }] }, 200),
  json('POST', '/v1/models/mnist-mlp:predict', { instances: xs.map((x) => Array.from(x)) }, 200),
  ...xs.map((x, i) => req('POST', i % 2 ? '/predict?model=mnist-mlp' : '/predict', toBytes(x), 'application/octet-stream', 200)),
  ...xs.filter((_, i) => i % 20 === 0).map((x) => req('POST', '/predict?model=mnist-cnn', pngGray(28, 28, toBytes(x)), 'image/png', 200)),
];
// Exactly the limit is read (and refused for its content); one byte more is 413.
const AT_LIMIT = req('POST', '/predict', new Uint8Array(LIMIT), 'application/octet-stream', 415);
const OVER_LIMIT = req('POST', '/predict', new Uint8Array(LIMIT + 1), 'application/octet-stream', 413);

let native = null;

describe('Cloudflare Worker in workerd', () => {
  before(async () => {
    // The same models as the Worker: the defaults, then the fixtures its bindings add.
    const models = { ...WORKER_MODELS, ...Object.fromEntries(EXTRA_PARITY.map((f) => [basename(f, '.mdm'), f])) };
    native = nativeAnswers([...ROUTES, ...ERRORS, ...PARITY, AT_LIMIT, OVER_LIMIT], models);
    base = await startWorkerd();
  });
  after(() => {
    if (proc !== null && proc.exitCode === null) proc.kill('SIGTERM');
    for (const c of configs) rmSync(c, { force: true });
  });

  test('listens on loopback only; wrangler.toml matches workerd.capnp and keeps metrics off', () => {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    const capnp = readFileSync(CONFIG, 'utf8');
    assert.match(capnp, /address = "127\.0\.0\.1:8787"/);
    // wrangler is not run here (it needs Node ≥ 22): check the deploy config by hand instead.
    const toml = readFileSync(join(ROOT, 'worker/cloudflare/wrangler.toml'), 'utf8');
    const date = /^compatibility_date = "(\d{4}-\d\d-\d\d)"$/m.exec(toml);
    assert.ok(date, 'wrangler.toml has a compatibility_date');
    assert.ok(capnp.includes(`compatibilityDate = "${date[1]}"`), 'workerd.capnp runs the compatibility date wrangler deploys');
    assert.match(toml, /^send_metrics = false$/m);
    assert.match(toml, /^main = "src\/index\.js"$/m);
    assert.match(toml, /type = "CompiledWasm"\nglobs = \["\*\*\/\*\.wasm"\]/);
    assert.match(toml, /type = "Data"\nglobs = \["\*\*\/\*\.mdm"\]/);
  });

  test('every route answers as the native core does', async () => {
    for (const [i, r] of ROUTES.entries()) {
      const got = await send(base, r);
      assert.equal(got.status, r.expect, `${r.method} ${r.path}: ${got.body.slice(0, 300)}`);
      assertSameAnswer(got, native[i], `${r.method} ${r.path}`);
    }
  });

  test('every error has its status and JSON body, and the next good request succeeds', async () => {
    const wantGood = native[ROUTES.indexOf(goodInfer)];
    for (const [i, r] of ERRORS.entries()) {
      const got = await send(base, r);
      assert.equal(got.status, r.expect, `${r.method} ${r.path} ${new TextDecoder().decode(r.body).slice(0, 80)}: ${got.body.slice(0, 300)}`);
      assert.equal(got.contentType, 'application/json');
      const body = JSON.parse(got.body);
      assert.equal(typeof body.error, 'string');
      assert.ok(body.error.length > 10, `an error message that says what to fix: ${got.body}`);
      if (r.expect === 405) assert.ok(got.headers.get('allow'), `405 for ${r.method} ${r.path} names the allowed methods`);
      assertSameAnswer(got, native[ROUTES.length + i], `${r.method} ${r.path}`);
      assertSameAnswer(await send(base, goodInfer), wantGood, `good request after ${r.method} ${r.path}`);
    }
  });

  test('200 test digits: same labels and probabilities (1e-5) as the native core, through KServe, TF Serving and /predict', async () => {
    const off = ROUTES.length + ERRORS.length;
    for (const [i, r] of PARITY.entries()) {
      const got = await send(base, r);
      assert.equal(got.status, 200, `${r.method} ${r.path}: ${got.body.slice(0, 300)}`);
      assertSameAnswer(got, native[off + i], `parity request ${i} (${r.path})`);
    }
    // And the answers are right, not only equal: the shipped models know their digits.
    const kserve = JSON.parse((await send(base, PARITY[0])).body);
    const labels = kserve.outputs.find((o) => o.name === 'label').data.map(Number);
    const correct = labels.filter((l, i) => l === ys[i]).length;
    assert.ok(correct >= 190, `CNN got ${correct}/200 test digits right`);
  });

  test('the fixtures come in as MDEPLOY_MODEL_ data bindings and serve beside the defaults', async () => {
    assert.ok(EXTRA_PARITY.length >= 1, 'models/parity.json lists a fixture beyond the default models');
    for (const f of EXTRA_PARITY) {
      const name = basename(f, '.mdm');
      const got = await send(base, req('GET', `/v2/models/${name}`, '', null, 200));
      assert.equal(got.status, 200, got.body);
      assert.equal(JSON.parse(got.body).name, name);
    }
    assert.equal((await send(base, req('GET', '/v2/health/ready', '', null, 200))).status, 200);
  });

  test('200 test digits, every model of models/parity.json: within the independent f64 reference', async (t) => {
    await kserveMatchesF64(t, base);
  });

  test('the integer defaults (models/bitexact.json) on all 2,000 test digits: the same output bits as every native kernel set', async (t) => {
    await kserveBitExact(t, base);
  });

  test('bodies over 10 MiB get 413 (Content-Length and streamed), exactly 10 MiB is read', async () => {
    const off = ROUTES.length + ERRORS.length + PARITY.length;
    const at = await send(base, AT_LIMIT);
    assert.equal(at.status, 415, at.body);
    assertSameAnswer(at, native[off], '10 MiB body');
    // Raw sockets (support.mjs, rawPost): a Content-Length over the limit is refused from the
    // header alone, before any body byte is sent...
    const over = await rawPost(base, '/predict', { contentLength: LIMIT + 1, send: 0 });
    assert.equal(over.status, 413, over.body);
    assertSameAnswer(over, native[off + 1], '10 MiB + 1 body');
    // ...and a chunked upload (no Content-Length) is cut off one byte past the limit, while the
    // client has not even finished it.
    const endless = await rawPost(base, '/predict', { chunked: true, send: LIMIT + 1 });
    assert.equal(endless.status, 413, endless.body);
    assertSameAnswer(endless, native[off + 1], 'chunked body over 10 MiB');
    assertSameAnswer(await send(base, goodInfer), native[ROUTES.indexOf(goodInfer)], 'good request after 413');
  });

  test('memory: the largest bodies leave workerd serving, within Workers\' 128 MB', async (t) => {
    const idle = rssKiB(proc.pid);
    // The worst cases for memory: ~10 MB of JSON numbers (parsed into floats) and a batch of 6,600 digits.
    const n = Math.floor((LIMIT - 200) / 2);
    const zeros = `{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[${'0,'.repeat(n - 1)}0]}]}`;
    const rows = Math.floor(LIMIT / (784 * 2 + 4));
    const batch = `{"instances":[${Array.from({ length: rows }, () => `[${'0,'.repeat(783)}0]`).join(',')}]}`;
    for (const [path, body, status] of [['/v2/models/mnist-cnn/infer', zeros, 400], ['/v1/models/mnist-cnn:predict', batch, 200]]) {
      assert.ok(body.length <= LIMIT);
      const got = await send(base, json('POST', path, body));
      assert.equal(got.status, status, got.body.slice(0, 300));
    }
    assertSameAnswer(await send(base, goodInfer), native[ROUTES.indexOf(goodInfer)], 'good request after the largest bodies');
    const busy = rssKiB(proc.pid);
    t.diagnostic(`workerd RSS: idle ${(idle.rss / 1024).toFixed(0)} MB, after the largest bodies ${(busy.rss / 1024).toFixed(0)} MB, peak ${(busy.peak / 1024).toFixed(0)} MB`);
    // The whole process (runtime, V8, the isolate) grew by less than the isolate limit.
    assert.ok(busy.peak - idle.rss < 128 * 1024, `workerd grew by ${((busy.peak - idle.rss) / 1024).toFixed(0)} MB`);
  });
  test('the bad-input table (tests/bad-inputs/table.json): each request gets its status, code and message; a good request after each succeeds', async () => {
    assert.ok(TABLE.requests.length >= 40);
    for (const row of TABLE.requests) {
      if (row.status === 413) {
        const r = await rawPost(base, row.path, { contentLength: row.bodyBytes.len, send: 0 });
        assertErrorAnswer(assert, row, r.status, r.body);
      } else {
        const res = await fetch(base + row.path, requestInit(row));
        assertErrorAnswer(assert, row, res.status, await res.text());
      }
      assertSameAnswer(await send(base, goodInfer), native[ROUTES.indexOf(goodInfer)], `good request after "${row.name}"`);
    }
  });

  test('the bad-input table: each bad model file as a binding answers 500 with its code and problem; the defaults serve', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdeploy-bad-bindings-'));
    const main = { proc, stderr };
    try {
      const bindings = TABLE.models.map((row, i) => {
        const f = join(dir, `bad-${i}.mdm`);
        writeFileSync(f, modelBytes(row));
        return modelBinding(`bad-${i}`, f);
      });
      stderr = '';
      const url = await startWorkerd(configWith(bindings));
      for (const [i, row] of TABLE.models.entries()) {
        const r = await send(url, goodInferFor(`bad-${i}`));
        const err = JSON.parse(r.body);
        assert.equal(r.status, 500, `${row.name}: ${r.body}`);
        assert.equal(err.code, row.code, row.name);
        assert.ok(err.error.toLowerCase().includes(row.says.toLowerCase()), `${row.name}: ${err.error} should mention ${row.says}`);
        assert.match(err.error, new RegExp(`binding MDEPLOY_MODEL_bad-${i}\\b`), `${row.name}: names the binding`);
        assertSameAnswer(await send(url, goodInfer), native[ROUTES.indexOf(goodInfer)], `good request after "${row.name}"`);
      }
    } finally {
      if (proc !== null && proc.exitCode === null) proc.kill('SIGTERM');
      ({ proc, stderr } = main);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad model bindings: each named with its problem, the defaults keep serving', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mdeploy-bindings-'));
    const corrupt = Buffer.from(readFileSync(join(ROOT, 'models/mnist-mlp.mdm')));
    corrupt[corrupt.length >> 1] ^= 0x40; // one bit in the weights: the digest no longer matches
    writeFileSync(join(dir, 'corrupt.mdm'), corrupt);
    const config = configWith([
      modelBinding('corrupt', join(dir, 'corrupt.mdm')),
      modelBinding('mnist-cnn', join(ROOT, 'models/mnist-mlp.mdm')), // clashes with a default
      '(name = "MDEPLOY_MODEL_words", text = "not a model")',
    ]);
    const main = { proc, stderr };
    try {
      stderr = '';
      const url = await startWorkerd(config);
      const r = await send(url, req('GET', '/v2/models/corrupt', '', null, 500));
      assert.equal(r.status, 500, r.body);
      const err = JSON.parse(r.body);
      assert.equal(err.code, 'BAD_MODEL');
      assert.match(err.error, /binding MDEPLOY_MODEL_corrupt/, 'the error names the binding');
      assert.match(err.error, /digest/i, 'and what is wrong');
      assert.equal((await send(url, req('GET', '/v2/models/words', '', null, 404))).status, 404);
      const index = JSON.parse((await send(url, req('POST', '/v2/repository/index', '', null, 200))).body);
      assert.deepEqual(index.map((m) => `${m.name} ${m.state}`), [...DEFAULT_MODELS.map((n) => `${n} READY`), 'corrupt UNAVAILABLE']);
      assert.match(index[DEFAULT_MODELS.length].reason, /binding MDEPLOY_MODEL_corrupt/);
      // The default CNN is still the default CNN, and answers as natively.
      const good = await send(url, PARITY[0]);
      assertSameAnswer(good, native[ROUTES.length + ERRORS.length], 'default mnist-cnn beside bad bindings');
      // Logged once per isolate, naming the binding and the problem.
      const deadline = Date.now() + 5000;
      while (!/MDEPLOY_MODEL_words/.test(stderr) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      assert.match(stderr, /binding MDEPLOY_MODEL_mnist-cnn: not served: a model called 'mnist-cnn' is already served/);
      assert.match(stderr, /binding MDEPLOY_MODEL_words: not served: its value is not bytes \(string\)/);
    } finally {
      if (proc !== null && proc.exitCode === null) proc.kill('SIGTERM');
      ({ proc, stderr } = main);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A trust policy (worker/cloudflare/README.md "Trust policy"): keys in the MDEPLOY_TRUSTED_KEYS
  // text binding, models signed by the Rust API (wasm/examples/trust_fixtures.rs, run by
  // run-workerd.sh into MDEPLOY_TRUST_FIXTURES).
  test('trust policy: a signed bound model serves and the defaults are left out; an unsigned or wrongly signed one makes every answer UNTRUSTED', async () => {
    const fix = process.env.MDEPLOY_TRUST_FIXTURES;
    assert.ok(fix, 'MDEPLOY_TRUST_FIXTURES is not set: run tests/serverless/run-workerd.sh');
    const info = JSON.parse(readFileSync(join(fix, 'trust.json'), 'utf8'));
    const keys = `(name = "MDEPLOY_TRUSTED_KEYS", text = ${JSON.stringify(readFileSync(join(fix, 'a.pub'), 'utf8'))})`;
    const main = { proc, stderr };
    try {
      stderr = '';
      let url = await startWorkerd(configWith([keys, modelBinding('signed', join(fix, 'signed-a.mdm'))]));
      const ok = await send(url, goodInferFor('signed'));
      assert.equal(ok.status, 200, ok.body);
      assert.equal((await send(url, req('GET', '/v2/models/mnist-cnn', '', null, 404))).status, 404, 'unsigned defaults are not served under a policy');
      proc.kill('SIGTERM');
      for (const [file, says] of [['unsigned.mdm', /not signed/], ['signed-b.mdm', new RegExp(`signed by key id ${info.keys.b.keyId}`)],
        ['bad-signature.mdm', new RegExp(`key id ${info.keys.a.keyId} does not verify`)]]) {
        url = await startWorkerd(configWith([keys, modelBinding('signed', join(fix, 'signed-a.mdm')), modelBinding('other', join(fix, file))]));
        for (const model of ['signed', 'other']) {
          const r = await send(url, goodInferFor(model));
          const err = JSON.parse(r.body);
          assert.equal(r.status, 500, `${file}: ${r.body}`);
          assert.equal(err.code, 'UNTRUSTED', file);
          assert.match(err.error, says, file);
          assert.match(err.error, /model "other" \(binding MDEPLOY_MODEL_other\)/, `${file}: names the binding`);
        }
        proc.kill('SIGTERM');
      }
    } finally {
      if (proc !== null && proc.exitCode === null) proc.kill('SIGTERM');
      ({ proc, stderr } = main);
    }
  });

  // The bad-input table's key rows (tests/bad-inputs/table.json; files made by
  // core/examples/bad_key_fixtures.rs, run by run-workerd.sh into MDEPLOY_BAD_KEY_FIXTURES): each
  // row's file bound beside a good one, under the row's keys (MDEPLOY_TRUSTED_KEYS; a key-file
  // row binds its damaged text there). Under a policy one refused model fails the whole load
  // (README "Trust policy"), so the good request after each row goes to a Worker deployed with
  // the good file and good keys. A row's decryption key (or its damaged key file) is the
  // MDEPLOY_DECRYPTION_KEY binding: all 15 rows run.
  test('the bad-input table: every key row answers its code, then a good deployment serves', async (t) => {
    const fix = process.env.MDEPLOY_BAD_KEY_FIXTURES;
    assert.ok(fix, 'MDEPLOY_BAD_KEY_FIXTURES is not set: run tests/serverless/run-workerd.sh');
    const { run, skipped } = keyRows(fix, { decryption: true });
    assert.equal(run.length, TABLE.keys.length, `${run.length} key rows`);
    const dir = mkdtempSync(join(tmpdir(), 'mdeploy-workerd-keys-'));
    const keysBinding = (text) => `(name = "MDEPLOY_TRUSTED_KEYS", text = ${JSON.stringify(text)})`;
    const decBinding = (text) => `(name = "MDEPLOY_DECRYPTION_KEY", text = ${JSON.stringify(text)})`;
    const main = { proc, stderr };
    try {
      for (const [i, k] of run.entries()) {
        const bad = join(dir, `bad-${i}.mdm`);
        const good = join(dir, `good-${i}.mdm`);
        writeFileSync(bad, k.bytes);
        writeFileSync(good, k.good);
        const keys = k.keyFile?.for === 'trust' ? keysBinding(k.keyFile.text) : k.trusted ? keysBinding(k.trusted.join('')) : null;
        const dec = k.keyFile?.for === 'decryption' ? decBinding(k.keyFile.text) : k.decryptionKey ? decBinding(k.decryptionKey) : null;
        const goodKeys = [...(k.trusted ? [keysBinding(k.trusted.join(''))] : []), ...(k.decryptionKey ? [decBinding(k.decryptionKey)] : [])];
        stderr = '';
        let url = await startWorkerd(configWith([...(keys ? [keys] : []), ...(dec ? [dec] : []), modelBinding('good', good), modelBinding('bad', bad)]));
        const r = await send(url, goodInferFor('bad'));
        assertErrorAnswer(assert, { ...k.row, status: 500 }, r.status, r.body);
        proc.kill('SIGTERM');
        url = await startWorkerd(configWith([...goodKeys, modelBinding('good', good)]));
        const ok = await send(url, goodInferFor('good'));
        assert.equal(ok.status, 200, `a good deployment after ${k.row.name}: ${ok.body}`);
        proc.kill('SIGTERM');
      }
      for (const { row, why } of skipped) t.diagnostic(`skipped "${row.name}": ${why}`);
    } finally {
      if (proc !== null && proc.exitCode === null) proc.kill('SIGTERM');
      ({ proc, stderr } = main);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('modelsFromBindings: only MDEPLOY_MODEL_ bindings holding bytes, never over a default', () => {
    const logs = [];
    const bytes = new Uint8Array([1, 2, 3]);
    const defaults = Object.fromEntries(DEFAULT_MODELS.map((n) => [n, new Uint8Array(1)]));
    const m = modelsFromBindings(defaults, { OTHER: bytes, MDEPLOY_MODEL_a: bytes.buffer, 'MDEPLOY_MODEL_b-1.x': bytes, MDEPLOY_MODEL_: bytes, 'MDEPLOY_MODEL_.hidden': bytes, 'MDEPLOY_MODEL_mnist-mlp': bytes, MDEPLOY_MODEL_n: 7 }, (l) => logs.push(l));
    assert.deepEqual(Object.keys(m), [...DEFAULT_MODELS, 'a', 'b-1.x']);
    assert.deepEqual(m.a, { bytes: bytes.buffer, source: 'binding MDEPLOY_MODEL_a' });
    assert.equal(logs.length, 4, logs.join('\n'));
    assert.deepEqual(Object.keys(modelsFromBindings(defaults, undefined)), DEFAULT_MODELS, 'no env: the defaults');
  });

  test('decryptionKeyFromBindings: the MDEPLOY_DECRYPTION_KEY binding handed on as it is, bytes as a Uint8Array', () => {
    assert.equal(decryptionKeyFromBindings({}), undefined);
    assert.equal(decryptionKeyFromBindings(undefined), undefined);
    assert.equal(decryptionKeyFromBindings({ MDEPLOY_DECRYPTION_KEY: 'mdeploy-chacha20poly1305-key x' }), 'mdeploy-chacha20poly1305-key x');
    assert.equal(decryptionKeyFromBindings({ MDEPLOY_DECRYPTION_KEY: '' }), '', 'an empty secret is a damaged key, not no key');
    const b = new Uint8Array(40).fill(7);
    assert.deepEqual(decryptionKeyFromBindings({ MDEPLOY_DECRYPTION_KEY: b.subarray(4, 36) }), new Uint8Array(32).fill(7));
  });

  // tritonclient.http, JSON tensors and its defaults (Triton's binary tensor extension), as in
  // the wasmtime suite: the Inference-Header-Content-Length header must survive workerd and server.js.
  test('tritonclient.http works against the Worker, JSON and binary defaults', async (t) => {
    const ref = process.env.MDEPLOY_REFERENCE;
    if (!ref) throw new Error('MDEPLOY_REFERENCE is not set: run `bash tests/serverless/run-workerd.sh`, which builds it first');
    const py = join(process.env.MDEPLOY_PY_VENV ?? join(homedir(), '.cache/mdeploy/py-venv'), 'bin/python');
    const script = join(ROOT, 'tests/serverless/kserve_client.py');
    const stdout = await new Promise((resolve, reject) => {
      execFile(py, [script, base.replace('http://', ''), ref], { timeout: 120_000 }, (err, out, errOut) => {
        if (err) reject(new Error(`${py} ${script} failed: ${err.message}\n${out}\n${errOut}`));
        else resolve(out);
      });
    });
    const m = stdout.match(/tritonclient: live, ready, repository index \(\d+ models\), metadata and \d+ inferences OK \(\+(\d+) with the binary tensor defaults/);
    assert.ok(m, stdout);
    assert.ok(Number(m[1]) > 0, `no binary-extension inference ran: ${stdout}`);
    t.diagnostic(stdout.trim());
  });
});
