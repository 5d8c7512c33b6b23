//! `avx512vnni_qmmm_i8_12x16`: AVX-512 VNNI `vpdpbusd`. Quad layout: per k-quad one 64-byte
//! B vector (16 columns × 4 i8) and, per row, the row's 4 activation bytes broadcast to every
//! lane; `vpdpbusd` multiplies u8 × i8 and adds the four products into each i32 lane.
//!
//! No saturation: the plain (not `…ds`) form adds into i32 with wrap-around, and with
//! activations 0..=255, weights −127..=127 and `k <= MAX_QK` no sum leaves i32 (QUANT.md).
//! 12 rows × 1 zmm = 12 accumulators + 1 B vector; the broadcasts fold into the instruction.

use crate::qgemm::QNR;
use std::arch::x86_64::*;

pub(crate) const MR: usize = 12;

/// # Safety
/// The CPU must support AVX-512F and AVX-512 VNNI; pointers as [`crate::qgemm::QmmmFn`].
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn avx512vnni_qmmm_i8_12x16(
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
    let mut acc = [_mm512_setzero_si512(); MR];
    for g in 0..words {
        let bv = _mm512_loadu_si512(b.add(g * 64) as *const _);
        let ap = a.add(g * ws);
        for (r, s) in acc.iter_mut().enumerate() {
            *s = _mm512_dpbusd_epi32(*s, _mm512_set1_epi32(ap.add(r * rs).read_unaligned()), bv);
        }
    }
    if cols == QNR {
        for (r, s) in acc.iter().enumerate().take(rows) {
            _mm512_storeu_si512(c.add(r * ldc) as *mut _, *s);
        }
    } else {
        let mask: __mmask16 = ((1u32 << cols) - 1) as __mmask16;
        for (r, s) in acc.iter().enumerate().take(rows) {
            _mm512_mask_storeu_epi32(c.add(r * ldc), mask, *s);
        }
    }
}
