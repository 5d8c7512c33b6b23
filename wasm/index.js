// mdeploy-wasm: the public JS API. Types: index.d.ts. Usage: README.md. Design: DESIGN.md.
//
// This ESM wrapper sits on the wasm-bindgen output (dist/mdeploy_wasm.js, built with
// --target web). It adds what is awkward to express in Rust: async loading from any source,
// picking the SIMD variant with WebAssembly.validate, initialising from bytes in Node (where
// fetch() cannot read file: URLs), turning inputs into floats, and one error class.

/** Stable error codes (also listed in index.d.ts). */
export const ErrorCode = Object.freeze({
  BAD_MODEL: 'BAD_MODEL',
  BAD_INPUT: 'BAD_INPUT',
  UNSUPPORTED: 'UNSUPPORTED',
  NO_WEBGPU: 'NO_WEBGPU',
  LOAD_FAILED: 'LOAD_FAILED',
  DISPOSED: 'DISPOSED',
});

/** Every error this package throws: an `Error` with a stable `code` and a message saying how to fix it. */
export class MdeployError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'MdeployError';
    this.code = code;
  }
}

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

// Each literal `new URL('./…', import.meta.url)` is what bundlers look for to emit the file.
// Both variants export the same functions and share one glue module (scripts/build.sh checks).
const VARIANTS = {
  simd: () => new URL('./dist/mdeploy_wasm_bg.wasm', import.meta.url),
  relaxed: () => new URL('./dist/mdeploy_wasm_relaxed.wasm', import.meta.url),
};

let runtime = null; // Promise<{ glue, info }>

async function startRuntime(options) {
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
  const variant = want === 'auto' ? (feats.relaxedSimd ? 'relaxed' : 'simd') : want;
  const glue = await import('./dist/mdeploy_wasm.js');
  let wasm = options.wasm ?? VARIANTS[variant]();
  if (isNode && (wasm instanceof URL || typeof wasm === 'string')) wasm = await loadBytes(wasm, 'the .wasm');
  try {
    // Node: the bytes are already in memory, and a synchronous compile + instantiate measured
    // faster to the first prediction than the async path (DESIGN.md, "Cold start").
    if (isNode && (wasm instanceof Uint8Array)) glue.initSync({ module: wasm });
    else await glue.default({ module_or_path: wasm });
  } catch (e) {
    fail(ErrorCode.LOAD_FAILED, `could not instantiate the ${variant} .wasm (${e.message}); if you host it yourself, pass its URL or bytes as init({ wasm })`, e);
  }
  const b = glue.buildInfo();
  return { glue, info: { variant, simd128: b.simd128, relaxedSimd: b.relaxedSimd, kernel: b.kernel, version: b.version, formatVersion: b.formatVersion } };
}

/**
 * Loads the WebAssembly runtime once (Model.load calls it for you). Options, for the first call:
 * `variant` ('auto' | 'simd' | 'relaxed') and `wasm` (URL, path, bytes, Response or
 * WebAssembly.Module of the matching .wasm, when you host it yourself). A later call asking for
 * another variant or .wasm rejects with UNSUPPORTED.
 */
export async function init(options = {}) {
  if (runtime === null) {
    runtime = startRuntime(options);
    runtime.catch(() => { runtime = null; }); // a failed start may be retried
    return (await runtime).info;
  }
  const { info } = await runtime;
  // One wasm instance per page/process: a later, different request cannot be honoured, and
  // silently ignoring it would hide that.
  if ((options.variant && options.variant !== 'auto' && options.variant !== info.variant) || options.wasm !== undefined) {
    fail(ErrorCode.UNSUPPORTED, `the runtime is already initialised (variant '${info.variant}'); call init({ variant, wasm }) once, before the first Model.load`);
  }
  return info;
}

async function glue() {
  await init();
  return (await runtime).glue;
}

// ---------------------------------------------------------------- sources of bytes

const BUILTIN = {
  'mnist-mlp': () => new URL('./models/mnist-mlp.mdm', import.meta.url),
  'mnist-cnn': () => new URL('./models/mnist-cnn.mdm', import.meta.url),
};
/** Names of the models shipped in the package: `Model.load('mnist-cnn')`. */
export const builtinModels = Object.freeze(Object.keys(BUILTIN));
const DEFAULT_MODEL = 'mnist-cnn';

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
  return imageToFloats(await glue(), image);
}

// ---------------------------------------------------------------- Model

const TOKEN = Symbol('Model.load');
const BACKENDS = ['auto', 'cpu', 'webgpu'];
const DEFAULT_MAX_BATCH = 64;
const now = () => performance.now();

export class Model {
  #engine;
  #glue;
  #variant;
  #labels;

  /** Use `await Model.load(...)`. */
  constructor(token, engine, g, variant) {
    if (token !== TOKEN) fail(ErrorCode.BAD_INPUT, 'use `await Model.load(source, options)` to create a Model');
    this.#engine = engine;
    this.#glue = g;
    this.#variant = variant;
    this.#labels = engine.labels;
  }

  /**
   * Loads a model: bytes, a URL or path, a fetch Response, or a built-in name ('mnist-cnn',
   * the default, or 'mnist-mlp'). Options: `backend` ('auto' | 'cpu' | 'webgpu'), `maxBatch`.
   */
  static async load(source, options = {}) {
    const backend = options.backend ?? 'auto';
    if (!BACKENDS.includes(backend)) fail(ErrorCode.BAD_INPUT, `unknown backend ${JSON.stringify(backend)}: use 'auto', 'cpu' or 'webgpu'`);
    const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 65536) fail(ErrorCode.BAD_INPUT, `maxBatch must be an integer from 1 to 65536, got ${maxBatch}`);
    // Before any download: asking for WebGPU where there is none is the caller's to fix.
    if (backend === 'webgpu' && (typeof navigator === 'undefined' || !navigator.gpu)) {
      fail(ErrorCode.NO_WEBGPU, "WebGPU is not available in this environment (navigator.gpu is missing: Node has none, and browsers expose it only in secure contexts, https or localhost, when supported); use { backend: 'cpu' } or { backend: 'auto' }");
    }
    const g = await glue();
    const { variant } = await init();
    const bytes = await modelBytes(source);
    let engine;
    try {
      engine = new g.Engine(bytes, backend, maxBatch);
    } catch (e) {
      rethrow(e);
    }
    return new Model(TOKEN, engine, g, variant);
  }

  #live() {
    if (this.#engine === null) fail(ErrorCode.DISPOSED, 'this Model was disposed; load it again with Model.load');
    return this.#engine;
  }

  /** 'cpu' (or 'webgpu' in builds that have it). */
  get backend() { return this.#live().backend; }
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
    const x = this.#toFloats(input);
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
    return this.predictSync(input);
  }

  /** `n` samples in one Float32Array (`n × inputLen`) → `{ labels, probs, n, backend, ms }`, synchronously. */
  predictBatchSync(input, n) {
    const e = this.#live();
    const il = e.inputLen;
    const ol = e.outputLen;
    if (!(input instanceof Float32Array)) fail(ErrorCode.BAD_INPUT, `predictBatch expects a Float32Array of n × ${il} values; got ${describe(input)}`);
    n ??= input.length / il;
    if (!Number.isInteger(n) || n < 1) fail(ErrorCode.BAD_INPUT, `n must be a whole number ≥ 1 of samples of ${il} values; got n = ${n} for ${input.length} values`);
    const t0 = now();
    let probs;
    try {
      probs = e.run(input, n);
    } catch (err) {
      rethrow(err);
    }
    const ms = now() - t0;
    const labels = new Int32Array(n);
    for (let s = 0; s < n; s++) {
      let best = 0;
      const o = s * ol;
      for (let i = 1; i < ol; i++) if (probs[o + i] > probs[o + best]) best = i;
      labels[s] = best;
    }
    return { labels, probs, n, backend: e.backend, ms };
  }

  /** `n` samples → `{ labels, probs, n, backend, ms }`. */
  async predictBatch(input, n) {
    return this.predictBatchSync(input, n);
  }

  /** Name, shapes, labels, backend, kernel, sizes and provenance of the loaded model. */
  info() {
    const i = this.#live().info();
    i.variant = this.#variant;
    return i;
  }

  /** Frees the wasm memory the model holds. Later calls throw DISPOSED; dispose() again is a no-op. */
  dispose() {
    if (this.#engine !== null) {
      this.#engine.free();
      this.#engine = null;
    }
  }
}
