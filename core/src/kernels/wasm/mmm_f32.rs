//! `wasm_mmm_f32_4x8`: the simd128 GEMM micro-kernel.
//!
//! Why 4×8: engines map v128 values to the host's 16 xmm (x86_64) or 32 q (arm64) registers.
//! 4×8 needs 8 accumulators + 2 B vectors + 1 broadcast = 11 live values, which fits x86_64's
//! 16 without spills (6×16 would need 24 and spill); mul+add without FMA has a longer chain,
//! and 8 independent accumulators cover it.

use crate::kernels::{store_tile_scalar, Tile};
use core::arch::wasm32::*;

pub(crate) const MR: usize = 4;
pub(crate) const NR: usize = 8;

/// # Safety
/// `a` valid for `k*MR`, `b` for `k*NR` values; `tile` as documented on [`Tile`].
pub(crate) unsafe fn wasm_mmm_f32_4x8(k: usize, a: *const f32, b: *const f32, tile: &Tile) {
    let z = f32x4_splat(0.0);
    let (mut c00, mut c01, mut c10, mut c11) = (z, z, z, z);
    let (mut c20, mut c21, mut c30, mut c31) = (z, z, z, z);
    let mut ap = a;
    let mut bp = b;
    for _ in 0..k {
        let b0 = v128_load(bp as *const v128);
        let b1 = v128_load(bp.add(4) as *const v128);
        let a0 = f32x4_splat(*ap);
        c00 = f32x4_add(c00, f32x4_mul(a0, b0));
        c01 = f32x4_add(c01, f32x4_mul(a0, b1));
        let a1 = f32x4_splat(*ap.add(1));
        c10 = f32x4_add(c10, f32x4_mul(a1, b0));
        c11 = f32x4_add(c11, f32x4_mul(a1, b1));
        let a2 = f32x4_splat(*ap.add(2));
        c20 = f32x4_add(c20, f32x4_mul(a2, b0));
        c21 = f32x4_add(c21, f32x4_mul(a2, b1));
        let a3 = f32x4_splat(*ap.add(3));
        c30 = f32x4_add(c30, f32x4_mul(a3, b0));
        c31 = f32x4_add(c31, f32x4_mul(a3, b1));
        ap = ap.add(MR);
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
            if tile.relu {
                v0 = f32x4_pmax(v0, z);
                v1 = f32x4_pmax(v1, z);
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
