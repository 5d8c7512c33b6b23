//! `generic_bmmm_b1_4x8`: the scalar binary reference (`bgemm.rs`): per k-word, XOR of one A
//! word with the 8 columns' words, `count_ones`. Every SIMD binary kernel is tested against it.

pub(crate) const MR: usize = 4;

/// # Safety
/// As [`crate::bgemm::BmmmFn`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn generic_bmmm_b1_4x8(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, rows: usize, cols: usize) {
    crate::bgemm::bmmm_scalar::<MR>(words, a, lda, b, k, c, ldc, rows, cols)
}
