//! `wasm_qmmm_i8_4x16`: simd128 `i32x4.dot_i16x8_s`. Pair layout, as the AVX2 kernel: i16
//! weight pairs (16 columns × 2 k = four v128), each row's two activation bytes one i32 word
//! of two i16, splatted; `i32x4.dot_i16x8_s` multiplies i16 × i16 and adds each pair into an
//! i32 lane. No saturation is possible (neither operand reaches −32768), so every engine
//! computes the same exact sums. 4 rows × 16 columns as two passes of 4 × 8 over k: 8
//! accumulators + 2 weight vectors + 1 splat = 11 v128 values, where one pass of 16
//! accumulators (21 values) spilled under V8 on x86 (16 xmm registers, one kept as scratch).
//! Measured in `wasm/DESIGN.md` ("int8 in the relaxed build").
//!
//! `wasm_qmmm_gather_i8_4x16` is the same tile reading each row's pair word where it lies: a
//! conv's input widened to u16 once per call (`qgemm.rs`, `gather_pair`), so a pair word is 4
//! bytes of it, splatted straight from there (no A panel, no per-word gather).

use crate::qgemm::{store_qtile, store_qtile_max, QNR};
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
    tile(words, &PackedWords { a, rs, ws }, b, c, ldc, rows, cols, false);
}

/// `wasm_qmmm_gather_i8_4x16`: the tile with pair word `(p, r)` the i32 (unaligned) at
/// `rows[r] + offs[p]`, i.e. two u16 of the widened input (`qgemm.rs`, `gather_pair`).
/// With `pool` the MR rows are one max-pool window (a fused 2 × 2 pool, `qgemm_gather_max`):
/// only their per-column max is stored, as one row at `c`.
///
/// # Safety
/// `rows` holds MR pointers (rows past `nrows` repeat a valid one: computed, not stored),
/// each readable at `offs[p] .. + 4` for every `p < words`; `b`, `c` as
/// [`wasm_qmmm_i8_4x16`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_qmmm_gather_i8_4x16(
    words: usize,
    rows: *const *const u8,
    offs: *const u32,
    b: *const u8,
    c: *mut i32,
    ldc: usize,
    nrows: usize,
    cols: usize,
    pool: bool,
) {
    let g = GatheredWords { rows: [*rows, *rows.add(1), *rows.add(2), *rows.add(3)], offs };
    tile(words, &g, b, c, ldc, nrows, cols, pool);
}

/// Where a tile's A words are (this tile's pair words, the 7-bit tile's quads:
/// `wasm_relaxed_qmmm_i7.rs` adds its row constants to these two sources).
pub(crate) trait AWords {
    /// Row r's word p. Safety: p < words, r < MR.
    unsafe fn word(&self, p: usize, r: usize) -> *const u32;
}

/// A packed panel (`qgemm.rs`): word `(p, r)` at `a + p·ws + r·rs`.
pub(crate) struct PackedWords {
    pub(crate) a: *const i32,
    pub(crate) rs: usize,
    pub(crate) ws: usize,
}

impl AWords for PackedWords {
    #[inline(always)]
    unsafe fn word(&self, p: usize, r: usize) -> *const u32 {
        self.a.add(p * self.ws + r * self.rs) as *const u32
    }
}

/// Rows read in place: word `(p, r)` at `rows[r] + offs[p]`.
pub(crate) struct GatheredWords {
    pub(crate) rows: [*const u8; MR],
    pub(crate) offs: *const u32,
}

impl AWords for GatheredWords {
    #[inline(always)]
    unsafe fn word(&self, p: usize, r: usize) -> *const u32 {
        self.rows[r].add(*self.offs.add(p) as usize) as *const u32
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<A: AWords>(words: usize, a: &A, b: *const u8, c: *mut i32, ldc: usize, rows: usize, cols: usize, pool: bool) {
    // A single row (batch 1) computes only that row; qgemm then packs only that row.
    if rows == 1 && !pool {
        let mut t = [[0i32; QNR]; 1];
        pass::<A, 1, 4>(words, a, b, 0, &mut t);
        store_qtile(&t, c, ldc, rows, cols);
    } else {
        let mut t = [[0i32; QNR]; MR];
        pass::<A, MR, PASS>(words, a, b, 0, &mut t);
        for q0 in (PASS..4).step_by(PASS) {
            if cols > 4 * q0 {
                pass::<A, MR, PASS>(words, a, b, q0, &mut t);
            }
        }
        if pool {
            store_qtile_max(&t, c, cols);
        } else {
            store_qtile(&t, c, ldc, rows, cols);
        }
    }
}

/// Column groups of 4 per pass over k.
const PASS: usize = 2;

/// R rows × CV column groups of 4 (from group `q0`) into `t`.
#[inline(always)]
unsafe fn pass<A: AWords, const R: usize, const CV: usize>(words: usize, a: &A, b: *const u8, q0: usize, t: &mut [[i32; QNR]; R]) {
    let mut acc = [[i32x4_splat(0); CV]; R];
    for p in 0..words {
        let bp = b.add(p * 64 + q0 * 16);
        let mut bv = [i32x4_splat(0); CV];
        for (q, v) in bv.iter_mut().enumerate() {
            *v = v128_load(bp.add(16 * q) as *const v128);
        }
        for (r, s) in acc.iter_mut().enumerate() {
            let av = v128_load32_splat(a.word(p, r));
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
