// Types for mdeploy-wasm/server (server.js).

/** A model's bytes: an `.mdm` file's contents, or where to read them. */
export type ModelSource = Uint8Array | ArrayBuffer | ArrayBufferView | URL | string;

export interface ServerOptions {
  /**
   * The server wasm (`mdeploy-wasm/dist/server/mdeploy_wasm_server_bg.wasm`). Default: read next to
   * this file (Node, Bun, Deno; browsers fetch it). In Cloudflare Workers pass the imported
   * `WebAssembly.Module`: Workers refuse to compile wasm bytes at run time.
   * The wasm is instantiated once per JS realm: the first server created decides where it comes from.
   */
  wasm?: WebAssembly.Module | Uint8Array | ArrayBuffer | URL | string;
  /**
   * Models to serve, by name (the `{name}` of the routes). A value is the model's bytes or a URL, or
   * `{ bytes, version, source }` (version default `"1"`; `source`, e.g. a file or a Worker binding,
   * is named in the error when the bytes do not load). Default: the three packaged models, `mnist-mlp`,
   * `mnist-cnn` and `mnist-resnet`.
   */
  models?: Record<string, ModelSource | { bytes: ModelSource; version?: string | number; source?: string }>;
  /**
   * Larger request bodies get 413 without being read past this many bytes (Content-Length is
   * checked first, a streamed body is cancelled at the limit). Default and maximum: 10 MiB.
   */
  maxBodyBytes?: number;
  /**
   * A trust policy, as `Model.load`'s (index.d.ts): every model must be signed by one of these
   * Ed25519 public keys (`.pub` file texts or 32 raw bytes) with a signature that verifies
   * (WebCrypto's Ed25519). One model that is not makes the whole load fail: `ready()` rejects
   * with an Error whose `code` is `UNTRUSTED` (`BAD_INPUT` for a malformed key) and every request
   * answers 500 with that code. Omitted: no policy.
   */
  trustedKeys?: ReadonlyArray<string | Uint8Array>;
  /**
   * The key of the encrypted models (`mdeploy encrypt`): the `.enckey` file's text or the key's
   * 32 bytes, as `Model.load`'s. Every encrypted model is decrypted in memory after `trustedKeys`
   * is checked; models that are not encrypted ignore it. A model that does not decrypt fails the
   * whole load, as an untrusted one does (`DECRYPT_FAILED`, naming the model and the key id).
   */
  decryptionKey?: string | Uint8Array | ArrayBuffer;
}

export interface Server {
  /**
   * Answers one request with the standard Fetch API: KServe v2 (`/v2/...`), TF Serving REST
   * (`/v1/models/...`) and `POST /predict`. Bad requests resolve to JSON errors with 4xx statuses;
   * the promise does not reject. The object itself can be a Worker's default export.
   */
  fetch(request: Request): Promise<Response>;
  /** Resolves once the wasm and the models are loaded; rejects with the reason if they could not be. */
  ready(): Promise<void>;
  /** Current size of the wasm linear memory in bytes (it grows, never shrinks). */
  wasmMemoryBytes(): number;
  /** The body limit in force. */
  readonly maxBodyBytes: number;
}

/** 10 MiB: the body limit of the shared Rust implementation. */
export const MAX_BODY_BYTES: number;

/**
 * Creates a server. Returns at once; loading happens in the background (await `ready()` to see
 * load errors early; `fetch` waits for it). Throws a TypeError/RangeError for invalid options.
 */
export function createServer(options?: ServerOptions): Server;
