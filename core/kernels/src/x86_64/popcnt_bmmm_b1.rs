//! `popcnt_bmmm_b1_4x8`: the generic binary body compiled with the `popcnt` instruction (the
//! AVX2 set's binary kernel). AVX2 has no vector popcount; a `vpshufb` nibble table would do 32
//! bytes per 4–5 instructions, scalar `popcnt` does 8 bytes per instruction at one per cycle,
//! and was the cheaper one to write (speed of the two: untested side by side).

pub(crate) const MR: usize = 4;

/// # Safety
/// As [`crate::bgemm::BmmmFn`]; the CPU has `popcnt` (the AVX2 set checks it).
#[target_feature(enable = "popcnt")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn popcnt_bmmm_b1_4x8(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, rows: usize, cols: usize) {
    crate::bgemm::bmmm_scalar::<MR>(words, a, lda, b, k, c, ldc, rows, cols)
}
