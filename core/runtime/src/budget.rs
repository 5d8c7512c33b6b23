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
//! Real models sit far below it per sample (the MNIST CNN needs tens of KB per sample against a
//! budget of 11 MB; ResNet-50 ~40 MB per sample against 1.6 GB); large batches run in chunks. A plan whose `max_batch` would exceed
//! the budget runs in smaller chunks instead ([`chunk`]); a model whose single sample exceeds it
//! is refused with an error that says so. Scratch that does not grow with the batch (a padded
//! conv input, the sparse kernels' blocks) counts against the same budget, as fixed bytes.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::model::TensorData;

/// Activation bytes any model may use per chunk, whatever its weights.
pub const ARENA_FREE_BYTES: usize = 8 << 20;
/// Further activation bytes per byte of stored tensors.
pub const ARENA_PER_STORED_BYTE: usize = 16;

/// Bytes the graph's tensors occupy as stored (in a file, or in memory before expansion).
pub fn stored_bytes(graph: &Graph) -> usize {
    graph
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

/// Activation bytes a chunk of `graph` may use.
pub fn arena_budget(graph: &Graph) -> usize {
    ARENA_FREE_BYTES.saturating_add(ARENA_PER_STORED_BYTE.saturating_mul(stored_bytes(graph)))
}

/// Samples per chunk for a plan that needs `fixed_floats` of buffers whatever the batch plus
/// `per_sample_floats` per sample of the chunk, asked for `max_batch`: `max_batch`, or fewer so
/// the buffers stay inside `budget` bytes. Errors when a single sample does not fit.
pub fn chunk(budget: usize, fixed_floats: usize, per_sample_floats: usize, max_batch: usize) -> Result<usize> {
    let fixed = fixed_floats.saturating_mul(4);
    let per_sample = per_sample_floats.saturating_mul(4).max(1);
    let fit = budget.saturating_sub(fixed) / per_sample;
    if fit == 0 {
        return Err(Error::bad_model(format!(
            "the model declares {:.1} MB of activations for one sample, more than its stored weights justify \
             ({:.1} MB here: {} MB + {}x the weights' stored bytes); refusing to allocate it (a hostile or broken \
             file, or an input shape far larger than the model was made for)",
            (fixed + per_sample) as f64 / 1e6,
            budget as f64 / 1e6,
            ARENA_FREE_BYTES >> 20,
            ARENA_PER_STORED_BYTE
        )));
    }
    Ok(max_batch.min(fit).max(1))
}
