//! `wasm_bpack_f32`: simd128 sign-packer. 4 values per `f32x4.ge` + `i32x4.bitmask` (4 packed
//! bits); with an input affine, `f32x4.mul` then `f32x4.add`, never `relaxed_madd` even in the
//! relaxed build: the `Affine` step rounds twice and the bits must match it. The last `k % 4`
//! values go through the scalar rule. `f32x4.ge` is false for NaN and true for −0.

use core::arch::wasm32::*;

/// # Safety
/// As [`crate::bgemm::BPackFn`].
pub(crate) unsafe fn wasm_bpack_f32(x: &[f32], pre: Option<(&[f32], &[f32])>, out: &mut [u64]) -> bool {
    let k = x.len();
    out.fill(0);
    let zero = f32x4_splat(0.0);
    // `x − x` is +0 for a finite x and NaN otherwise; OR-ed together, any NaN stays a NaN.
    let mut bad = zero;
    let full = k - k % 4;
    let mut p = 0;
    while p < full {
        let mut v = v128_load(x.as_ptr().add(p) as *const v128);
        bad = v128_or(bad, f32x4_sub(v, v));
        if let Some((s, t)) = pre {
            let sv = v128_load(s.as_ptr().add(p) as *const v128);
            let tv = v128_load(t.as_ptr().add(p) as *const v128);
            v = f32x4_add(f32x4_mul(v, sv), tv);
        }
        let ge = i32x4_bitmask(f32x4_ge(v, zero)) as u64;
        // 4 divides 64: a chunk never straddles two words.
        out[p / 64] |= ge << (p % 64);
        p += 4;
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
