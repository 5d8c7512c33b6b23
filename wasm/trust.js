// Trust policies for the npm package (Model.load's and createServer's `trustedKeys`), shared by
// index.js and server.js. Design: DESIGN.md ("Signed models"); the file format:
// core/model/src/format/MDM_FORMAT.md ("Signatures").
//
// The Ed25519 check runs in the JS engine's WebCrypto (`crypto.subtle.verify({ name: 'Ed25519' })`),
// not in the .wasm: ed25519-dalek would add kilobytes to a runtime that sits just under its size
// bound. The .wasm only does what the native reader does before its policy: it checks the file's
// structure and digest and builds the signed message (`signedMessage`, core
// `format::signed_message`). The caller then loads the very bytes that were verified.

const PUBLIC_LABEL = 'mdeploy-ed25519-public';
const SECRET_LABEL = 'mdeploy-ed25519-secret';

// The encodings of small-order Ed25519 points (the 8 torsion points, their sign-bit twins and the
// non-canonical y + p forms), which the native reader refuses as keys ("weak": any signature
// verifies under them with a cofactored check, and a forger needs only a few tries with a
// cofactorless one). WebCrypto would import them. The list is the one the native reader refuses:
// examples/trust_fixtures.rs derives it from curve25519-dalek and test/trust.test.mjs checks that
// each is refused here.
const WEAK_KEYS = new Set([
  '0100000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000080',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
]);

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

function subtle(err) {
  const s = globalThis.crypto?.subtle;
  if (s === undefined) {
    throw err('UNSUPPORTED', 'trustedKeys needs WebCrypto (crypto.subtle) to verify signatures, and this environment has none: ' +
      'browsers expose it only in secure contexts (https, or http://localhost)');
  }
  return s;
}

// The 32 key bytes of one entry of `trustedKeys`: raw bytes, or the text of a `.pub` file
// (`mdeploy-ed25519-public <64 hex digits>`, what `mdeploy keygen` writes; PublicKey::to_text).
function keyBytes(k, i, err) {
  if (typeof k === 'string') {
    const text = k.trim();
    const sp = text.indexOf(' ');
    const label = sp < 0 ? text : text.slice(0, sp);
    const digits = sp < 0 ? '' : text.slice(sp + 1).trim();
    if (label === SECRET_LABEL) {
      throw err('BAD_INPUT', `trustedKeys[${i}] is a secret key (${SECRET_LABEL}): pass the matching .pub file instead (never hand out the .key)`);
    }
    if (label !== PUBLIC_LABEL) {
      throw err('BAD_INPUT', `trustedKeys[${i}] is not an mdeploy public key: it should be the text of a .pub file, \`${PUBLIC_LABEL} \` followed by 64 hex digits (make keys with \`mdeploy keygen\`), or the key's 32 bytes`);
    }
    if (!/^[0-9a-fA-F]{64}$/.test(digits)) {
      throw err('BAD_INPUT', `trustedKeys[${i}]: the key after \`${PUBLIC_LABEL} \` must be 64 hex digits, got ${digits.length} characters: the key file is damaged`);
    }
    const out = new Uint8Array(32);
    for (let j = 0; j < 32; j++) out[j] = parseInt(digits.slice(2 * j, 2 * j + 2), 16);
    return out;
  }
  if (k instanceof Uint8Array || k instanceof ArrayBuffer) {
    const b = new Uint8Array(k);
    if (b.length !== 32) throw err('BAD_INPUT', `trustedKeys[${i}] has ${b.length} bytes; an Ed25519 public key has 32 (or pass the text of its .pub file)`);
    return b.slice();
  }
  throw err('BAD_INPUT', `trustedKeys[${i}] must be a .pub file's text or the key's 32 bytes (Uint8Array); got ${k === null ? 'null' : typeof k}`);
}

/**
 * Parses `trustedKeys` (an array of `.pub` texts or 32-byte Uint8Arrays) into a policy:
 * `[{ id, key }]`, `id` the key id a signature names (first 8 bytes of SHA-256 of the key, hex),
 * `key` a WebCrypto verify key. `err(code, message)` makes the error to throw. An empty array is a
 * policy that refuses every model, as natively.
 */
export async function parsePolicy(trustedKeys, err) {
  if (!Array.isArray(trustedKeys)) {
    throw err('BAD_INPUT', `trustedKeys must be an array of public keys (.pub file texts or 32-byte Uint8Arrays); got ${trustedKeys === null ? 'null' : typeof trustedKeys}`);
  }
  const s = subtle(err);
  const policy = [];
  for (const [i, k] of trustedKeys.entries()) {
    const raw = keyBytes(k, i, err);
    if (WEAK_KEYS.has(hex(raw))) {
      throw err('BAD_INPUT', `trustedKeys[${i}] is a weak (small-order) Ed25519 point that would accept forged signatures: use a key made by \`mdeploy keygen\``);
    }
    const id = hex(new Uint8Array(await s.digest('SHA-256', raw)).subarray(0, 8));
    let key;
    try {
      key = await s.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
    } catch (e) {
      if (e && e.name === 'NotSupportedError') {
        throw err('UNSUPPORTED', `this JavaScript engine's WebCrypto cannot verify Ed25519 signatures (${e.message}), which trustedKeys needs: use Node ≥ 20 or a browser whose crypto.subtle supports Ed25519`);
      }
      throw err('BAD_INPUT', `trustedKeys[${i}] (key id ${id}) is not an Ed25519 public key (${e && e.message ? e.message : e}): use a .pub file written by \`mdeploy keygen\``);
    }
    if (!policy.some((p) => p.id === id)) policy.push({ id, key });
  }
  return policy;
}

const ids = (policy) => (policy.length === 0 ? 'none' : policy.map((p) => p.id).join(', '));

/**
 * Enforces `policy` on model `bytes`: `signed` is what the .wasm's `signedMessage(bytes)` returned
 * (`null` for an unsigned file; it throws BAD_MODEL for a damaged one before this is reached).
 * Resolves to the key id that verified; throws `UNTRUSTED` (through `err`) otherwise, with the
 * native reader's three messages (core/model/src/format/trust.rs).
 */
export async function enforce(policy, signed, err, what = 'this model') {
  if (signed === null || signed === undefined) {
    throw err('UNTRUSTED', `${what} is not signed, and this reader only loads models signed by a trusted key (${policy.length} trusted: ${ids(policy)}): ` +
      'sign it with `mdeploy sign MODEL --key KEY.key`, or get the signed file from its publisher');
  }
  const p = policy.find((k) => k.id === signed.keyId);
  if (p === undefined) {
    throw err('UNTRUSTED', `${what} is signed by key id ${signed.keyId}, which is not a trusted key (${policy.length} trusted: ${ids(policy)}): ` +
      "add that publisher's .pub file to trustedKeys if you trust it");
  }
  let ok;
  try {
    ok = await subtle(err).verify({ name: 'Ed25519' }, p.key, signed.signature, signed.message);
  } catch {
    ok = false; // a malformed signature is a signature that does not verify
  }
  if (!ok) {
    throw err('UNTRUSTED', `the signature of ${what} by trusted key id ${signed.keyId} does not verify: the file was changed after it was signed, ` +
      'or the signature is forged; get the model again from its publisher');
  }
  return signed.keyId;
}

/**
 * `decryptionKey` (Model.load's and createServer's option) as bytes for the .wasm's
 * `decryptModel`: `{ bytes, text }`, `bytes` our own copy (the caller's array is never changed;
 * the caller wipes this copy with `wipe` after use), `text` true for an `.enckey` file's text
 * (`mdeploy-chacha20poly1305-key <64 hex digits>`, parsed in wasm by the same code as the CLI's).
 * A JS string cannot be wiped: pass the 32 raw bytes to keep the key wipeable. The cipher runs
 * in wasm: WebCrypto has no ChaCha20-Poly1305 (DESIGN.md, "Encrypted models").
 */
export function decryptionKeyInput(k, err) {
  if (typeof k === 'string') return { bytes: new TextEncoder().encode(k), text: true };
  if (k instanceof Uint8Array || k instanceof ArrayBuffer) return { bytes: new Uint8Array(k).slice(), text: false };
  throw err('BAD_INPUT', `decryptionKey must be the text of an .enckey file (\`mdeploy-chacha20poly1305-key \` and 64 hex digits, from \`mdeploy keygen --encryption\`) or the key's 32 bytes (Uint8Array); got ${k === null ? 'null' : typeof k}`);
}

/** Overwrites key or plaintext bytes we own (a JS engine may still hold earlier copies). */
export function wipe(bytes) {
  if (bytes) bytes.fill(0);
}
