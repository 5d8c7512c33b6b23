//! `wasm_quantize_dot7_f32`: one row of f32 activations quantized straight into the `Dot7` A
//! panel (`qgemm.rs`, `KernelSet::qgemm_quantize_dot7`), 16 values per step: the u8 code of
//! `QParams::quantize` (`Quant16`, shared with `wasm_quantize_f32`), flipped to `q ^ 0x80` (the
//! tile's i8 operand), the sum of the codes (for the row constant `−64 · Σ a`) and whether
//! every value was finite, in one read of the floats.
//!
//! Why a kernel: the portable loop (`qgemm.rs`, `quantize_dot7_row`) was not vectorized by
//! LLVM for wasm32 (no v128 instruction in the built function), and in the int7 MLP the input
//! quantize, the A packing and the finiteness scan were 11–14 %, 6–8 % and 6 % of the plan's
//! time (wasm/DESIGN.md, "Outside the GEMM"). simd128 only: the same bytes on every engine.

use super::wasm_requant_i32::Quant16;
use core::arch::wasm32::*;

/// Writes the Dot7 bytes of `x` to `out[..x.len()]` and 0x80 (a code of 0) to the rest of
/// `out`; returns `(Σ codes, every value finite)`. Panics when `out` is shorter than `x`.
#[inline(always)]
pub(crate) fn wasm_quantize_dot7_f32(p: crate::quant::QParams, x: &[f32], out: &mut [u8]) -> (u32, bool) {
    let k = x.len();
    assert!(out.len() >= k, "wasm_quantize_dot7_f32: out too short");
    let full = k / 16 * 16;
    let k16 = Quant16::new(p);
    // Hidden from LLVM for the reason given at `Quant16`.
    let (exp, flip) = core::hint::black_box((u32x4_splat(0x7f80_0000), u8x16_splat(0x80)));
    let mut bad = i32x4_splat(0);
    let mut acc = i32x4_splat(0);
    for i in (0..full).step_by(16) {
        // SAFETY: i + 16 <= full <= x.len() <= out.len() (asserted); loads and stores of v128
        // need no alignment in wasm.
        unsafe {
            let ld = |j: usize| v128_load(x.as_ptr().add(i + j) as *const v128);
            let (a, b, c, d) = (ld(0), ld(4), ld(8), ld(12));
            // Exponent all ones: ±∞ or NaN.
            let e = |v: v128| i32x4_eq(v128_and(v, exp), exp);
            bad = v128_or(bad, v128_or(v128_or(e(a), e(b)), v128_or(e(c), e(d))));
            let q = k16.codes([a, b, c, d]);
            acc = i32x4_add(acc, i32x4_extadd_pairwise_u16x8(u16x8_extadd_pairwise_u8x16(q)));
            v128_store(out.as_mut_ptr().add(i) as *mut v128, v128_xor(q, flip));
        }
    }
    let mut sum = (i32x4_extract_lane::<0>(acc) as u32)
        .wrapping_add(i32x4_extract_lane::<1>(acc) as u32)
        .wrapping_add(i32x4_extract_lane::<2>(acc) as u32)
        .wrapping_add(i32x4_extract_lane::<3>(acc) as u32);
    let mut finite = !v128_any_true(bad);
    for (d, &v) in out[full..k].iter_mut().zip(&x[full..]) {
        let q = p.quantize(v);
        sum = sum.wrapping_add(u32::from(q));
        finite &= v.is_finite();
        *d = q ^ 0x80;
    }
    out[k..].fill(0x80);
    (sum, finite)
}
