//! # mdeploy-fuzz
//!
//! One function per decoder of untrusted bytes, shared by the coverage-guided fuzz targets
//! (`fuzz_targets/*.rs`, built by `cargo fuzz` with the `libfuzzer` feature) and by the replay
//! test (`tests/replay.rs`, in `npm test`), which runs every file of `corpus/<target>/` and
//! `regressions/<target>/` through the same function. Recipe and figures: `FUZZING.md`.
//!
//! A target fails when the code under test panics, aborts, hangs (libFuzzer's `-timeout`) or
//! allocates beyond libFuzzer's `-rss_limit_mb` / `-malloc_limit_mb`. An `Err` is the right
//! answer to bad bytes, so every target ignores results; what it checks is that the error came
//! back instead of a crash, and that a good request after a bad one still works.

use std::cell::RefCell;

use mdeploy_core::{image, LoadedModel, Plan, Trust};
use mdeploy_serve::{ModelEntry, Request, Server};

/// `.mdm` bytes through the whole load a host does: read (every structural check), model info,
/// plan, and one inference on zeros. The digest check is skipped (`Trust::DigestChecked`),
/// because a mutated file would almost never get past it and an attacker can recompute it: the
/// interesting code is everything after the hash.
pub fn mdm_load(data: &[u8]) {
    // The digest path too (cheap: it fails fast on almost every input).
    let _ = mdeploy_core::format::read(data);
    // A host with a trust policy and a decryption key (fixed test keys): the SIGNATURE and
    // ENCRYPTION parsers, the signature check and decryption (reached by inputs whose digest
    // holds, e.g. the replayed seeds; the digest is always checked under a policy).
    TRUST.with(|o| {
        let _ = mdeploy_core::format::read_with_options(data, o);
    });
    // A host with a decryption key and no policy (`mdeploy serve --decryption-key` alone): an
    // unsigned encrypted file reaches the decryption here, where the policy above refuses it.
    DECRYPT_ONLY.with(|o| {
        let _ = mdeploy_core::format::read_with_options(data, o);
    });
    let Ok(loaded) = LoadedModel::read(data, Trust::DigestChecked) else { return };
    let Ok(mut plan) = Plan::new(&loaded.model, 2) else { return };
    let (il, ol) = (plan.input_len(), plan.output_len());
    let input = vec![0.25f32; il];
    let mut out = vec![0.0f32; ol];
    let _ = plan.run(&input, 1, &mut out);
}

/// The seed of the signing key [`mdm_load`]'s policy trusts (test keys, nobody's): the signed
/// seeds (`examples/seeds.rs`) are signed with it, so they get past the signature check.
pub const TRUST_SIGNING_SEED: [u8; 32] = [1; 32];
/// The decryption key [`mdm_load`] holds; the encrypted seeds are encrypted for it.
pub const TRUST_DECRYPTION_KEY: [u8; 32] = [2; 32];

/// The host [`mdm_load`] plays second: a trust policy and a decryption key.
pub fn trust_options() -> mdeploy_core::format::ReadOptions {
    mdeploy_core::format::ReadOptions {
        trusted_keys: Some(vec![mdeploy_core::format::SecretKey::from_seed(&TRUST_SIGNING_SEED).public_key()]),
        decryption_key: Some(mdeploy_core::format::DecryptionKey::from_bytes(&TRUST_DECRYPTION_KEY)),
    }
}

/// [`trust_options`] without the policy: a host that only decrypts.
pub fn decrypt_options() -> mdeploy_core::format::ReadOptions {
    mdeploy_core::format::ReadOptions { trusted_keys: None, ..trust_options() }
}

thread_local! {
    static TRUST: mdeploy_core::format::ReadOptions = trust_options();
    static DECRYPT_ONLY: mdeploy_core::format::ReadOptions = decrypt_options();
}

thread_local! {
    /// One server for the whole fuzzing run, as a long-lived host keeps one: the default
    /// models compiled in, planned once.
    static SERVER: RefCell<Server> = RefCell::new({
        let mut s = Server::new(ModelEntry::embedded());
        s.preload().expect("the embedded models load");
        s
    });
}

/// Sends one request, then checks the server still answers a good one: a bad body must never
/// leave state behind that breaks the next request.
/// Returns the first answer's status.
fn serve(method: &str, path: &str, content_type: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    SERVER.with(|s| {
        let mut s = s.borrow_mut();
        let status = s.handle(&Request { method, path, content_type: Some(content_type), headers, body }).status;
        let ready = s.handle(&Request { method: "GET", path: "/v2/models/mnist-mlp/ready", content_type: None, headers: &[], body: &[] });
        assert_eq!(ready.status, 200, "the server stopped serving after a request");
        status
    })
}

/// A KServe v2 JSON inference request body (`POST /v2/models/mnist-mlp/infer`).
pub fn kserve_json(data: &[u8]) {
    kserve_json_status(data);
}
/// [`kserve_json`], returning the HTTP status.
pub fn kserve_json_status(data: &[u8]) -> u16 {
    serve("POST", "/v2/models/mnist-mlp/infer", "application/json", &[], data)
}

/// Triton's binary tensor extension: the first two bytes (little end first) are the JSON
/// header's length given in `Inference-Header-Content-Length`, the rest is the body (JSON
/// header followed by raw tensor bytes).
pub fn kserve_binary(data: &[u8]) {
    kserve_binary_status(data);
}
/// [`kserve_binary`], returning the HTTP status.
pub fn kserve_binary_status(data: &[u8]) -> u16 {
    let (len, body) = match data {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => (0, data),
    };
    let len = len.to_string();
    serve("POST", "/v2/models/mnist-mlp/infer", "application/octet-stream", &[("inference-header-content-length", &len)], body)
}

/// A TensorFlow Serving REST body (`POST /v1/models/mnist-mlp:predict`: `instances` or `inputs`).
pub fn tfserving(data: &[u8]) {
    tfserving_status(data);
}
/// [`tfserving`], returning the HTTP status.
pub fn tfserving_status(data: &[u8]) -> u16 {
    serve("POST", "/v1/models/mnist-mlp:predict", "application/json", &[], data)
}

/// PNG or PGM bytes through the decoder and the MNIST preprocessing (what `/predict`, the CLI
/// and the component do with an uploaded image), then through the HTTP route itself.
pub fn image(data: &[u8]) {
    image_status(data);
}
/// [`image`], returning the HTTP status of the `/predict` request.
pub fn image_status(data: &[u8]) -> u16 {
    let _ = image::decode_digit(data, 1 << 20);
    let ct = if data.starts_with(b"\x89PNG") { "image/png" } else { "image/x-portable-graymap" };
    serve("POST", "/predict?model=mnist-mlp", ct, &[], data)
}

/// The targets by name, for the replay test and `run.sh`'s listing.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("mdm_load", mdm_load),
    ("kserve_json", kserve_json),
    ("kserve_binary", kserve_binary),
    ("tfserving", tfserving),
    ("image", image),
];
