//! `wasm_mmm_f32_4x8`: the simd128 GEMM micro-kernel.
//!
//! Why 4×8: engines map v128 values to the host's 16 xmm (x86_64) or 32 q (arm64) registers.
//! 4×8 needs 8 accumulators + 2 B vectors + 1 broadcast = 11 live values, which fits x86_64's
//! 16 without spills (6×16 would need 24 and spill); mul+add without FMA has a longer chain,
//! and 8 independent accumulators cover it.

use crate::{store_tile_scalar, Tile};
use crate::wasm::madd;
use core::arch::wasm32::*;

pub(crate) const MR: usize = 4;
pub(crate) const NR: usize = 8;

/// # Safety
/// MR rows of `k` values at `a + r*rsa`, `b` valid for `k*NR` values; `tile` as documented on
/// [`Tile`].
pub(crate) unsafe fn wasm_mmm_f32_4x8(k: usize, a: *const f32, rsa: usize, b: *const f32, tile: &Tile) {
    tile_4x8(k, [a, a.add(rsa), a.add(2 * rsa), a.add(3 * rsa)], |p| p, b, tile)
}

/// Indirect convolution: A element `(r, p)` is `rows[r][offs[p]]`.
///
/// # Safety
/// `rows` holds MR pointers each valid at every `offs[..k]`; `b` valid for `k*NR` values.
pub(crate) unsafe fn wasm_conv_f32_4x8(k: usize, rows: *const *const f32, offs: *const u32, b: *const f32, tile: &Tile) {
    tile_4x8(k, [*rows, *rows.add(1), *rows.add(2), *rows.add(3)], |p| *offs.add(p) as usize, b, tile)
}

#[inline(always)]
unsafe fn tile_4x8(k: usize, rows: [*const f32; MR], off: impl Fn(usize) -> usize, b: *const f32, tile: &Tile) {
    let z = f32x4_splat(0.0);
    let (mut c00, mut c01, mut c10, mut c11) = (z, z, z, z);
    let (mut c20, mut c21, mut c30, mut c31) = (z, z, z, z);
    let [a0, a1, a2, a3] = rows;
    let mut bp = b;
    for p in 0..k {
        let p = off(p);
        let b0 = v128_load(bp as *const v128);
        let b1 = v128_load(bp.add(4) as *const v128);
        let x = f32x4_splat(*a0.add(p));
        c00 = madd(x, b0, c00);
        c01 = madd(x, b1, c01);
        let x = f32x4_splat(*a1.add(p));
        c10 = madd(x, b0, c10);
        c11 = madd(x, b1, c11);
        let x = f32x4_splat(*a2.add(p));
        c20 = madd(x, b0, c20);
        c21 = madd(x, b1, c21);
        let x = f32x4_splat(*a3.add(p));
        c30 = madd(x, b0, c30);
        c31 = madd(x, b1, c31);
        bp = bp.add(NR);
    }
    let acc = [[c00, c01], [c10, c11], [c20, c21], [c30, c31]];
    if tile.rows == MR && tile.cols == NR {
        let (bias0, bias1) = if tile.bias.is_null() {
            (z, z)
        } else {
            (v128_load(tile.bias as *const v128), v128_load(tile.bias.add(4) as *const v128))
        };
        for (r, [mut v0, mut v1]) in acc.into_iter().enumerate() {
            let crow = tile.c.add(r * tile.ldc);
            if tile.accumulate {
                v0 = f32x4_add(v0, v128_load(crow as *const v128));
                v1 = f32x4_add(v1, v128_load(crow.add(4) as *const v128));
            }
            v0 = f32x4_add(v0, bias0);
            v1 = f32x4_add(v1, bias1);
            if tile.clamp {
                let (lo, hi) = (f32x4_splat(tile.lo), f32x4_splat(tile.hi));
                // pmax/pmin (x < lo ? lo : x): the outputs are finite, so no NaN rule matters.
                v0 = f32x4_pmin(f32x4_pmax(v0, lo), hi);
                v1 = f32x4_pmin(f32x4_pmax(v1, lo), hi);
            }
            v128_store(crow as *mut v128, v0);
            v128_store(crow.add(4) as *mut v128, v1);
        }
    } else {
        let mut tmp = [0.0f32; MR * NR];
        for (r, [v0, v1]) in acc.into_iter().enumerate() {
            v128_store(tmp.as_mut_ptr().add(r * NR) as *mut v128, v0);
            v128_store(tmp.as_mut_ptr().add(r * NR + 4) as *mut v128, v1);
        }
        store_tile_scalar(&tmp, NR, tile);
    }
}
