//! Elementwise and layout kernels shared by every ISA: activations, per-channel affine,
//! binary ops with per-channel broadcast, global average pooling, HWC concat, transposes.
//! They are memory-bound and written channels-innermost so LLVM vectorizes them for the
//! target; the costly ones (`exp`, `tanh`) are transcendental calls either way.

use crate::geometry::{Act, BinOp};

/// One activation, exactly as the graph defines it (`graph::Op`).
#[inline(always)]
pub fn act1(act: Act, x: f32) -> f32 {
    match act {
        Act::None => x,
        Act::Relu => x.max(0.0),
        Act::Clip(lo, hi) => x.max(lo).min(hi),
        Act::LeakyRelu(a) => {
            if x < 0.0 {
                a * x
            } else {
                x
            }
        }
        Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Act::Tanh => x.tanh(),
        // ONNX HardSwish: x · relu6(x + 3) / 6.
        Act::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

/// `x = act(x)` in place. One loop per variant so the cheap ones vectorize.
pub fn generic_act_f32(act: Act, x: &mut [f32]) {
    match act {
        Act::None => {}
        Act::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Act::Clip(lo, hi) => x.iter_mut().for_each(|v| *v = v.max(lo).min(hi)),
        _ => x.iter_mut().for_each(|v| *v = act1(act, *v)),
    }
}

/// The `(lo, hi)` clamp equal to `act`, when it is one (None, ReLU, Clip): kernels that apply
/// a clamp in their epilogue take it; the other activations run as a loop afterwards.
pub fn act_clamp(act: Act) -> Option<(f32, f32)> {
    match act {
        Act::None => Some((f32::NEG_INFINITY, f32::INFINITY)),
        Act::Relu => Some((0.0, f32::INFINITY)),
        Act::Clip(lo, hi) => Some((lo, hi)),
        _ => None,
    }
}

/// `x = act(x · scale + shift)` per channel, `x` HWC (or flat with `scale.len()` features).
pub fn generic_affine_f32(x: &mut [f32], scale: &[f32], shift: &[f32], act: Act) {
    let c = scale.len();
    for row in x.chunks_exact_mut(c) {
        for ((v, &s), &t) in row.iter_mut().zip(scale).zip(shift) {
            *v = *v * s + t;
        }
    }
    generic_act_f32(act, x);
}

/// `a = act(a op b)`, `b` either as long as `a` or `c` values repeated over the pixels.
pub fn generic_binary_f32(op: BinOp, a: &mut [f32], b: &[f32], act: Act) {
    let c = b.len();
    for row in a.chunks_exact_mut(c) {
        match op {
            BinOp::Add => row.iter_mut().zip(b).for_each(|(x, &y)| *x += y),
            BinOp::Mul => row.iter_mut().zip(b).for_each(|(x, &y)| *x *= y),
        }
    }
    generic_act_f32(act, a);
}

/// HWC `[hw, c]` → `[c]`: the mean of each channel.
pub fn generic_gap_f32(src: &[f32], c: usize, hw: usize, dst: &mut [f32]) {
    let out = &mut dst[..c];
    out.fill(0.0);
    for row in src[..c * hw].chunks_exact(c) {
        out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
    let div = hw as f32;
    out.iter_mut().for_each(|o| *o /= div);
}

/// `[c, hw]` → `[hw, c]` when `to_hwc`, else back.
pub fn generic_transpose_f32(src: &[f32], c: usize, hw: usize, to_hwc: bool, dst: &mut [f32]) {
    let (src, dst) = (&src[..c * hw], &mut dst[..c * hw]);
    if to_hwc {
        for ch in 0..c {
            for (p, &v) in src[ch * hw..(ch + 1) * hw].iter().enumerate() {
                dst[p * c + ch] = v;
            }
        }
    } else {
        for ch in 0..c {
            for (p, d) in dst[ch * hw..(ch + 1) * hw].iter_mut().enumerate() {
                *d = src[p * c + ch];
            }
        }
    }
}
