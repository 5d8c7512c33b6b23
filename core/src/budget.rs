//! How much memory a model may make a host allocate, as a function of what its file stores.
//!
//! A model file is untrusted input. Two things in it could make a tiny file cost gigabytes:
//!
//! * **expansions**: quantized, packed and sparse tensors become dense `f32` at load. The format
//!   bounds them at 8 elements per stored byte (`format/codes.rs`, `SPARSE_MAX_RATIO`: exactly the
//!   ratio of 1-bit weights), so the dense weights are at most 32× their stored bytes;
//! * **activations**: shapes are declared, not stored. A 1 KB graph can declare a 4096×4096 input
//!   and a few convolutions over it, and a plan sized for a batch of 64 would then hold gigabytes.
//!
//! The rule for activations: one chunk's buffers may use at most
//! [`ARENA_FREE_BYTES`] + [`ARENA_PER_STORED_BYTE`] × (bytes of the model's stored tensors).
//! Real models sit far below it (the MNIST CNN needs ~60 KB per sample against a budget of
//! 19 MB; ResNet-50 ~40 MB per sample against 1.6 GB). A plan whose `max_batch` would exceed
//! the budget runs in smaller chunks instead ([`chunk`]); a model whose single sample exceeds it
//! is refused with an error that says so.

use crate::error::{Error, Result};
use crate::model::{Model, TensorData};

/// Activation bytes any model may use per chunk, whatever its weights.
pub const ARENA_FREE_BYTES: usize = 16 << 20;
/// Further activation bytes per byte of stored tensors.
pub const ARENA_PER_STORED_BYTE: usize = 16;

/// Bytes the model's tensors occupy as stored (in a file, or in memory before expansion).
pub fn stored_bytes(model: &Model) -> usize {
    model
        .graph
        .nodes
        .iter()
        .flat_map(|n| n.op.tensors())
        .map(|t| match &t.data {
            TensorData::F32(v) => v.len() * 4,
            TensorData::Quantized { raw, .. } => raw.len(),
            TensorData::SparseCsr { row_ptr, col_idx, values } => 4 * (row_ptr.len() + col_idx.len() + values.len()),
            TensorData::SparseBitmask { mask, values } => mask.len() + 4 * values.len(),
        })
        .fold(0usize, usize::saturating_add)
}

/// Activation bytes a chunk of `model` may use.
pub fn arena_budget(model: &Model) -> usize {
    ARENA_FREE_BYTES.saturating_add(ARENA_PER_STORED_BYTE.saturating_mul(stored_bytes(model)))
}

/// Samples per chunk for a plan that needs `per_sample_floats` of activation buffers per sample
/// and was asked for `max_batch`: `max_batch`, or fewer so the chunk stays inside the budget.
/// Errors when a single sample does not fit.
pub fn chunk(model: &Model, per_sample_floats: usize, max_batch: usize) -> Result<usize> {
    let budget = arena_budget(model);
    let per_sample = per_sample_floats.saturating_mul(4).max(1);
    let fit = budget / per_sample;
    if fit == 0 {
        return Err(Error::bad_model(format!(
            "the model declares {:.1} MB of activations per sample, more than its {:.1} MB of stored weights \
             justify ({} MB + {}x the weights); refusing to allocate it (a hostile or broken file, or an input \
             shape far larger than the model was made for)",
            per_sample as f64 / 1e6,
            stored_bytes(model) as f64 / 1e6,
            ARENA_FREE_BYTES >> 20,
            ARENA_PER_STORED_BYTE
        )));
    }
    Ok(max_batch.min(fit).max(1))
}
