//! A loaded model and its backend, in plain Rust (the `#[wasm_bindgen]` class in `lib.rs` is a
//! thin shell around it, so this logic is testable natively and in `wasm-pack test`).

use crate::backend::{self, Backend, Request};
use crate::error::WasmError;
use mdeploy_core::model::Metadata;
use mdeploy_core::{LoadedModel, ModelInfo, Trust};

pub struct EngineCore {
    info: ModelInfo,
    backend: Box<dyn Backend>,
}

impl EngineCore {
    pub fn new(bytes: &[u8], backend: &str, max_batch: usize) -> Result<EngineCore, WasmError> {
        Self::with_trust(bytes, backend, max_batch, Trust::Verify)
    }

    /// [`EngineCore::new`] with the content hash computed by the host (`Trust::Hashed`).
    pub fn hashed(bytes: &[u8], backend: &str, max_batch: usize, sha256: [u8; 32]) -> Result<EngineCore, WasmError> {
        Self::with_trust(bytes, backend, max_batch, Trust::Hashed(sha256))
    }

    fn with_trust(bytes: &[u8], backend: &str, max_batch: usize, trust: Trust) -> Result<EngineCore, WasmError> {
        let request = Request::parse(backend)?;
        if bytes.is_empty() {
            return Err(WasmError::new(
                "BAD_MODEL",
                "the model is 0 bytes: check the URL or path (a failed download often yields an empty body)",
            ));
        }
        // Quantized or sparse weights are expanded to f32 by the plan, once, at load. The digest
        // is checked once, by the read (hashing twice costs a few ms of cold start).
        let LoadedModel { info, model } = LoadedModel::read(bytes, trust)?;
        let backend = backend::select(&model, request, max_batch)?;
        Ok(EngineCore { info, backend })
    }

    /// Runs `n` samples; returns `n × output_len` floats.
    pub fn run(&mut self, input: &[f32], n: usize) -> Result<Vec<f32>, WasmError> {
        crate::error::check_batch(input.len(), n, self.info.input_len, &self.info.meta.input_shape)?;
        // n ≤ input.len() here, and output_len is bounded by the model's activation limit.
        let mut out = vec![0.0f32; n * self.info.output_len];
        self.backend.run(input, n, &mut out)?;
        Ok(out)
    }

    pub fn input_len(&self) -> usize {
        self.info.input_len
    }
    pub fn output_len(&self) -> usize {
        self.info.output_len
    }
    pub fn meta(&self) -> &Metadata {
        &self.info.meta
    }
    pub fn info(&self) -> &ModelInfo {
        &self.info
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
        self.info.params
    }
    pub fn macs(&self) -> usize {
        self.info.macs
    }
    pub fn layer_names(&self) -> Vec<&'static str> {
        self.info.op_names.clone()
    }
    pub fn digest(&self) -> &str {
        &self.info.digest
    }
    pub fn file_bytes(&self) -> usize {
        self.info.file_bytes
    }

    /// One grey 28×28 image per sample: the shape the MNIST preprocessing produces.
    pub fn takes_digit_image(&self) -> bool {
        self.info.takes_digit_image()
    }

    /// One label per output: the model's own, or the class index when it has none.
    pub fn labels(&self) -> Vec<String> {
        self.info.labels()
    }
}
