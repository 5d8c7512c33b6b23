// mdeploy-wasm: the public JS API. Types: index.d.ts. Usage: README.md. Design: DESIGN.md.
//
// This ESM wrapper sits on the wasm-bindgen output (dist/mdeploy_wasm_cpu.js, the CPU-only
// module, and dist/mdeploy_wasm.js, the WebGPU-capable one, loaded only for a model that will use
// an adapter; both built with --target web). It adds what is awkward to express in Rust: async loading from any source,
// picking the SIMD variant with WebAssembly.validate, initialising from bytes in Node (where
// fetch() cannot read file: URLs), turning inputs into floats, one error class, and trust
// policies (trust.js: signatures verified with WebCrypto's Ed25519).

// trust.js (trust policies, key handling) is imported only by a load that gives `trustedKeys` or
// `decryptionKey`: one request and one module fewer on every other start (DESIGN.md, "Cold start").
const trustModule = () => import('./trust.js');

/** Stable error codes (also listed in index.d.ts). */
export const ErrorCode = Object.freeze({
  BAD_MODEL: 'BAD_MODEL',
  BAD_INPUT: 'BAD_INPUT',
  UNSUPPORTED: 'UNSUPPORTED',
  NO_WEBGPU: 'NO_WEBGPU',
  LOAD_FAILED: 'LOAD_FAILED',
  DISPOSED: 'DISPOSED',
  DECRYPT_FAILED: 'DECRYPT_FAILED',
  UNTRUSTED: 'UNTRUSTED',
});

/** Every error this package throws: an `Error` with a stable `code` and a message saying how to fix it. */
export class MdeployError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'MdeployError';
    this.code = code;
  }
}

const mdeployError = (code, message) => new MdeployError(code, message);

const fail = (code, message, cause) => {
  throw new MdeployError(code, message, cause === undefined ? undefined : { cause });
};

// Errors from Rust arrive as plain Errors with a `code` (src/error.rs); re-throw them as
// MdeployError so `instanceof` works for every error the API throws.
function rethrow(e) {
  if (e instanceof MdeployError) throw e;
  if (e && typeof e.code === 'string') throw new MdeployError(e.code, e.message);
  throw e;
}

// ---------------------------------------------------------------- runtime (which .wasm)

// Smallest modules using one instruction of each proposal: `(func (param v128 v128 v128)
// (result v128) ...)` with f32x4.add (SIMD) or f32x4.relaxed_madd (relaxed SIMD). Engines
// without the proposal reject the whole module, so validate() is an exact feature test.
const WASM_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const TYPE_AND_FUNC = [0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00];
const SIMD_PROBE = Uint8Array.of(...WASM_HEADER, ...TYPE_AND_FUNC,
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x20, 0x00, 0x20, 0x01, 0xfd, 0xe4, 0x01, 0x0b);
const RELAXED_PROBE = Uint8Array.of(...WASM_HEADER, ...TYPE_AND_FUNC,
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b);

const validates = (bytes) => {
  try {
    return WebAssembly.validate(bytes);
  } catch {
    return false;
  }
};

/** What this JS engine supports, as the variant choice sees it. */
export function wasmFeatures() {
  return { simd128: validates(SIMD_PROBE), relaxedSimd: validates(RELAXED_PROBE) };
}

const isNode = typeof process === 'object' && process !== null && process.versions != null &&
  typeof process.versions.node === 'string';

// A variable, not a literal: bundlers for the browser must not try to resolve node:fs.
const NODE_FS = 'node:fs/promises';
async function readFileNode(pathOrUrl) {
  const fs = await import(/* webpackIgnore: true */ /* @vite-ignore */ NODE_FS);
  try {
    return new Uint8Array(await fs.readFile(pathOrUrl));
  } catch (e) {
    return fail(ErrorCode.LOAD_FAILED, `cannot read ${pathOrUrl}: ${e.message} (check the path; relative paths are resolved against process.cwd())`, e);
  }
}

// Two modules, each in two SIMD variants (DESIGN.md, "The CPU-only module"): `cpu` has no WebGPU
// code (47 KB gzip less to download, and less to compile and instantiate) and is what every model
// that will not use a WebGPU adapter runs on; `gpu` is the full build (CPU engine + GpuEngine),
// loaded only when a model is going to use an adapter. Each literal `new URL('./…',
// import.meta.url)` and `import('./…')` is what bundlers look for to emit the file. The two
// variants of a module export the same functions and share one glue (scripts/build.sh checks).
const MODULES = {
  cpu: {
    simd: () => new URL('./dist/mdeploy_wasm_cpu_bg.wasm', import.meta.url),
    relaxed: () => new URL('./dist/mdeploy_wasm_cpu_relaxed.wasm', import.meta.url),
    glue: () => import('./dist/mdeploy_wasm_cpu.js'),
  },
  gpu: {
    simd: () => new URL('./dist/mdeploy_wasm_bg.wasm', import.meta.url),
    relaxed: () => new URL('./dist/mdeploy_wasm_relaxed.wasm', import.meta.url),
    glue: () => import('./dist/mdeploy_wasm.js'),
  },
};

// Fixed by the first init() (or Model.load/preprocess, which call it): { variant, wasm, cpuWasm }.
let settings = null;
// One instance per module, started on first use: Promise<{ glue, variant, info() }>.
const runtimes = { cpu: null, gpu: null };

// The model's content hash (SHA-256 of bytes[0..32] ++ bytes[64..], MDM_FORMAT.md) with the
// engine's native WebCrypto, or null where there is none (browsers hide crypto.subtle outside
// secure contexts). On a cold start our own SHA-256 runs as freshly compiled baseline wasm and
// was a third of Model.load (DESIGN.md, "Cold start"). The reader uses the hash only if it equals
// the digest stored in a plain file's header and hashes the bytes itself otherwise, so a wrong
// or missing hash can cost time but never let a corrupt file through.
export async function contentHash(bytes) {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined || bytes.length < 64) return null;
  try {
    const content = new Uint8Array(bytes.length - 32);
    content.set(bytes.subarray(0, 32));
    content.set(bytes.subarray(64), 32);
    return new Uint8Array(await subtle.digest('SHA-256', content));
  } catch {
    return null;
  }
}

function chooseSettings(options) {
  const feats = wasmFeatures();
  const want = options.variant ?? 'auto';
  if (!['auto', 'simd', 'relaxed'].includes(want)) {
    fail(ErrorCode.BAD_INPUT, `unknown variant ${JSON.stringify(want)}: use 'auto', 'simd' or 'relaxed'`);
  }
  if (!feats.simd128) {
    fail(ErrorCode.UNSUPPORTED, 'this JavaScript engine has no WebAssembly SIMD, which mdeploy-wasm needs: use Node ≥ 20, Chrome/Edge ≥ 91, Firefox ≥ 89 or Safari ≥ 16.4');
  }
  if (want === 'relaxed' && !feats.relaxedSimd) {
    fail(ErrorCode.UNSUPPORTED, "variant 'relaxed' was asked for but this engine rejects relaxed-SIMD modules (Node 20 needs --experimental-wasm-relaxed-simd); use variant 'auto' or 'simd'");
  }
  return { variant: want === 'auto' ? (feats.relaxedSimd ? 'relaxed' : 'simd') : want, wasm: options.wasm, cpuWasm: options.cpuWasm };
}

// Starts one module (`kind`: 'cpu' | 'gpu') for the chosen variant.
async function startRuntime(kind, { variant, wasm: gpuWasm, cpuWasm }) {
  const mod = MODULES[kind];
  let wasm = (kind === 'cpu' ? cpuWasm : gpuWasm) ?? mod[variant]();
  // Browsers: the .wasm's download and streaming compile start before the glue's import, so the
  // two overlap (DESIGN.md, "Cold start"). Any failure here (a server without the
  // application/wasm type, the network) falls through to the glue's own fetch, which reports it.
  let compiled = null;
  if (!isNode && (wasm instanceof URL || typeof wasm === 'string') && typeof WebAssembly.compileStreaming === 'function') {
    compiled = WebAssembly.compileStreaming(fetch(wasm));
    compiled.catch(() => {});
  }
  const glue = await mod.glue();
  if (isNode && (wasm instanceof URL || typeof wasm === 'string')) wasm = await loadBytes(wasm, 'the .wasm');
  if (compiled !== null) wasm = (await compiled.catch(() => null)) ?? wasm;
  try {
    // Node: the bytes are already in memory, and a synchronous compile + instantiate measured
    // faster to the first prediction than the async path (DESIGN.md, "Cold start").
    if (isNode && (wasm instanceof Uint8Array)) glue.initSync({ module: wasm });
    else await glue.default({ module_or_path: wasm });
  } catch (e) {
    const which = kind === 'cpu' ? `CPU-only ${variant}` : variant;
    fail(ErrorCode.LOAD_FAILED, `could not instantiate the ${which} .wasm (${e.message}); if you host it yourself, pass its URL or bytes as init({ ${kind === 'cpu' ? 'cpuWasm' : 'wasm'} })`, e);
  }
  // What init() reports, made on first ask: a model's load needs only the variant, and the
  // wasm's buildInfo() (its first call compiles it) stays off the path to the first prediction.
  let info = null;
  return {
    glue,
    variant,
    info: () => {
      if (info === null) {
        const b = glue.buildInfo();
        info = {
          variant, simd128: b.simd128, relaxedSimd: b.relaxedSimd, kernel: b.kernel, version: b.version, formatVersion: b.formatVersion,
          wasmModule: b.webgpu ? 'full' : 'cpu-only',
        };
      }
      return info;
    },
  };
}

// The runtime of one module, started on first use. With init({ wasm }) and no `cpuWasm`, the one
// .wasm the caller hosts (the full build) serves every model, as before there were two modules.
function runtimeOf(kind) {
  if (kind === 'cpu' && settings.wasm !== undefined && settings.cpuWasm === undefined) kind = 'gpu';
  if (runtimes[kind] === null) {
    const p = startRuntime(kind, settings);
    runtimes[kind] = p;
    // A failed start may be retried (with other options if nothing else started).
    p.catch(() => {
      if (runtimes[kind] === p) runtimes[kind] = null;
      if (runtimes.cpu === null && runtimes.gpu === null) settings = null;
    });
  }
  return runtimes[kind];
}

// Fixes the settings on the first call; a later call asking for something else is refused.
function settle(options) {
  if (settings === null) {
    settings = chooseSettings(options);
    return;
  }
  // One wasm instance per module and page/process: a later, different request cannot be
  // honoured, and silently ignoring it would hide that.
  if ((options.variant && options.variant !== 'auto' && options.variant !== settings.variant) || options.wasm !== undefined || options.cpuWasm !== undefined) {
    fail(ErrorCode.UNSUPPORTED, `the runtime is already initialised (variant '${settings.variant}'); call init({ variant, wasm, cpuWasm }) once, before the first Model.load`);
  }
}

/**
 * Loads the WebAssembly runtime once (Model.load calls it for you): the CPU-only module, which is
 * what `preprocess` and every model not using WebGPU run on. Options, for the first call:
 * `variant` ('auto' | 'simd' | 'relaxed'), and when you host the files yourself `cpuWasm` (the
 * CPU-only .wasm) and `wasm` (the WebGPU-capable one; given alone, it serves every model): URL,
 * path, bytes, Response or WebAssembly.Module of the matching variant. A later call asking for
 * another variant or .wasm rejects with UNSUPPORTED.
 */
export async function init(options = {}) {
  settle(options);
  return (await runtimeOf('cpu')).info();
}

// The runtime for `kind`, fixing the default settings if nothing did yet.
function runtimeFor(kind) {
  try {
    settle({});
  } catch (e) {
    return Promise.reject(e);
  }
  return runtimeOf(kind);
}

// preprocess() needs no model: any module that is up (or starting) will do, the CPU one otherwise.
async function anyGlue() {
  return (await (runtimes.cpu ?? runtimes.gpu ?? runtimeFor('cpu'))).glue;
}

// ---------------------------------------------------------------- sources of bytes

// One function per model (not a URL): evaluated only when that model is loaded, and written out
// literally so that bundlers see each `new URL('./models/…', import.meta.url)` and ship the file.
// BEGIN models/defaults.json (scripts/gen-defaults.mjs writes these lines)
const BUILTIN = {
  'mnist-mlp': () => new URL('./models/mnist-mlp.mdm', import.meta.url),
  'mnist-cnn': () => new URL('./models/mnist-cnn.mdm', import.meta.url),
  'mnist-resnet': () => new URL('./models/mnist-resnet.mdm', import.meta.url),
  'mnist-mlp-sparse90': () => new URL('./models/mnist-mlp-sparse90.mdm', import.meta.url),
  'mnist-mlp-student': () => new URL('./models/mnist-mlp-student.mdm', import.meta.url),
  'mnist-mlp-int8': () => new URL('./models/mnist-mlp-int8.mdm', import.meta.url),
  'mnist-cnn-int8': () => new URL('./models/mnist-cnn-int8.mdm', import.meta.url),
  'mnist-mlp-int4': () => new URL('./models/mnist-mlp-int4.mdm', import.meta.url),
  'mnist-mlp-int7': () => new URL('./models/mnist-mlp-int7.mdm', import.meta.url),
  'mnist-mlp-binary': () => new URL('./models/mnist-mlp-binary.mdm', import.meta.url),
};
/** Names of the models shipped in the package: `Model.load('mnist-cnn')`. */
export const builtinModels = Object.freeze(Object.keys(BUILTIN));
/** Size and accuracy on the fixed MNIST test split of each built-in model, without loading it. */
export const builtinCatalog = Object.freeze({
  'mnist-mlp': Object.freeze({ fileBytes: 408040, testAccuracy: 0.966 }),
  'mnist-cnn': Object.freeze({ fileBytes: 188136, testAccuracy: 0.9825 }),
  'mnist-resnet': Object.freeze({ fileBytes: 158824, testAccuracy: 0.987 }),
  'mnist-mlp-sparse90': Object.freeze({ fileBytes: 55272, testAccuracy: 0.965 }),
  'mnist-mlp-student': Object.freeze({ fileBytes: 103016, testAccuracy: 0.9645 }),
  'mnist-mlp-int8': Object.freeze({ fileBytes: 104552, testAccuracy: 0.9645 }),
  'mnist-cnn-int8': Object.freeze({ fileBytes: 49896, testAccuracy: 0.983 }),
  'mnist-mlp-int4': Object.freeze({ fileBytes: 53736, testAccuracy: 0.966 }),
  'mnist-mlp-int7': Object.freeze({ fileBytes: 91880, testAccuracy: 0.9665 }),
  'mnist-mlp-binary': Object.freeze({ fileBytes: 170856, testAccuracy: 0.9645 }),
});
const DEFAULT_MODEL = 'mnist-cnn';
// END models/defaults.json

// Duck-typed so Response objects from another realm or polyfill work too.
const isResponse = (x) => (typeof Response !== 'undefined' && x instanceof Response) ||
  (x !== null && typeof x === 'object' && typeof x.arrayBuffer === 'function' && typeof x.ok === 'boolean' && typeof x.status === 'number');

async function fromResponse(res, what) {
  if (!res.ok) fail(ErrorCode.LOAD_FAILED, `${what}: HTTP ${res.status} ${res.statusText} from ${res.url || 'the response'}; check the URL`);
  return new Uint8Array(await res.arrayBuffer());
}

async function fetchBytes(url, what) {
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    return fail(ErrorCode.LOAD_FAILED, `${what}: could not fetch ${url} (${e.message}); check the URL and the network (CORS applies across origins)`, e);
  }
  return fromResponse(res, what);
}

// In Node, strings are paths unless they are http(s)/data/blob URLs; file: URLs are read too.
async function loadBytes(source, what) {
  if (isNode) {
    let url = source instanceof URL ? source : null;
    if (url === null) {
      try {
        const u = new URL(source);
        if (['http:', 'https:', 'data:', 'blob:', 'file:'].includes(u.protocol)) url = u;
      } catch { /* not a URL: a path */ }
    }
    if (url === null || url.protocol === 'file:') return readFileNode(url ?? source);
  }
  return fetchBytes(source, what);
}

async function modelBytes(source) {
  source ??= DEFAULT_MODEL;
  if (typeof source === 'string' && Object.hasOwn(BUILTIN, source)) return loadBytes(BUILTIN[source](), `built-in model ${source}`);
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (isResponse(source)) return fromResponse(source, 'model');
  if (typeof source === 'string' || source instanceof URL) return loadBytes(source, 'model');
  return fail(ErrorCode.BAD_INPUT, `Model.load expects a Uint8Array, ArrayBuffer, URL, path/URL string, Response, or one of ${builtinModels.join(', ')}; got ${describe(source)}`);
}

function describe(x) {
  if (x === null) return 'null';
  if (ArrayBuffer.isView(x)) return `${x.constructor.name}(${x.length})`;
  if (Array.isArray(x)) return `Array(${x.length})`;
  if (typeof x === 'object') return x.constructor?.name ?? 'object';
  return typeof x;
}

// ---------------------------------------------------------------- inputs

const isImage = (x) => x !== null && typeof x === 'object' && !ArrayBuffer.isView(x) &&
  Number.isInteger(x.width) && Number.isInteger(x.height) && x.data != null && ArrayBuffer.isView(x.data);

function imageToFloats(g, img) {
  const { width: w, height: h, data } = img;
  const px = w * h;
  try {
    if (data.length === px * 4 && (data instanceof Uint8ClampedArray || data instanceof Uint8Array)) return g.preprocessRgba(w, h, data);
    if (data.length === px && (data instanceof Uint8ClampedArray || data instanceof Uint8Array)) return g.preprocessGray(w, h, data);
    if (data.length === px && data instanceof Float32Array) return g.preprocessLuma(w, h, data);
  } catch (e) {
    rethrow(e);
  }
  return fail(ErrorCode.BAD_INPUT, `image is ${w}×${h} but its data is ${describe(data)}: expected ${px * 4} RGBA bytes (ImageData), ${px} grey bytes, or ${px} floats`);
}

/**
 * The MNIST recipe (crop to the ink, fit 20×20, centre by mass, fix polarity) on an ImageData
 * or `{ width, height, data }` of any size (RGBA or grey bytes, or float luminance).
 * Resolves to 784 floats in 0..1, ink high.
 */
export async function preprocess(image) {
  if (!isImage(image)) fail(ErrorCode.BAD_INPUT, `preprocess expects an ImageData or { width, height, data }; got ${describe(image)}`);
  return imageToFloats(await anyGlue(), image);
}

// ---------------------------------------------------------------- Model

const TOKEN = Symbol('Model.load');
const BACKENDS = ['auto', 'cpu', 'webgpu'];
const DEFAULT_MAX_BATCH = 64;
const now = () => performance.now();

/**
 * A CPU batch goes to the engine in calls of at most this many input values (256 KB): the glue
 * copies a call's whole input into the module's memory before the plan starts, and a batch of
 * 1,024 digits (3.2 MB) written there in one piece has left the core's L2 cache before the
 * plan's first step reads it back. In calls of about 83 digits the copy and that read stay in L2
 * (DESIGN.md, "The batch copies"). A call holds a whole number of the plan's chunks (maxBatch)
 * where one fits, so the plan runs the chunks it ran before.
 */
const CPU_CALL_VALUES = 65536;

/**
 * `backend: 'auto'` sends a call to the GPU only when it carries at least this many samples (and
 * the adapter is a real GPU, see DESIGN.md "WebGPU"): below it, the fixed cost of a GPU round trip
 * (submit + asynchronous readback, about a millisecond) exceeds the CPU's whole run for these
 * small models.
 */
export const AUTO_GPU_MIN_BATCH = 64;

const NO_ADAPTER = "WebGPU is not available: navigator.gpu.requestAdapter() found no adapter. Use { backend: 'auto' } " +
  "(it falls back to the CPU) or { backend: 'cpu' }; or enable WebGPU: a browser that supports it, on https or " +
  'localhost (Chromium without a GPU: start it with --enable-unsafe-webgpu)';

async function requestAdapter() {
  if (typeof navigator === 'undefined' || !navigator.gpu) return null;
  try {
    return await navigator.gpu.requestAdapter();
  } catch {
    return null; // some browsers throw instead of resolving null when WebGPU is blocked
  }
}

function describeAdapter(adapter) {
  const i = adapter.info ?? {};
  const d = {
    vendor: i.vendor ?? '',
    architecture: i.architecture ?? '',
    device: i.device ?? '',
    description: i.description ?? '',
    isFallbackAdapter: i.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
  };
  // SwiftShader (Chromium's CPU emulation of a GPU) predates the isFallbackAdapter flag in some builds.
  if (/swiftshader/i.test(`${d.architecture} ${d.description} ${d.device}`)) d.isFallbackAdapter = true;
  return d;
}

export class Model {
  #engine; // the CPU engine: always there (metadata, predictSync, fallback after a lost device)
  #gpu; // GpuEngine or null
  #request; // what load() was asked for: 'auto' | 'cpu' | 'webgpu'
  #adapter; // describeAdapter() of the adapter seen at load, or null
  #deviceLost = null; // why the GPU was dropped, once it was
  #queue = Promise.resolve(); // GPU batches run one at a time (they share GPU buffers)
  #glue;
  #variant;
  #labels;
  #signedBy; // key id whose signature verified under the load's trustedKeys, or null
  #calls = null; // how a CPU batch is split into engine.run calls (#runCpu), made at the first batch

  /** Use `await Model.load(...)`. */
  constructor(token, engine, g, variant, gpu = null, request = 'cpu', adapter = null, signedBy = null) {
    if (token !== TOKEN) fail(ErrorCode.BAD_INPUT, 'use `await Model.load(source, options)` to create a Model');
    this.#engine = engine;
    this.#gpu = gpu;
    this.#request = request;
    this.#adapter = adapter;
    this.#glue = g;
    this.#variant = variant;
    this.#labels = engine.labels;
    this.#signedBy = signedBy;
  }

  /**
   * Loads a model: bytes, a URL or path, a fetch Response, or a built-in name ('mnist-cnn',
   * the default, or 'mnist-mlp'). Options: `backend` ('auto' | 'cpu' | 'webgpu'), `maxBatch`,
   * `allowFallbackAdapter` (let 'auto' use a software adapter such as SwiftShader),
   * `trustedKeys` (a trust policy: only models signed by one of these keys load; UNTRUSTED otherwise),
   * `decryptionKey` (an encrypted model's key: the `.enckey` text or its 32 bytes; decrypted in
   * memory, in wasm, after the policy is checked).
   */
  static async load(source, options = {}) {
    const backend = options.backend ?? 'auto';
    if (!BACKENDS.includes(backend)) fail(ErrorCode.BAD_INPUT, `unknown backend ${JSON.stringify(backend)}: use 'auto', 'cpu' or 'webgpu'`);
    const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    if (options.allowFallbackAdapter !== undefined && typeof options.allowFallbackAdapter !== 'boolean') {
      fail(ErrorCode.BAD_INPUT, `allowFallbackAdapter must be true or false, got ${describe(options.allowFallbackAdapter)}`);
    }
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 65536) fail(ErrorCode.BAD_INPUT, `maxBatch must be an integer from 1 to 65536, got ${maxBatch}`);
    // Before any download: asking for WebGPU where there is none is the caller's to fix.
    if (backend === 'webgpu' && (typeof navigator === 'undefined' || !navigator.gpu)) {
      fail(ErrorCode.NO_WEBGPU, "WebGPU is not available in this environment (navigator.gpu is missing: Node has none, and browsers expose it only in secure contexts, https or localhost, when supported); use { backend: 'cpu' } or { backend: 'auto' }");
    }
    const trust = options.trustedKeys === undefined && options.decryptionKey === undefined ? null : await trustModule();
    // The policy first: a bad key is the caller's to fix before anything is downloaded.
    const policy = options.trustedKeys === undefined ? null : await trust.parsePolicy(options.trustedKeys, mdeployError);
    // The key's type too (its content is parsed in wasm, once the runtime is up).
    const key = options.decryptionKey === undefined ? null : trust.decryptionKeyInput(options.decryptionKey, mdeployError);
    // 'webgpu' asks for the adapter before downloading anything (none is the caller's to fix).
    // Otherwise the adapter request, the runtime's start (fetch + compile + instantiate) and the
    // model's bytes and content hash run side by side: in Chromium the .wasm compiles off the
    // main thread and a fresh browser's adapter request waits on its GPU process; in Node the
    // file reads and WebCrypto run on the thread pool (DESIGN.md, "Cold start").
    // Which module (DESIGN.md, "The CPU-only module"): the full one only when this model is going
    // to use an adapter ('webgpu', or 'auto' on an adapter it accepts); the CPU-only one otherwise.
    // Under 'auto' the CPU-only module starts before the adapter is known, so the adapter request
    // adds no wait; where an accepted adapter then turns up, that start was wasted.
    const fallbackOk = options.allowFallbackAdapter === true;
    const gpuWanted = (a) => a !== null && (backend === 'webgpu' || (backend === 'auto' && (fallbackOk || !describeAdapter(a).isFallbackAdapter)));
    let adapterP, glueP, bytesP;
    if (backend === 'webgpu') {
      adapterP = requestAdapter();
      if ((await adapterP) === null) fail(ErrorCode.NO_WEBGPU, NO_ADAPTER);
      glueP = runtimeFor('gpu');
      bytesP = modelBytes(source);
    } else {
      // The .wasm's and the model's requests go out first, the adapter request after them: in
      // Chromium the call to requestAdapter() and the runtime's set-up before its fetch each hold
      // the main thread for 1-4 ms, which used to delay both downloads (DESIGN.md, "The public
      // path, step by step").
      const cpuP = runtimeFor('cpu');
      bytesP = modelBytes(source);
      adapterP = backend === 'cpu' ? Promise.resolve(null) : requestAdapter();
      glueP = backend === 'cpu' || typeof navigator === 'undefined' || !navigator.gpu ? cpuP
        : adapterP.then((a) => (gpuWanted(a) ? runtimeFor('gpu') : cpuP));
    }
    // Fetched or read bytes are hashed as they arrive. The caller's own array is hashed only
    // right before the engine reads it (below), as before: hashing it early would widen the
    // window in which a caller changing it could pair old content's digest with new content.
    // With a policy only our own copy is hashed (below). Errors are still reported in the old
    // order (runtime, then source); these handlers only keep a rejection that is awaited later
    // from being reported as unhandled meanwhile.
    const callerBytes = source instanceof ArrayBuffer || ArrayBuffer.isView(source);
    const hashP = policy === null && !callerBytes ? bytesP.then(contentHash) : null;
    for (const p of [glueP, bytesP, hashP]) p?.catch(() => {});
    const adapter = await adapterP;
    const adapterInfo = adapter === null ? null : describeAdapter(adapter);
    const { glue: g, variant } = await glueP;
    // Only a caller-hosted init({ wasm }) that is in fact the CPU-only build lacks GpuEngine.
    const useGpu = gpuWanted(adapter) && g.GpuEngine !== undefined;
    if (backend === 'webgpu' && !useGpu) fail(ErrorCode.UNSUPPORTED, "the .wasm given as init({ wasm }) has no WebGPU engine (it is the CPU-only build, dist/mdeploy_wasm_cpu*.wasm): pass the full build's .wasm as `wasm` and the CPU-only one as `cpuWasm`");
    let bytes = await bytesP;
    let signedBy = null;
    if (policy !== null) {
      // Our own copy: the caller's array could change during the awaits below, and what is
      // verified must be exactly what loads.
      bytes = bytes.slice();
      let signed;
      try {
        signed = g.signedMessage(bytes); // structure and digest, as natively; null when unsigned
      } catch (e) {
        rethrow(e);
      }
      signedBy = await trust.enforce(policy, signed, mdeployError);
    }
    // Encrypt-then-sign: the policy above checked the encrypted file; now decrypt it in memory
    // (wasm: WebCrypto has no ChaCha20-Poly1305). `plain` is null for a file that is not
    // encrypted. Both our copies (key, plaintext) are wiped once the engines are built.
    let plain = null;
    if (key !== null) {
      try {
        plain = g.decryptModel(bytes, key.bytes, key.text);
      } catch (e) {
        rethrow(e);
      } finally {
        trust.wipe(key.bytes);
      }
      if (plain !== null) bytes = plain;
    }
    // A decrypted file is hashed in wasm (a WebCrypto hash would make one more plaintext copy).
    try {
      return await Model.#build(g, variant, bytes, plain === null ? hashP : Promise.resolve(null), maxBatch, backend, adapterInfo, useGpu, signedBy);
    } finally {
      if (plain !== null) trust.wipe(plain);
    }
  }

  static async #build(g, variant, bytes, hashP, maxBatch, backend, adapterInfo, useGpu, signedBy) {
    const hash = await (hashP ?? contentHash(bytes));
    let engine;
    try {
      // The CPU engine validates the model first, so a bad file fails the same way on every backend.
      engine = hash === null ? new g.Engine(bytes, 'cpu', maxBatch) : g.Engine.withHash(bytes, 'cpu', maxBatch, hash);
    } catch (e) {
      rethrow(e);
    }
    // useGpu: 'webgpu', or 'auto' on an adapter it accepts. 'auto' never uses a fallback adapter
    // unless told to: SwiftShader and the like emulate the GPU on the CPU, slower than the SIMD
    // kernels (DESIGN.md, "WebGPU").
    let gpu = null;
    if (useGpu) {
      try {
        gpu = await g.GpuEngine.create(bytes, maxBatch);
      } catch (e) {
        if (backend === 'webgpu') {
          engine.free();
          rethrow(e);
        }
        // 'auto': a model the GPU kernels cannot run (or a device refused) stays on the CPU.
      }
    }
    return new Model(TOKEN, engine, g, variant, gpu, backend, adapterInfo, signedBy);
  }

  #live() {
    if (this.#engine === null) fail(ErrorCode.DISPOSED, 'this Model was disposed; load it again with Model.load');
    return this.#engine;
  }

  // A lost device is noticed lazily (wgpu records it; nothing calls us): drop the GPU engine and
  // carry on with the CPU one, which was built at load.
  #checkGpu() {
    if (this.#gpu !== null && this.#gpu.lost) this.#dropGpu(this.#gpu.lostReason || 'device lost');
    return this.#gpu;
  }

  #dropGpu(reason) {
    this.#deviceLost = reason;
    const gpu = this.#gpu;
    this.#gpu = null;
    try {
      gpu.dispose();
      gpu.free();
    } catch { /* already gone with the device */ }
  }

  // GPU for this call? 'webgpu': always (while the device lives); 'auto': large batches only.
  #useGpu(n) {
    const gpu = this.#checkGpu();
    return gpu !== null && (this.#request === 'webgpu' || n >= AUTO_GPU_MIN_BATCH);
  }

  /**
   * `n` samples on the CPU engine, in calls of about CPU_CALL_VALUES input values; the same
   * outputs as one call. A call holds a whole number of the plan's chunks (`maxBatch`) when one
   * fits, so the plan runs the chunks it would run in one call; otherwise the calls are of equal
   * size (within one sample), each one chunk: never a last call of one sample, which would take
   * the plan's one-sample path. Samples of more than CPU_CALL_VALUES / 16 values go in one call.
   * A batch that one call refuses (a length that is not `n × inputLen`, a value that is not
   * finite) is run as one call, so the error is that call's (naming the sample in the whole batch).
   */
  #runCpu(input, n) {
    const e = this.#engine;
    const il = e.inputLen;
    if (n * il <= CPU_CALL_VALUES || input.length !== n * il) return e.run(input, n);
    if (this.#calls === null) {
      const fit = Math.floor(CPU_CALL_VALUES / il);
      const chunk = e.info().maxBatch;
      this.#calls = fit < 16 ? { rows: 0, even: false } : chunk <= fit ? { rows: chunk * Math.floor(fit / chunk), even: false } : { rows: fit, even: true };
    }
    const { rows: most, even } = this.#calls;
    if (most === 0 || n <= most) return e.run(input, n);
    const rows = even ? Math.ceil(n / Math.ceil(n / most)) : most;
    const ol = e.outputLen;
    const out = new Float32Array(n * ol);
    try {
      for (let s = 0; s < n; s += rows) {
        const m = Math.min(rows, n - s);
        out.set(e.run(input.subarray(s * il, (s + m) * il), m), s * ol);
      }
    } catch {
      return e.run(input, n);
    }
    return out;
  }

  async #runGpu(x, n) {
    const run = this.#queue.then(async () => {
      const gpu = this.#checkGpu();
      if (gpu !== null) {
        const t0 = now();
        try {
          const probs = await gpu.run(x, n);
          return { probs, backend: 'webgpu', ms: now() - t0 };
        } catch (e) {
          // NO_WEBGPU from a run means the device went away mid-batch (src/gpu/engine.rs).
          if (!(e && (e.code === ErrorCode.NO_WEBGPU || gpu.lost))) rethrow(e);
          this.#dropGpu(gpu.lostReason || e.message);
        }
      }
      const t0 = now();
      let probs;
      try {
        probs = this.#runCpu(x, n);
      } catch (err) {
        rethrow(err);
      }
      return { probs, backend: 'cpu', ms: now() - t0 };
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * The device this model computes on: 'webgpu' while it holds a GPU device ('auto' then sends
   * batches of at least AUTO_GPU_MIN_BATCH samples to it), else 'cpu' (also after a lost device).
   */
  get backend() { this.#live(); return this.#checkGpu() === null ? 'cpu' : 'webgpu'; }
  get inputLen() { return this.#live().inputLen; }
  get outputLen() { return this.#live().outputLen; }
  get labels() { this.#live(); return this.#labels.slice(); }

  #toFloats(input) {
    const e = this.#live();
    const il = e.inputLen;
    if (input instanceof Float32Array || Array.isArray(input)) {
      if (input.length !== il) {
        fail(ErrorCode.BAD_INPUT, `input has ${input.length} values but this model takes ${il} (input shape ${JSON.stringify(this.info().inputShape)})` +
          (e.takesDigitImage ? '; pass an ImageData of any size to go through preprocess, or use predictBatch for several samples' : ''));
      }
      return input instanceof Float32Array ? input : Float32Array.from(input);
    }
    if (input instanceof Uint8ClampedArray || input instanceof Uint8Array) {
      if (!e.takesDigitImage) fail(ErrorCode.UNSUPPORTED, `byte images are for 28×28 digit models; this model takes ${il} floats (input shape ${JSON.stringify(this.info().inputShape)}): pass a Float32Array`);
      if (input.length !== 784) fail(ErrorCode.BAD_INPUT, `a byte input must be one 28×28 grey image (784 bytes, light ink on dark); got ${input.length} bytes. For other sizes pass { width, height, data } or an ImageData`);
      const x = new Float32Array(784);
      for (let i = 0; i < 784; i++) x[i] = input[i] / 255;
      return x;
    }
    if (isImage(input)) {
      if (!e.takesDigitImage) fail(ErrorCode.UNSUPPORTED, `images go through the MNIST preprocessing, which makes 28×28 digits; this model takes input shape ${JSON.stringify(this.info().inputShape)}: pass a Float32Array(${il})`);
      return imageToFloats(this.#glue, input);
    }
    return fail(ErrorCode.BAD_INPUT, `predict expects a Float32Array(${il}), a 28×28 Uint8ClampedArray or an ImageData; got ${describe(input)}`);
  }

  /** One sample → `{ label, name, probs, backend, ms }`, synchronously (CPU backend). */
  predictSync(input) {
    this.#noSyncOnGpu('predictSync');
    return this.#predictCpu(this.#toFloats(input));
  }

  #noSyncOnGpu(what) {
    this.#live();
    if (this.#request === 'webgpu' && this.#checkGpu() !== null) {
      fail(ErrorCode.UNSUPPORTED, `${what} cannot run on WebGPU (reading results back from the GPU is asynchronous): use await ${what.replace('Sync', '')}(...), or load the model with { backend: 'cpu' } or 'auto'`);
    }
  }

  #predictCpu(x) {
    const e = this.#engine;
    const t0 = now();
    let probs;
    try {
      probs = e.run(x, 1);
    } catch (err) {
      rethrow(err);
    }
    const ms = now() - t0;
    let label = 0;
    for (let i = 1; i < probs.length; i++) if (probs[i] > probs[label]) label = i;
    return { label, name: this.#labels[label], probs, backend: e.backend, ms };
  }

  /** One sample → `{ label, name, probs, backend, ms }`. Async so GPU backends fit the same call. */
  async predict(input) {
    const x = this.#toFloats(input);
    if (!this.#useGpu(1)) return this.#predictCpu(x);
    const { probs, backend, ms } = await this.#runGpu(x, 1);
    let label = 0;
    for (let i = 1; i < probs.length; i++) if (probs[i] > probs[label]) label = i;
    return { label, name: this.#labels[label], probs, backend, ms };
  }

  /** `n` samples in one Float32Array (`n × inputLen`) → `{ labels, probs, n, backend, ms }`, synchronously. */
  predictBatchSync(input, n) {
    this.#noSyncOnGpu('predictBatchSync');
    n = this.#batchN(input, n);
    const t0 = now();
    let probs;
    try {
      probs = this.#runCpu(input, n);
    } catch (err) {
      rethrow(err);
    }
    return this.#batchResult(probs, n, 'cpu', now() - t0);
  }

  #batchN(input, n) {
    const il = this.#live().inputLen;
    if (!(input instanceof Float32Array)) fail(ErrorCode.BAD_INPUT, `predictBatch expects a Float32Array of n × ${il} values; got ${describe(input)}`);
    n ??= input.length / il;
    if (!Number.isInteger(n) || n < 1) fail(ErrorCode.BAD_INPUT, `n must be a whole number ≥ 1 of samples of ${il} values; got n = ${n} for ${input.length} values`);
    return n;
  }

  #batchResult(probs, n, backend, ms) {
    const ol = this.#engine.outputLen;
    const labels = new Int32Array(n);
    for (let s = 0; s < n; s++) {
      let best = 0;
      const o = s * ol;
      for (let i = 1; i < ol; i++) if (probs[o + i] > probs[o + best]) best = i;
      labels[s] = best;
    }
    return { labels, probs, n, backend, ms };
  }

  /** `n` samples → `{ labels, probs, n, backend, ms }`. */
  async predictBatch(input, n) {
    n = this.#batchN(input, n);
    if (!this.#useGpu(n)) {
      const t0 = now();
      let probs;
      try {
        probs = this.#runCpu(input, n);
      } catch (err) {
        rethrow(err);
      }
      return this.#batchResult(probs, n, 'cpu', now() - t0);
    }
    const { probs, backend, ms } = await this.#runGpu(input, n);
    return this.#batchResult(probs, n, backend, ms);
  }

  /** Test hook (not API): destroys the GPU device the way a driver reset would. */
  __loseDeviceForTesting() {
    this.#gpu?.loseDeviceForTesting();
  }

  /** Name, shapes, labels, backend, kernel, sizes and provenance of the loaded model. */
  info() {
    const i = this.#live().info();
    i.variant = this.#variant;
    i.wasmModule = this.#glue.buildInfo().webgpu ? 'full' : 'cpu-only';
    const gpu = this.#checkGpu();
    i.requestedBackend = this.#request;
    i.backend = gpu === null ? 'cpu' : 'webgpu';
    i.cpuKernel = i.kernel;
    if (gpu !== null) {
      i.kernel = 'webgpu-wgsl';
      i.gpuChunk = gpu.chunk;
    }
    i.adapter = this.#adapter === null ? null : { ...this.#adapter };
    i.deviceLost = this.#deviceLost;
    i.signedBy = this.#signedBy;
    return i;
  }

  /** Frees the wasm memory the model holds. Later calls throw DISPOSED; dispose() again is a no-op. */
  dispose() {
    if (this.#gpu !== null) {
      try {
        this.#gpu.dispose();
        this.#gpu.free();
      } catch { /* a batch still holds it: the GPU memory is freed when that batch ends */ }
      this.#gpu = null;
    }
    if (this.#engine !== null) {
      this.#engine.free();
      this.#engine = null;
    }
  }
}
