//! `generic_qmmm_i8_4x16`: the scalar integer reference. Quad layout (see `qgemm.rs`): per
//! k-quad, one i32 word of 4 activation bytes per row against 16 columns × 4 weight bytes.
//! Every SIMD integer kernel is tested against it; all of them compute exact i32 sums.

use crate::qgemm::{store_qtile, QNR};

pub(crate) const MR: usize = 4;

/// # Safety
/// As [`crate::qgemm::QmmmFn`]: A words `(g, r)` readable at `a + g·ws + r·rs`, `b` for `words × 64` bytes,
/// `c` for `rows` rows of `cols` at `ldc`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn generic_qmmm_i8_4x16(
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
    let b = std::slice::from_raw_parts(b as *const i8, words * 64);
    let mut acc = [[0i32; QNR]; MR];
    // A single row reads and computes only that row (qgemm hands one row in place).
    let live = if rows == 1 { 1 } else { MR };
    for g in 0..words {
        let bq = &b[g * 64..(g + 1) * 64];
        for (r, row) in acc.iter_mut().enumerate().take(live) {
            let x = a.add(g * ws + r * rs).read_unaligned().to_le_bytes();
            for (j, s) in row.iter_mut().enumerate() {
                let w = &bq[j * 4..j * 4 + 4];
                *s += i32::from(x[0]) * i32::from(w[0])
                    + i32::from(x[1]) * i32::from(w[1])
                    + i32::from(x[2]) * i32::from(w[2])
                    + i32::from(x[3]) * i32::from(w[3]);
            }
        }
    }
    store_qtile(&acc, c, ldc, rows, cols);
}
