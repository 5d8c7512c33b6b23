//! `avx2_qmmm_i8_6x16`: AVX2 `vpmaddwd`. Pair layout: weights are stored widened to i16 pairs
//! (16 columns × 2 k = one 64-byte group, two ymm), and each row's two activation bytes are one
//! i32 word of two i16, broadcast; `vpmaddwd` multiplies i16 × i16 and adds each pair into an
//! i32 lane.
//!
//! Why not `vpmaddubsw` (u8 × i8 → i16): it adds two products into a *saturating* i16, and
//! 255 · 127 · 2 = 64,770 > 32,767, so full-range u8 activations would saturate (oneDNN limits
//! activations to 7 bits for it). `vpmaddwd` on widened operands cannot saturate here (only
//! −32768 · −32768 pairs can, and neither operand reaches −32768), so the sums stay exact and
//! equal to every other kernel's. The widening of the weights is done once at packing; the
//! activations are widened while packing the A panel.
//! 6 rows × 2 ymm = 12 accumulators + 2 B vectors + 1 broadcast = 15 of 16 registers.

use crate::qgemm::{store_qtile, QNR};
use std::arch::x86_64::*;

pub(crate) const MR: usize = 6;

/// # Safety
/// The CPU must support AVX2; pointers as [`crate::qgemm::QmmmFn`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_qmmm_i8_6x16(
    words: usize,
    a: *const i32,
    rs: usize,
    ws: usize,
    b: *const u8,
    c: *mut i32,
    ldc: usize,
    rows: usize,
    cols: usize,
) {
    // A single row (batch 1) computes only that row; qgemm then packs only that row.
    if rows == 1 {
        tile::<1>(words, a, rs, ws, b, c, ldc, rows, cols)
    } else {
        tile::<MR>(words, a, rs, ws, b, c, ldc, rows, cols)
    }
}

/// The tile with R live rows (R = MR, or 1).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile<const R: usize>(
    words: usize,
    a: *const i32,
    rs: usize,
    ws: usize,
    b: *const u8,
    c: *mut i32,
    ldc: usize,
    rows: usize,
    cols: usize,
) {
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    for p in 0..words {
        let b0 = _mm256_loadu_si256(b.add(p * 64) as *const __m256i);
        let b1 = _mm256_loadu_si256(b.add(p * 64 + 32) as *const __m256i);
        let ap = a.add(p * ws);
        for (r, s) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(ap.add(r * rs).read_unaligned());
            s[0] = _mm256_add_epi32(s[0], _mm256_madd_epi16(av, b0));
            s[1] = _mm256_add_epi32(s[1], _mm256_madd_epi16(av, b1));
        }
    }
    if cols == QNR {
        for (r, s) in acc.iter().enumerate().take(rows) {
            _mm256_storeu_si256(c.add(r * ldc) as *mut __m256i, s[0]);
            _mm256_storeu_si256(c.add(r * ldc + 8) as *mut __m256i, s[1]);
        }
    } else {
        let mut t = [[0i32; QNR]; R];
        for (r, s) in acc.iter().enumerate() {
            _mm256_storeu_si256(t[r].as_mut_ptr() as *mut __m256i, s[0]);
            _mm256_storeu_si256(t[r].as_mut_ptr().add(8) as *mut __m256i, s[1]);
        }
        store_qtile(&t, c, ldc, rows, cols);
    }
}
