//! `avx2_gemv_f32_16`: batch-1 Dense. One input row against one packed 16-column panel:
//! `y += x[i] * W[i, :]` streams the panel contiguously (the same packed layout the GEMM uses,
//! so weights are stored once). Four k steps are in flight at a time (8 accumulators) so the
//! 4-cycle FMA latency does not serialise the loop; the sums are folded at the end.

use crate::kernels::x86_64::mmm_f32::NR;
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; `x` valid for `k`, `b` for `k*NR`, `bias` null or valid
/// for `cols`, `y` for `cols` values.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_gemv_f32_16(
    k: usize,
    x: *const f32,
    b: *const f32,
    bias: *const f32,
    y: *mut f32,
    cols: usize,
    relu: bool,
) {
    let mut s = [_mm256_setzero_ps(); 8];
    let mut i = 0;
    while i + 4 <= k {
        let bp = b.add(i * NR);
        for u in 0..4 {
            let xv = _mm256_broadcast_ss(&*x.add(i + u));
            s[2 * u] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp.add(u * NR)), s[2 * u]);
            s[2 * u + 1] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp.add(u * NR + 8)), s[2 * u + 1]);
        }
        i += 4;
    }
    while i < k {
        let bp = b.add(i * NR);
        let xv = _mm256_broadcast_ss(&*x.add(i));
        s[0] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp), s[0]);
        s[1] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp.add(8)), s[1]);
        i += 1;
    }
    let mut v0 = _mm256_add_ps(_mm256_add_ps(s[0], s[2]), _mm256_add_ps(s[4], s[6]));
    let mut v1 = _mm256_add_ps(_mm256_add_ps(s[1], s[3]), _mm256_add_ps(s[5], s[7]));
    if cols == NR {
        if !bias.is_null() {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias.add(8)));
        }
        if relu {
            v0 = _mm256_max_ps(v0, _mm256_setzero_ps());
            v1 = _mm256_max_ps(v1, _mm256_setzero_ps());
        }
        _mm256_storeu_ps(y, v0);
        _mm256_storeu_ps(y.add(8), v1);
    } else {
        let mut tmp = [0.0f32; NR];
        _mm256_storeu_ps(tmp.as_mut_ptr(), v0);
        _mm256_storeu_ps(tmp.as_mut_ptr().add(8), v1);
        for (j, &t) in tmp.iter().enumerate().take(cols) {
            let mut v = t;
            if !bias.is_null() {
                v += *bias.add(j);
            }
            if relu {
                v = v.max(0.0);
            }
            *y.add(j) = v;
        }
    }
}
