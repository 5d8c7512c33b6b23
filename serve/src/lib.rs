//! # mdeploy-serve
//!
//! The whole mdeploy HTTP API as one **pure function**: [`Server::handle`] takes a [`Request`]
//! (method, path, content type, other headers, body bytes) and returns a [`Response`]. No IO, no async, no host
//! types, so every host shares this one implementation and its tests:
//!
//! ```text
//!  wasmtime serve (Spin, wasmCloud: untested) ──> worker/ (wasi:http)        ─┐
//!  Cloudflare Workers                          ──> wasm-bindgen wrapper       ─┼─> Server::handle(&Request) -> Response
//!  mdeploy serve (native, long-lived)          ──> serve/server/ (hyper+tonic)─┘       │
//!                                                                                     ▼
//!                         routes: KServe v2 (/v2/...), TF Serving REST (/v1/...), /predict
//!                                                                                     │ lazily, per model
//!                                                                                     ▼
//!                              mdeploy_core::format::read → Plan::new → Plan::run / preprocess
//! ```
//!
//! Routes and error mapping are described in `API.md` and, for clients, `openapi.yaml` (also
//! served at `GET /openapi.yaml`). A host reads at most [`MAX_BODY_BYTES`] of a body; if there is
//! more it answers [`Response::payload_too_large`] without calling `handle`.
//!
//! `wasmtime serve` instantiates the component afresh for every request, so [`Server::new`]
//! parses nothing: a model is read and planned the first time a request needs it, unless the
//! host did that once ahead of time with [`Server::preload`] (the worker's Wizer snapshot).

use std::borrow::Cow;
use std::sync::Arc;

use mdeploy_core::{Error as CoreError, ErrorKind, LoadedModel, ModelInfo, Plan, Trust};

mod data;
#[cfg(feature = "embedded-models")]
mod embedded;
mod fast_infer;
mod image;
mod kserve;
pub use kserve::index_request_ready;
mod tfserving;

/// Largest request body a host should hand to [`Server::handle`] (10 MiB).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The OpenAPI 3.1 description of every route, served at `GET /openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// One HTTP request, borrowed from the host.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `"GET"`, `"POST"`, ... (compared case-sensitively, as HTTP methods are).
    pub method: &'a str,
    /// The path, possibly with a `?query` (e.g. `/predict?model=mnist-mlp`).
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    /// Other request headers the API reads, `(name, value)`; names are matched
    /// case-insensitively. Today only `inference-header-content-length` (Triton's binary tensor
    /// extension, see `kserve.rs`) is read, so a host may pass just that one, or `&[]`.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The value of header `name` (case-insensitive), the first one if repeated.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|&(_, v)| v)
    }
}

/// One HTTP response for the host to write out.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers (`allow`, CORS), names in lower case.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The 413 answer for a host that stopped reading a body past [`MAX_BODY_BYTES`].
    pub fn payload_too_large() -> Response {
        ApiError::new(
            413,
            "BODY_TOO_LARGE",
            format!(
                "the request body is larger than the limit of {MAX_BODY_BYTES} bytes (10 MiB); send one image or a \
                 smaller batch per request"
            ),
        )
        .into_response()
    }

    fn json(status: u16, body: Vec<u8>) -> Response {
        Response { status, content_type: "application/json", headers: cors(), body }
    }

    /// The body as UTF-8 text (for tests and logs).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

fn cors() -> Vec<(&'static str, String)> {
    // Browsers (the web demo) call the API from other origins; nothing here uses cookies.
    vec![("access-control-allow-origin", "*".to_string())]
}

/// A model the server offers: its public name and version, and its `.mdm` bytes.
#[derive(Clone, Debug)]
pub struct ModelEntry {
    pub name: String,
    pub version: String,
    pub bytes: Cow<'static, [u8]>,
    /// `true` only for bytes whose SHA-256 digest was verified before they reached us (the
    /// models embedded at build time: `build.rs` checks them). Skips the digest at run time,
    /// which matters when a fresh instance serves each request; all structural checks stay.
    pub trusted: bool,
    /// Where the bytes came from when that is not the build (a file a host read, a binding),
    /// named in the error when the model does not load so an operator knows what to fix.
    pub source: Option<String>,
    /// A trust policy for these bytes: when set, the model loads only if it is signed by one of
    /// the keys and the signature verifies; otherwise its requests answer 500 `UNTRUSTED`.
    /// Feature `trust-policy` (default; off in the npm server wasm, which verifies in JavaScript
    /// with WebCrypto and so carries no Ed25519 code).
    #[cfg(feature = "trust-policy")]
    pub trusted_keys: Option<Arc<[mdeploy_core::format::PublicKey]>>,
}

impl ModelEntry {
    /// An entry whose bytes are checked in full (digest included) when first used.
    pub fn new(name: impl Into<String>, version: impl Into<String>, bytes: impl Into<Cow<'static, [u8]>>) -> ModelEntry {
        ModelEntry {
            name: name.into(),
            version: version.into(),
            bytes: bytes.into(),
            trusted: false,
            source: None,
            #[cfg(feature = "trust-policy")]
            trusted_keys: None,
        }
    }

    /// The same entry under a trust policy (see [`ModelEntry::trusted_keys`]).
    #[cfg(feature = "trust-policy")]
    pub fn with_trusted_keys(mut self, keys: Arc<[mdeploy_core::format::PublicKey]>) -> ModelEntry {
        self.trusted_keys = Some(keys);
        self
    }

    /// The trust policy compiled in with the embedded models (`MDEPLOY_EMBED_TRUSTED_KEYS=DIR`
    /// at build time, `worker/build.sh --trusted-keys DIR`), for the models a host adds at run
    /// time; `None` without one. Under a policy the embedded models are only the signed ones
    /// that build.rs verified (the unsigned defaults are left out).
    #[cfg(all(feature = "embedded-models", feature = "trust-policy"))]
    pub fn build_trusted_keys() -> Option<Vec<mdeploy_core::format::PublicKey>> {
        embedded::trusted_keys()
    }

    /// The same entry, saying where its bytes came from (e.g. `/models/x.mdm`).
    pub fn with_source(mut self, source: impl Into<String>) -> ModelEntry {
        self.source = Some(source.into());
        self
    }

    /// The default models compiled into this crate (listed in `models/defaults.json`: its
    /// `default` first, then the others in the file's order), version `"1"`, read and planned by
    /// `build.rs` (a broken file fails the build).
    #[cfg(feature = "embedded-models")]
    pub fn embedded() -> Vec<ModelEntry> {
        embedded::entries()
    }
}

/// Sees every successful model run, whatever the route: a host's monitoring (the native
/// server's prediction counts and input drift). Called on the request's thread right after the
/// plan ran, before the answer is built, so it must be cheap; it cannot change the answer.
pub trait Observer: Send + Sync {
    /// `n` samples of `model` `version` ran: `input` is `n × info.input_len` values as the model
    /// saw them (after any preprocessing), `output` is `n × info.output_len`.
    fn observe(&self, model: &str, version: &str, info: &ModelInfo, input: &[f32], output: &[f32], n: usize);
}

/// Runs a model's samples for the host instead of the [`Server`]'s own plan: the native server's
/// dynamic batching, which merges the runs of concurrent requests into one. Called from
/// `Loaded::run` after the request was parsed and checked (so one request's bad input never
/// reaches a batch) and before the [`Observer`], which still sees this request's own samples.
/// The outputs must be what this `Server`'s plan (one sample per chunk) would give.
pub trait Executor: Send + Sync {
    /// Runs `n` samples (`input`: `n × input_len` values) of `model` `version`; returns the
    /// `n × output_len` outputs, or `None` to let the `Server` run them itself.
    fn run(&self, model: &str, version: &str, input: &[f32], n: usize) -> Option<Result<Vec<f32>, CoreError>>;
}

/// A model after its first use: what the routes describe, and the plan that runs it.
pub(crate) struct Loaded {
    pub info: ModelInfo,
    pub plan: Plan,
    /// Largest batch one request may carry ([`Server::set_max_batch`]; unlimited by default).
    pub max_batch: usize,
    /// The host's observer with this model's name and version ([`Server::set_observer`]).
    observer: Option<(Arc<dyn Observer>, String, String)>,
    /// The host's executor with this model's name and version ([`Server::set_executor`]).
    executor: Option<(Arc<dyn Executor>, String, String)>,
}

impl Loaded {
    fn load(entry: &ModelEntry) -> Result<Loaded, CoreError> {
        #[cfg_attr(not(feature = "trust-policy"), allow(unused_mut))]
        let mut trust = if entry.trusted { Trust::DigestChecked } else { Trust::Verify };
        #[cfg(feature = "trust-policy")]
        if let Some(keys) = &entry.trusted_keys {
            // Header, digest and signature, before any section is parsed; the digest is then
            // known to be right.
            mdeploy_core::format::verify_signature(&entry.bytes, keys)?;
            trust = Trust::DigestChecked;
        }
        let LoadedModel { info, model } = LoadedModel::read(&entry.bytes, trust)?;
        // One sample per chunk: a small arena is cheap to set up per request, and `run` chunks
        // larger batches itself.
        let plan = Plan::new(&model, 1)?;
        Ok(Loaded { info, plan, max_batch: usize::MAX, observer: None, executor: None })
    }

    pub fn input_len(&self) -> usize {
        self.plan.input_len()
    }
    pub fn output_len(&self) -> usize {
        self.plan.output_len()
    }
    pub fn label(&self, class: usize) -> String {
        self.info.label(class)
    }
    pub fn input_shape(&self) -> &[usize] {
        &self.info.meta.input_shape
    }

    /// Runs `n` samples; returns the `n × output_len` outputs.
    pub fn run(&mut self, input: &[f32], n: usize) -> Result<Vec<f32>, ApiError> {
        if n > self.max_batch {
            return Err(ApiError::bad(format!(
                "the batch has {n} samples but this model takes at most {} per request (its max_batch); split the request",
                self.max_batch
            )));
        }
        let by_host = self.executor.as_ref().and_then(|(e, name, version)| e.run(name, version, input, n));
        let out = match by_host {
            Some(r) => r.map_err(ApiError::from_core)?,
            None => {
                let mut out = vec![0.0; n.saturating_mul(self.output_len())];
                self.plan.run(input, n, &mut out).map_err(ApiError::from_core)?;
                out
            }
        };
        if let Some((o, name, version)) = &self.observer {
            o.observe(name, version, &self.info, input, &out, n);
        }
        Ok(out)
    }
}

/// Index of the largest value (the first one on ties); NaN never wins.
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row.get(best).copied().unwrap_or(f32::NEG_INFINITY) {
            best = i;
        }
    }
    best
}

struct Slot {
    entry: ModelEntry,
    state: Option<Result<Loaded, CoreError>>,
    max_batch: usize,
}

/// The API over a fixed set of models. Cheap to create; models load on first use and stay
/// loaded for as long as the `Server` lives.
pub struct Server {
    slots: Vec<Slot>,
    /// Version labels, `(model, label, version)`: a label stands for its version wherever a
    /// version is named (`/v2/models/m/versions/stable/...`, gRPC `model_version`) and in TF
    /// Serving's `/v1/models/m/labels/stable...` paths.
    labels: Vec<(String, String, String)>,
    observer: Option<Arc<dyn Observer>>,
    executor: Option<Arc<dyn Executor>>,
}

/// An error answer: status, stable code and a message saying what to fix.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), allow: None }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BAD_INPUT", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "NOT_FOUND", message)
    }
    pub fn from_core(e: CoreError) -> ApiError {
        match e.kind {
            ErrorKind::BadInput => ApiError::new(400, "BAD_INPUT", e.message),
            // A model that does not load is the server's fault, not the client's.
            ErrorKind::BadModel => ApiError::new(500, "BAD_MODEL", e.message),
            ErrorKind::Unsupported => ApiError::new(500, "UNSUPPORTED", e.message),
            // The server's trust policy refused one of its own models: also the server's side.
            ErrorKind::Untrusted => ApiError::new(500, "UNTRUSTED", e.message),
            ErrorKind::DecryptFailed => ApiError::new(500, "DECRYPT_FAILED", e.message),
        }
    }
    pub fn into_response(self) -> Response {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a str,
            code: &'a str,
        }
        let body = serde_json::to_vec(&Body { error: &self.message, code: self.code }).unwrap_or_default();
        let mut r = Response::json(self.status, body);
        if let Some(allow) = self.allow {
            r.headers.push(("allow", allow.to_string()));
        }
        r
    }
}

/// Serializes a response body; our own types always serialize, but never panic if not.
pub(crate) fn to_json<T: serde::Serialize>(status: u16, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => Response::json(status, body),
        Err(e) => ApiError::new(500, "INTERNAL", format!("could not serialize the response: {e}")).into_response(),
    }
}

/// A route: which methods it takes. `Method` mismatches become 405 with an `Allow` header.
pub(crate) fn require(method: &str, allowed: &'static str) -> Result<(), ApiError> {
    if allowed.split(", ").any(|m| m == method) {
        Ok(())
    } else {
        Err(ApiError {
            status: 405,
            code: "METHOD_NOT_ALLOWED",
            message: format!("{method} is not allowed here; use {allowed}"),
            allow: Some(allowed),
        })
    }
}

impl Server {
    /// A server for `models`. Parses nothing: each model is read on the first request for it.
    pub fn new(models: Vec<ModelEntry>) -> Server {
        Server {
            slots: models.into_iter().map(|entry| Slot { entry, state: None, max_batch: usize::MAX }).collect(),
            labels: Vec::new(),
            observer: None,
            executor: None,
        }
    }

    /// Hands every successful model run of this server to `observer` (see [`Observer`]); the
    /// answers do not change.
    pub fn set_observer(&mut self, observer: Arc<dyn Observer>) {
        for s in &mut self.slots {
            if let Some(Ok(l)) = &mut s.state {
                l.observer = Some((observer.clone(), s.entry.name.clone(), s.entry.version.clone()));
            }
        }
        self.observer = Some(observer);
    }

    /// Hands the model runs of this server to `executor` (see [`Executor`]); without one, or
    /// when it declines a run, the server's own plan runs it.
    pub fn set_executor(&mut self, executor: Arc<dyn Executor>) {
        for s in &mut self.slots {
            if let Some(Ok(l)) = &mut s.state {
                l.executor = Some((executor.clone(), s.entry.name.clone(), s.entry.version.clone()));
            }
        }
        self.executor = Some(executor);
    }

    /// Points version label `label` (`stable`, `canary`, ...) of `model` at `version`, replacing
    /// an earlier target. Refused when the version is not served or the label is a number
    /// (it would be ambiguous with a version, as in TF Serving).
    pub fn set_label(&mut self, model: &str, label: &str, version: &str) -> Result<(), String> {
        if label.is_empty() || label.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("label '{label}' of model '{model}': a label must be a non-empty name, not a number"));
        }
        if !self.slots.iter().any(|s| s.entry.name == model && s.entry.version == version) {
            return Err(format!(
                "label '{label}' of model '{model}' points at version '{version}', which is not served; served: {}",
                self.versions_of(model).join(", ")
            ));
        }
        self.labels.retain(|(m, l, _)| !(m == model && l == label));
        self.labels.push((model.to_string(), label.to_string(), version.to_string()));
        Ok(())
    }

    /// Caps the batch one request may send to every version of `model` (400 beyond it).
    pub fn set_max_batch(&mut self, model: &str, max_batch: usize) {
        for s in self.slots.iter_mut().filter(|s| s.entry.name == model) {
            s.max_batch = max_batch;
            if let Some(Ok(l)) = &mut s.state {
                l.max_batch = max_batch;
            }
        }
    }

    fn versions_of(&self, model: &str) -> Vec<&str> {
        self.slots.iter().filter(|s| s.entry.name == model).map(|s| s.entry.version.as_str()).collect()
    }

    /// Reads and plans every model now instead of on first use, so later requests find them
    /// ready. For hosts that keep the `Server` (instance reuse) or snapshot it after start-up
    /// (`worker/build.sh` runs this inside a Wizer pre-initialisation: the loaded plans then ship
    /// in the component's memory image). Pure computation: no IO, no clock, no randomness, so
    /// it may run where imports are forbidden.
    ///
    /// A model that does not load is remembered like a lazy failure (its requests answer 500),
    /// and reported here: `Err` lists every such model with the reason.
    pub fn preload(&mut self) -> Result<(), String> {
        let mut failed = Vec::new();
        for i in 0..self.slots.len() {
            if let Err(e) = self.load(i) {
                failed.push(e.message);
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    /// Adds a model after creation: extra models a host finds at run time (`worker/` serves the
    /// `.mdm` files of a mounted folder), loaded on first use like the others. Refused, with the
    /// reason, when a model of that name is already served: the one there keeps serving.
    pub fn add(&mut self, entry: ModelEntry) -> Result<(), String> {
        if let Some(old) = self.slots.iter().find(|s| s.entry.name == entry.name) {
            let from = |e: &ModelEntry| e.source.clone().unwrap_or_else(|| "the build".to_string());
            return Err(format!(
                "{}: not served, a model called '{}' is already served (from {}); rename the file or binding",
                from(&entry),
                entry.name,
                from(&old.entry)
            ));
        }
        self.slots.push(Slot { entry, state: None, max_batch: usize::MAX });
        Ok(())
    }

    /// Adds a model the host found but could not even read (too large, an IO error): it is
    /// listed like the others, never ready, and its routes answer 500 with `reason`, so the
    /// problem shows where the model is asked for instead of the model silently missing.
    pub fn add_unavailable(&mut self, name: &str, version: &str, source: &str, reason: &str) -> Result<(), String> {
        self.add(ModelEntry::new(name, version, Vec::new()).with_source(source))?;
        if let Some(slot) = self.slots.last_mut() {
            slot.state = Some(Err(CoreError::bad_model(reason.to_string())));
        }
        Ok(())
    }

    /// The models offered, in order: `(name, version)`.
    pub fn models(&self) -> impl Iterator<Item = (&str, &str)> {
        self.slots.iter().map(|s| (s.entry.name.as_str(), s.entry.version.as_str()))
    }

    /// Answers one request. Never panics on anything in `req`.
    pub fn handle(&mut self, req: &Request) -> Response {
        if req.body.len() > MAX_BODY_BYTES {
            return Response::payload_too_large();
        }
        let (path, query) = match req.path.split_once('?') {
            Some((p, q)) => (p, q),
            None => (req.path, ""),
        };
        if req.method == "OPTIONS" {
            // CORS preflight: any route, any of our methods.
            let mut r = Response { status: 204, content_type: "text/plain", headers: cors(), body: Vec::new() };
            r.headers.push(("access-control-allow-methods", "GET, POST, OPTIONS".to_string()));
            // Browsers may send Triton's binary-tensor header only if the preflight allows it.
            r.headers.push(("access-control-allow-headers", "content-type, inference-header-content-length".to_string()));
            return r;
        }
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let result = match segs.first().copied() {
            Some("v2") => kserve::route(self, req, &segs[1..]),
            Some("v1") => tfserving::route(self, req, &segs[1..]),
            Some("predict") if segs.len() == 1 => {
                require(req.method, "POST").and_then(|()| image::predict(self, req, query))
            }
            Some("openapi.yaml") if segs.len() == 1 => require(req.method, "GET").map(|()| Response {
                status: 200,
                content_type: "application/yaml",
                headers: cors(),
                body: OPENAPI_YAML.as_bytes().to_vec(),
            }),
            _ => Err(ApiError::not_found(format!(
                "no route for {} {}; the API has /v2/... (KServe v2), /v1/models/... (TensorFlow Serving), \
                 POST /predict, and its description at GET /openapi.yaml",
                req.method,
                truncate(path, 200)
            ))),
        };
        result.unwrap_or_else(ApiError::into_response)
    }

    /// Finds a model by name and (optional) version: 404 naming what exists otherwise.
    pub(crate) fn find(&self, name: &str, version: Option<&str>) -> Result<usize, ApiError> {
        let Some(i) = self.slots.iter().position(|s| s.entry.name == name) else {
            // Once per model, not once per version (slots are per version).
            let mut names: Vec<&str> = Vec::new();
            for s in &self.slots {
                if !names.contains(&s.entry.name.as_str()) {
                    names.push(s.entry.name.as_str());
                }
            }
            return Err(ApiError::not_found(format!(
                "unknown model '{}'; this server has: {}",
                truncate(name, 100),
                names.join(", ")
            )));
        };
        if let Some(v) = version {
            // A label names a version too (labels are never numbers, so the two cannot clash).
            let v = self.labels.iter().find(|(m, l, _)| m == name && l == v).map_or(v, |(_, _, target)| target.as_str());
            return self.slots.iter().position(|s| s.entry.name == name && s.entry.version == v).ok_or_else(|| {
                let labels: Vec<String> =
                    self.labels.iter().filter(|(m, _, _)| m == name).map(|(_, l, t)| format!("{l} -> {t}")).collect();
                ApiError::not_found(format!(
                    "model '{name}' has no version or label '{}'; versions: {}{}",
                    truncate(v, 100),
                    self.versions_of(name).join(", "),
                    if labels.is_empty() { String::new() } else { format!("; labels: {}", labels.join(", ")) }
                ))
            });
        }
        Ok(i)
    }

    pub(crate) fn model_count(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn entry(&self, i: usize) -> &ModelEntry {
        &self.slots[i].entry
    }

    /// The loaded model at `i`, loading it on first use (a failure is remembered too).
    pub(crate) fn load(&mut self, i: usize) -> Result<&mut Loaded, ApiError> {
        let slot = &mut self.slots[i];
        let max_batch = slot.max_batch;
        let (observer, executor) = (&self.observer, &self.executor);
        let state = slot.state.get_or_insert_with(|| {
            Loaded::load(&slot.entry).map(|mut l| {
                l.max_batch = max_batch;
                l.observer = observer.as_ref().map(|o| (o.clone(), slot.entry.name.clone(), slot.entry.version.clone()));
                l.executor = executor.as_ref().map(|e| (e.clone(), slot.entry.name.clone(), slot.entry.version.clone()));
                l
            })
        });
        match state {
            Ok(l) => Ok(l),
            Err(e) => Err(ApiError::from_core(CoreError {
                kind: e.kind,
                message: match &slot.entry.source {
                    Some(src) => format!(
                        "model '{}' version '{}' ({src}) cannot be loaded: {}",
                        slot.entry.name, slot.entry.version, e.message
                    ),
                    None => format!("model '{}' version '{}' cannot be loaded: {}", slot.entry.name, slot.entry.version, e.message),
                },
            })),
        }
    }

    /// Whether model `i` is ready: trusted entries were read and planned at build time, so they count
    /// as ready without being parsed (a health probe must stay cheap); others are loaded.
    pub(crate) fn ready(&mut self, i: usize) -> bool {
        if self.slots[i].entry.trusted && self.slots[i].state.is_none() {
            return true;
        }
        self.load(i).is_ok()
    }

    pub(crate) fn all_ready(&mut self) -> bool {
        (0..self.slots.len()).all(|i| self.ready(i))
    }
}

/// At most `max` bytes of `s` (on a char boundary), so echoing client input stays bounded.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
