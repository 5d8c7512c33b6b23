//! `wasm_relaxed_qmmm_i7_4x16`: relaxed SIMD `i32x4.relaxed_dot_i8x16_i7x16_add_s`, 16
//! multiply-adds per instruction, for weights on a 7-bit grid (−64..=63: `mdeploy quantize
//! --bits 7`), on operands kept where every engine computes the same sums.
//!
//! The instruction multiplies an i8 vector by an "i7" vector and adds groups of 4 products into
//! i32 lanes. Engines agree only when the i7 operand lies in 0..=127 (x86 engines read it as
//! unsigned, `pmaddubsw` or `vpdpbusd`; Arm's `sdot` as signed) and no i16 pair sum saturates
//! (`pmaddubsw`). Our u8 codes (0..=255) fit neither role and int8 weights (−127..=127) need two
//! dots (the split layout this file held before, measured no faster than the pair tile:
//! `wasm/DESIGN.md`). A 7-bit weight fits once shifted, so one dot is exact (the `Dot7` layout
//! of `qgemm.rs`):
//!
//! ```text
//!   x = a − 128 = a ^ 0x80      −128..=127  (the i8 operand)
//!   v = w + 64                     0..=127  (the i7 operand; 0 in the rows padding k to 4)
//!   Σ x·v = Σ a·w + 64·Σ a − 128·Σ w − 8192·k      over the k real rows, so
//!   Σ a·w = Σ x·v + (128·Σ w[·][c] + 8192·k)  − 64·Σ a[r][·]
//!                   column constant (packing B)   row constant (packing A, once per row panel,
//!                                                 shared by every column tile)
//! ```
//!
//! The accumulators start at the two constants. Each product is at most 128·127 in magnitude,
//! so an i16 pair sum is at most 32,512 (no saturation); the constants wrap in i32 but the
//! final sum is the exact `Σ a·w`, which fits (`MAX_QK`, QUANT.md), and wrapping adds are exact
//! modulo 2^32.
//!
//! Tile: 4 rows × 16 columns, computed as two passes of 4 × 8 (8 accumulators, 2 weight vectors
//! and a splat: 11 v128 values, inside the 15 xmm registers V8 allocates on x86); a single row
//! (batch 1) runs 1 × 16 in one pass. The dot accumulates in place (V8 with AVX-VNNI emits one
//! `vpdpbusd` per dot; its 5-cycle latency is covered by the 8 independent accumulators).

use crate::qgemm::{store_qtile, store_qtile_max, QNR};
use crate::wasm::wasm_qmmm_i8::{AWords, GatheredWords, PackedWords};
use core::arch::wasm32::*;
use std::sync::OnceLock;

pub(crate) const MR: usize = 4;
/// Column groups of 4 per pass over k.
const PASS: usize = 2;

/// # Safety
/// Pointers as [`crate::qgemm::QmmmFn`], in the `Dot7` layout: `b` one panel (64 bytes of
/// column constants, then `words` × 64 bytes of `w + 64`, 16 columns × 4 k per word); A word
/// `(g, r)` (4 bytes `a ^ 0x80`) the i32 at `a + g·ws + r·rs`, row r's constant at `a +
/// words·ws + r·rs`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_relaxed_qmmm_i7_4x16(
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
    tile(words, &Packed { w: PackedWords { a, rs, ws }, words }, b, c, ldc, rows, cols, false);
}

/// `wasm_relaxed_qmmm_gather_i7_4x16`: the same tile with A read where it lies (a conv's
/// window, `qgemm.rs`, `qgemm_gather`): word `(g, r)` is the i32 (unaligned) at `rows[r] +
/// offs[g]`, bytes already flipped to `a ^ 0x80` (the caller flips the conv's input once,
/// instead of once per gathered word), and row r's constant is `rowc[r]`. No A panel.
/// With `pool` the MR rows are one max-pool window (a fused 2 × 2 pool, `qgemm_gather_max`):
/// only their per-column max is stored, as one row at `c` (each row's constant is in its sums
/// before the max).
///
/// # Safety
/// `rows` holds MR pointers (rows past `nrows` repeat a valid one: computed, not stored),
/// each readable at `offs[g] .. + 4` for every `g < words`; `rowc` MR i32; `b`, `c` as
/// [`wasm_relaxed_qmmm_i7_4x16`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_relaxed_qmmm_gather_i7_4x16(
    words: usize,
    rows: *const *const u8,
    offs: *const u32,
    rowc: *const i32,
    b: *const u8,
    c: *mut i32,
    ldc: usize,
    nrows: usize,
    cols: usize,
    pool: bool,
) {
    let g = Gathered { w: GatheredWords { rows: [*rows, *rows.add(1), *rows.add(2), *rows.add(3)], offs }, rowc: [*rowc, *rowc.add(1), *rowc.add(2), *rowc.add(3)] };
    tile(words, &g, b, c, ldc, nrows, cols, pool);
}

/// Where a tile's A words (4 bytes `a ^ 0x80`, addressed as the pair tile's) and row
/// constants are.
trait ASource: AWords {
    /// Row r's constant `−64 · Σ a`. Safety: r < MR.
    unsafe fn rowc(&self, r: usize) -> i32;
}

/// A packed Dot7 panel (`qgemm.rs`): word `(g, r)` at `a + g·ws + r·rs`, the constant after
/// the row's words.
struct Packed {
    w: PackedWords,
    words: usize,
}

impl AWords for Packed {
    #[inline(always)]
    unsafe fn word(&self, g: usize, r: usize) -> *const u32 {
        self.w.word(g, r)
    }
}

impl ASource for Packed {
    #[inline(always)]
    unsafe fn rowc(&self, r: usize) -> i32 {
        self.w.a.add(self.words * self.w.ws + r * self.w.rs).read_unaligned()
    }
}

/// Rows gathered in place: word `(g, r)` at `rows[r] + offs[g]`, the constants given.
struct Gathered {
    w: GatheredWords,
    rowc: [i32; MR],
}

impl AWords for Gathered {
    #[inline(always)]
    unsafe fn word(&self, g: usize, r: usize) -> *const u32 {
        self.w.word(g, r)
    }
}

impl ASource for Gathered {
    #[inline(always)]
    unsafe fn rowc(&self, r: usize) -> i32 {
        self.rowc[r]
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<A: ASource>(words: usize, a: &A, b: *const u8, c: *mut i32, ldc: usize, rows: usize, cols: usize, pool: bool) {
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

/// R rows × CV column groups of 4, starting at group `q0`, into `t`.
#[inline(always)]
unsafe fn pass<A: ASource, const R: usize, const CV: usize>(words: usize, a: &A, b: *const u8, q0: usize, t: &mut [[i32; QNR]; R]) {
    let corr = b as *const v128;
    let mut acc = [[i32x4_splat(0); CV]; R];
    for (r, s) in acc.iter_mut().enumerate() {
        let rowc = i32x4_splat(a.rowc(r));
        for (q, v) in s.iter_mut().enumerate() {
            *v = i32x4_add(v128_load(corr.add(q0 + q)), rowc);
        }
    }
    let w = b.add(64 + q0 * 16);
    for g in 0..words {
        let bp = w.add(g * 64);
        let mut bv = [i32x4_splat(0); CV];
        for (q, v) in bv.iter_mut().enumerate() {
            *v = v128_load(bp.add(16 * q) as *const v128);
        }
        for (r, s) in acc.iter_mut().enumerate() {
            let x = v128_load32_splat(a.word(g, r));
            for (q, v) in s.iter_mut().enumerate() {
                *v = i32x4_relaxed_dot_i8x16_i7x16_add(x, bv[q], *v);
            }
        }
    }
    for (r, s) in acc.iter().enumerate() {
        for (q, v) in s.iter().enumerate() {
            v128_store(t[r].as_mut_ptr().add(4 * (q0 + q)) as *mut v128, *v);
        }
    }
}

/// Whether this engine's `i32x4.relaxed_dot_i8x16_i7x16_add_s` gives the exact sums on our
/// operand ranges, checked once per process on values it cannot fold: the extremes of both
/// operands (−128 × 127 in both products of an i16 pair: −32,512, the largest pair
/// `pmaddubsw` meets here) and a non-zero accumulator. Not a formality: Node 20's baseline
/// compiler (V8 11.3 Liftoff, x64) returns twice the dot and drops the accumulator (its
/// scratch register aliases the accumulator; TurboFan's code is right, so the sums were right
/// only after tier-up; `wasm/DESIGN.md`, "int8 in the relaxed build"). The check runs as this
/// module's first code does, in the engine's first tier; the set keeps the pair kernel for
/// every weight when it fails.
pub(crate) fn dot_is_exact() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(probe)
}

#[inline(never)]
fn probe() -> bool {
    // (i8 operand, i7 operand, accumulator) per lane group, read through volatile loads.
    static CASES: [(i8, i8, i32); 5] = [(1, 1, 100), (-128, 127, -5), (127, 127, 7), (-3, 0, i32::MIN / 2), (-128, 0, 3)];
    // SAFETY: a volatile read of a static (so the compiler cannot fold the dots below).
    let cases = unsafe { core::ptr::read_volatile(&CASES) };
    let mut ok = true;
    for (x, y, acc) in cases {
        let got = i32x4_relaxed_dot_i8x16_i7x16_add(i8x16_splat(x), i8x16_splat(y), i32x4_splat(acc));
        let want = i32x4_splat(acc + 4 * i32::from(x) * i32::from(y));
        ok &= i32x4_all_true(i32x4_eq(got, want));
    }
    ok
}
