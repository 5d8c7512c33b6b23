//! `avx2_dwconv_f32`: depthwise convolution over one HWC sample (see `generic/generic_dwconv_f32.rs`).
//!
//! Per output pixel, channels go 16 at a time (two accumulators, so two independent FMA chains
//! hide part of the FMA latency), then 8, then one by one; each accumulator stays in a register
//! across all taps and gets the bias and the clamp (ReLU, ReLU6) on the way out. Fewer than 8
//! channels take the generic kernel: a 1-channel depthwise conv is not worth vectors.

use crate::generic::generic_dwconv_f32::{generic_dwconv_f32, tap};
use crate::geometry::Window;
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; slices must fit `g` (checked by `KernelSet::dwconv_hwc`).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_dwconv_f32(
    src: &[f32],
    w: &[f32],
    bias: &[f32],
    dst: &mut [f32],
    g: &Window,
    lo: f32,
    hi: f32,
) {
    let c = g.c;
    if c < 8 {
        return generic_dwconv_f32(src, w, bias, dst, g, lo, hi);
    }
    let (s, wp, bp, d) = (src.as_ptr(), w.as_ptr(), bias.as_ptr(), dst.as_mut_ptr());
    let (vlo, vhi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
    // Valid taps of the current output pixel: (input offset, weight offset) pairs.
    let mut taps = [(0usize, 0usize); 64];
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let out = d.add((oy * g.ow + ox) * c);
            let mut nt = 0;
            let mut big = false;
            for ky in 0..g.kh {
                let Some(iy) = tap(oy, g.sh, ky, g.dh, g.pad[0], g.h) else { continue };
                for kx in 0..g.kw {
                    let Some(ix) = tap(ox, g.sw, kx, g.dw, g.pad[1], g.w) else { continue };
                    if nt == taps.len() {
                        big = true;
                        break;
                    }
                    taps[nt] = ((iy * g.w + ix) * c, (ky * g.kw + kx) * c);
                    nt += 1;
                }
            }
            if big {
                // Windows over 64 taps (rare: 9×9 and up): the plain loop for this pixel.
                dw_pixel_scalar(src, w, bias, dst, g, oy, ox, lo, hi);
                continue;
            }
            let taps = &taps[..nt];
            let mut ch = 0;
            while ch + 16 <= c {
                let mut a0 = _mm256_loadu_ps(bp.add(ch));
                let mut a1 = _mm256_loadu_ps(bp.add(ch + 8));
                for &(xo, wo) in taps {
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(s.add(xo + ch)), _mm256_loadu_ps(wp.add(wo + ch)), a0);
                    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(s.add(xo + ch + 8)), _mm256_loadu_ps(wp.add(wo + ch + 8)), a1);
                }
                _mm256_storeu_ps(out.add(ch), _mm256_min_ps(_mm256_max_ps(a0, vlo), vhi));
                _mm256_storeu_ps(out.add(ch + 8), _mm256_min_ps(_mm256_max_ps(a1, vlo), vhi));
                ch += 16;
            }
            while ch + 8 <= c {
                let mut a0 = _mm256_loadu_ps(bp.add(ch));
                for &(xo, wo) in taps {
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(s.add(xo + ch)), _mm256_loadu_ps(wp.add(wo + ch)), a0);
                }
                _mm256_storeu_ps(out.add(ch), _mm256_min_ps(_mm256_max_ps(a0, vlo), vhi));
                ch += 8;
            }
            while ch < c {
                let mut a = *bp.add(ch);
                for &(xo, wo) in taps {
                    a = (*s.add(xo + ch)).mul_add(*wp.add(wo + ch), a);
                }
                *out.add(ch) = a.max(lo).min(hi);
                ch += 1;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn dw_pixel_scalar(src: &[f32], w: &[f32], bias: &[f32], dst: &mut [f32], g: &Window, oy: usize, ox: usize, lo: f32, hi: f32) {
    let c = g.c;
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
