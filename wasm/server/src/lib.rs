//! # mdeploy-wasm-server
//!
//! The wasm-bindgen layer of `mdeploy-wasm/server`: one class, [`WasmServer`], around
//! `mdeploy_serve::Server`, the pure-Rust implementation of every REST route (KServe v2, TF
//! Serving, `/predict`) that the `wasi:http` component (`worker/`) uses too. No route logic lives
//! here or in JavaScript: this crate only moves bytes across the JS boundary, and `server.js`
//! turns Fetch-API `Request`s into calls of [`WasmServer::handle`].

use js_sys::{Array, Object, Reflect, Uint8Array};
use mdeploy_serve::{ModelEntry, Request, Response, Server};
use std::borrow::Cow;
use wasm_bindgen::prelude::*;

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a plain property on a fresh Object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

/// `{ status, contentType, headers: [[name, value], ...], body: Uint8Array }` (body copied out
/// of wasm memory, so it outlives the next call).
fn to_js(r: &Response) -> Object {
    let obj = Object::new();
    set(&obj, "status", r.status);
    set(&obj, "contentType", r.content_type);
    let headers: Array = r
        .headers
        .iter()
        .map(|(k, v)| -> JsValue { Array::of2(&JsValue::from_str(k), &JsValue::from_str(v)).into() })
        .collect();
    set(&obj, "headers", headers);
    set(&obj, "body", Uint8Array::from(r.body.as_slice()));
    obj
}

/// The models a server answers for, kept so the server can be rebuilt when one is added.
struct Model {
    name: String,
    version: String,
    bytes: Vec<u8>,
    source: Option<String>,
}

/// Every route of mdeploy-serve over a set of `.mdm` models. Used by `server.js`; not part of
/// the documented API (that is `createServer`).
#[wasm_bindgen]
pub struct WasmServer {
    models: Vec<Model>,
    // Built on the first request after the last `addModel`: `Server::new` takes every model at
    // once, and building it once per model set (not per request) keeps the packed weights warm.
    server: Option<Server>,
}

impl Default for WasmServer {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen]
impl WasmServer {
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmServer {
        WasmServer { models: Vec::new(), server: None }
    }

    /// Serves `bytes` (an `.mdm` file, never trusted: the serve crate validates it) as
    /// `name`/`version`; `source` (optional: a file, a Worker binding) is named in the error if
    /// the bytes do not load. Models added later than the first request rebuild the server.
    #[wasm_bindgen(js_name = addModel)]
    pub fn add_model(&mut self, name: String, version: String, bytes: Vec<u8>, source: Option<String>) {
        self.models.push(Model { name, version, bytes, source });
        self.server = None;
    }

    /// One request → one response object (see `to_js`). `path` may carry a `?query`.
    /// `inference_header_content_length` is that request header (Triton's binary tensor
    /// extension), the only other header the API reads; omitted (`undefined`) means absent.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<String>,
        body: &[u8],
        inference_header_content_length: Option<String>,
    ) -> Object {
        let models = &self.models;
        let server = self.server.get_or_insert_with(|| {
            Server::new(
                models
                    .iter()
                    // Untrusted: the digest is checked too, once per model and instance (Server
                    // loads each model on its first request and keeps it).
                    .map(|m| {
                        let e = ModelEntry::new(m.name.clone(), m.version.clone(), Cow::Owned(m.bytes.clone()));
                        match &m.source {
                            Some(s) => e.with_source(s.clone()),
                            None => e,
                        }
                    })
                    .collect(),
            )
        });
        let header;
        let headers: &[(&str, &str)] = match &inference_header_content_length {
            Some(v) => {
                header = [("inference-header-content-length", v.as_str())];
                &header
            }
            None => &[],
        };
        let req = Request { method, path, content_type: content_type.as_deref(), headers, body };
        to_js(&server.handle(&req))
    }

    /// The 413 response, for bodies the host stops reading at `maxBodyBytes()` (so the
    /// oversized bytes never reach wasm memory).
    #[wasm_bindgen(js_name = payloadTooLarge)]
    pub fn payload_too_large() -> Object {
        to_js(&Response::payload_too_large())
    }

    /// The body limit of the shared implementation (10 MiB).
    #[wasm_bindgen(js_name = maxBodyBytes)]
    pub fn max_body_bytes() -> f64 {
        mdeploy_serve::MAX_BODY_BYTES as f64
    }
}

/// As `mdeploy-wasm`'s `signedMessage` (the same core function): a signed model's key id,
/// signature and the message to verify, `null` when unsigned, `BAD_MODEL`/`UNSUPPORTED` for a
/// damaged file (a JS `Error` with that `code`). `server.js` verifies it with WebCrypto's Ed25519
/// before `addModel` when `createServer` is given `trustedKeys`.
#[wasm_bindgen(js_name = signedMessage)]
pub fn signed_message(bytes: &[u8]) -> Result<JsValue, JsValue> {
    let m = match mdeploy_core::format::signed_message(bytes) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(JsValue::NULL),
        Err(e) => {
            let err = js_sys::Error::new(&e.message);
            err.set_name("MdeployError");
            set(&err, "code", e.code());
            return Err(err.into());
        }
    };
    let o = Object::new();
    set(&o, "keyId", m.key_id.to_string());
    set(&o, "signature", Uint8Array::from(&m.signature[..]));
    set(&o, "message", Uint8Array::from(&m.message[..]));
    Ok(o.into())
}

/// As `mdeploy-wasm`'s `decryptModel` (the same core calls): the plain `.mdm` bytes of an
/// encrypted model decrypted in memory with `key` (the `.enckey` text as UTF-8 when `text`, else
/// the 32 raw bytes), `null` for a file that is not encrypted; errors are JS `Error`s with a
/// `code` (`BAD_INPUT` for the key, `DECRYPT_FAILED`, `BAD_MODEL`). The key and the decrypted
/// bytes held here are wiped; `server.js` calls this after the trust policy (encrypt-then-sign).
#[wasm_bindgen(js_name = decryptModel)]
pub fn decrypt_model(bytes: &[u8], key: Vec<u8>, text: bool) -> Result<JsValue, JsValue> {
    use mdeploy_core::format::{self, DecryptionKey};
    let fail = |e: mdeploy_core::Error, prefix: &str| -> JsValue {
        let err = js_sys::Error::new(&format!("{prefix}{}", e.message));
        err.set_name("MdeployError");
        set(&err, "code", e.code());
        err.into()
    };
    let key = zeroize::Zeroizing::new(key);
    let key = if text {
        match std::str::from_utf8(&key) {
            Ok(s) => DecryptionKey::from_text(s),
            Err(_) => Err(mdeploy_core::Error::bad_input("not text: pass the .enckey file's text, or the key's 32 bytes")),
        }
    } else {
        match <&[u8; 32]>::try_from(&key[..]) {
            Ok(k) => Ok(DecryptionKey::from_bytes(k)),
            Err(_) => Err(mdeploy_core::Error::bad_input(format!(
                "{} bytes; a ChaCha20-Poly1305 key has 32 (or pass the text of its .enckey file)",
                key.len()
            ))),
        }
    }
    .map_err(|e| fail(e, "decryptionKey: "))?;
    Ok(match format::decrypt_in_memory(bytes, &key).map_err(|e| fail(e, ""))? {
        Some(plain) => Uint8Array::from(&plain[..]).into(),
        None => JsValue::NULL,
    })
}
