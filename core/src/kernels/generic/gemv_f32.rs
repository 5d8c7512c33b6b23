//! `generic_gemv_f32_8`: one input row against one packed 8-column weight panel.

use super::mmm_f32::NR;

/// # Safety
/// `x` valid for `k`, `b` for `k*NR`, `bias` null or valid for `cols`, `y` for `cols` values.
pub(crate) unsafe fn generic_gemv_f32_8(
    k: usize,
    x: *const f32,
    b: *const f32,
    bias: *const f32,
    y: *mut f32,
    cols: usize,
    relu: bool,
) {
    let x = std::slice::from_raw_parts(x, k);
    let b = std::slice::from_raw_parts(b, k * NR);
    let mut acc = [0.0f32; NR];
    for (&xv, bv) in x.iter().zip(b.chunks_exact(NR)) {
        for j in 0..NR {
            acc[j] += xv * bv[j];
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
