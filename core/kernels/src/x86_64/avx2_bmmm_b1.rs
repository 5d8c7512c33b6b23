//! `avx2_bmmm_b1_4x8`: AVX2 binary kernel without a vector popcount instruction. A B panel
//! word (8 columns × 64 bits) is two ymm; per row the A word is broadcast and XORed with them,
//! and the bytes are counted with a 16-entry nibble table (`vpshufb` on the low and the high
//! nibbles, Muła's method) into u8 accumulators. A byte gains at most 8 per word, so every 31
//! words (248 < 256) the bytes are summed per 64-bit lane with `vpsadbw` against zero: one u64
//! lane = one column's mismatches, exact. 4 rows: 8 byte accumulators + 2 B words + the table
//! and the nibble mask in 16 ymm (the temporaries may spill; measured in QUANT.md, "Binary
//! input"). The scalar `popcnt` kernel does 8 bytes per instruction; this one 32 bytes per
//! about 6 vector instructions spread over three ports.

use std::arch::x86_64::*;

use crate::bgemm::BNR;

pub(crate) const MR: usize = 4;

/// Words between two `vpsadbw` flushes of the byte accumulators (31 · 8 = 248 <= 255).
const FLUSH: usize = 31;

/// # Safety
/// As [`crate::bgemm::BmmmFn`]; the CPU has AVX2 (checked by the set).
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn avx2_bmmm_b1_4x8(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, rows: usize, cols: usize) {
    match rows {
        1 => tile::<1>(words, a, lda, b, k, c, ldc, cols),
        2 => tile::<2>(words, a, lda, b, k, c, ldc, cols),
        3 => tile::<3>(words, a, lda, b, k, c, ldc, cols),
        _ => tile::<4>(words, a, lda, b, k, c, ldc, cols),
    }
}

#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, cols: usize) {
    let lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    let low = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    let mut tot = [[zero; 2]; R];
    let mut w0 = 0;
    while w0 < words {
        let w1 = (w0 + FLUSH).min(words);
        let mut acc = [[zero; 2]; R];
        for w in w0..w1 {
            let bv = [_mm256_loadu_si256(b.add(w * BNR) as *const __m256i), _mm256_loadu_si256(b.add(w * BNR + 4) as *const __m256i)];
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_epi64x(*a.add(r * lda + w) as i64);
                for (s, &bh) in row.iter_mut().zip(&bv) {
                    let x = _mm256_xor_si256(av, bh);
                    let lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, low));
                    let hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16::<4>(x), low));
                    *s = _mm256_add_epi8(*s, _mm256_add_epi8(lo, hi));
                }
            }
        }
        for (t, row) in tot.iter_mut().zip(&acc) {
            for (th, &s) in t.iter_mut().zip(row) {
                *th = _mm256_add_epi64(*th, _mm256_sad_epu8(s, zero));
            }
        }
        w0 = w1;
    }
    for (r, t) in tot.iter().enumerate() {
        let mut d = [0u64; BNR];
        _mm256_storeu_si256(d.as_mut_ptr() as *mut __m256i, t[0]);
        _mm256_storeu_si256(d.as_mut_ptr().add(4) as *mut __m256i, t[1]);
        for (j, &m) in d.iter().enumerate().take(cols) {
            // m <= k <= MAX_BK: k − 2m fits i32.
            *c.add(r * ldc + j) = k - 2 * m as i32;
        }
    }
}
