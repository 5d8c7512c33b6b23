//! `wasm_maxpool_f32`: max pooling over one HWC sample, 4 channels per `f32x4_max`.

use crate::generic::generic_maxpool_f32::generic_maxpool_f32;
use crate::PoolGeom;
use core::arch::wasm32::*;

/// # Safety
/// Slices must fit `g` (checked by `KernelSet::maxpool_hwc`).
pub(crate) unsafe fn wasm_maxpool_f32(src: &[f32], dst: &mut [f32], g: &PoolGeom) {
    let c = g.c;
    if c < 4 {
        return generic_maxpool_f32(src, dst, g);
    }
    let s = src.as_ptr();
    let d = dst.as_mut_ptr();
    let c4 = c - c % 4;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let out = d.add((oy * g.ow + ox) * c);
            let first = ((oy * g.sh) * g.w + ox * g.sw) * c;
            let mut ch = 0;
            while ch < c4 {
                let mut m = v128_load(s.add(first + ch) as *const v128);
                for ky in 0..g.kh {
                    let row = ((oy * g.sh + ky) * g.w + ox * g.sw) * c + ch;
                    for kx in 0..g.kw {
                        m = f32x4_pmax(m, v128_load(s.add(row + kx * c) as *const v128));
                    }
                }
                v128_store(out.add(ch) as *mut v128, m);
                ch += 4;
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
