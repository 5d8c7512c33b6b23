//! `wasm_qmmm_i8_4x16`: simd128 `i32x4.dot_i16x8_s`. Pair layout, as the AVX2 kernel: i16
//! weight pairs (16 columns × 2 k = four v128), each row's two activation bytes one i32 word
//! of two i16, splatted; `i32x4.dot_i16x8_s` multiplies i16 × i16 and adds each pair into an
//! i32 lane. No saturation is possible (neither operand reaches −32768), so every engine
//! computes the same exact sums. 4 rows × 4 vectors = 16 accumulators.

use crate::qgemm::{store_qtile, QNR};
use core::arch::wasm32::*;

pub(crate) const MR: usize = 4;

/// # Safety
/// Pointers as [`crate::qgemm::QmmmFn`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_qmmm_i8_4x16(
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
#[inline(always)]
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
    let mut acc = [[i32x4_splat(0); 4]; R];
    for p in 0..words {
        let bp = b.add(p * 64);
        let bv = [
            v128_load(bp as *const v128),
            v128_load(bp.add(16) as *const v128),
            v128_load(bp.add(32) as *const v128),
            v128_load(bp.add(48) as *const v128),
        ];
        let ap = a.add(p * ws);
        for (r, s) in acc.iter_mut().enumerate() {
            let av = i32x4_splat(ap.add(r * rs).read_unaligned());
            for q in 0..4 {
                s[q] = i32x4_add(s[q], i32x4_dot_i16x8(av, bv[q]));
            }
        }
    }
    let mut t = [[0i32; QNR]; R];
    for (r, s) in acc.iter().enumerate() {
        for q in 0..4 {
            v128_store(t[r].as_mut_ptr().add(4 * q) as *mut v128, s[q]);
        }
    }
    store_qtile(&t, c, ldc, rows, cols);
}
