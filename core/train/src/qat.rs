//! Quantization-aware training of n-bit weights (`TRAINING.md`, "QAT"; the grid is
//! `core/runtime/QUANT.md`'s): the forward and backward passes see each Dense / Conv2d (one
//! group) weight fake-quantized, `ŵ = s·q(w)` on the per-channel grid
//! [`crate::kernels::qweights`] chooses, while the optimizer updates the f32 **shadow**
//! weights `w`. Gradient by the straight-through estimator: `∂L/∂w = ∂L/∂ŵ` where
//! `|w| ≤ qmax·s` (rounding is treated as the identity) and 0 where the weight was clipped.
//! The scale is recomputed from the shadow weights every step and gets no gradient.
//!
//! Activations: `Op::Quantize` nodes already train with their own straight-through estimator
//! (`graph_net.rs`), so a graph from the quantizer's `calibrate_activations` fine-tunes with
//! both its uint8 activation grids (fixed, not re-calibrated) and its n-bit weights.

use crate::error::{Error, Result};
use crate::graph::Op;
use crate::kernels::qweights::fake_quantize_weights;
use crate::model::Model;
use crate::network::ParamGrads;

/// The f32 weights a fake-quantized step put aside, and where the STE lets gradients through.
pub(crate) struct Shadow {
    /// (node, shadow weights, STE mask: 1 inside the clip range, 0 outside).
    saved: Vec<(usize, Vec<f32>, Vec<f32>)>,
}

/// Replaces every f32 Dense / Conv2d (one group) weight of `model` by its fake-quantized
/// `bits`-bit values and returns the originals.
pub(crate) fn swap_in(model: &mut Model, bits: u8) -> Result<Shadow> {
    let mut saved = Vec::new();
    for (i, node) in model.graph.nodes.iter_mut().enumerate() {
        let (weight, axis) = match &mut node.op {
            Op::Dense { weight, .. } => (weight, 1),
            Op::Conv2d { weight, groups: 1, .. } => (weight, 0),
            _ => continue,
        };
        let channels = weight.shape.get(axis).copied().unwrap_or(1);
        let inner: usize = weight.shape.get(axis + 1..).map_or(1, |s| s.iter().product());
        let Some(w) = weight.as_f32_mut() else { continue };
        let shadow = w.clone();
        let pass = fake_quantize_weights(w, channels, inner, bits);
        saved.push((i, shadow, pass));
    }
    Ok(Shadow { saved })
}

/// Puts the shadow weights back and applies the STE to the gradients (`grads` from the
/// backward pass over the fake-quantized weights; `None` after a failed pass).
pub(crate) fn restore(model: &mut Model, shadow: Shadow, grads: Option<&mut [Option<ParamGrads>]>) -> Result<()> {
    let mut grads = grads;
    for (i, w, pass) in shadow.saved {
        let node = &mut model.graph.nodes[i];
        if let Op::Dense { weight, .. } | Op::Conv2d { weight, .. } = &mut node.op {
            if let Some(dst) = weight.as_f32_mut() {
                *dst = w;
            }
        }
        if let Some(gs) = grads.as_deref_mut() {
            let Some(Some(g)) = gs.get_mut(i) else {
                return Err(Error::bad_input(format!("no gradient for the fake-quantized weight of node {i}")));
            };
            g.weight.iter_mut().zip(&pass).for_each(|(g, p)| *g *= p);
        }
    }
    Ok(())
}
