//! `wasm_bepilogue_i32`: simd128 version of `avx512_bepilogue_i32` (the last epilogue of a
//! binary layer read as codes, one pass over the row): per 4 columns `y = act(alpha · dot +
//! bias)`, `y = act'(y · scale + shift)` (`f32x4.mul` then `add`, never `relaxed_madd`: the
//! portable loop's two roundings), then `Quant16`, the set's quantizer, on 16 values at a time;
//! the last `n % 16` columns take the scalar chain. ReLU is `f32x4.pmax(0, y)`: `0 < y ? y :
//! 0`, i.e. 0 for NaN and for −0, as `f32::max(y, 0.0)` (the wasm `f32x4.max` would keep NaN).

use core::arch::wasm32::*;

use super::wasm_requant_i32::Quant16;
use crate::quant::QParams;

/// # Safety
/// As [`crate::bgemm::BEpiQFn`].
pub(crate) unsafe fn wasm_bepilogue_i32(dot: &[i32], alpha: &[f32], bias: &[f32], relu: bool, post: Option<(&[f32], &[f32], bool)>, p: QParams, out: &mut [u8]) -> bool {
    let n = out.len();
    let (dot, alpha, bias) = (&dot[..n], &alpha[..n], &bias[..n]);
    let post = post.map(|(s, t, r)| (&s[..n], &t[..n], r));
    let q = Quant16::new(p);
    let zero = f32x4_splat(0.0);
    let four = |i: usize| -> v128 {
        let ld = |x: &[f32]| v128_load(x.as_ptr().add(i) as *const v128);
        let d = f32x4_convert_i32x4(v128_load(dot.as_ptr().add(i) as *const v128));
        let mut y = f32x4_add(f32x4_mul(ld(alpha), d), ld(bias));
        if relu {
            y = f32x4_pmax(zero, y);
        }
        if let Some((s, t, prelu)) = post {
            y = f32x4_add(f32x4_mul(y, ld(s)), ld(t));
            if prelu {
                y = f32x4_pmax(zero, y);
            }
        }
        y
    };
    let full = n / 16 * 16;
    for i in (0..full).step_by(16) {
        v128_store(out.as_mut_ptr().add(i) as *mut v128, q.codes([four(i), four(i + 4), four(i + 8), four(i + 12)]));
    }
    for c in full..n {
        let mut y = alpha[c] * dot[c] as f32 + bias[c];
        if relu {
            y = y.max(0.0);
        }
        if let Some((s, t, prelu)) = post {
            y = y * s[c] + t[c];
            if prelu {
                y = y.max(0.0);
            }
        }
        out[c] = p.quantize(y);
    }
    true
}
