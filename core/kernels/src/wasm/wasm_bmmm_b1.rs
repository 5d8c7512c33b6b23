//! `wasm_bmmm_b1_2x8`: simd128 binary kernel. A B panel word (8 columns × 64 bits) is four
//! v128; per row the A word is splatted, XORed, counted per byte with `i8x16.popcnt` and
//! widened pairwise into u16 lanes (`i16x8.extadd_pairwise_u8x16`), added to that row's four
//! u16 accumulators. A u16 lane gains at most 16 per word and k <= MAX_BK = 2^16 bits is 1,024
//! words, so the lanes stay below 2^15 (exact). 2 rows: 8 accumulators + 4 B vectors + the
//! splat, inside x86's 16 xmm registers under V8.

use core::arch::wasm32::*;

use crate::bgemm::BNR;

pub(crate) const MR: usize = 2;

/// # Safety
/// As [`crate::bgemm::BmmmFn`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_bmmm_b1_2x8(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, rows: usize, cols: usize) {
    let mut acc = [[u16x8_splat(0); 4]; MR];
    for w in 0..words {
        let bw = b.add(w * BNR) as *const v128;
        let bv = [v128_load(bw), v128_load(bw.add(1)), v128_load(bw.add(2)), v128_load(bw.add(3))];
        for (r, s) in acc.iter_mut().enumerate().take(rows) {
            let av = u64x2_splat(*a.add(r * lda + w));
            for (q, x) in s.iter_mut().zip(bv) {
                *q = i16x8_add(*q, u16x8_extadd_pairwise_u8x16(i8x16_popcnt(v128_xor(av, x))));
            }
        }
    }
    for (r, s) in acc.iter().enumerate().take(rows) {
        for (q, v) in s.iter().enumerate() {
            // u16 × 8 → u32 × 4: lanes 0, 1 belong to column 2q, lanes 2, 3 to column 2q + 1.
            let d = u32x4_extadd_pairwise_u16x8(*v);
            let d0 = u32x4_extract_lane::<0>(d) + u32x4_extract_lane::<1>(d);
            let d1 = u32x4_extract_lane::<2>(d) + u32x4_extract_lane::<3>(d);
            for (j, dj) in [(2 * q, d0), (2 * q + 1, d1)] {
                if j < cols {
                    *c.add(r * ldc + j) = k - 2 * dj as i32;
                }
            }
        }
    }
}
