//! `generic_spmm_f32_16`: the reference sparse × dense block (16 rows as the vector axis; plain
//! arrays that LLVM vectorizes for the baseline), and `generic_spmv_f32`, the batch-1 sparse
//! Dense every set uses (a scalar scatter by input row: there is nothing contiguous to
//! vectorize, and skipping zero inputs is worth more than lanes, see KERNELS.md).

use crate::sparse::SparseW;

/// Rows per block.
pub const NB: usize = 16;

/// Same NaN-passing clamp as the SIMD kernels: comparisons with NaN are false.
#[inline(always)]
pub(crate) fn clamp_nan(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if v > hi { hi } else { v }
}

/// # Safety
/// As [`crate::tile::SpmmFn`] with `NB` = 16.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn generic_spmm_f32_16(
    cols: usize,
    ptr: *const u32,
    off: *const u32,
    val: *const f32,
    xt: *const f32,
    bias: *const f32,
    lo: f32,
    hi: f32,
    yt: *mut f32,
) {
    for j in 0..cols {
        let mut acc = [0.0f32; NB];
        for p in *ptr.add(j) as usize..*ptr.add(j + 1) as usize {
            let w = *val.add(p);
            let x = std::slice::from_raw_parts(xt.add(*off.add(p) as usize), NB);
            for (a, &xv) in acc.iter_mut().zip(x) {
                *a += w * xv;
            }
        }
        let b = *bias.add(j);
        let y = std::slice::from_raw_parts_mut(yt.add(j * NB), NB);
        for (o, a) in y.iter_mut().zip(acc) {
            *o = clamp_nan(a + b, lo, hi);
        }
    }
}

/// `y = clamp(bias + x · W)` with `wt` = W by row (`wt.cols` = inputs, `wt.rows` = outputs):
/// the rows of zero inputs are skipped whole. Lengths checked by `KernelSet::spmv`.
pub fn generic_spmv_f32(x: &[f32], wt: &SparseW, bias: &[f32], clamp: Option<(f32, f32)>, y: &mut [f32]) {
    y.copy_from_slice(bias);
    // The non-zero inputs 64 at a time as a bit mask (a branch-free compare LLVM vectorizes),
    // then only their rows: no per-input branch to mispredict along a digit's strokes.
    for (c, xs) in x.chunks(64).enumerate() {
        let mut bits = 0u64;
        for (b, &v) in xs.iter().enumerate() {
            bits |= u64::from(v != 0.0) << b;
        }
        while bits != 0 {
            let i = c * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let xv = x[i];
            let (a, b) = (wt.ptr[i] as usize, wt.ptr[i + 1] as usize);
            let (idx, val) = (&wt.idx[a..b], &wt.val[a..b]);
            let mut ic = idx.chunks_exact(4);
            let mut vc = val.chunks_exact(4);
            for (j, w) in (&mut ic).zip(&mut vc) {
                y[j[0] as usize] += xv * w[0];
                y[j[1] as usize] += xv * w[1];
                y[j[2] as usize] += xv * w[2];
                y[j[3] as usize] += xv * w[3];
            }
            for (&j, &w) in ic.remainder().iter().zip(vc.remainder()) {
                y[j as usize] += xv * w;
            }
        }
    }
    if let Some((lo, hi)) = clamp {
        for v in y.iter_mut() {
            *v = clamp_nan(*v, lo, hi);
        }
    }
}
