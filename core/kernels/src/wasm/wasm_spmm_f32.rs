//! `wasm_spmm_f32_16`: sparse × dense block with 16 rows (4 v128) as the vector axis; the
//! scheme of `avx2_spmm_f32_32` without FMA (mul + add), two non-zeros in flight: 8
//! accumulators + 2 splats + loads stay within x86's 16 xmm registers.

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
        let (mut p, end) = (*ptr.add(j) as usize, *ptr.add(j + 1) as usize);
        let z = f32x4_splat(0.0);
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let (mut b0, mut b1, mut b2, mut b3) = (z, z, z, z);
        while p + 2 <= end {
            let (x, w) = (xt.add(*off.add(p) as usize), f32x4_splat(*val.add(p)));
            let (u, v) = (xt.add(*off.add(p + 1) as usize), f32x4_splat(*val.add(p + 1)));
            a0 = f32x4_add(a0, f32x4_mul(w, ld(x)));
            a1 = f32x4_add(a1, f32x4_mul(w, ld(x.add(4))));
            a2 = f32x4_add(a2, f32x4_mul(w, ld(x.add(8))));
            a3 = f32x4_add(a3, f32x4_mul(w, ld(x.add(12))));
            b0 = f32x4_add(b0, f32x4_mul(v, ld(u)));
            b1 = f32x4_add(b1, f32x4_mul(v, ld(u.add(4))));
            b2 = f32x4_add(b2, f32x4_mul(v, ld(u.add(8))));
            b3 = f32x4_add(b3, f32x4_mul(v, ld(u.add(12))));
            p += 2;
        }
        if p < end {
            let (x, w) = (xt.add(*off.add(p) as usize), f32x4_splat(*val.add(p)));
            a0 = f32x4_add(a0, f32x4_mul(w, ld(x)));
            a1 = f32x4_add(a1, f32x4_mul(w, ld(x.add(4))));
            a2 = f32x4_add(a2, f32x4_mul(w, ld(x.add(8))));
            a3 = f32x4_add(a3, f32x4_mul(w, ld(x.add(12))));
        }
        let bv = f32x4_splat(*bias.add(j));
        let y = yt.add(j * NB);
        // pmax(v, lo) = v < lo ? lo : v, pmin(v, hi) = hi < v ? hi : v: a NaN v passes.
        for (q, (a, b)) in [(a0, b0), (a1, b1), (a2, b2), (a3, b3)].into_iter().enumerate() {
            let s = f32x4_add(f32x4_add(a, b), bv);
            v128_store(y.add(4 * q) as *mut v128, f32x4_pmin(f32x4_pmax(s, vlo), vhi));
        }
    }
}
