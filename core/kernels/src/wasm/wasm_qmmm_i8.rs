//! `wasm_qmmm_i8_4x16`: simd128 `i32x4.dot_i16x8_s`. Pair layout, as the AVX2 kernel: i16
//! weight pairs (16 columns × 2 k = four v128), each row's two activation bytes one i32 word
//! of two i16, splatted; `i32x4.dot_i16x8_s` multiplies i16 × i16 and adds each pair into an
//! i32 lane. No saturation is possible (neither operand reaches −32768), so every engine
//! computes the same exact sums. 4 rows × 16 columns as two passes of 4 × 8 over k: 8
//! accumulators + 2 weight vectors + 1 splat = 11 v128 values, where one pass of 16
//! accumulators (21 values) spilled under V8 on x86 (16 xmm registers, one kept as scratch).
//! Measured in `wasm/DESIGN.md` ("int8 in the relaxed build").

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
        let mut t = [[0i32; QNR]; 1];
        pass::<1, 4>(words, a, rs, ws, b, 0, &mut t);
        store_qtile(&t, c, ldc, rows, cols);
    } else {
        let mut t = [[0i32; QNR]; MR];
        pass::<MR, PASS>(words, a, rs, ws, b, 0, &mut t);
        for q0 in (PASS..4).step_by(PASS) {
            if cols > 4 * q0 {
                pass::<MR, PASS>(words, a, rs, ws, b, q0, &mut t);
            }
        }
        store_qtile(&t, c, ldc, rows, cols);
    }
}

/// Column groups of 4 per pass over k.
const PASS: usize = 2;

/// R rows × CV column groups of 4 (from group `q0`) into `t`.
#[inline(always)]
unsafe fn pass<const R: usize, const CV: usize>(words: usize, a: *const i32, rs: usize, ws: usize, b: *const u8, q0: usize, t: &mut [[i32; QNR]; R]) {
    let mut acc = [[i32x4_splat(0); CV]; R];
    for p in 0..words {
        let bp = b.add(p * 64 + q0 * 16);
        let mut bv = [i32x4_splat(0); CV];
        for (q, v) in bv.iter_mut().enumerate() {
            *v = v128_load(bp.add(16 * q) as *const v128);
        }
        let ap = a.add(p * ws);
        for (r, s) in acc.iter_mut().enumerate() {
            let av = v128_load32_splat(ap.add(r * rs) as *const u32);
            for (q, v) in s.iter_mut().enumerate() {
                *v = i32x4_add(*v, i32x4_dot_i16x8(av, bv[q]));
            }
        }
    }
    for (r, s) in acc.iter().enumerate() {
        for (q, v) in s.iter().enumerate() {
            v128_store(t[r].as_mut_ptr().add(4 * (q0 + q)) as *mut v128, *v);
        }
    }
}
