//! A model's [`Program`] for the GPU engine: the shared lowering, the same one the CPU executes
//! (BatchNorm folded, activations fused, HWC layouts, weights permuted once, slots by liveness).

use crate::error::WasmError;
use mdeploy_core::lower::Program;
use mdeploy_core::Model;

/// The program the GPU engine runs for `model`.
pub fn program_for(model: &Model) -> Result<Program, WasmError> {
    Ok(mdeploy_core::lower::lower(&model.graph, &model.meta.input_shape)?)
}
