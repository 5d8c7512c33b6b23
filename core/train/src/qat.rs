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
    let signs: Vec<bool> = model.graph.nodes.iter().map(|n| matches!(n.op, Op::Sign)).collect();
    for (i, node) in model.graph.nodes.iter_mut().enumerate() {
        let v = node.inputs.first().copied().unwrap_or(0) as usize;
        // Binary: a Dense reading a Sign (a Conv2d after a Sign keeps 8 bits: no binary conv yet).
        let binary = bits == 1 && v > 0 && signs[v - 1] && matches!(node.op, Op::Dense { .. });
        // `--bits 1`: the layers that are not binary keep 8 bits (Larq's first and last).
        let bits = if bits == 1 { 8 } else { bits };
        let (weight, axis) = match &mut node.op {
            Op::Dense { weight, .. } => (weight, 1),
            Op::Conv2d { weight, groups: 1, .. } => (weight, 0),
            _ => continue,
        };
        let channels = weight.shape.get(axis).copied().unwrap_or(1);
        let inner: usize = weight.shape.get(axis + 1..).map_or(1, |s| s.iter().product());
        let Some(w) = weight.as_f32_mut() else { continue };
        let shadow = w.clone();
        let pass = if binary {
            binarize_weights(w, channels)
        } else {
            fake_quantize_weights(w, channels, inner, bits)
        };
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

/// Binary fake quantization of a Dense weight `[in, out]` (`out` channels, row-major) for
/// training: `w ← alpha_c · sign(w)` with `alpha_c = mean|w[:, c]|` and sign(0) = +1 (the
/// stored form, `runtime::quantize::binarize_weight`), and the STE mask of BinaryConnect /
/// XNOR-Net: 1.0 where `|w| <= 1` (the gradient passes as through `clamp(w, −1, 1)`), 0.0
/// outside. alpha gets no gradient of its own (the usual simplification).
pub(crate) fn binarize_weights(w: &mut [f32], out: usize) -> Vec<f32> {
    let out = out.max(1);
    let rows = w.len() / out;
    let mut alpha = vec![0.0f64; out];
    for row in w.chunks_exact(out) {
        for (a, v) in alpha.iter_mut().zip(row) {
            *a += f64::from(v.abs());
        }
    }
    let alpha: Vec<f32> = alpha.iter().map(|a| (a / rows.max(1) as f64) as f32).collect();
    let mut pass = Vec::with_capacity(w.len());
    for row in w.chunks_exact_mut(out) {
        for (v, a) in row.iter_mut().zip(&alpha) {
            pass.push(if v.abs() <= 1.0 { 1.0 } else { 0.0 });
            *v = if *v >= 0.0 { *a } else { -*a };
        }
    }
    pass
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binarize_hand_case() {
        // [2 in, 2 out]: column 0 (0.5, −1.5) → alpha 1.0, column 1 (−0.25, 0) → alpha 0.125.
        let mut w = [0.5, -0.25, -1.5, 0.0];
        let pass = binarize_weights(&mut w, 2);
        assert_eq!(w, [1.0, -0.125, -1.0, 0.125]);
        assert_eq!(pass, vec![1.0, 1.0, 0.0, 1.0]);
    }
}
