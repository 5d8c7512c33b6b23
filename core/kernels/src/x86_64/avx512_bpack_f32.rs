//! `avx512_bpack_f32`: AVX-512F sign-packer. 16 values per `vcmpps` into a mask register: a
//! 16-bit mask is 16 packed bits, four of them one u64 word. With an input affine, `vmulps`
//! then `vaddps` (two roundings, never an FMA: the `Affine` step's bits). The last partial
//! chunk loads and compares under a lane mask, so bits past k are 0 and nothing past x is read.
//! `_CMP_GE_OQ` is false for NaN and true for −0: the Sign step's rule.

use std::arch::x86_64::*;

/// # Safety
/// As [`crate::bgemm::BPackFn`]; the CPU has AVX-512F (checked by the set).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_bpack_f32(x: &[f32], pre: Option<(&[f32], &[f32])>, out: &mut [u64]) -> bool {
    let k = x.len();
    out.fill(0);
    let zero = _mm512_setzero_ps();
    // Non-finite = exponent all ones: one AND and one compare per 16 values (the input check
    // of `Plan::run` done on the packer's own read).
    let exp = _mm512_set1_epi32(0x7f80_0000);
    let mut bad: __mmask16 = 0;
    let mut p = 0;
    while p < k {
        let n = (k - p).min(16);
        let m: __mmask16 = if n == 16 { 0xffff } else { (1u16 << n) - 1 };
        let mut v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(p));
        bad |= _mm512_mask_cmpeq_epi32_mask(m, _mm512_and_si512(_mm512_castps_si512(v), exp), exp);
        if let Some((s, t)) = pre {
            let sv = _mm512_maskz_loadu_ps(m, s.as_ptr().add(p));
            let tv = _mm512_maskz_loadu_ps(m, t.as_ptr().add(p));
            v = _mm512_add_ps(_mm512_mul_ps(v, sv), tv);
        }
        let ge = _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(m, v, zero);
        // 16 divides 64: a chunk never straddles two words.
        out[p / 64] |= u64::from(ge) << (p % 64);
        p += 16;
    }
    bad == 0
}
