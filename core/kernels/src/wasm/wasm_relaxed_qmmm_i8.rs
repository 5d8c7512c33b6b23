//! `wasm_relaxed_qmmm_i8_4x16`: relaxed SIMD `i32x4.relaxed_dot_i8x16_i7x16_add_s`, 16
//! multiply-adds per instruction, on operands kept where every engine computes the same sums.
//!
//! The instruction multiplies an i8 vector by an "i7" vector and adds groups of 4 products into
//! i32 lanes. Engines agree only when the i7 operand lies in 0..=127 (x86 engines read it as
//! unsigned, `pmaddubsw` or `vpdpbusd`; Arm's `sdot` as signed) and no i16 pair sum saturates
//! (`pmaddubsw`). Our operands (u8 codes 0..=255, weights −127..=127) fit neither role as
//! they are, so the split layout (`qgemm.rs`, `QLayout::Split`) rewrites them exactly:
//!
//! ```text
//!   w  = wp − wn            wp = max(w, 0), wn = max(−w, 0): both 0..=127 (the i7 operand)
//!   x  = a − 128 = a ^ 0x80          −128..=127 (the i8 operand)
//!   x' = 127 − a = a ^ 0x7f          −128..=127 (the i8 operand)
//!   x·wp + x'·wn = a·w − 128·wp + 127·wn,   so   Σ a·w = Σ (x·wp + x'·wn) + corr,
//!   corr[c] = 128·Σ wp[·][c] − 127·Σ wn[·][c]   (per column, at packing; the accumulators start at it)
//! ```
//!
//! Every product is at most 128 · 127 in magnitude, so an i16 pair sum is at most 32,512
//! (no saturation), and the i32 sums stay below 2^31 for k ≤ `MAX_QK` (QUANT.md). Two dots per
//! 16 products: 8 multiply-adds per instruction against 4 for `dot_i16x8_s` + add and for
//! `f32x4.relaxed_madd`, where the engine lowers the dot to one instruction (V8 on x86 with
//! AVX-VNNI: `vpdpbusd`). Without it V8 emits five (`pmaddubsw`, `pmaddwd` by a splat of 1
//! made in place, `paddd`): measured in `wasm/DESIGN.md` ("int8 in the relaxed build").
//!
//! Tile: 4 rows × 16 columns, computed as two passes of 4 × 8 (8 accumulators, 4 weight
//! vectors and the two splats: 14 v128 values, inside x86's 16 xmm registers, one of which V8
//! keeps as scratch); a single row (batch 1) runs 1 × 16 in one pass.

use crate::qgemm::{store_qtile, QNR};
use core::arch::wasm32::*;
use std::sync::OnceLock;

pub(crate) const MR: usize = 4;
/// Column groups of 4 per pass over k.
const PASS: usize = 2;

/// # Safety
/// Pointers as [`crate::qgemm::QmmmFn`], in the split layout: `b` one panel (64 bytes of
/// column corrections, then `words` × 128 bytes of weight vectors), A word pair `(g, r)` (x, x')
/// the two i32 at `a + 2·(g·ws + r·rs)`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_relaxed_qmmm_i8_4x16(
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

/// R rows × CV column groups of 4, starting at group `q0`, into `t`.
#[inline(always)]
unsafe fn pass<const R: usize, const CV: usize>(words: usize, a: *const i32, rs: usize, ws: usize, b: *const u8, q0: usize, t: &mut [[i32; QNR]; R]) {
    let corr = b as *const v128;
    let mut acc = [[i32x4_splat(0); CV]; R];
    for s in acc.iter_mut() {
        for (q, v) in s.iter_mut().enumerate() {
            *v = v128_load(corr.add(q0 + q));
        }
    }
    let w = b.add(64);
    for g in 0..words {
        let bp = w.add(g * 128 + q0 * 32);
        let mut bv = [[i32x4_splat(0); 2]; CV];
        for (q, v) in bv.iter_mut().enumerate() {
            v[0] = v128_load(bp.add(32 * q) as *const v128);
            v[1] = v128_load(bp.add(32 * q + 16) as *const v128);
        }
        for (r, s) in acc.iter_mut().enumerate() {
            let ap = a.add(2 * (g * ws + r * rs));
            let x = v128_load32_splat(ap as *const u32);
            let xn = v128_load32_splat(ap.add(1) as *const u32);
            for (q, v) in s.iter_mut().enumerate() {
                // The two dots first, then one add into the accumulator: its chain is then one
                // `paddd` per step, not two dots (5 cycles each on x86: with 8 accumulators the
                // chained form waited on latency; measured in wasm/DESIGN.md).
                let t = i32x4_relaxed_dot_i8x16_i7x16_add(xn, bv[q][1], i32x4_splat(0));
                *v = i32x4_add(*v, i32x4_relaxed_dot_i8x16_i7x16_add(x, bv[q][0], t));
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
/// module's first code does, in the engine's first tier; the set falls back to the pair
/// kernel when it fails.
pub(crate) fn dot_is_exact() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(probe)
}

#[inline(never)]
fn probe() -> bool {
    // (i8 operand, i7 operand, accumulator) per lane group, read through volatile loads.
    static CASES: [(i8, i8, i32); 4] = [(1, 1, 100), (-128, 127, -5), (127, 127, 7), (-3, 0, i32::MIN / 2)];
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
