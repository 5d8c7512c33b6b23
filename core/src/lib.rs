//! # mdeploy-core
//!
//! The portable core of mdeploy. It compiles for native targets, `wasm32-unknown-unknown` and
//! `wasm32-wasip2`, and knows nothing of JS, HTTP, GPUs or filesystems: hosts hand it bytes.
//!
//! * [`graph`]: the model graph (a DAG of ops over numbered values) and its shape checks.
//! * [`model`]: the in-memory model: metadata + graph; tensors (f32, quantized, sparse).
//! * [`lower`]: the one lowering of a graph into kernel calls, executed by every backend.
//! * [`format`]: the `.mdm` file format (read untrusted bytes, write), spec in `format/MDM_FORMAT.md`.
//! * [`loaded`]: a model as hosts see it after loading (metadata they report, computed once).
//! * [`plan`]: load once, pack weights, size an arena; `run` allocates nothing.
//! * [`kernels`]: CPU kernels, one folder per instruction set (`generic`, `x86_64`, `wasm`).
//! * [`train`]: forward/backward, losses, optimizers, augmentation; [`arch`] builds the networks.
//! * [`data`], [`eval`]: datasets (IDX, the fixed MNIST split) and metrics.
//! * [`preprocess`]: the MNIST recipe that turns any drawn digit into a 28×28 input.

pub mod arch;
pub mod budget;
pub mod data;
pub mod error;
pub mod eval;
mod exec;
pub mod format;
pub mod graph;
pub mod kernels;
pub mod loaded;
pub mod lower;
pub mod model;
pub mod plan;
pub mod preprocess;
pub mod rng;
pub mod train;

pub use error::{Error, ErrorKind, Result};
pub use graph::{Graph, GraphBuilder, Node, Op, ValueId};
pub use loaded::{LoadedModel, ModelInfo, Trust};
pub use model::{Metadata, Model, Tensor};
pub use plan::Plan;
