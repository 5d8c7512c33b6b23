// The table of named bad inputs (table.json), materialized for the Node test suites: the
// component under `wasmtime serve`, the Worker in workerd and the npm package. The Rust side
// (serve/tests/bad_inputs.rs) reads the same file the same way.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

const HERE = new URL('./', import.meta.url);
const ROOT = new URL('../../', import.meta.url);
export const TABLE = JSON.parse(readFileSync(new URL('table.json', HERE), 'utf8'));

const unhex = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));

/** `{{repeat TEXT N}}` → TEXT repeated N times. */
export function expand(body) {
  return body.replace(/\{\{repeat (.*?) (\d+)\}\}/g, (_, text, n) => text.repeat(Number(n)));
}

/** The bytes a request row sends. */
export function requestBody(row) {
  if (row.body !== undefined) return new TextEncoder().encode(expand(row.body));
  if (row.bodyBytes) return new Uint8Array(row.bodyBytes.len).fill(row.bodyBytes.fill);
  if (row.bodyHex) return unhex(row.bodyHex);
  return new Uint8Array(0);
}

/** fetch() init for a request row (headers include its content type and extra headers). */
export function requestInit(row) {
  const headers = {};
  if (row.type) headers['content-type'] = row.type;
  for (const [k, v] of row.headers ?? []) headers[k] = v;
  const body = requestBody(row);
  return { method: row.method, headers, body: row.method === 'GET' || row.method === 'HEAD' ? undefined : body };
}

/**
 * Checks an HTTP host's answer to a request row (status, the JSON error's code, a message that
 * mentions the row's `says`); `text` is the answer's body.
 */
export function assertErrorAnswer(assert, row, status, text) {
  let body;
  try { body = JSON.parse(text); } catch { assert.fail(`${row.name}: not JSON: ${String(text).slice(0, 200)}`); }
  assert.equal(status, row.status, `${row.name}: ${text}`);
  assert.equal(body.code, row.code, row.name);
  assert.ok(body.error.toLowerCase().includes(row.says.toLowerCase()), `${row.name}: ${body.error} should mention ${row.says}`);
}

/** The bytes of a bad-model row: a default model's file with the row's operations applied. */
export function modelBytes(row, modelsDir = new URL('models/', ROOT)) {
  let b = new Uint8Array(readFileSync(new URL(`${row.from}.mdm`, modelsDir)));
  const at = (i) => (i < 0 ? b.length + i : i);
  for (const op of row.ops) {
    if (op.truncate !== undefined) b = b.slice(0, at(op.truncate));
    else if (op.text !== undefined) b = new TextEncoder().encode(op.text);
    else if (op.hex !== undefined) b = unhex(op.hex);
    else if (op.flip !== undefined) b[at(op.flip)] ^= 1;
    else if (op.append !== undefined) { const n = new Uint8Array(b.length + op.append); n.set(b); b = n; }
    else if (op.set !== undefined) b.set(unhex(op.set.hex), op.set.at);
    else if (op.reseal) {
      // The length and the digest over bytes[0..32] ++ bytes[64..] (MDM_FORMAT.md) made valid
      // again, as mdeploy_testkit::reseal does, so the reader gets past them.
      new DataView(b.buffer, b.byteOffset).setBigUint64(16, BigInt(b.length), true);
      const h = createHash('sha256').update(b.subarray(0, 32)).update(b.subarray(64)).digest();
      b.set(h, 32);
    } else throw new Error(`table.json row ${row.name}: unknown op ${JSON.stringify(op)}`);
  }
  return b;
}

/**
 * The `keys` rows' files, written by `cargo run --release -p mdeploy-core --example
 * bad_key_fixtures -- DIR` (made with the library calls `mdeploy sign` / `mdeploy encrypt` run;
 * tests/bad-inputs/table.rs). Returns the rows a host can run, each with `bytes`, `good` (the
 * good file under the same configuration), `trusted` (`.pub` texts, or null: no policy),
 * `decryptionKey` and `keyFile`, and the rows it skips with the reason. A host that takes no
 * decryption key (`decryption: false`) skips the rows that give one.
 */
export function keyRows(dir, { decryption }) {
  const manifest = join(dir, 'keys.json');
  let m;
  try {
    m = JSON.parse(readFileSync(manifest, 'utf8'));
  } catch (e) {
    throw new Error(`${manifest}: ${e.message}: run \`cargo run --release -p mdeploy-core --example bad_key_fixtures -- ${dir}\``);
  }
  const run = [];
  const skipped = [];
  for (const row of TABLE.keys) {
    const f = m.rows[row.name];
    if (!f) throw new Error(`${manifest} has no row "${row.name}": the fixtures are older than table.json; run the example again`);
    if (!decryption && (f.decryptionKey !== null || f.keyFile?.for === 'decryption')) {
      skipped.push({ row, why: 'takes a decryption key, which this host has no way to be given' });
      continue;
    }
    const read = (name) => new Uint8Array(readFileSync(join(dir, name)));
    run.push({ row, ...f, bytes: read(f.file), good: read(f.good) });
  }
  return { run, skipped };
}
