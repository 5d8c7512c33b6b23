//! `generic_maxpool_f32`: max pooling over one HWC sample, any window and stride.

use crate::PoolGeom;

/// # Safety
/// Always safe to call with slices that fit `g` (checked by `KernelSet::maxpool_hwc`); `unsafe`
/// only to share the `PoolFn` type with the SIMD kernels.
pub(crate) unsafe fn generic_maxpool_f32(src: &[f32], dst: &mut [f32], g: &PoolGeom) {
    let c = g.c;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let out = &mut dst[(oy * g.ow + ox) * c..][..c];
            let first = ((oy * g.sh) * g.w + ox * g.sw) * c;
            out.copy_from_slice(&src[first..first + c]);
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let at = ((oy * g.sh + ky) * g.w + ox * g.sw + kx) * c;
                    for (o, &v) in out.iter_mut().zip(&src[at..at + c]) {
                        // `max` (not `>`): NaN-free inputs are enforced at the plan boundary.
                        *o = o.max(v);
                    }
                }
            }
        }
    }
}
