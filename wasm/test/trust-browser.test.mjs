// The trust policy in headless Chromium (playwright-core, /usr/bin/chromium): WebCrypto's Ed25519
// is the browser's own there (BoringSSL), not Node's (OpenSSL). Same fixtures as
// test/trust.test.mjs (examples/trust_fixtures.rs: files signed by the Rust API), handed to the
// page as bytes; the page is on 127.0.0.1, a secure context, so crypto.subtle exists.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { launchChromium, CHROMIUM, CHROMIUM_QUIET as QUIET, refDir, WASM_DIR } from './support.mjs';
import { serve } from './browser/serve.mjs';
import { TABLE, keyRows, modelBytes } from '../../tests/bad-inputs/table.mjs';

const DIR = join(refDir(), 'trust');
let server;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: run scripts/bootstrap.sh (apt-get install chromium chromium-driver) or set MDEPLOY_CHROMIUM`);
  assert.ok(existsSync(join(DIR, 'trust.json')), `${DIR}/trust.json missing: run wasm/scripts/test.sh (examples/trust_fixtures.rs)`);
  server = await serve(WASM_DIR, new Float32Array(784));
});
after(async () => server?.close());

// Runs in the page: each case's code (or 'ok' and the signer) after Model.load.
async function loadAll({ files, pub, weak }) {
  const { Model } = await import('/index.js');
  const bytes = (name) => Uint8Array.from(files[name]);
  const attempt = async (name, trustedKeys) => {
    try {
      const m = await Model.load(bytes(name), { backend: 'cpu', trustedKeys });
      const r = { code: 'ok', signedBy: m.info().signedBy, label: m.predictSync(new Float32Array(784)).label };
      m.dispose();
      return r;
    } catch (e) {
      return { code: e.code, name: e.name, message: e.message };
    }
  };
  return {
    good: await attempt('signed-a.mdm', [pub]),
    unsigned: await attempt('unsigned.mdm', [pub]),
    otherKey: await attempt('signed-b.mdm', [pub]),
    badSignature: await attempt('bad-signature.mdm', [pub]),
    tampered: await attempt('tampered.mdm', [pub]),
    weak: await attempt('signed-a.mdm', [weak]),
    goodAfter: await attempt('signed-a.mdm', [pub]),
  };
}

test('Chromium: trustedKeys loads the signed model and refuses the others with UNTRUSTED', async () => {
  const info = JSON.parse(readFileSync(join(DIR, 'trust.json'), 'utf8'));
  const files = {};
  for (const f of ['signed-a.mdm', 'signed-b.mdm', 'unsigned.mdm', 'bad-signature.mdm', 'tampered.mdm']) files[f] = Array.from(readFileSync(join(DIR, f)));
  const browser = await launchChromium(chromium, { executablePath: CHROMIUM, headless: true, args: QUIET });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    const r = await page.evaluate(loadAll, { files, pub: readFileSync(join(DIR, 'a.pub'), 'utf8'), weak: `mdeploy-ed25519-public ${info.weakKeys[0]}` });
    const A = info.keys.a.keyId;
    const B = info.keys.b.keyId;
    for (const k of ['good', 'goodAfter']) {
      assert.equal(r[k].code, 'ok', JSON.stringify(r[k]));
      assert.equal(r[k].signedBy, A);
    }
    assert.equal(r.unsigned.code, 'UNTRUSTED');
    assert.equal(r.unsigned.name, 'MdeployError');
    assert.match(r.unsigned.message, new RegExp(`not signed.*1 trusted: ${A}`));
    assert.equal(r.otherKey.code, 'UNTRUSTED');
    assert.match(r.otherKey.message, new RegExp(`signed by key id ${B}, which is not a trusted key`));
    for (const k of ['badSignature', 'tampered']) {
      assert.equal(r[k].code, 'UNTRUSTED', JSON.stringify(r[k]));
      assert.match(r[k].message, new RegExp(`trusted key id ${A} does not verify`));
    }
    assert.equal(r.weak.code, 'BAD_INPUT');
    assert.match(r.weak.message, /weak/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

// Runs in the page: each case's bad file through Model.load under its keys (its code and
// message), then its good file under the good keys (the label of a blank image, or the error).
async function loadTable(cases) {
  const { Model } = await import('/index.js');
  const load = async (b64, trustedKeys) => {
    const m = await Model.load(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), { backend: 'cpu', trustedKeys });
    const label = m.predictSync(new Float32Array(784)).label;
    m.dispose();
    return label;
  };
  const out = [];
  for (const c of cases) {
    const r = {};
    try {
      await load(c.bad, c.badKeys);
      r.code = 'ok';
    } catch (e) {
      Object.assign(r, { code: e.code, errorName: e.name, message: e.message });
    }
    try {
      r.goodLabel = await load(c.good, c.goodKeys);
    } catch (e) {
      r.goodError = `${e.code}: ${e.message}`;
    }
    out.push(r);
  }
  return out;
}

// The bad-input table (tests/bad-inputs/table.json) in Chromium: every bad model file and every
// key row the package can be given (core/examples/bad_key_fixtures.rs wrote them into
// <refDir()>/bad-keys) through Model.load in the page, with the same code and message as in
// Node (test/errors.test.mjs, test/trust.test.mjs), each followed by a good load.
test('Chromium: the bad-input table\'s model files and key rows are refused with their codes, then a good file loads', async () => {
  // Bytes cross into the page as base64 (a JSON array of numbers is ten times the size).
  const b64 = (bytes) => Buffer.from(bytes).toString('base64');
  const plain = b64(readFileSync(join(WASM_DIR, 'models/mnist-mlp.mdm')));
  const rows = [];
  const cases = [];
  for (const row of TABLE.models) {
    rows.push(row);
    cases.push({ bad: b64(modelBytes(row, new URL('../models/', import.meta.url))), good: plain });
  }
  const { run } = keyRows(join(refDir(), 'bad-keys'), { decryption: false });
  for (const k of run) {
    rows.push(k.row);
    const goodKeys = k.trusted ?? undefined;
    cases.push({ bad: b64(k.bytes), badKeys: k.keyFile ? [k.keyFile.text] : goodKeys, good: b64(k.good), goodKeys });
  }
  assert.ok(run.length >= 8 && rows.length >= TABLE.models.length + 8);
  const browser = await launchChromium(chromium, { executablePath: CHROMIUM, headless: true, args: QUIET });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    const results = await page.evaluate(loadTable, cases);
    assert.equal(results.length, rows.length);
    for (const [i, r] of results.entries()) {
      const row = rows[i];
      assert.equal(r.code, row.code, `${row.name}: ${r.message}`);
      assert.equal(r.errorName, 'MdeployError', row.name);
      assert.ok(r.message.toLowerCase().includes(row.says.toLowerCase()), `${row.name}: ${r.message} should mention ${row.says}`);
      assert.equal(r.goodError, undefined, `the good file after ${row.name}`);
      assert.ok(Number.isInteger(r.goodLabel), `the good file after ${row.name}: ${r.goodLabel}`);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
