// `worker/build.sh --trusted-keys DIR`: a wasi:http component with a trust policy compiled in,
// under the stock `wasmtime serve`. Only signed models are served: the unsigned defaults are left
// out, the model compiled in with --models (signed by the trusted key) serves, and of the files in
// a mounted MDEPLOY_MODEL_DIR each that is unsigned, signed by another key or whose signature does
// not verify answers 500 UNTRUSTED on its own routes naming the file and the key id, while a
// signed one serves. tests/serverless/run.sh builds the component and passes in:
//   MDEPLOY_TRUSTED_WASM     the snapshot `worker/build.sh --models E --trusted-keys K` printed
//                            (E holds signed-mlp.mdm, K the key a.pub)
//   MDEPLOY_TRUST_FIXTURES   the folder wasm/examples/trust_fixtures.rs wrote (signed by the Rust API)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertErrorAnswer, keyRows } from '../bad-inputs/table.mjs';
import { startServe, stopServe } from './support.mjs';

const WASM = process.env.MDEPLOY_TRUSTED_WASM;
const FIX = process.env.MDEPLOY_TRUST_FIXTURES;
if (!WASM || !FIX) throw new Error('MDEPLOY_TRUSTED_WASM / MDEPLOY_TRUST_FIXTURES are not set: run `bash tests/serverless/run.sh`');
const info = JSON.parse(readFileSync(join(FIX, 'trust.json'), 'utf8'));
const A = info.keys.a.keyId;
const B = info.keys.b.keyId;

const infer = (base, model, x) => fetch(`${base}/v2/models/${model}/infer`, {
  method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: Array.from(x) }] }),
});

test('a component with a trust policy serves only signed models; the others answer UNTRUSTED naming the file and key id', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mdeploy-trust-dir-'));
  for (const [from, to] of [['unsigned.mdm', 'unsigned.mdm'], ['signed-b.mdm', 'other-key.mdm'], ['bad-signature.mdm', 'bad-signature.mdm'],
    ['tampered.mdm', 'tampered.mdm'], ['signed-a.mdm', 'also-signed.mdm']]) copyFileSync(join(FIX, from), join(dir, to));
  const s = await startServe(WASM, ['--dir', `${dir}::/models`, '--env', 'MDEPLOY_MODEL_DIR=/models']);
  const p = s.proc;
  const base = s.url;
  try {
    const x = new Float32Array(784).fill(0.1);
    // The signed model compiled in serves; the unsigned defaults are not in the component.
    assert.equal((await infer(base, 'signed-mlp', x)).status, 200);
    assert.equal((await fetch(`${base}/v2/models/mnist-cnn`)).status, 404, 'the unsigned default models are left out under a policy');
    for (const [name, says] of [['unsigned', new RegExp(`not signed.*1 trusted: ${A}`)], ['other-key', new RegExp(`signed by key id ${B}, which is not a trusted key`)],
      ['bad-signature', new RegExp(`trusted key id ${A} does not verify`)], ['tampered', new RegExp(`trusted key id ${A} does not verify`)]]) {
      const r = await infer(base, name, x);
      const body = await r.json();
      assert.equal(r.status, 500, `${name}: ${JSON.stringify(body)}`);
      assert.equal(body.code, 'UNTRUSTED', name);
      assert.match(body.error, says, name);
      assert.match(body.error, new RegExp(`/models/${name}\\.mdm`), `${name}: names the file`);
      // A good request after each refusal: the signed file of the same folder serves.
      const good = await infer(base, 'also-signed', x);
      assert.equal(good.status, 200, `also-signed after ${name}`);
      const probs = (await good.json()).outputs[0].data;
      assert.equal(probs.length, 10);
    }
    const index = await (await fetch(`${base}/v2/repository/index`, { method: 'POST' })).json();
    assert.deepEqual(index.map((m) => m.name), ['signed-mlp', 'also-signed', 'bad-signature', 'other-key', 'tampered', 'unsigned']);
  } finally {
    await stopServe(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

// The bad-input table's key rows (tests/bad-inputs/table.json; files made by
// core/examples/bad_key_fixtures.rs into MDEPLOY_BAD_KEY_FIXTURES) that fit this component's
// policy: the rows that trust exactly the publisher's key, whose .pub is the one compiled in
// (the same test seed as trust_fixtures' a.pub; checked below). Each row's file and its good file
// are mounted together; the bad one answers 500 with the row's code and message, and the good
// one serves right after. Skipped, with the reason in the output: rows that give a decryption
// key (the component has none), damaged key files (a build input of --trusted-keys: untested
// here) and rows with no policy (this component has one).
test('the bad-input table: the key rows of this policy answer their codes on their routes, the good file serves after each', async (t) => {
  const fixKeys = process.env.MDEPLOY_BAD_KEY_FIXTURES;
  if (!fixKeys) throw new Error('MDEPLOY_BAD_KEY_FIXTURES is not set: run `bash tests/serverless/run.sh`');
  const { run, skipped } = keyRows(fixKeys, { decryption: false });
  const compiled = readFileSync(join(FIX, 'a.pub'), 'utf8');
  const rows = [];
  for (const k of run) {
    if (k.keyFile) skipped.push({ row: k.row, why: 'a damaged key file is a build input here: serve/build.rs parses each --trusted-keys .pub and fails the build (not run by this suite)' });
    else if (!k.trusted) skipped.push({ row: k.row, why: 'no trust policy, and this component has one' });
    else {
      assert.deepEqual(k.trusted, [compiled], `${k.row.name}: the row trusts the key compiled in`);
      rows.push(k);
    }
  }
  assert.ok(rows.length >= 5, `${rows.length} rows`);
  const dir = mkdtempSync(join(tmpdir(), 'mdeploy-trust-table-'));
  for (const [i, k] of rows.entries()) {
    writeFileSync(join(dir, `bad-${i}.mdm`), k.bytes);
    writeFileSync(join(dir, `good-${i}.mdm`), k.good);
  }
  const s = await startServe(WASM, ['--dir', `${dir}::/models`, '--env', 'MDEPLOY_MODEL_DIR=/models']);
  const p = s.proc;
  const base = s.url;
  try {
    const x = new Float32Array(784).fill(0.1);
    for (const [i, k] of rows.entries()) {
      const r = await infer(base, `bad-${i}`, x);
      assertErrorAnswer(assert, { ...k.row, status: 500 }, r.status, await r.text());
      const good = await infer(base, `good-${i}`, x);
      assert.equal(good.status, 200, `the good file after ${k.row.name}`);
      assert.equal((await good.json()).outputs[0].data.length, 10);
    }
    for (const { row, why } of skipped) t.diagnostic(`skipped "${row.name}": ${why}`);
  } finally {
    await stopServe(p);
    rmSync(dir, { recursive: true, force: true });
  }
});
