//! `generic_pool_f32`: max or average pooling over one HWC sample with padding and ceil mode
//! (any window the graph accepts). The padding-free max pool has SIMD kernels of its own
//! (`maxpool_f32.rs`); this one is the general path, channels innermost so LLVM vectorizes it.
//!
//! * Max: padded cells never win (they are not read at all). Every window holds at least one
//!   input cell: the graph requires padding < kernel and ceil mode never starts a window in
//!   the trailing padding (`graph::window_out`).
//! * Average: the sum of the input cells divided by their count, or with `count_include_pad` by
//!   the window clipped to the padded input `[-pad_lo, len + pad_hi)` (PyTorch's and ONNX
//!   Runtime's rule: a ceil-mode window's overhang past the padding is never counted).

use crate::geometry::{PoolKind, Window};

pub fn generic_pool_f32(src: &[f32], dst: &mut [f32], g: &Window, kind: PoolKind) {
    let c = g.c;
    let [pt, pl, pb, pr] = g.pad;
    for oy in 0..g.oh {
        // Window rows in padded coordinates: [oy·sh, oy·sh + kh) minus pt.
        let y0 = oy * g.sh;
        let (ylo, yhi) = (y0.max(pt) - pt, (y0 + g.kh).min(g.h + pt) - pt);
        let ycount_pad = (y0 + g.kh).min(g.h + pt + pb) - y0;
        for ox in 0..g.ow {
            let x0 = ox * g.sw;
            let (xlo, xhi) = (x0.max(pl) - pl, (x0 + g.kw).min(g.w + pl) - pl);
            let xcount_pad = (x0 + g.kw).min(g.w + pl + pr) - x0;
            let out = &mut dst[(oy * g.ow + ox) * c..][..c];
            match kind {
                PoolKind::Max => {
                    out.fill(f32::NEG_INFINITY);
                    for iy in ylo..yhi {
                        for ix in xlo..xhi {
                            for (o, &v) in out.iter_mut().zip(&src[(iy * g.w + ix) * c..][..c]) {
                                *o = o.max(v);
                            }
                        }
                    }
                }
                PoolKind::Avg { count_include_pad } => {
                    out.fill(0.0);
                    for iy in ylo..yhi {
                        for ix in xlo..xhi {
                            for (o, &v) in out.iter_mut().zip(&src[(iy * g.w + ix) * c..][..c]) {
                                *o += v;
                            }
                        }
                    }
                    let count = if count_include_pad {
                        ycount_pad * xcount_pad
                    } else {
                        (yhi - ylo) * (xhi - xlo)
                    };
                    let div = count.max(1) as f32;
                    for o in out.iter_mut() {
                        *o /= div;
                    }
                }
            }
        }
    }
}
