// Which models the Worker serves: the defaults it imports (src/index.js) and the extra ones its
// bindings carry. Its own module, with no imports, so Node tests it directly
// (tests/serverless/workerd.test.mjs).

/**
 * Extra models: every binding of the Worker named `MDEPLOY_MODEL_<name>` whose value is bytes (a
 * workerd `data` binding gives an ArrayBuffer) is served as model `<name>` beside the defaults,
 * untrusted (digest checked, planned on its first request). A binding that cannot be served (not
 * bytes, a bad or taken name) is logged naming the binding and the problem, and left out: the
 * defaults always serve. Bytes that do not load answer 500 on that model's routes, naming the
 * binding. Returns the `models` option of createServer: `defaults` plus these.
 */
export const MODEL_BINDING_PREFIX = 'MDEPLOY_MODEL_';
export function modelsFromBindings(defaults, env, log = console.error) {
  const models = { ...defaults };
  for (const [binding, value] of Object.entries(env ?? {})) {
    if (!binding.startsWith(MODEL_BINDING_PREFIX)) continue;
    const name = binding.slice(MODEL_BINDING_PREFIX.length);
    const problem =
      !/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/.test(name) ? `'${name}' is not a model name (1 to 100 of A-Z a-z 0-9 - _ ., not starting with '.')`
        : Object.hasOwn(models, name) ? `a model called '${name}' is already served (a default model); rename the binding`
          : !(value instanceof ArrayBuffer || ArrayBuffer.isView(value)) ? `its value is not bytes (${value === null ? 'null' : typeof value}); bind the .mdm file as data`
            : null;
    if (problem !== null) {
      log(`mdeploy worker: binding ${binding}: not served: ${problem}`);
      continue;
    }
    models[name] = { bytes: value, source: `binding ${binding}` };
  }
  return models;
}

/**
 * The Worker's trust policy: the text binding `MDEPLOY_TRUSTED_KEYS`, one or more `.pub` files
 * (`mdeploy keygen` writes them: `mdeploy-ed25519-public <64 hex digits>`), one key per line.
 * Returns the keys (`trustedKeys` of createServer), or `undefined` without the binding (no
 * policy). A binding that is not text is a policy that refuses everything (`[]`), and one that
 * holds no key line is handed on as one damaged key (every model refused with BAD_INPUT): a
 * misconfigured policy must not turn into none.
 */
export const TRUSTED_KEYS_BINDING = 'MDEPLOY_TRUSTED_KEYS';
export function trustedKeysFromBindings(env, log = console.error) {
  if (!env || !Object.hasOwn(env, TRUSTED_KEYS_BINDING)) return undefined;
  const v = env[TRUSTED_KEYS_BINDING];
  if (typeof v !== 'string') {
    log(`mdeploy worker: binding ${TRUSTED_KEYS_BINDING} is not text (${v === null ? 'null' : typeof v}): every model is refused; bind the .pub files as text`);
    return [];
  }
  const keys = v.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (keys.length === 0) {
    log(`mdeploy worker: binding ${TRUSTED_KEYS_BINDING} holds no key: every model is refused`);
    // Handed on as one (damaged) key, so the answer is the package's BAD_INPUT naming the form a
    // .pub file has, as every other host answers an empty key file (tests/bad-inputs/table.json),
    // rather than UNTRUSTED "0 trusted", which hides that the binding is the problem.
    return [v.trim()];
  }
  return keys;
}

/**
 * The key of encrypted models: the secret binding `MDEPLOY_DECRYPTION_KEY` (`wrangler secret put
 * MDEPLOY_DECRYPTION_KEY < model.enckey`; in workerd a text binding), the `.enckey` file's text
 * (`mdeploy-chacha20poly1305-key <64 hex digits>`, from `mdeploy keygen --encryption`). Returns
 * it as createServer's `decryptionKey` (every encrypted model is decrypted in memory with it,
 * after the trust policy), or `undefined` without the binding. Whatever the binding holds is
 * handed on, so a damaged or wrong-kind key answers the package's BAD_INPUT on every route rather
 * than turning into no key.
 */
export const DECRYPTION_KEY_BINDING = 'MDEPLOY_DECRYPTION_KEY';
export function decryptionKeyFromBindings(env) {
  if (!env || !Object.hasOwn(env, DECRYPTION_KEY_BINDING)) return undefined;
  const v = env[DECRYPTION_KEY_BINDING];
  return ArrayBuffer.isView(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : v;
}
