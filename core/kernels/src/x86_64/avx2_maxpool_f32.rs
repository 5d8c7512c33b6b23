//! `avx2_maxpool_f32`: max pooling over one HWC sample. Channels are innermost, so each window
//! element is a contiguous channel vector: 8 channels per `vmaxps`, any window or stride.
//! Fewer than 8 channels (e.g. pooling a 1-channel image) fall back to the generic kernel.

use crate::generic::generic_maxpool_f32::generic_maxpool_f32;
use crate::PoolGeom;
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2; slices must fit `g` (checked by `KernelSet::maxpool_hwc`).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_maxpool_f32(src: &[f32], dst: &mut [f32], g: &PoolGeom) {
    let c = g.c;
    if c < 8 {
        return generic_maxpool_f32(src, dst, g);
    }
    let s = src.as_ptr();
    let d = dst.as_mut_ptr();
    let c8 = c - c % 8;
    if g.kh == 2 && g.kw == 2 && c8 == c {
        return pool2x2(s, d, g);
    }
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let out = d.add((oy * g.ow + ox) * c);
            let first = ((oy * g.sh) * g.w + ox * g.sw) * c;
            let mut ch = 0;
            while ch < c8 {
                let mut m = _mm256_loadu_ps(s.add(first + ch));
                for ky in 0..g.kh {
                    let row = ((oy * g.sh + ky) * g.w + ox * g.sw) * c + ch;
                    for kx in 0..g.kw {
                        m = _mm256_max_ps(m, _mm256_loadu_ps(s.add(row + kx * c)));
                    }
                }
                _mm256_storeu_ps(out.add(ch), m);
                ch += 8;
            }
            while ch < c {
                let mut m = *s.add(first + ch);
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        m = m.max(*s.add(((oy * g.sh + ky) * g.w + ox * g.sw + kx) * c + ch));
                    }
                }
                *out.add(ch) = m;
                ch += 1;
            }
        }
    }
}

/// The 2×2 window (any stride) with whole 8-channel vectors: the window's four loads written
/// out, no inner loops. The general loop above spent most of its time on loop and address
/// arithmetic (~10 % of the trained CNN's batch-1 samples, perf). Same maxima in the same
/// order as the general loop (the first element, then row by row), so the same bits, NaN
/// included.
#[target_feature(enable = "avx2,fma")]
unsafe fn pool2x2(s: *const f32, d: *mut f32, g: &PoolGeom) {
    let c = g.c;
    let row = g.w * c;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let out = d.add((oy * g.ow + ox) * c);
            let p = s.add(((oy * g.sh) * g.w + ox * g.sw) * c);
            let mut ch = 0;
            while ch < c {
                let q = p.add(ch);
                let m = _mm256_loadu_ps(q);
                let m = _mm256_max_ps(m, m);
                let m = _mm256_max_ps(m, _mm256_loadu_ps(q.add(c)));
                let m = _mm256_max_ps(m, _mm256_loadu_ps(q.add(row)));
                let m = _mm256_max_ps(m, _mm256_loadu_ps(q.add(row + c)));
                _mm256_storeu_ps(out.add(ch), m);
                ch += 8;
            }
        }
    }
}
