//! A loaded model and its backend, in plain Rust (the `#[wasm_bindgen]` class in `lib.rs` is a
//! thin shell around it, so this logic is testable natively and in `wasm-pack test`).

use crate::backend::{self, Backend, Request};
use crate::error::WasmError;
use mdeploy_core::model::Metadata;
use mdeploy_core::{format, Model};

pub struct EngineCore {
    meta: Metadata,
    layer_names: Vec<&'static str>,
    params: usize,
    macs: usize,
    digest: String,
    file_bytes: usize,
    input_len: usize,
    output_len: usize,
    backend: Box<dyn Backend>,
}

impl EngineCore {
    pub fn new(bytes: &[u8], backend: &str, max_batch: usize) -> Result<EngineCore, WasmError> {
        let request = Request::parse(backend)?;
        if bytes.is_empty() {
            return Err(WasmError::new(
                "BAD_MODEL",
                "the model is 0 bytes: check the URL or path (a failed download often yields an empty body)",
            ));
        }
        // Quantized or sparse weights are expanded to f32 by the plan, once, at load.
        // read_with_info: the digest it verified comes back too (hashing twice costs a few ms of
        // cold start in a fresh wasm instance).
        let (model, file): (Model, format::FileInfo) = format::read_with_info(bytes)?;
        let backend = backend::select(&model, request, max_batch)?;
        Ok(EngineCore {
            layer_names: model.graph.nodes.iter().map(|n| n.op.name()).collect(),
            params: model.param_count(),
            macs: model.macs(),
            digest: file.digest_hex,
            file_bytes: bytes.len(),
            input_len: model.input_len(),
            output_len: model.output_len(),
            meta: model.meta,
            backend,
        })
    }

    /// Runs `n` samples; returns `n × output_len` floats.
    pub fn run(&mut self, input: &[f32], n: usize) -> Result<Vec<f32>, WasmError> {
        crate::error::check_batch(input.len(), n, self.input_len, &self.meta.input_shape)?;
        // n ≤ input.len() here, and output_len is bounded by the model's activation limit.
        let mut out = vec![0.0f32; n * self.output_len];
        self.backend.run(input, n, &mut out)?;
        Ok(out)
    }

    pub fn input_len(&self) -> usize {
        self.input_len
    }
    pub fn output_len(&self) -> usize {
        self.output_len
    }
    pub fn meta(&self) -> &Metadata {
        &self.meta
    }
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }
    pub fn kernel(&self) -> &'static str {
        self.backend.kernel()
    }
    pub fn max_batch(&self) -> usize {
        self.backend.max_batch()
    }
    pub fn params(&self) -> usize {
        self.params
    }
    pub fn macs(&self) -> usize {
        self.macs
    }
    pub fn layer_names(&self) -> Vec<&'static str> {
        self.layer_names.clone()
    }
    pub fn digest(&self) -> &str {
        &self.digest
    }
    pub fn file_bytes(&self) -> usize {
        self.file_bytes
    }

    /// One grey 28×28 image per sample: the shape the MNIST preprocessing produces.
    pub fn takes_digit_image(&self) -> bool {
        matches!(self.meta.input_shape[..], [1, 28, 28] | [784])
    }

    /// One label per output: the model's own, or the class index when it has none.
    pub fn labels(&self) -> Vec<String> {
        (0..self.output_len)
            .map(|i| match self.meta.labels.get(i) {
                Some(l) if !l.is_empty() => l.clone(),
                _ => i.to_string(),
            })
            .collect()
    }
}
