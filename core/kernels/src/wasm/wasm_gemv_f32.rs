//! `wasm_gemv_f32_8`: batch-1 Dense against one packed 8-column panel, four k steps in flight.

use crate::wasm::wasm_mmm_f32::NR;
use crate::wasm::madd;
use core::arch::wasm32::*;

/// # Safety
/// `x` and `b` valid for every row read (`0..k`, or the `k` indices in `rows` when non-null),
/// `bias` null or valid for `cols`, `y` for `cols` values.
pub(crate) unsafe fn wasm_gemv_f32_8(
    k: usize,
    rows: *const u32,
    x: *const f32,
    b: *const f32,
    bias: *const f32,
    y: *mut f32,
    cols: usize,
    relu: bool,
) {
    let s = if rows.is_null() {
        sums::<false>(k, rows, x, b)
    } else {
        sums::<true>(k, rows, x, b)
    };
    epilogue(s, bias, y, cols, relu);
}

/// `SPARSE` picks the row source at compile time (see the x86_64 twin).
#[inline]
unsafe fn sums<const SPARSE: bool>(
    k: usize,
    rows: *const u32,
    x: *const f32,
    b: *const f32,
) -> [v128; 8] {
    let row = |j: usize| if SPARSE { *rows.add(j) as usize } else { j };
    let mut s = [f32x4_splat(0.0); 8];
    let mut j = 0;
    while j + 4 <= k {
        for u in 0..4 {
            let i = row(j + u);
            let bp = b.add(i * NR);
            let xv = f32x4_splat(*x.add(i));
            s[2 * u] = madd(xv, v128_load(bp as *const v128), s[2 * u]);
            s[2 * u + 1] = madd(xv, v128_load(bp.add(4) as *const v128), s[2 * u + 1]);
        }
        j += 4;
    }
    while j < k {
        let i = row(j);
        let bp = b.add(i * NR);
        let xv = f32x4_splat(*x.add(i));
        s[0] = madd(xv, v128_load(bp as *const v128), s[0]);
        s[1] = madd(xv, v128_load(bp.add(4) as *const v128), s[1]);
        j += 1;
    }
    s
}

#[inline]
unsafe fn epilogue(s: [v128; 8], bias: *const f32, y: *mut f32, cols: usize, relu: bool) {
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
