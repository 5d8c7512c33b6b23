//! `avx512_quantize_f32`: the activation quantizer of the AVX-512 sets, written with
//! intrinsics, that also tells whether every input was finite. The same bytes as
//! `QParams::quantize` (a division, the specification; QUANT.md, "Quantizing by
//! multiplication"): per 16 floats
//!
//! * `x` clamped to `±L`, `L = 2^20 · scale` (exact: a power-of-two multiple). `vmaxps`/`vminps`
//!   return their second operand when one is NaN, so NaN passes through; a clamped `x` has a
//!   quotient beyond ±2^20, whose code the clamp to 0..=255 decides either way;
//! * `q = x · inv` and two FMA corrections `q += (x − q · scale) · inv` (`inv = RN(1/scale)`):
//!   the first makes `q` faithful, the second is Markstein's step, which then gives
//!   `RN(x / scale)`, the division's quotient;
//! * `vcvtps2dq` with round-to-nearest-even embedded (not MXCSR's mode): the quotient's
//!   `round_half_even`, which the portable code computes with the `1.5 · 2^23` trick;
//! * NaN lanes (ordered compare) take the zero point; `+ zp`, then max 0 and `vpmovusdb`'s
//!   unsigned saturation clamp to 0..=255;
//! * `vfpclassps` (±∞, NaN) ORed into a flag: the input check `Plan::run` would otherwise make
//!   in a pass of its own (`Exec::checks_input`).
//!
//! 15 vector operations per 16 values where the portable FMA body (the `quant::quantize_slice_fma`
//! that LLVM vectorizes for AVX2) takes about 23 with the check: the quantizer is port-bound,
//! so the count is the cost (measured in QUANT.md, "Speed").

use crate::quant::{quantize_slice_fma, QParams};
use std::arch::x86_64::*;

/// `q[i] = p.quantize(x[i])` (the same bytes); `true` when every `x[i]` is finite.
///
/// # Safety
/// The CPU must support AVX-512F, BW, DQ and FMA; `x` and `q` have the same length.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
pub(crate) unsafe fn avx512_quantize_f32(p: QParams, x: &[f32], q: &mut [u8]) -> bool {
    let Some(inv) = p.fma_reciprocal() else {
        // A scale outside [2^-64, 2^64]: the portable body, which divides there.
        return quantize_slice_fma(p, x, q);
    };
    debug_assert_eq!(x.len(), q.len());
    let n = x.len().min(q.len());
    let k = Consts::new(p, inv);
    let mut bad: u32 = 0;
    let mut i = 0;
    while i + 16 <= n {
        let (c, nf) = sixteen(&k, _mm512_loadu_ps(x.as_ptr().add(i)));
        _mm_storeu_si128(q.as_mut_ptr().add(i) as *mut __m128i, c);
        bad |= nf;
        i += 16;
    }
    if i < n {
        let m: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
        // Lanes past the end load 0.0 (finite) and are not stored.
        let (c, nf) = sixteen(&k, _mm512_maskz_loadu_ps(m, x.as_ptr().add(i)));
        _mm_mask_storeu_epi8(q.as_mut_ptr().add(i) as *mut i8, m, c);
        bad |= nf;
    }
    bad == 0
}

/// The quantizer's constants for one `QParams` (`inv` = its `fma_reciprocal`).
pub(crate) struct Consts {
    s: __m512,
    inv: __m512,
    hi: __m512,
    lo: __m512,
    zp: __m512i,
}

impl Consts {
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new(p: QParams, inv: f32) -> Consts {
        Consts {
            s: _mm512_set1_ps(p.scale),
            inv: _mm512_set1_ps(inv),
            // 2^20 · scale: exact (a power-of-two multiple, scale in [2^-64, 2^64]).
            hi: _mm512_set1_ps(1_048_576.0 * p.scale),
            lo: _mm512_set1_ps(-1_048_576.0 * p.scale),
            zp: _mm512_set1_epi32(p.zero_point),
        }
    }
}

/// vfpclassps categories: QNaN 0x01, +∞ 0x08, −∞ 0x10, SNaN 0x80.
const NON_FINITE: i32 = 0x01 | 0x08 | 0x10 | 0x80;

/// 16 codes, and the mask of the lanes that were not finite.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
pub(crate) fn sixteen(k: &Consts, x: __m512) -> (__m128i, u32) {
    let nonfin = u32::from(_mm512_fpclass_ps_mask::<NON_FINITE>(x));
    let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(x, x);
    // NaN stays NaN: `max(lo, x)` returns x (its second operand) when x is NaN.
    let xc = _mm512_min_ps(k.hi, _mm512_max_ps(k.lo, x));
    let q0 = _mm512_mul_ps(xc, k.inv);
    let q1 = _mm512_fmadd_ps(_mm512_fnmadd_ps(q0, k.s, xc), k.inv, q0);
    let q2 = _mm512_fmadd_ps(_mm512_fnmadd_ps(q1, k.s, xc), k.inv, q1);
    let r = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(q2);
    // NaN lanes (r is the "integer indefinite" there) keep zp alone.
    let c = _mm512_max_epi32(_mm512_mask_add_epi32(k.zp, ordered, r, k.zp), _mm512_setzero_si512());
    (_mm512_cvtusepi32_epi8(c), nonfin)
}

/// [`avx512_quantize_f32`] without the flag (`KernelSet::quantize`).
///
/// # Safety
/// As [`avx512_quantize_f32`].
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
pub(crate) unsafe fn avx512_quantize_nocheck_f32(p: QParams, x: &[f32], q: &mut [u8]) {
    avx512_quantize_f32(p, x, q);
}
