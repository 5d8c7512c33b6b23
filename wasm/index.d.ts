// Hand-written types for the public API of mdeploy-wasm (index.js). The wasm-bindgen glue in
// dist/ is an implementation detail and is not typed here.
//
// No DOM-only types are named (ImageData, Response, BufferSource, WebAssembly.Module): the
// structural types below accept them. `URL` needs `lib: ["dom"]` or @types/node, as any Node
// or browser project has. test/package.test.mjs type-checks a strict consumer against this file.

/** Stable, machine-readable error codes. New codes may be added; existing ones keep their meaning. */
export type ErrorCodeName =
  /** The model bytes are not a valid `.mdm` file (truncated, corrupt, wrong digest, bad graph). */
  | 'BAD_MODEL'
  /** An argument is wrong: input length, NaN/Infinity, image size, option value, source type. */
  | 'BAD_INPUT'
  /** Valid, but not supported here: a newer format, a byte image for a non-image model, no WebAssembly SIMD, `predictSync` on a WebGPU model, a layer the GPU kernels lack. */
  | 'UNSUPPORTED'
  /** `backend: 'webgpu'` was asked for, and this environment has no WebGPU adapter (or it refused a device). */
  | 'NO_WEBGPU'
  /** The model or the .wasm could not be fetched or read (network, HTTP status, file system). */
  | 'LOAD_FAILED'
  /** The Model was disposed. */
  | 'DISPOSED'
  /** The model file is encrypted (`mdeploy encrypt`) and no `decryptionKey` was given, or the key is not the one it was encrypted for, or the file was changed after it was encrypted; the message names the key id (tested: test/trust.test.mjs, the bad-input table's key rows). */
  | 'DECRYPT_FAILED'
  /** Loaded with `trustedKeys`, and the model is not signed, is signed by a key not in the list, or its signature does not verify (the message names the key id). */
  | 'UNTRUSTED';

export declare const ErrorCode: Readonly<{ [K in ErrorCodeName]: K }>;

/** Every error the API throws. `message` says what was wrong and how to fix it. */
export declare class MdeployError extends Error {
  readonly name: 'MdeployError';
  readonly code: ErrorCodeName;
}

export type Backend = 'auto' | 'cpu' | 'webgpu';
// BEGIN models/defaults.json (scripts/gen-defaults.mjs writes this line)
export type BuiltinModel = 'mnist-mlp' | 'mnist-cnn' | 'mnist-resnet' | 'mnist-mlp-sparse90' | 'mnist-mlp-student' | 'mnist-mlp-int8' | 'mnist-cnn-int8' | 'mnist-mlp-int4' | 'mnist-mlp-int7' | 'mnist-mlp-binary';
// END models/defaults.json

/** What `builtinCatalog` says about a built-in model before it is loaded. */
export interface BuiltinModelFacts {
  /** Size of the `.mdm` file in bytes. */
  fileBytes: number;
  /** Accuracy on the fixed MNIST test split (2,000 digits), 0..1, as the file's provenance records it. */
  testAccuracy: number;
}

/** A fetch `Response` (or anything shaped like one). */
export interface ResponseLike {
  ok: boolean;
  status: number;
  statusText?: string;
  url?: string;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** Where model bytes come from. Strings: a built-in name, a URL, or (in Node) a file path. */
export type ModelSource = Uint8Array | ArrayBuffer | ArrayBufferView | URL | string | ResponseLike | BuiltinModel;

export interface LoadOptions {
  /**
   * Default `'auto'`: WebGPU when `navigator.gpu.requestAdapter()` finds a real (non-fallback)
   * adapter, and then only for calls of at least {@link AUTO_GPU_MIN_BATCH} samples; the CPU
   * otherwise (always on SwiftShader and other fallback adapters, and in Node). `'webgpu'`: every
   * call on the GPU; rejects with `NO_WEBGPU` where there is no adapter. `'cpu'`: never the GPU.
   */
  backend?: Backend;
  /** Samples per internal chunk for `predictBatch` (memory ∝ maxBatch); default 64, 1..65536. */
  maxBatch?: number;
  /**
   * Let `'auto'` use a fallback (software) adapter such as SwiftShader, with the same per-call
   * rule as a real GPU. Default `false`: those are slower than the CPU backend. Mostly for tests.
   */
  allowFallbackAdapter?: boolean;
  /**
   * A trust policy: only a model signed (`mdeploy sign`) by one of these Ed25519 public keys, with
   * a signature that verifies, loads; any other model rejects with `UNTRUSTED` before it is
   * parsed (built-in models are unsigned, so they are refused too). Each key is the text of a
   * `.pub` file written by `mdeploy keygen` (`mdeploy-ed25519-public <64 hex digits>`) or its 32
   * bytes; a malformed, secret or weak (small-order) key rejects with `BAD_INPUT`. `[]` refuses
   * every model. Verified with WebCrypto's Ed25519, so it needs `crypto.subtle` (browsers: https
   * or localhost; else `UNSUPPORTED`). Omitted: no policy, and a signed model loads unverified.
   */
  trustedKeys?: ReadonlyArray<string | Uint8Array>;
  /**
   * The key of an encrypted model (`mdeploy encrypt`): the text of its `.enckey` file
   * (`mdeploy-chacha20poly1305-key <64 hex digits>`, from `mdeploy keygen --encryption`) or the
   * key's 32 bytes. Decrypted in memory, in the .wasm (ChaCha20-Poly1305), after `trustedKeys` is
   * checked against the encrypted file; never written anywhere. The package wipes its own copies
   * of the key and of the decrypted file after loading; your array is left as it is (wipe it
   * yourself), and a string cannot be wiped. A model that is not encrypted ignores it. Wrong key
   * or changed file: `DECRYPT_FAILED`; a malformed key: `BAD_INPUT`. In a browser the key is with
   * the client: this protects the model at rest, on a CDN and in transit, not from the user.
   */
  decryptionKey?: string | Uint8Array | ArrayBuffer;
}

export interface InitOptions {
  /** `'auto'` (default) picks `'relaxed'` where `WebAssembly.validate` accepts relaxed SIMD, else `'simd'`. */
  variant?: 'auto' | 'simd' | 'relaxed';
  /**
   * The WebGPU-capable .wasm of the matching variant when you host it yourself (`dist/mdeploy_wasm_bg.wasm` or
   * `_relaxed.wasm`): URL, path (Node), bytes, a Response or a compiled `WebAssembly.Module`. Given without
   * `cpuWasm`, it serves every model, WebGPU or not.
   */
  wasm?: URL | string | ArrayBuffer | ArrayBufferView | ResponseLike | object;
  /** The CPU-only .wasm of the matching variant when you host it yourself (`dist/mdeploy_wasm_cpu_bg.wasm` or `_cpu_relaxed.wasm`): what models run on when no WebGPU adapter is used. */
  cpuWasm?: URL | string | ArrayBuffer | ArrayBufferView | ResponseLike | object;
}

export interface RuntimeInfo {
  variant: 'simd' | 'relaxed';
  simd128: boolean;
  relaxedSimd: boolean;
  /** CPU kernel set compiled in, e.g. `'wasm-simd128'`. */
  kernel: string;
  version: string;
  /** The `.mdm` format version this build writes (it reads any 1.x). */
  formatVersion: string;
  /** Which .wasm: `'cpu-only'` (no WebGPU code; what `init()` starts) or `'full'` (with the WebGPU engine). */
  wasmModule: 'cpu-only' | 'full';
}

/** Anything with `width`, `height` and pixel `data`: a canvas `ImageData` (RGBA bytes), grey bytes, or float luminance. */
export interface ImageLike {
  width: number;
  height: number;
  data: Uint8ClampedArray | Uint8Array | Float32Array;
}

/**
 * One sample: `Float32Array(inputLen)` (for MNIST: 784 values in 0..1, light ink on dark),
 * a 28×28 grey `Uint8ClampedArray`/`Uint8Array` (784 bytes, light ink on dark, used as is),
 * or an image of any size, which goes through {@link preprocess} first.
 */
export type Input = Float32Array | number[] | Uint8ClampedArray | Uint8Array | ImageLike;

export interface Prediction {
  /** Index of the most probable class. */
  label: number;
  /** The model's name for that class (for the MNIST models `'0'`…`'9'`). */
  name: string;
  /** `outputLen` values (class probabilities for models ending in Softmax). */
  probs: Float32Array;
  backend: 'cpu' | 'webgpu';
  /** Time spent in the engine, milliseconds (excludes input conversion). */
  ms: number;
}

export interface BatchPrediction {
  /** Argmax of each sample. */
  labels: Int32Array;
  /** `n × outputLen` values, sample after sample. */
  probs: Float32Array;
  n: number;
  backend: 'cpu' | 'webgpu';
  ms: number;
}

/** `GPUAdapter.info`, as `model.info().adapter`. */
export interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** `true` for software adapters (SwiftShader): `'auto'` never uses those. */
  isFallbackAdapter: boolean;
}

/** `backend: 'auto'` sends calls of at least this many samples to a (non-fallback) GPU; smaller ones to the CPU. */
export declare const AUTO_GPU_MIN_BATCH: number;

export interface ModelInfo {
  name: string;
  version: string;
  inputShape: number[];
  inputLen: number;
  outputLen: number;
  labels: string[];
  backend: 'cpu' | 'webgpu';
  kernel: string;
  variant: 'simd' | 'relaxed';
  /** The .wasm this model runs on: `'cpu-only'` unless it was loaded to use a WebGPU adapter (`'full'`). */
  wasmModule: 'cpu-only' | 'full';
  maxBatch: number;
  /** The `backend` option the model was loaded with. */
  requestedBackend: Backend;
  /** The CPU kernel set (also used after a lost device); `kernel` is `'webgpu-wgsl'` on the GPU. */
  cpuKernel: string;
  /** Samples per GPU submit (WebGPU only). */
  gpuChunk?: number;
  /** The WebGPU adapter seen at load (`null` with `backend: 'cpu'` or without WebGPU). */
  adapter: AdapterInfo | null;
  /** Why the GPU device was lost and the model moved to the CPU; `null` while it was not. */
  deviceLost: string | null;
  /** The key id (16 hex digits) whose signature verified, when loaded with `trustedKeys`; else `null` (also for a signed model loaded without a policy: nothing was verified). */
  signedBy: string | null;
  params: number;
  /** Multiply-accumulates per sample. */
  macs: number;
  layers: string[];
  /** SHA-256 of the file, hex. */
  digest: string;
  fileBytes: number;
  preprocessing: { recipe: string; range: [number, number]; inkHigh: boolean };
  provenance: { data: string; split: string; arch: string; epochs: number; testAccuracy: number | null };
}

export declare class Model {
  private constructor();
  /** Loads and validates a model. Default source: `'mnist-cnn'`. */
  static load(source?: ModelSource, options?: LoadOptions): Promise<Model>;
  /** `'webgpu'` while the model holds a GPU device, else `'cpu'` (also after a lost device). Per call: `Prediction.backend`. */
  readonly backend: 'cpu' | 'webgpu';
  readonly inputLen: number;
  readonly outputLen: number;
  readonly labels: string[];
  /** One sample. Async so that GPU backends fit the same call; on the CPU it resolves at once. */
  predict(input: Input): Promise<Prediction>;
  /** Same as `predict`, synchronously, on the CPU. Throws `UNSUPPORTED` on a model loaded with `backend: 'webgpu'` (GPU readback is asynchronous). */
  predictSync(input: Input): Prediction;
  /** `n` samples in one array of `n × inputLen` floats; `n` defaults to `input.length / inputLen`. */
  predictBatch(input: Float32Array, n?: number): Promise<BatchPrediction>;
  /** Synchronously, on the CPU; `UNSUPPORTED` on a `backend: 'webgpu'` model, like `predictSync`. */
  predictBatchSync(input: Float32Array, n?: number): BatchPrediction;
  info(): ModelInfo;
  /** Frees the model's wasm memory and destroys its GPU buffers and device now (otherwise the garbage collector does, eventually). */
  dispose(): void;
}

/** Loads the runtime, the CPU-only module (done by `Model.load` on first use; the WebGPU-capable module is loaded only for a model that uses an adapter). Options apply to the first call; a later call asking for another variant or .wasm rejects with UNSUPPORTED. */
export declare function init(options?: InitOptions): Promise<RuntimeInfo>;

/**
 * A `.mdm` file's content hash (SHA-256 of bytes 0..32 and 64.., MDM_FORMAT.md) computed with
 * WebCrypto, or null where there is none (insecure browser contexts) or the input is under 64
 * bytes. `Model.load` computes it itself; exported for tools that time the load steps.
 */
export declare function contentHash(bytes: Uint8Array): Promise<Uint8Array | null>;

/** What this JS engine supports: `{ simd128, relaxedSimd }`. */
export declare function wasmFeatures(): { simd128: boolean; relaxedSimd: boolean };

/**
 * The MNIST recipe: crop to the ink, fit 20×20 keeping the aspect ratio, centre by mass in
 * 28×28, fix the polarity (dark-on-light is inverted; transparent canvases use alpha).
 * Returns 784 floats in 0..1, ink high.
 */
export declare function preprocess(image: ImageLike): Promise<Float32Array>;

/** Names accepted by `Model.load` for the models shipped in the package. */
export declare const builtinModels: readonly BuiltinModel[];
/** Size and test accuracy of each built-in model, known without loading it (e.g. for a model picker). */
export declare const builtinCatalog: Readonly<Record<BuiltinModel, Readonly<BuiltinModelFacts>>>;
