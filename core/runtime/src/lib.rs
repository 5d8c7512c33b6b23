//! # mdeploy-runtime
//!
//! Inference, for every backend: [`lower`] turns a graph into a [`lower::Program`] (kernel
//! calls over liveness-assigned slots, BatchNorm folded, activations fused), [`budget`] bounds
//! its activation memory by what the model file justifies, [`plan`] executes it on the CPU with
//! `mdeploy-kernels` (the WebGPU engine in `wasm/src/gpu/` executes the same program), and
//! [`loaded`] is the model as hosts see it after loading.
//!
//! ```text
//!  bytes ─ format::read ─► Model { meta, graph } ─ lower ─► Program ─┬─ Plan (CPU kernels)
//!                                                                   └─ GpuEngine (WGSL, wasm/)
//! ```

// The model crate's modules under the names the runtime's files use.
pub(crate) use mdeploy_kernels as kernels;
pub(crate) use mdeploy_model::{error, format, graph, model};

pub mod budget;
mod exec;
pub mod loaded;
pub mod lower;
mod lower_quant;
pub mod plan;
pub mod quantize;

pub use loaded::{LoadedModel, ModelInfo, Trust};
pub use plan::Plan;
