//! `wasm_bmmmsign_b1_4x8`: the simd128 tile of `wasm_bmmm_b1_4x8` whose products become the
//! next binary layer's input bits (`KernelSet::bgemm_sign`): per row, the 8 dot products
//! `k − 2·d` (two i32x4) are compared with the rule's `lo` and `hi` (`i32x4.ge_s`, `le_s`) and
//! the two 4-bit `i32x4.bitmask`s are the output byte, stored as is. Without it the set went
//! through `bgemm_sign`'s generic path: an i32 tile stored, read back, compared column by
//! column and ORed into the output word.

use core::arch::wasm32::*;

use super::wasm_bmmm_b1::mismatches;

/// # Safety
/// As [`crate::bgemm::BmmmSignFn`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_bmmmsign_b1_4x8(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, lo: *const i32, hi: *const i32, out: *mut u8, ldo: usize, rows: usize) {
    // 4 rows or one at a time, as `wasm_bmmm_b1_4x8` (module size).
    if rows >= 4 {
        tile::<4>(words, a, lda, b, k, lo, hi, out, ldo);
    } else {
        for r in 0..rows {
            tile::<1>(words, a.add(r * lda), lda, b, k, lo, hi, out.add(r * ldo), ldo);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, lo: *const i32, hi: *const i32, out: *mut u8, ldo: usize) {
    // Both halves: the rule pads columns past n with "never", which a count of 0 (dot = k)
    // meets as well as any other, so the padding needs no test here.
    let tot = mismatches::<R>(words, a, lda, b, 2);
    let kv = i32x4_splat(k);
    let (lo0, lo1) = (v128_load(lo as *const v128), v128_load(lo.add(4) as *const v128));
    let (hi0, hi1) = (v128_load(hi as *const v128), v128_load(hi.add(4) as *const v128));
    for (r, t) in tot.iter().enumerate() {
        // k − 2·d fits i32 (k <= MAX_BK).
        let d0 = i32x4_sub(kv, i32x4_shl(t[0], 1));
        let d1 = i32x4_sub(kv, i32x4_shl(t[1], 1));
        let m0 = i32x4_bitmask(v128_and(i32x4_ge(d0, lo0), i32x4_le(d0, hi0)));
        let m1 = i32x4_bitmask(v128_and(i32x4_ge(d1, lo1), i32x4_le(d1, hi1)));
        *out.add(r * ldo) = m0 | (m1 << 4);
    }
}
