//! `avx512_spmm_f32_64`: sparse × dense block with 64 rows (4 zmm) as the vector axis. Per
//! output column, each non-zero weight is broadcast and FMAd into the 4 accumulators with the
//! matching 64-float row of the transposed input block. Two non-zeros are in flight (8
//! accumulators, summed at the end), so the FMA chains are 2 × 4 deep instead of 4 chains
//! waiting on one another; the loads (4 per non-zero, from L1/L2) are the limit, not the FMAs.

use std::arch::x86_64::*;

/// Rows per block.
pub const NB: usize = 64;

/// # Safety
/// The CPU must support AVX-512F; otherwise as [`crate::tile::SpmmFn`] with `NB` = 64.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn avx512_spmm_f32_64(
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
    let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
    for j in 0..cols {
        let (mut p, end) = (*ptr.add(j) as usize, *ptr.add(j + 1) as usize);
        let z = _mm512_setzero_ps();
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let (mut b0, mut b1, mut b2, mut b3) = (z, z, z, z);
        while p + 2 <= end {
            let (x, w) = (xt.add(*off.add(p) as usize), _mm512_set1_ps(*val.add(p)));
            let (u, v) = (xt.add(*off.add(p + 1) as usize), _mm512_set1_ps(*val.add(p + 1)));
            a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x), a0);
            a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x.add(16)), a1);
            a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x.add(32)), a2);
            a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x.add(48)), a3);
            b0 = _mm512_fmadd_ps(v, _mm512_loadu_ps(u), b0);
            b1 = _mm512_fmadd_ps(v, _mm512_loadu_ps(u.add(16)), b1);
            b2 = _mm512_fmadd_ps(v, _mm512_loadu_ps(u.add(32)), b2);
            b3 = _mm512_fmadd_ps(v, _mm512_loadu_ps(u.add(48)), b3);
            p += 2;
        }
        if p < end {
            let (x, w) = (xt.add(*off.add(p) as usize), _mm512_set1_ps(*val.add(p)));
            a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x), a0);
            a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x.add(16)), a1);
            a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x.add(32)), a2);
            a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x.add(48)), a3);
        }
        let bv = _mm512_set1_ps(*bias.add(j));
        let y = yt.add(j * NB);
        // max(lo, v) / min(hi, v): with v second, a NaN v is passed through (vmaxps/vminps
        // return the second operand when either is NaN).
        for (q, (a, b)) in [(a0, b0), (a1, b1), (a2, b2), (a3, b3)].into_iter().enumerate() {
            let s = _mm512_add_ps(_mm512_add_ps(a, b), bv);
            _mm512_storeu_ps(y.add(16 * q), _mm512_min_ps(vhi, _mm512_max_ps(vlo, s)));
        }
    }
}
