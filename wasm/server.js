// mdeploy-wasm/server: the model server's REST routes (KServe v2, TF Serving REST, /predict) as one
// standard Fetch-API handler, `fetch(Request) → Promise<Response>`, for Cloudflare Workers, Node ≥ 20,
// Deno and Bun. Types: server.d.ts. Design: DESIGN.md ("mdeploy-wasm/server").
//
// Every route is answered by the Rust crate mdeploy-serve compiled to wasm (dist/server/), the same
// code the wasi:http component runs: this file only moves a Request's method, path, content type,
// Inference-Header-Content-Length and body into wasm and the answer back out, and enforces the
// body limit *before* the body is in memory.
import { initSync, WasmServer, signedMessage, decryptModel } from './dist/server/mdeploy_wasm_server.js';
import { decryptionKeyInput, enforce, parsePolicy, wipe } from './trust.js';

// Functions, not constants: only evaluated when the defaults are used, so hosts whose modules have
// no usable import.meta.url (bundled Workers) can still load this file and pass everything in.
const defaultWasm = () => new URL('./dist/server/mdeploy_wasm_server_bg.wasm', import.meta.url);
// BEGIN models/defaults.json (scripts/gen-defaults.mjs writes these lines)
const defaultModels = () => ({
  'mnist-mlp': new URL('./models/mnist-mlp.mdm', import.meta.url),
  'mnist-cnn': new URL('./models/mnist-cnn.mdm', import.meta.url),
  'mnist-resnet': new URL('./models/mnist-resnet.mdm', import.meta.url),
  'mnist-mlp-sparse90': new URL('./models/mnist-mlp-sparse90.mdm', import.meta.url),
  'mnist-mlp-student': new URL('./models/mnist-mlp-student.mdm', import.meta.url),
  'mnist-mlp-int8': new URL('./models/mnist-mlp-int8.mdm', import.meta.url),
  'mnist-cnn-int8': new URL('./models/mnist-cnn-int8.mdm', import.meta.url),
  'mnist-mlp-int4': new URL('./models/mnist-mlp-int4.mdm', import.meta.url),
  'mnist-mlp-int7': new URL('./models/mnist-mlp-int7.mdm', import.meta.url),
  'mnist-mlp-binary': new URL('./models/mnist-mlp-binary.mdm', import.meta.url),
});
// END models/defaults.json
/** The body limit of the shared implementation (mdeploy_serve::MAX_BODY_BYTES): 10 MiB. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;
const DEFAULT_VERSION = '1';

// A variable, not a literal: bundlers (esbuild in wrangler, Vite) must not try to resolve node:fs.
const NODE_FS = 'node:fs/promises';

/** Bytes of a URL: file: URLs from disk (Node, Bun, Deno with --allow-read), others with fetch. */
async function readUrl(url, what) {
  try {
    if (url.protocol === 'file:') {
      const fs = await import(/* webpackIgnore: true */ /* @vite-ignore */ NODE_FS);
      return new Uint8Array(await fs.readFile(url));
    }
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    throw new Error(`mdeploy-wasm/server: cannot read ${what} from ${url.href} (${e && e.message ? e.message : e}); ` +
      'pass it as bytes (or, for the wasm, a WebAssembly.Module) in createServer\'s options', { cause: e });
  }
}

function toUrl(v) {
  if (v instanceof URL) return v;
  if (typeof v === 'string') return new URL(v, import.meta.url);
  return null;
}

function asBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

function describe(v) {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return v.constructor ? v.constructor.name : 'object';
}

// The wasm instance is per JS realm (the glue keeps it in a module variable): the first server
// created decides where it comes from; later ones share it.
let wasmExports = null;
async function initWasm(source) {
  if (wasmExports !== null) return wasmExports;
  if (source === undefined) source = defaultWasm();
  let module = source;
  if (!(source instanceof WebAssembly.Module)) {
    const bytes = asBytes(source);
    const url = bytes === null ? toUrl(source) : null;
    if (bytes === null && url === null) {
      throw new TypeError(`mdeploy-wasm/server: options.wasm must be a WebAssembly.Module, bytes or a URL; got ${describe(source)}`);
    }
    // Compiling bytes at run time is refused by Cloudflare Workers: there, import the .wasm as a
    // module (a WebAssembly.Module) and pass that (worker/cloudflare/src/index.js).
    module = bytes ?? await readUrl(url, 'the server wasm');
  }
  wasmExports = initSync({ module });
  return wasmExports;
}

function modelList(models) {
  if (models === undefined) models = defaultModels();
  if (models === null || typeof models !== 'object' || Array.isArray(models)) {
    throw new TypeError(`mdeploy-wasm/server: options.models must be an object { name: bytes | URL | { bytes, version, source } }; got ${describe(models)}`);
  }
  return Object.entries(models).map(([name, v]) => {
    let version = DEFAULT_VERSION;
    let src = v;
    // Where the bytes came from (a file, a Worker binding), named in the error if they do not load.
    let source;
    if (v !== null && typeof v === 'object' && !(v instanceof URL) && asBytes(v) === null && 'bytes' in v) {
      src = v.bytes;
      if (v.version !== undefined) version = String(v.version);
      if (v.source !== undefined) source = String(v.source);
    }
    if (asBytes(src) === null && toUrl(src) === null) {
      throw new TypeError(`mdeploy-wasm/server: model "${name}" must be bytes (Uint8Array/ArrayBuffer), a URL or { bytes, version, source }; got ${describe(src)}`);
    }
    return { name, version, src, source };
  });
}

/**
 * Reads at most `limit` bytes of a request body. Returns null when the body is larger: the
 * Content-Length header is checked first, and a streamed body is cancelled as soon as it passes
 * the limit, so an oversized upload never sits in memory (Workers have 128 MB in all).
 */
async function readLimited(request, limit) {
  const header = request.headers.get('content-length');
  const declared = header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : null;
  if (declared !== null && declared > limit) {
    if (request.body) await request.body.cancel().catch(() => {});
    return null;
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  // With a Content-Length the chunks go straight into one buffer of that size (one copy of the
  // body in JS memory, not two); without one they are collected and joined at the end.
  let buf = declared !== null ? new Uint8Array(declared) : null;
  let chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      return null;
    }
    if (buf !== null && total <= buf.length) {
      buf.set(value, total - value.byteLength);
    } else {
      if (buf !== null) { // more than declared (a runtime would normally refuse it): collect instead
        chunks = [buf.subarray(0, total - value.byteLength)];
        buf = null;
      }
      chunks.push(value);
    }
  }
  if (buf !== null) return total === buf.length ? buf : buf.subarray(0, total);
  if (chunks.length === 1) return chunks[0];
  const body = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    body.set(c, off);
    off += c.byteLength;
  }
  return body;
}

// Statuses whose responses must not carry a body (the Response constructor throws otherwise).
const NULL_BODY = new Set([101, 204, 205, 304]);

function toResponse(r) {
  const headers = new Headers(r.headers);
  headers.set('content-type', r.contentType);
  return new Response(NULL_BODY.has(r.status) ? null : r.body, { status: r.status, headers });
}

// The few answers that happen before the Rust side is reached, in its error shape
// ({ error, code }, CORS header as on every mdeploy-serve answer).
function jsonError(status, code, message) {
  return new Response(JSON.stringify({ error: message, code }), {
    status,
    headers: { 'content-type': 'application/json', 'access-control-allow-origin': '*' },
  });
}
const internalError = (message) => jsonError(500, 'INTERNAL', `internal error: ${message}`);

// Load errors that carry a code of the Rust API (a model refused by the trust policy: UNTRUSTED;
// a damaged one under a policy: BAD_MODEL; a malformed key: BAD_INPUT), as ready() rejects with.
const codedError = (code, message) => Object.assign(new Error(`mdeploy-wasm/server: ${message}`), { name: 'MdeployError', code });

/**
 * A model server. `fetch(request)` answers every route; it never throws for a bad request (those
 * are JSON errors with 4xx statuses). See server.d.ts for the options.
 */
export function createServer(options = {}) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`mdeploy-wasm/server: createServer takes an options object; got ${describe(options)}`);
  }
  const known = new Set(['wasm', 'models', 'maxBodyBytes', 'trustedKeys', 'decryptionKey']);
  for (const k of Object.keys(options)) {
    if (!known.has(k)) throw new TypeError(`mdeploy-wasm/server: unknown option "${k}" (known: ${[...known].join(', ')})`);
  }
  const limit = options.maxBodyBytes ?? MAX_BODY_BYTES;
  // Above 10 MiB the shared implementation refuses the body anyway; allowing more here would only
  // let bigger uploads into memory first.
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_BODY_BYTES) {
    throw new RangeError(`mdeploy-wasm/server: maxBodyBytes must be a whole number of bytes from 0 to ${MAX_BODY_BYTES}; got ${limit}`);
  }
  const models = modelList(options.models);
  if (options.trustedKeys !== undefined && !Array.isArray(options.trustedKeys)) {
    throw new TypeError(`mdeploy-wasm/server: trustedKeys must be an array of public keys (.pub file texts or 32-byte Uint8Arrays); got ${describe(options.trustedKeys)}`);
  }

  let server = null;
  let loadedModels = null;
  const newServer = () => {
    const s = new WasmServer();
    for (const m of loadedModels) s.addModel(m.name, m.version, m.bytes, m.source);
    return s;
  };
  const load = async () => {
    // The keys first (copied by parsePolicy), so a bad key fails before any model is read.
    const policy = options.trustedKeys === undefined ? null : await parsePolicy(options.trustedKeys, codedError);
    // One key for every encrypted model (a model that is not encrypted ignores it, as natively).
    const key = options.decryptionKey === undefined ? null : decryptionKeyInput(options.decryptionKey, codedError);
    try {
      await initWasm(options.wasm);
      await loadAll(policy, key);
    } finally {
      wipe(key?.bytes);
    }
    server = newServer();
    return server;
  };
  const loadAll = async (policy, key) => {
    loadedModels = [];
    for (const m of models) {
      let bytes = asBytes(m.src) ?? await readUrl(toUrl(m.src), `model "${m.name}"`);
      if (policy !== null) {
        // Every model is checked before the server is built: one that is not trusted fails the
        // whole load (a deployment's model set is fixed, so this is its configuration to fix),
        // and what was verified (our own copy) is exactly what is served.
        bytes = bytes.slice();
        const what = `model "${m.name}"${m.source === undefined ? '' : ` (${m.source})`}`;
        let signed;
        try {
          signed = signedMessage(bytes);
        } catch (e) {
          throw codedError(e && e.code ? e.code : 'BAD_MODEL', `${what}: ${e && e.message ? e.message : e}`);
        }
        await enforce(policy, signed, codedError, what);
      }
      if (key !== null) {
        // Encrypt-then-sign: decrypted (in wasm, in memory) only after the policy passed. The
        // plaintext stays in loadedModels for as long as the server lives (newServer re-adds it
        // after a trap), like any model's bytes.
        let plain;
        try {
          plain = decryptModel(bytes, key.bytes, key.text);
        } catch (e) {
          const what = `model "${m.name}"${m.source === undefined ? '' : ` (${m.source})`}`;
          throw codedError(e && e.code ? e.code : 'BAD_MODEL', `${what}: ${e && e.message ? e.message : e}`);
        }
        if (plain !== null) bytes = plain;
      }
      loadedModels.push({ name: m.name, version: m.version, bytes, source: m.source });
    }
  };
  // Started at once so load errors surface from ready(); fetch() awaits the same promise.
  let loading = load();
  loading.catch(() => {}); // reported through ready() and fetch(), not as an unhandled rejection

  async function fetchHandler(request) {
    let s = server;
    if (s === null) {
      try {
        s = await loading;
      } catch (e) {
        const why = `the server could not load: ${e && e.message ? e.message : e}`;
        // A model the trust policy refused (or a bad key) is named by its code, not as a crash.
        return e && typeof e.code === 'string' ? jsonError(500, e.code, why) : internalError(why);
      }
    }
    let body;
    try {
      body = await readLimited(request, limit);
    } catch (e) {
      // The client went away or sent a broken (e.g. chunked) body: nothing to compute on.
      return jsonError(400, 'BAD_BODY', `the request body could not be read: ${e && e.message ? e.message : e}`);
    }
    if (body === null) return toResponse(WasmServer.payloadTooLarge());
    const url = new URL(request.url);
    let r;
    try {
      r = s.handle(request.method, url.pathname + url.search, request.headers.get('content-type') ?? undefined, body,
        // Triton's binary tensor extension: the length of the JSON part of the body.
        request.headers.get('inference-header-content-length') ?? undefined);
    } catch (e) {
      // Only a bug can get here (a Rust panic traps the call): the old WasmServer may be left
      // half-borrowed, so later requests go to a fresh one built from the same model bytes.
      try { server = newServer(); } catch { /* the next request will fail the same way */ }
      return internalError(e && e.message ? e.message : String(e));
    }
    return toResponse(r);
  }

  return {
    fetch: fetchHandler,
    /** Resolves once the wasm and the models are loaded; rejects with the reason they could not be. */
    ready: async () => { await loading; },
    /** Bytes of wasm linear memory (it grows and never shrinks): for memory budgets such as Workers' 128 MB. */
    wasmMemoryBytes: () => (wasmExports === null ? 0 : wasmExports.memory.buffer.byteLength),
    maxBodyBytes: limit,
  };
}
