//! `avx2_bpack_f32`: AVX sign-packer of the AVX2 set. 8 values per `vcmpps` + `vmovmskps`
//! (8 packed bits); with an input affine, `vmulps` then `vaddps` (two roundings, never an FMA:
//! the `Affine` step's bits). The last `k % 8` values go through the scalar rule, so bits past
//! k are 0 and nothing past x is read. `_CMP_GE_OQ` is false for NaN and true for −0.

use std::arch::x86_64::*;

/// # Safety
/// As [`crate::bgemm::BPackFn`]; the CPU has AVX (the AVX2 set checks AVX2).
#[target_feature(enable = "avx")]
pub(crate) unsafe fn avx2_bpack_f32(x: &[f32], pre: Option<(&[f32], &[f32])>, out: &mut [u64]) -> bool {
    let k = x.len();
    out.fill(0);
    let zero = _mm256_setzero_ps();
    // `x − x` is +0 for a finite x and NaN otherwise; OR-ed together, any NaN stays a NaN
    // (exponent all ones, mantissa not 0). Two float ops per 8 values (AVX has no 256-bit
    // integer compare).
    let mut bad = zero;
    let full = k - k % 8;
    let mut p = 0;
    while p < full {
        let mut v = _mm256_loadu_ps(x.as_ptr().add(p));
        bad = _mm256_or_ps(bad, _mm256_sub_ps(v, v));
        if let Some((s, t)) = pre {
            v = _mm256_add_ps(_mm256_mul_ps(v, _mm256_loadu_ps(s.as_ptr().add(p))), _mm256_loadu_ps(t.as_ptr().add(p)));
        }
        let ge = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v, zero)) as u32;
        // 8 divides 64: a chunk never straddles two words.
        out[p / 64] |= u64::from(ge) << (p % 64);
        p += 8;
    }
    let mut finite = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(bad, bad)) == 0;
    for p in full..k {
        finite &= x[p].is_finite();
        let v = match pre {
            Some((s, t)) => x[p] * s[p] + t[p],
            None => x[p],
        };
        out[p / 64] |= u64::from(v >= 0.0) << (p % 64);
    }
    finite
}
