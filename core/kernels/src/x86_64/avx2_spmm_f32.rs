//! `avx2_spmm_f32_32`: sparse × dense block with 32 rows (4 ymm) as the vector axis; the same
//! scheme as `avx512_spmm_f32_64` (two non-zeros in flight, 8 accumulators + 2 broadcasts = 10
//! of the 16 ymm registers).

use std::arch::x86_64::*;

/// Rows per block.
pub const NB: usize = 32;

/// # Safety
/// The CPU must support AVX2 and FMA; otherwise as [`crate::tile::SpmmFn`] with `NB` = 32.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn avx2_spmm_f32_32(
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
    let (vlo, vhi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
    for j in 0..cols {
        let (mut p, end) = (*ptr.add(j) as usize, *ptr.add(j + 1) as usize);
        let z = _mm256_setzero_ps();
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let (mut b0, mut b1, mut b2, mut b3) = (z, z, z, z);
        while p + 2 <= end {
            let (x, w) = (xt.add(*off.add(p) as usize), _mm256_set1_ps(*val.add(p)));
            let (u, v) = (xt.add(*off.add(p + 1) as usize), _mm256_set1_ps(*val.add(p + 1)));
            a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x), a0);
            a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x.add(8)), a1);
            a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x.add(16)), a2);
            a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x.add(24)), a3);
            b0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(u), b0);
            b1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(u.add(8)), b1);
            b2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(u.add(16)), b2);
            b3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(u.add(24)), b3);
            p += 2;
        }
        if p < end {
            let (x, w) = (xt.add(*off.add(p) as usize), _mm256_set1_ps(*val.add(p)));
            a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x), a0);
            a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x.add(8)), a1);
            a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x.add(16)), a2);
            a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x.add(24)), a3);
        }
        let bv = _mm256_set1_ps(*bias.add(j));
        let y = yt.add(j * NB);
        // max(lo, v) / min(hi, v): with v second, a NaN v is passed through.
        for (q, (a, b)) in [(a0, b0), (a1, b1), (a2, b2), (a3, b3)].into_iter().enumerate() {
            let s = _mm256_add_ps(_mm256_add_ps(a, b), bv);
            _mm256_storeu_ps(y.add(8 * q), _mm256_min_ps(vhi, _mm256_max_ps(vlo, s)));
        }
    }
}
