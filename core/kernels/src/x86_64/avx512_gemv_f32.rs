//! `avx512_gemv_f32_32`: batch-1 Dense on the AVX-512 set's packed 32-column panels (the
//! panel width must match `avx512_mmm_f32_12x32`'s NR, since the plan packs weights once per
//! set). Same scheme as `avx2_gemv_f32_16`: `y += x[i] * W[i, :]` streams each panel
//! contiguously, four k steps in flight (8 zmm accumulators) so FMA latency is hidden.
//!
//! With `rows` non-null only the listed rows of W are read (`k` = how many): the non-zero inputs.

use crate::x86_64::avx512_mmm_f32::NR;
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX-512F; `x` and `b` valid for every row read (`0..k`, or the `k`
/// indices in `rows`), `bias` null or valid for `cols`, `y` for `cols` values.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_gemv_f32_32(
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
    let mut v0 = _mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[4], s[6]));
    let mut v1 = _mm512_add_ps(_mm512_add_ps(s[1], s[3]), _mm512_add_ps(s[5], s[7]));
    // Masked tail: only the first `cols` lanes of bias and y are touched.
    let bits = if cols >= NR { u32::MAX } else { (1u32 << cols) - 1 };
    let (m0, m1) = (bits as __mmask16, (bits >> 16) as __mmask16);
    if !bias.is_null() {
        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, bias));
        v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, bias.add(16)));
    }
    if relu {
        v0 = _mm512_max_ps(v0, _mm512_setzero_ps());
        v1 = _mm512_max_ps(v1, _mm512_setzero_ps());
    }
    _mm512_mask_storeu_ps(y, m0, v0);
    _mm512_mask_storeu_ps(y.add(16), m1, v1);
}

/// `SPARSE` picks the row source at compile time, so neither loop tests it per step.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sums<const SPARSE: bool>(k: usize, rows: *const u32, x: *const f32, b: *const f32) -> [__m512; 8] {
    let row = |j: usize| if SPARSE { *rows.add(j) as usize } else { j };
    let mut s = [_mm512_setzero_ps(); 8];
    let mut j = 0;
    while j + 4 <= k {
        for u in 0..4 {
            let i = row(j + u);
            let bp = b.add(i * NR);
            let xv = _mm512_set1_ps(*x.add(i));
            s[2 * u] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bp), s[2 * u]);
            s[2 * u + 1] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bp.add(16)), s[2 * u + 1]);
        }
        j += 4;
    }
    while j < k {
        let i = row(j);
        let bp = b.add(i * NR);
        let xv = _mm512_set1_ps(*x.add(i));
        s[0] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bp), s[0]);
        s[1] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bp.add(16)), s[1]);
        j += 1;
    }
    s
}
