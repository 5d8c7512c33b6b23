// Trust policies (`Model.load(src, { trustedKeys })`, `createServer({ trustedKeys })`) on files
// signed by the Rust API (`format::sign`, what `mdeploy sign` runs): examples/trust_fixtures.rs
// writes them, with the keys as `mdeploy keygen` writes them, into <refDir()>/trust
// (wasm/scripts/test.sh runs it). The same three refusals as the native reader (unsigned, unknown
// key id, signature that does not verify), each with code UNTRUSTED and a message naming the key
// id, and a good load after each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model, MdeployError, ErrorCode } from '../index.js';
import { createServer } from '../server.js';
import { refDir, testSplit } from './support.mjs';
import { keyRows, TABLE } from '../../tests/bad-inputs/table.mjs';

const DIR = join(refDir(), 'trust');
if (!existsSync(join(DIR, 'trust.json'))) {
  throw new Error(`${DIR}/trust.json missing: run wasm/scripts/test.sh (it runs \`cargo run --release -p mdeploy-wasm --example trust_fixtures\` first)`);
}
const info = JSON.parse(readFileSync(join(DIR, 'trust.json'), 'utf8'));
const file = (name) => new Uint8Array(readFileSync(join(DIR, name)));
const text = (name) => readFileSync(join(DIR, name), 'utf8');
const A = info.keys.a.keyId;
const B = info.keys.b.keyId;
const { xs } = testSplit();
const digits = xs.slice(0, 40 * 784); // 4 of each of the first digits: enough to compare models

async function rejects(promise, code, re) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected an error with code ${code}, nothing was thrown`);
  assert.ok(err instanceof MdeployError, `expected an MdeployError, got ${err}`);
  assert.equal(err.code, code, `code of: ${err.message}`);
  if (re) assert.match(err.message, re);
  return err;
}

// The reference answer: the same model, unsigned, loaded without a policy.
let plainProbs;
async function expectGood(source, trustedKeys, keyId) {
  const m = await Model.load(source, { backend: 'cpu', trustedKeys });
  try {
    assert.equal(m.info().signedBy, keyId);
    const { probs } = m.predictBatchSync(digits);
    assert.deepEqual(probs, plainProbs, 'a signed model computes what the unsigned one does');
  } finally {
    m.dispose();
  }
}

test('fixtures: the signed model is the unsigned one', async () => {
  const m = await Model.load(file('unsigned.mdm'), { backend: 'cpu' });
  plainProbs = m.predictBatchSync(digits).probs;
  assert.equal(m.info().signedBy, null);
  m.dispose();
  assert.equal(ErrorCode.UNTRUSTED, 'UNTRUSTED');
});

test('a model signed by a trusted key loads, given the .pub text or the raw 32 bytes', async () => {
  await expectGood(file('signed-a.mdm'), [text('a.pub')], A);
  await expectGood(file('signed-a.mdm'), [file('a.raw')], A);
  await expectGood(file('signed-a.mdm'), [file('a.raw').buffer], A);
  // Either of two keys; a .pub with Windows line ends; the same key twice.
  await expectGood(file('signed-b.mdm'), [text('a.pub'), text('b.pub').replace('\n', '\r\n')], B);
  await expectGood(file('signed-a.mdm'), [text('a.pub'), file('a.raw')], A);
  // From a path, as any other source.
  await expectGood(join(DIR, 'signed-a.mdm'), [text('a.pub')], A);
});

test('an unsigned model is UNTRUSTED under a policy, naming the trusted key ids; then a good load', async () => {
  const e = await rejects(Model.load(file('unsigned.mdm'), { trustedKeys: [text('a.pub')] }), 'UNTRUSTED', /not signed/);
  assert.match(e.message, new RegExp(`1 trusted: ${A}`));
  assert.match(e.message, /mdeploy sign/);
  // The built-in models are unsigned: a policy refuses them too.
  await rejects(Model.load('mnist-mlp', { trustedKeys: [text('a.pub')] }), 'UNTRUSTED', /not signed/);
  await expectGood(file('signed-a.mdm'), [text('a.pub')], A);
});

test('a model signed by another key is UNTRUSTED, naming its key id; then a good load', async () => {
  const e = await rejects(Model.load(file('signed-b.mdm'), { trustedKeys: [text('a.pub')] }), 'UNTRUSTED',
    new RegExp(`signed by key id ${B}, which is not a trusted key \\(1 trusted: ${A}\\)`));
  assert.match(e.message, /\.pub/);
  // An empty policy refuses everything, signed or not.
  await rejects(Model.load(file('signed-a.mdm'), { trustedKeys: [] }), 'UNTRUSTED', new RegExp(`key id ${A}.*0 trusted: none`));
  await expectGood(file('signed-b.mdm'), [text('b.pub')], B);
});

test('a signature that does not verify is UNTRUSTED, naming the key id; then a good load', async () => {
  // One bit of the signature flipped (the digest does not cover it, so the file is intact).
  await rejects(Model.load(file('bad-signature.mdm'), { trustedKeys: [text('a.pub')] }), 'UNTRUSTED',
    new RegExp(`trusted key id ${A} does not verify`));
  // One byte of the weights changed and the digest recomputed, as an attacker without the key would.
  await rejects(Model.load(file('tampered.mdm'), { trustedKeys: [text('a.pub')] }), 'UNTRUSTED',
    new RegExp(`trusted key id ${A} does not verify`));
  await expectGood(file('signed-a.mdm'), [text('a.pub')], A);
});

test('a damaged signed file is BAD_MODEL with or without a policy, as natively', async () => {
  const with_ = await rejects(Model.load(file('corrupt.mdm'), { trustedKeys: [text('a.pub')] }), 'BAD_MODEL', /digest/i);
  const without = await rejects(Model.load(file('corrupt.mdm')), 'BAD_MODEL', /digest/i);
  assert.equal(with_.message, without.message);
});

test('without a policy a signed file loads unverified (signedBy null), even with a bad signature', async () => {
  for (const f of ['signed-a.mdm', 'bad-signature.mdm', 'tampered.mdm']) {
    const m = await Model.load(file(f), { backend: 'cpu' });
    assert.equal(m.info().signedBy, null, f);
    m.dispose();
  }
});

test('malformed, secret and weak keys are BAD_INPUT before anything loads', async () => {
  const secret = 'mdeploy-ed25519-secret ' + 'ab'.repeat(32);
  await rejects(Model.load(file('signed-a.mdm'), { trustedKeys: [secret] }), 'BAD_INPUT', /secret key.*\.pub/);
  await rejects(Model.load(file('signed-a.mdm'), { trustedKeys: ['ssh-ed25519 AAAA'] }), 'BAD_INPUT', /not an mdeploy public key.*mdeploy keygen/);
  await rejects(Model.load(file('signed-a.mdm'), { trustedKeys: [text('a.pub').trim().slice(0, -2)] }), 'BAD_INPUT', /64 hex digits, got 62/);
  await rejects(Model.load(file('signed-a.mdm'), { trustedKeys: [file('a.raw').subarray(0, 31)] }), 'BAD_INPUT', /31 bytes.*32/);
  await rejects(Model.load(file('signed-a.mdm'), { trustedKeys: text('a.pub') }), 'BAD_INPUT', /must be an array/);
  await rejects(Model.load(file('signed-a.mdm'), { trustedKeys: [42] }), 'BAD_INPUT', /trustedKeys\[0\]/);
  // Every small-order encoding the native reader refuses (derived from curve25519-dalek).
  assert.ok(info.weakKeys.length >= 8);
  for (const h of info.weakKeys) {
    const raw = Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
    await rejects(Model.load(file('signed-a.mdm'), { trustedKeys: [file('a.raw'), raw] }), 'BAD_INPUT', /trustedKeys\[1\] is a weak/);
    await rejects(Model.load(file('signed-a.mdm'), { trustedKeys: [`mdeploy-ed25519-public ${h}`] }), 'BAD_INPUT', /weak/);
  }
  await expectGood(file('signed-a.mdm'), [text('a.pub')], A);
});

// mdeploy-wasm/server (the Cloudflare Worker's path): the policy applies to every model before it
// is served; one refused model fails the server's load, and every request answers with its code.
test('createServer({ trustedKeys }) serves signed models and refuses the others with UNTRUSTED', async () => {
  const good = createServer({ models: { mlp: file('signed-a.mdm'), mlp2: file('signed-b.mdm') }, trustedKeys: [text('a.pub'), file('b.raw')] });
  await good.ready();
  const r = await good.fetch(new Request('http://x/v2/models/mlp/ready'));
  assert.equal(r.status, 200);

  for (const [f, re] of [['unsigned.mdm', /not signed/], ['signed-b.mdm', new RegExp(`key id ${B}`)], ['bad-signature.mdm', /does not verify/]]) {
    const s = createServer({ models: { ok: file('signed-a.mdm'), bad: { bytes: file(f), source: f } }, trustedKeys: [text('a.pub')] });
    await assert.rejects(s.ready(), (e) => e.code === 'UNTRUSTED' && /model "bad"/.test(e.message) && re.test(e.message));
    const res = await s.fetch(new Request('http://x/v2/models/ok/ready'));
    assert.equal(res.status, 500);
    const body = await res.json();
    assert.equal(body.code, 'UNTRUSTED', JSON.stringify(body));
    assert.match(body.error, re);
  }
  assert.throws(() => createServer({ trustedKeys: 'x' }), /trustedKeys must be an array/);
});

// The bad-input table's `keys` rows (tests/bad-inputs/table.json; files made by
// core/examples/bad_key_fixtures.rs, which wasm/scripts/test.sh runs into <refDir()>/bad-keys):
// each refused with the row's code and a message naming its `says`, the good file under the
// same policy and decryption key loading right after. All 15 rows run: the package takes
// `decryptionKey` (a key row's damaged key file is given as the decryption key when it is one).
test('the bad-input table: every key row is refused with its code, then the good file loads', async () => {
  const { run, skipped } = keyRows(join(refDir(), 'bad-keys'), { decryption: true });
  assert.equal(skipped.length, 0);
  assert.equal(run.length, TABLE.keys.length, `${run.length} key rows run`);
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let decrypting = 0;
  for (const k of run) {
    const trustedKeys = k.keyFile?.for === 'trust' ? [k.keyFile.text] : k.trusted ?? undefined;
    const decryptionKey = k.keyFile?.for === 'decryption' ? k.keyFile.text : k.decryptionKey ?? undefined;
    const e = await rejects(Model.load(k.bytes, { backend: 'cpu', trustedKeys, decryptionKey }), k.row.code, new RegExp(esc(k.row.says), 'i'));
    if (k.row.code === 'DECRYPT_FAILED') assert.match(e.message, /key id [0-9a-f]{16}/, `${k.row.name} names the key id`);
    const m = await Model.load(k.good, { backend: 'cpu', trustedKeys: k.trusted ?? undefined, decryptionKey: k.decryptionKey ?? undefined });
    assert.deepEqual(m.predictBatchSync(digits).probs, plainProbs, `the good file after "${k.row.name}"`);
    m.dispose();
    if (k.decryptionKey !== null || k.keyFile?.for === 'decryption') decrypting++;
  }
  // The six rows that give a key (wrong key, tampered, truncated, encrypted-then-signed by a
  // stranger, and the two damaged key files); "encrypted, no key given" ran before this too.
  assert.equal(decrypting, 6);
});

// A good encrypted model (the table's, encrypted with `format::encrypt` as `mdeploy encrypt`
// does) computes what the plain default model does, bit for bit, on 50 real test digits (the
// first 5 of each digit), with the key as .enckey text and as 32 raw bytes, in Model.load and in
// createServer (against itself serving the plain model); the caller's key array is left as it was (the package wipes only its own copy).
test('an encrypted model decrypts in memory and predicts 50 digits exactly as the plain model', async () => {
  const dir = join(refDir(), 'bad-keys');
  const rows = keyRows(dir, { decryption: true }).run;
  // The tampered row's good file: the default model encrypted for the key the row gives.
  const k = rows.find((r) => r.row.name === 'ciphertext tampered, digest re-sealed');
  const keyText = k.decryptionKey;
  assert.match(keyText, /^mdeploy-chacha20poly1305-key [0-9a-f]{64}\s*$/);
  const raw = Uint8Array.from(keyText.trim().split(' ')[1].match(/../g), (x) => parseInt(x, 16));
  const rawBefore = raw.slice();
  const fifty = new Float32Array(50 * 784);
  for (let d = 0; d < 10; d++) fifty.set(xs.subarray(d * 200 * 784, (d * 200 + 5) * 784), d * 5 * 784);
  const plainBytes = new Uint8Array(readFileSync(new URL('../../models/mnist-mlp.mdm', import.meta.url)));
  const plain = await Model.load(plainBytes, { backend: 'cpu' });
  const want = plain.predictBatchSync(fifty).probs;
  plain.dispose();
  assert.equal(want.length, 500);
  // A file that is not encrypted ignores the key, as natively.
  const unenc = await Model.load(file('unsigned.mdm'), { backend: 'cpu', decryptionKey: keyText });
  unenc.dispose();
  for (const decryptionKey of [keyText, raw, raw.buffer]) {
    const m = await Model.load(k.good, { backend: 'cpu', decryptionKey });
    assert.deepEqual(m.predictBatchSync(fifty).probs, want, 'decrypted model = plain model, bit for bit');
    assert.equal(m.info().name, 'mnist-mlp');
    m.dispose();
  }
  assert.deepEqual(raw, rawBefore, "the caller's key bytes are not changed");
  await rejects(Model.load(k.good, { decryptionKey: raw.subarray(0, 31) }), 'BAD_INPUT', /31 bytes.*32/);
  await rejects(Model.load(k.good, { decryptionKey: 42 }), 'BAD_INPUT', /decryptionKey must be/);

  // createServer: the same key option. Its .wasm is another build (simd128 only) than the one
  // Model.load may pick (relaxed SIMD), so it is compared with itself serving the plain model.
  const body = JSON.stringify({ inputs: [{ name: 'input', shape: [50, 784], datatype: 'FP32', data: Array.from(fifty) }] });
  const probsFrom = async (server) => {
    await server.ready();
    const res = await server.fetch(new Request('http://x/v2/models/m/infer', { method: 'POST', headers: { 'content-type': 'application/json' }, body }));
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return JSON.parse(text).outputs.find((o) => o.name === 'probabilities').data;
  };
  const fromPlain = await probsFrom(createServer({ models: { m: plainBytes } }));
  assert.equal(fromPlain.length, 500);
  assert.deepEqual(await probsFrom(createServer({ models: { m: k.good }, decryptionKey: keyText })), fromPlain);
  assert.deepEqual(await probsFrom(createServer({ models: { m: k.good }, decryptionKey: raw })), fromPlain);
  const wrong = rows.find((r) => r.row.name === 'encrypted, the wrong key given');
  const bad = createServer({ models: { enc: wrong.bytes }, decryptionKey: wrong.decryptionKey });
  await assert.rejects(bad.ready(), (e) => e.code === 'DECRYPT_FAILED' && /model "enc"/.test(e.message) && /key id/.test(e.message));
});
