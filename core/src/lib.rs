//! # mdeploy-core
//!
//! The portable core of mdeploy, as one crate to depend on. It compiles for native targets,
//! `wasm32-unknown-unknown` and `wasm32-wasip2`, and knows nothing of JS, HTTP, GPUs or
//! filesystems: hosts hand it bytes. It re-exports, under one roof, the crates it is made of:
//!
//! | crate | modules here | what it is |
//! |---|---|---|
//! | `mdeploy-model` (`core/model`) | [`graph`], [`model`], [`format`], [`error`], [`monitor`] | the graph, tensors, the `.mdm` format, input-drift references |
//! | `mdeploy-kernels` (`core/kernels`) | [`kernels`] | CPU kernels, one folder per instruction set |
//! | `mdeploy-runtime` (`core/runtime`) | [`lower`], [`budget`], [`plan`], [`loaded`] | the one lowering and the CPU executor |
//! | `mdeploy-train` (`core/train`) | [`train`], [`arch`], [`eval`], [`rng`] | training, the shipped architectures, metrics |
//! | `mdeploy-mnist` (`core/mnist`) | [`data`], [`preprocess`], [`image`] | IDX, the fixed split, digit preprocessing |
//!
//! Paths are the same as before the split (`mdeploy_core::format::read`, ...), so hosts did not
//! change; a host that wants less can depend on the member crates directly.

pub use mdeploy_kernels as kernels;
pub use mdeploy_mnist::{data, image, preprocess};
pub use mdeploy_model::{error, format, graph, model, monitor};
pub use mdeploy_runtime::{budget, loaded, lower, plan, quantize};
pub use mdeploy_train as train;
pub use mdeploy_train::{arch, eval, rng};

pub use error::{Error, ErrorKind, Result};
pub use graph::{Graph, GraphBuilder, Node, Op, ValueId};
pub use loaded::{LoadedModel, ModelInfo, Trust};
pub use model::{Metadata, Model, Tensor};
pub use plan::Plan;
