//! # mdeploy-wasm
//!
//! The wasm-bindgen layer of the npm package `mdeploy-wasm`. It exports a small, low-level
//! surface (`Engine`, `preprocess*`, `buildInfo`); the public JS API (`Model.load`, `predict`,
//! error codes, choosing the SIMD variant) is the hand-written ESM wrapper in `js/index.js`,
//! typed by `js/index.d.ts`. Design notes: `DESIGN.md`.
//!
//! * [`engine`]: a loaded model plus its backend; plain Rust, testable natively.
//! * [`backend`]: the synchronous device seam (the CPU backend).
//! * `gpu`: the WebGPU engine executing the lowered `Program`, its WGSL kernels, and (wasm32)
//!   the async `GpuEngine` class. Natively only with the `native-gpu` feature (tests on Vulkan).
//!   Left out of the CPU-only module the package also ships (`cpu-only` feature,
//!   `dist/mdeploy_wasm_cpu*.wasm`): what `index.js` loads whenever no WebGPU adapter is used.
//! * [`error`]: `WasmError` and its conversion to a JS `Error` with a stable `code`.

pub mod backend;
pub mod engine;
pub mod error;
// WebGPU ships for browsers; natively the engine compiles only for its tests (`native-gpu`), so
// ordinary native builds (examples, hosts) never compile wgpu.
#[cfg(all(any(target_arch = "wasm32", feature = "native-gpu"), not(feature = "cpu-only")))]
pub mod gpu;

// talc, not std's dlmalloc, for the cold start: wasm/Cargo.toml and DESIGN.md, "The allocator".
// (Single-threaded builds only: talc's wasm allocator has no lock, and these have no threads.)
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

use engine::EngineCore;
use error::WasmError;
use js_sys::{Array, Object, Reflect};
use mdeploy_core::preprocess::{self, Polarity};
use wasm_bindgen::prelude::*;

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a plain property on a fresh Object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

fn str_array<S: AsRef<str>>(items: &[S]) -> Array {
    items.iter().map(|s| JsValue::from_str(s.as_ref())).collect()
}

fn num_array(items: &[usize]) -> Array {
    items.iter().map(|&d| JsValue::from_f64(d as f64)).collect()
}

/// A loaded model and its backend. Used by `js/index.js`; not part of the documented API.
#[wasm_bindgen]
pub struct Engine {
    inner: EngineCore,
}

#[wasm_bindgen]
impl Engine {
    /// Parses and validates `.mdm` bytes (never trusted) and compiles them for `backend`
    /// (`"auto"`, `"cpu"`, `"webgpu"`), sizing buffers for `max_batch` samples per chunk.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8], backend: &str, max_batch: u32) -> Result<Engine, JsValue> {
        Ok(Engine { inner: EngineCore::new(bytes, backend, max_batch as usize)? })
    }

    /// `new Engine(...)` for bytes the caller hashed with WebCrypto: `sha256` is the SHA-256 of
    /// `bytes[0..32] ++ bytes[64..]` (32 bytes). The reader trusts it only where it equals the
    /// digest stored in a plain file's header, and hashes the bytes itself otherwise.
    #[wasm_bindgen(js_name = withHash)]
    pub fn with_hash(bytes: &[u8], backend: &str, max_batch: u32, sha256: &[u8]) -> Result<Engine, JsValue> {
        let inner = match <[u8; 32]>::try_from(sha256) {
            Ok(h) => EngineCore::hashed(bytes, backend, max_batch as usize, h)?,
            Err(_) => EngineCore::new(bytes, backend, max_batch as usize)?,
        };
        Ok(Engine { inner })
    }

    /// Runs `n` samples (`n × inputLen` floats) and returns `n × outputLen` outputs.
    pub fn run(&mut self, input: &[f32], n: u32) -> Result<Vec<f32>, JsValue> {
        Ok(self.inner.run(input, n as usize)?)
    }

    #[wasm_bindgen(getter, js_name = inputLen)]
    pub fn input_len(&self) -> u32 {
        self.inner.input_len() as u32
    }

    #[wasm_bindgen(getter, js_name = outputLen)]
    pub fn output_len(&self) -> u32 {
        self.inner.output_len() as u32
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.inner.backend_name().to_string()
    }

    /// `true` when the model takes one 28×28 grey image (`[1, 28, 28]` or `[784]`), i.e. when
    /// images can be passed through the MNIST preprocessing.
    #[wasm_bindgen(getter, js_name = takesDigitImage)]
    pub fn takes_digit_image(&self) -> bool {
        self.inner.takes_digit_image()
    }

    /// Labels (empty strings become the class index).
    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Array {
        str_array(&self.inner.labels())
    }

    /// Everything `model.info()` shows, as a plain object.
    pub fn info(&self) -> Object {
        let i = &self.inner;
        let m = i.meta();
        let o = Object::new();
        set(&o, "name", m.name.as_str());
        set(&o, "version", m.version.as_str());
        set(&o, "inputShape", num_array(&m.input_shape));
        set(&o, "inputLen", i.input_len() as f64);
        set(&o, "outputLen", i.output_len() as f64);
        set(&o, "labels", str_array(&i.labels()));
        set(&o, "backend", i.backend_name());
        set(&o, "kernel", i.kernel());
        set(&o, "maxBatch", i.max_batch() as f64);
        set(&o, "params", i.params() as f64);
        set(&o, "macs", i.macs() as f64);
        set(&o, "layers", str_array(&i.layer_names()));
        set(&o, "digest", i.digest());
        set(&o, "fileBytes", i.file_bytes() as f64);
        let pre = Object::new();
        set(&pre, "recipe", m.preprocessing.recipe.as_str());
        set(&pre, "range", num_f32_array(&m.preprocessing.range));
        set(&pre, "inkHigh", m.preprocessing.ink_high);
        set(&o, "preprocessing", pre);
        let p = &m.provenance;
        let prov = Object::new();
        set(&prov, "data", p.data.as_str());
        set(&prov, "split", p.split.as_str());
        set(&prov, "arch", p.arch.as_str());
        set(&prov, "epochs", p.epochs as f64);
        match p.test_accuracy {
            Some(a) => set(&prov, "testAccuracy", a as f64),
            None => set(&prov, "testAccuracy", JsValue::NULL),
        }
        set(&o, "provenance", prov);
        o
    }
}

fn num_f32_array(items: &[f32]) -> Array {
    items.iter().map(|&v| JsValue::from_f64(v as f64)).collect()
}

fn dims(width: u32, height: u32) -> (usize, usize) {
    (width as usize, height as usize)
}

/// RGBA bytes (a canvas `ImageData`) of any size → 784 floats, the MNIST recipe.
#[wasm_bindgen(js_name = preprocessRgba)]
pub fn preprocess_rgba(width: u32, height: u32, rgba: &[u8]) -> Result<Vec<f32>, JsValue> {
    let (w, h) = dims(width, height);
    preprocess::from_rgba8(w, h, rgba).map_err(|e| WasmError::from(e).into())
}

/// 8-bit grey pixels of any size → 784 floats (polarity detected from the border).
#[wasm_bindgen(js_name = preprocessGray)]
pub fn preprocess_gray(width: u32, height: u32, gray: &[u8]) -> Result<Vec<f32>, JsValue> {
    let (w, h) = dims(width, height);
    preprocess::from_gray8(w, h, gray, Polarity::Auto).map_err(|e| WasmError::from(e).into())
}

/// Luminance in 0..1 of any size → 784 floats (polarity detected from the border).
#[wasm_bindgen(js_name = preprocessLuma)]
pub fn preprocess_luma(width: u32, height: u32, luma: &[f32]) -> Result<Vec<f32>, JsValue> {
    let (w, h) = dims(width, height);
    preprocess::from_luma(w, h, luma, Polarity::Auto).map_err(|e| WasmError::from(e).into())
}

/// What this `.wasm` was compiled with: lets the wrapper and tests check which variant loaded.
#[wasm_bindgen(js_name = buildInfo)]
pub fn build_info() -> Object {
    let o = Object::new();
    set(&o, "version", env!("CARGO_PKG_VERSION"));
    set(&o, "simd128", cfg!(target_feature = "simd128"));
    set(&o, "relaxedSimd", cfg!(target_feature = "relaxed-simd"));
    // false in the CPU-only module (`--features cpu-only`), which has no `GpuEngine`.
    set(&o, "webgpu", cfg!(all(any(target_arch = "wasm32", feature = "native-gpu"), not(feature = "cpu-only"))));
    set(&o, "kernel", mdeploy_core::kernels::KernelSet::best().name());
    set(&o, "formatVersion", format!("{}.{}", mdeploy_core::format::FORMAT_MAJOR, mdeploy_core::format::FORMAT_MINOR));
    o
}

/// A signed model's key id (16 hex digits), signature (64 bytes) and the exact message the
/// signature must verify against, or `null` for an unsigned file; `BAD_MODEL` for a damaged one
/// (the checks `read` makes before a trust policy: structure, place of the SIGNATURE section,
/// digest). `index.js` verifies with WebCrypto's Ed25519 and then loads the same bytes, so this
/// `.wasm` carries no Ed25519 code (DESIGN.md, "Signed models").
#[wasm_bindgen(js_name = signedMessage)]
pub fn signed_message(bytes: &[u8]) -> Result<JsValue, JsValue> {
    let Some(m) = mdeploy_core::format::signed_message(bytes).map_err(WasmError::from)? else {
        return Ok(JsValue::NULL);
    };
    let o = Object::new();
    set(&o, "keyId", m.key_id.to_string());
    set(&o, "signature", js_sys::Uint8Array::from(&m.signature[..]));
    set(&o, "message", js_sys::Uint8Array::from(&m.message[..]));
    Ok(o.into())
}

/// The plain `.mdm` bytes of an encrypted model, decrypted in memory with `key` (ChaCha20-Poly1305,
/// core `format::decrypt_in_memory`: authenticated, the inner file read with every check),
/// or `null` when `bytes` is not encrypted (the key is then unused, as natively). `key` is the
/// `.enckey` file's text as UTF-8 (`text`) or the key's 32 raw bytes. It is taken by value so this
/// side can wipe its copy; the decrypted bytes held here are wiped too once copied out to JS
/// (`index.js` wipes that copy after the engines are built). `index.js` calls this after the
/// trust policy (encrypt-then-sign: the signature covers the encrypted file).
#[wasm_bindgen(js_name = decryptModel)]
pub fn decrypt_model(bytes: &[u8], key: Vec<u8>, text: bool) -> Result<JsValue, JsValue> {
    Ok(decrypt_bytes(bytes, key, text).map_err(WasmError::from)?.map_or(JsValue::NULL, |plain| {
        js_sys::Uint8Array::from(&plain[..]).into()
    }))
}

/// [`decrypt_model`] in plain Rust.
pub fn decrypt_bytes(
    bytes: &[u8],
    key: Vec<u8>,
    text: bool,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, mdeploy_core::Error> {
    use mdeploy_core::format::{self, DecryptionKey};
    let key = zeroize::Zeroizing::new(key);
    let key = if text {
        let s = std::str::from_utf8(&key)
            .map_err(|_| mdeploy_core::Error::bad_input("decryptionKey is not text: pass the .enckey file's text, or the key's 32 bytes as a Uint8Array"))?;
        DecryptionKey::from_text(s)
    } else {
        match <&[u8; 32]>::try_from(&key[..]) {
            Ok(k) => Ok(DecryptionKey::from_bytes(k)),
            Err(_) => Err(mdeploy_core::Error::bad_input(format!(
                "decryptionKey has {} bytes; a ChaCha20-Poly1305 key has 32 (or pass the text of its .enckey file)",
                key.len()
            ))),
        }
    }
    .map_err(|e| mdeploy_core::Error { kind: e.kind, message: format!("decryptionKey: {}", e.message) })?;
    format::decrypt_in_memory(bytes, &key)
}
