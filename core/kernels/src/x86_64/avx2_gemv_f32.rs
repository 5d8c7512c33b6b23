//! `avx2_gemv_f32_16`: batch-1 Dense. One input row against one packed 16-column panel:
//! `y += x[i] * W[i, :]` streams the panel contiguously (the same packed layout the GEMM uses,
//! so weights are stored once). Four k steps are in flight at a time (8 accumulators) so the
//! 4-cycle FMA latency does not serialise the loop; the sums are folded at the end.
//!
//! With `rows` non-null only the listed rows of W are read (`k` = how many): the plan passes the
//! non-zero inputs, which skips ~80 % of the weight traffic on a digit (mostly background).

use crate::x86_64::avx2_mmm_f32::NR;
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; `x` and `b` valid for every row read (`0..k`, or the `k`
/// indices in `rows`), `bias` null or valid for `cols`, `y` for `cols` values.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_gemv_f32_16(
    k: usize,
    rows: *const u32,
    x: *const f32,
    b: *const f32,
    bias: *const f32,
    y: *mut f32,
    cols: usize,
    relu: bool,
) {
    let s = if rows.is_null() {
        sums::<false>(k, rows, x, b)
    } else {
        sums::<true>(k, rows, x, b)
    };
    epilogue(s, bias, y, cols, relu);
}

/// `SPARSE` picks the row source at compile time, so neither loop tests it per step.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn sums<const SPARSE: bool>(
    k: usize,
    rows: *const u32,
    x: *const f32,
    b: *const f32,
) -> [__m256; 8] {
    let row = |j: usize| if SPARSE { *rows.add(j) as usize } else { j };
    let mut s = [_mm256_setzero_ps(); 8];
    let mut j = 0;
    while j + 4 <= k {
        for u in 0..4 {
            let i = row(j + u);
            let bp = b.add(i * NR);
            let xv = _mm256_broadcast_ss(&*x.add(i));
            s[2 * u] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp), s[2 * u]);
            s[2 * u + 1] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp.add(8)), s[2 * u + 1]);
        }
        j += 4;
    }
    while j < k {
        let i = row(j);
        let bp = b.add(i * NR);
        let xv = _mm256_broadcast_ss(&*x.add(i));
        s[0] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp), s[0]);
        s[1] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp.add(8)), s[1]);
        j += 1;
    }
    s
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn epilogue(s: [__m256; 8], bias: *const f32, y: *mut f32, cols: usize, relu: bool) {
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
