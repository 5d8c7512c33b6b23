//! `wasm_gemv_f32_8`: batch-1 Dense against one packed 8-column panel, four k steps in flight.

use crate::kernels::wasm::mmm_f32::NR;
use core::arch::wasm32::*;

/// # Safety
/// `x` valid for `k`, `b` for `k*NR`, `bias` null or valid for `cols`, `y` for `cols` values.
pub(crate) unsafe fn wasm_gemv_f32_8(
    k: usize,
    x: *const f32,
    b: *const f32,
    bias: *const f32,
    y: *mut f32,
    cols: usize,
    relu: bool,
) {
    let z = f32x4_splat(0.0);
    let mut s = [z; 8];
    let mut i = 0;
    while i + 4 <= k {
        let bp = b.add(i * NR);
        for u in 0..4 {
            let xv = f32x4_splat(*x.add(i + u));
            s[2 * u] = f32x4_add(s[2 * u], f32x4_mul(xv, v128_load(bp.add(u * NR) as *const v128)));
            s[2 * u + 1] = f32x4_add(s[2 * u + 1], f32x4_mul(xv, v128_load(bp.add(u * NR + 4) as *const v128)));
        }
        i += 4;
    }
    while i < k {
        let bp = b.add(i * NR);
        let xv = f32x4_splat(*x.add(i));
        s[0] = f32x4_add(s[0], f32x4_mul(xv, v128_load(bp as *const v128)));
        s[1] = f32x4_add(s[1], f32x4_mul(xv, v128_load(bp.add(4) as *const v128)));
        i += 1;
    }
    let v0 = f32x4_add(f32x4_add(s[0], s[2]), f32x4_add(s[4], s[6]));
    let v1 = f32x4_add(f32x4_add(s[1], s[3]), f32x4_add(s[5], s[7]));
    let mut tmp = [0.0f32; NR];
    v128_store(tmp.as_mut_ptr() as *mut v128, v0);
    v128_store(tmp.as_mut_ptr().add(4) as *mut v128, v1);
    for (j, &t) in tmp.iter().enumerate().take(cols) {
        let mut v = t;
        if !bias.is_null() {
            v += *bias.add(j);
        }
        if relu {
            v = v.max(0.0);
        }
        *y.add(j) = v;
    }
}
