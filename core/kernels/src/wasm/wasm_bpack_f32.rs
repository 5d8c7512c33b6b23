//! `wasm_bpack_f32`: simd128 sign-packer. 16 values at a time: four `f32x4.ge` masks (all ones
//! or zero per lane) are narrowed with signed saturation (`i16x8.narrow_i32x4_s` twice, then
//! `i8x16.narrow_i16x8_s`: −1 stays −1, 0 stays 0) into one byte mask whose `i8x16.bitmask` is
//! the 16 bits, and a 64-bit word is assembled in a local and stored once. The former loop
//! took an `i32x4.bitmask` per 4 values and ORed it into the output word in memory each time.
//! With an input affine, `f32x4.mul` then `f32x4.add`, never `relaxed_madd` even in the relaxed
//! build: the `Affine` step rounds twice and the bits must match it. The last `k % 16` values
//! go through the scalar rule. `f32x4.ge` is false for NaN and true for −0.

use core::arch::wasm32::*;

/// # Safety
/// As [`crate::bgemm::BPackFn`].
pub(crate) unsafe fn wasm_bpack_f32(x: &[f32], pre: Option<(&[f32], &[f32])>, out: &mut [u64]) -> bool {
    let k = x.len();
    out.fill(0);
    let zero = f32x4_splat(0.0);
    // `x − x` is +0 for a finite x and NaN otherwise; OR-ed together, any NaN stays a NaN.
    let mut bad = zero;
    let full = k - k % 16;
    // Four values' mask, the input check on the same read.
    let four = |p: usize, bad: &mut v128| -> v128 {
        let mut v = v128_load(x.as_ptr().add(p) as *const v128);
        *bad = v128_or(*bad, f32x4_sub(v, v));
        if let Some((s, t)) = pre {
            let sv = v128_load(s.as_ptr().add(p) as *const v128);
            let tv = v128_load(t.as_ptr().add(p) as *const v128);
            v = f32x4_add(f32x4_mul(v, sv), tv);
        }
        f32x4_ge(v, zero)
    };
    let mut p = 0;
    while p < full {
        // Up to four 16-value groups into one word (16 divides 64: a group never straddles).
        let mut word = 0u64;
        let end = full.min((p / 64 + 1) * 64);
        while p < end {
            let lo = i16x8_narrow_i32x4(four(p, &mut bad), four(p + 4, &mut bad));
            let hi = i16x8_narrow_i32x4(four(p + 8, &mut bad), four(p + 12, &mut bad));
            word |= u64::from(i8x16_bitmask(i8x16_narrow_i16x8(lo, hi))) << (p % 64);
            p += 16;
        }
        out[(p - 1) / 64] = word;
    }
    let mut finite = !v128_any_true(f32x4_ne(bad, bad));
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
