//! `generic_dwconv_f32`: depthwise convolution (`groups == C == out_c`) over one HWC sample.
//!
//! Channels are innermost, so every kernel tap is a contiguous `C`-vector of inputs times a
//! contiguous `C`-vector of weights (`w` is `[kh·kw × C]`): the inner loop runs across
//! channels, which LLVM vectorizes for the baseline ISA. Taps that fall in the padding are
//! skipped (zero padding adds nothing).

use crate::geometry::Window;

/// Input row of kernel tap `k` for output row `o`, or `None` in the padding.
#[inline(always)]
pub(crate) fn tap(o: usize, s: usize, k: usize, d: usize, pad: usize, len: usize) -> Option<usize> {
    (o * s + k * d).checked_sub(pad).filter(|&i| i < len)
}

/// `dst = clamp(bias + Σ taps, lo, hi)` per output pixel and channel.
///
/// # Safety
/// Always safe with slices that fit `g` (checked by `KernelSet::dwconv_hwc`); `unsafe` only to
/// share the function type with the SIMD kernels.
pub(crate) unsafe fn generic_dwconv_f32(
    src: &[f32],
    w: &[f32],
    bias: &[f32],
    dst: &mut [f32],
    g: &Window,
    lo: f32,
    hi: f32,
) {
    let c = g.c;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let out = &mut dst[(oy * g.ow + ox) * c..][..c];
            out.copy_from_slice(&bias[..c]);
            for ky in 0..g.kh {
                let Some(iy) = tap(oy, g.sh, ky, g.dh, g.pad[0], g.h) else { continue };
                for kx in 0..g.kw {
                    let Some(ix) = tap(ox, g.sw, kx, g.dw, g.pad[1], g.w) else { continue };
                    let xs = &src[(iy * g.w + ix) * c..][..c];
                    let ws = &w[(ky * g.kw + kx) * c..][..c];
                    for ((o, &x), &wv) in out.iter_mut().zip(xs).zip(ws) {
                        *o += x * wv;
                    }
                }
            }
            for o in out.iter_mut() {
                *o = o.max(lo).min(hi);
            }
        }
    }
}
