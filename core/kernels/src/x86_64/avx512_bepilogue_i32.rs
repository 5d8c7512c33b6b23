//! `avx512_bepilogue_i32`: the last epilogue of a binary layer whose output an int8 layer reads
//! as codes (the binary-input MLP's 256 → 10 input), in one AVX-512 pass over the row: per 16
//! columns `y = act(alpha · dot + bias)`, then the fused BatchNorm `y = act'(y · scale +
//! shift)`, then the FMA quantizer (`avx512_quantize_f32`'s 16 values: the division's codes).
//! The executor's portable loop (SSE2 in the runtime crate) wrote the f32 row and the quantizer
//! read it back; together about a sixth of that model's time natively (QUANT.md, "Binary
//! stacks"). The operations are the portable loop's in its order (`vmulps`, `vaddps`, never an
//! FMA); ReLU is `vmaxps(y, 0)`, which returns its second operand for NaN and for ±0, as
//! `f32::max(y, 0.0)` compiles (NaN → 0); a zero's sign cannot change a code anyway.

use std::arch::x86_64::*;

use super::avx512_quantize_f32::{sixteen, Consts};
use crate::quant::QParams;

/// # Safety
/// As [`crate::bgemm::BEpiQFn`]; the CPU has AVX-512F, BW, DQ, VL and FMA (checked by the set).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
pub(crate) unsafe fn avx512_bepilogue_i32(dot: &[i32], alpha: &[f32], bias: &[f32], relu: bool, post: Option<(&[f32], &[f32], bool)>, p: QParams, out: &mut [u8]) -> bool {
    let Some(inv) = p.fma_reciprocal() else {
        return false;
    };
    let n = out.len();
    debug_assert!(dot.len() >= n && alpha.len() >= n && bias.len() >= n);
    let k = Consts::new(p, inv);
    let zero = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let m: __mmask16 = if n - i >= 16 { 0xffff } else { (1u16 << (n - i)) - 1 };
        // Lanes past n load 0 and are not stored.
        let d = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, dot.as_ptr().add(i)));
        let mut y = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, alpha.as_ptr().add(i)), d), _mm512_maskz_loadu_ps(m, bias.as_ptr().add(i)));
        if relu {
            y = _mm512_max_ps(y, zero);
        }
        if let Some((s, t, prelu)) = post {
            y = _mm512_add_ps(_mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, s.as_ptr().add(i))), _mm512_maskz_loadu_ps(m, t.as_ptr().add(i)));
            if prelu {
                y = _mm512_max_ps(y, zero);
            }
        }
        _mm_mask_storeu_epi8(out.as_mut_ptr().add(i) as *mut i8, m, sixteen(&k, y).0);
        i += 16;
    }
    true
}
