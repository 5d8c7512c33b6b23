//! `wasm_spmm_f32_16`: sparse × dense block with 16 rows (4 v128) as the vector axis; the
//! scheme of `avx2_spmm_f32_32` without FMA (mul + add) and with one non-zero at a time (4
//! accumulators). Two in flight (8 accumulators, as on x86) measured slower under V8 (2.29 vs
//! 1.87 µs/image on the 90 %-pruned MLP at batch 1024, where the autovectorized generic kernel
//! won): V8 keeps scratch registers of its own out of the 16 xmm, so 8 + splats + loads spill.

use crate::wasm::madd;
use core::arch::wasm32::*;

/// Rows per block.
pub const NB: usize = 16;

/// # Safety
/// As [`crate::tile::SpmmFn`] with `NB` = 16.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_spmm_f32_16(
    cols: usize,
    ptr: *const u32,
    off: *const u32,
    val: *const f32,
    xt: *const f32,
    bias: *const f32,
    lo: f32,
    hi: f32,
    yt: *mut f32,
) {
    let (vlo, vhi) = (f32x4_splat(lo), f32x4_splat(hi));
    let ld = |p: *const f32| v128_load(p as *const v128);
    for j in 0..cols {
        let z = f32x4_splat(0.0);
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        for p in *ptr.add(j) as usize..*ptr.add(j + 1) as usize {
            let (x, w) = (xt.add(*off.add(p) as usize), f32x4_splat(*val.add(p)));
            a0 = madd(w, ld(x), a0);
            a1 = madd(w, ld(x.add(4)), a1);
            a2 = madd(w, ld(x.add(8)), a2);
            a3 = madd(w, ld(x.add(12)), a3);
        }
        let bv = f32x4_splat(*bias.add(j));
        let y = yt.add(j * NB);
        // pmax(v, lo) = v < lo ? lo : v, pmin(v, hi) = hi < v ? hi : v: a NaN v passes.
        for (q, a) in [a0, a1, a2, a3].into_iter().enumerate() {
            v128_store(y.add(4 * q) as *mut v128, f32x4_pmin(f32x4_pmax(f32x4_add(a, bv), vlo), vhi));
        }
    }
}
