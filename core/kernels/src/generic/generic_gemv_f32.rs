//! `generic_gemv_f32_8`: one input row against one packed 8-column weight panel.

use super::generic_mmm_f32::NR;

/// # Safety
/// `x` and `b` valid for every row read (`0..k`, or the `k` indices in `rows` when non-null),
/// `bias` null or valid for `cols`, `y` for `cols` values.
pub(crate) unsafe fn generic_gemv_f32_8(
    k: usize,
    rows: *const u32,
    x: *const f32,
    b: *const f32,
    bias: *const f32,
    y: *mut f32,
    cols: usize,
    relu: bool,
) {
    let mut acc = [0.0f32; NR];
    for j in 0..k {
        let i = if rows.is_null() {
            j
        } else {
            *rows.add(j) as usize
        };
        let xv = *x.add(i);
        let bv = std::slice::from_raw_parts(b.add(i * NR), NR);
        for c in 0..NR {
            acc[c] += xv * bv[c];
        }
    }
    for (j, &a) in acc.iter().enumerate().take(cols) {
        let mut v = a;
        if !bias.is_null() {
            v += *bias.add(j);
        }
        if relu {
            v = v.max(0.0);
        }
        *y.add(j) = v;
    }
}
