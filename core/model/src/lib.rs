//! # mdeploy-model
//!
//! What a model *is*, independent of how it runs: the [`graph`] (a DAG of ops over numbered
//! values, every shape checked with checked arithmetic), the in-memory [`model`] (metadata +
//! graph; tensors f32, quantized or sparse), and the `.mdm` [`format`] that reads untrusted
//! bytes and writes canonical files (spec: `format/MDM_FORMAT.md`). [`error`] is the error type
//! every mdeploy crate returns.

pub mod error;
mod finite;
pub mod format;
pub mod graph;
pub mod model;
pub mod monitor;

pub use error::{Error, ErrorKind, Result};
pub use finite::first_non_finite;
pub use graph::{Graph, GraphBuilder, Node, Op, ValueId};
pub use model::{Metadata, Model, Tensor};
