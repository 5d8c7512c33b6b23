//! The backend seam: one trait every device implements, chosen once per loaded model.
//!
//! A backend receives a validated model and runs batches of `n` samples (`n × input_len` floats
//! in, `n × output_len` out). The engine around it owns the model metadata, the input checks
//! that do not depend on the device, and the JS boundary; a backend owns only its compiled form
//! of the weights (packed panels for the CPU, GPU buffers and pipelines for WebGPU).
//!
//! ```text
//!  Model.load(bytes, { backend })          (js/index.js: async, picks the wasm variant)
//!        │
//!        ▼
//!  Engine::new ── format::read ── select(request) ──┬── cpu::CpuBackend  (Plan: simd128 kernels)
//!  GpuEngine::create (src/gpu/, async: WGSL kernels)    ◄── index.js, for 'webgpu' / 'auto'
//! ```
//!
//! Why a synchronous `run`: the CPU backend finishes inside the call. WebGPU readback is
//! asynchronous (`mapAsync`), so the GPU does not implement this trait: `crate::gpu::GpuEngine`
//! is its own async class (see `DESIGN.md`, "The GPU engine"). The JS API is async (`predict`
//! returns a Promise) on every backend.

pub mod cpu;

use crate::error::{WasmError, NO_WEBGPU};
use mdeploy_core::Model;

/// What the caller asked for (`options.backend` in JS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The fastest backend this build and environment offer (today: the CPU).
    Auto,
    Cpu,
    WebGpu,
}

impl Request {
    pub fn parse(s: &str) -> Result<Request, WasmError> {
        match s {
            "" | "auto" => Ok(Request::Auto),
            "cpu" => Ok(Request::Cpu),
            "webgpu" => Ok(Request::WebGpu),
            other => Err(WasmError::new(
                "BAD_INPUT",
                format!("unknown backend {other:?}: use 'auto', 'cpu' or 'webgpu'"),
            )),
        }
    }
}

pub trait Backend {
    /// `"cpu"` or `"webgpu"`: what `predict` reports as `backend`.
    fn name(&self) -> &'static str;
    /// The kernels in use, e.g. `"wasm-simd128"` (for `info()` and bug reports).
    fn kernel(&self) -> &'static str;
    /// Samples per internal chunk (larger batches are run in chunks).
    fn max_batch(&self) -> usize;
    /// Runs `n` samples. Inputs were length-checked by the engine; the backend still rejects
    /// NaN/infinite values (the CPU plan does, without touching `out`).
    fn run(&mut self, input: &[f32], n: usize, out: &mut [f32]) -> Result<(), WasmError>;
}

/// Builds the synchronous backend for `request`. WebGPU is not a synchronous backend: asking this
/// `Engine` for it fails with `NO_WEBGPU` (never a silent CPU fallback: the caller asked for a
/// device and must know); `index.js` creates a `GpuEngine` for it instead.
pub fn select(model: &Model, request: Request, max_batch: usize) -> Result<Box<dyn Backend>, WasmError> {
    match request {
        Request::Auto | Request::Cpu => Ok(Box::new(cpu::CpuBackend::new(model, max_batch)?)),
        Request::WebGpu => Err(WasmError::new(
            NO_WEBGPU,
            "the synchronous Engine runs on the CPU only; WebGPU goes through GpuEngine (Model.load with \
             { backend: 'webgpu' } in index.js does that), or load the model with { backend: 'cpu' } or 'auto'",
        )),
    }
}
