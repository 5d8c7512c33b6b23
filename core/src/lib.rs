//! # mdeploy-core
//!
//! The portable core of mdeploy. It compiles for native targets, `wasm32-unknown-unknown` and
//! `wasm32-wasip2`, and knows nothing of JS, HTTP, GPUs or filesystems: hosts hand it bytes.
//!
//! * [`model`]: the in-memory model (metadata + sequential layers) and its shape checks.
//! * [`format`]: the `.mdm` file format (read untrusted bytes, write), spec in `format/MDM_FORMAT.md`.
//! * [`plan`]: load once, pack weights, size an arena; `run` allocates nothing.
//! * [`kernels`]: CPU kernels, one folder per instruction set (`generic`, `x86_64`, `wasm`).
//! * [`train`]: forward/backward, losses, optimizers, augmentation; [`arch`] builds the networks.
//! * [`data`], [`eval`]: datasets (IDX, the fixed MNIST split) and metrics.
//! * [`preprocess`]: the MNIST recipe that turns any drawn digit into a 28×28 input.

pub mod arch;
pub mod data;
pub mod error;
pub mod eval;
mod exec;
pub mod format;
pub mod graph;
pub mod kernels;
pub mod lower;
pub mod model;
pub mod plan;
pub mod preprocess;
pub mod rng;
pub mod train;

pub use error::{Error, ErrorKind, Result};
pub use model::{Layer, Metadata, Model, Tensor};
pub use plan::Plan;
