//! `avx512vnni_qconvpool_i8_{12x16,8x32}`: the gathered int8 tile (`avx512vnni_qmmm_gather_i8_12x16`:
//! row `r`'s word `g` is the 4 bytes at `rows[r] + offs[g]`, broadcast into `vpdpbusd`) with a
//! max pool done in its registers: the tile's rows come in groups of `G` (one pool window's
//! conv pixels, listed by the caller), and only the per-column max of each group is stored.
//! A conv followed by a 2×2 max pool then never writes its full i32 output (a quarter of the
//! stores, and no second pass over the sums to pool them).
//!
//! Two shapes, one body: 12×16 (12 accumulators, 3 windows of 4 per tile) for convs with up
//! to 16 output channels, 8×32 (16 accumulators, 2 windows of 4, two B panels per word: one
//! broadcast feeds two `vpdpbusd`) for wider ones. 8 rows also divide a 2×2-pooled 8×8 conv
//! output exactly (the CNN's conv 2: 64 rows), where a 12-row tile computes 72.
//!
//! Exact i32 sums as every integer kernel (QUANT.md), and the max of exact sums is exact, so
//! the pooled sums are the bits `qgemm_gather` followed by a window max gives.

use crate::qgemm::QNR;
use std::arch::x86_64::*;

/// Rows of the 16-column tile.
pub(crate) const MR16: usize = 12;
/// Rows of the 32-column tile.
pub(crate) const MR32: usize = 8;

/// # Safety
/// The CPU must support AVX-512F and AVX-512 VNNI; pointers as
/// [`crate::qgemm::QmmmGatherMaxFn`], `group` in {1, 2, 4}.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn avx512vnni_qconvpool_i8_12x16(
    words: usize,
    rows: *const *const u8,
    offs: *const u32,
    b: *const u8,
    panel_bytes: usize,
    c: *mut i32,
    ldc: usize,
    group: usize,
    nout: usize,
    cols: usize,
) {
    match group {
        4 => body::<MR16, 1, 4>(words, rows, offs, b, panel_bytes, c, ldc, nout, cols),
        2 => body::<MR16, 1, 2>(words, rows, offs, b, panel_bytes, c, ldc, nout, cols),
        _ => body::<MR16, 1, 1>(words, rows, offs, b, panel_bytes, c, ldc, nout, cols),
    }
}

/// # Safety
/// As [`avx512vnni_qconvpool_i8_12x16`]; `b` holds two panels `panel_bytes` apart.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn avx512vnni_qconvpool_i8_8x32(
    words: usize,
    rows: *const *const u8,
    offs: *const u32,
    b: *const u8,
    panel_bytes: usize,
    c: *mut i32,
    ldc: usize,
    group: usize,
    nout: usize,
    cols: usize,
) {
    match group {
        4 => body::<MR32, 2, 4>(words, rows, offs, b, panel_bytes, c, ldc, nout, cols),
        2 => body::<MR32, 2, 2>(words, rows, offs, b, panel_bytes, c, ldc, nout, cols),
        _ => body::<MR32, 2, 1>(words, rows, offs, b, panel_bytes, c, ldc, nout, cols),
    }
}

/// `MR` rows × `NV` vectors of 16 columns; groups of `G` rows (a compile-time constant, so the
/// max reads fixed accumulators and nothing goes through the stack).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn body<const MR: usize, const NV: usize, const G: usize>(
    words: usize,
    rows: *const *const u8,
    offs: *const u32,
    b: *const u8,
    panel_bytes: usize,
    c: *mut i32,
    ldc: usize,
    nout: usize,
    cols: usize,
) {
    let rp: [*const u8; MR] = std::array::from_fn(|r| *rows.add(r));
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    for g in 0..words {
        let off = *offs.add(g) as usize;
        let bv: [__m512i; NV] = std::array::from_fn(|v| _mm512_loadu_si512(b.add(v * panel_bytes + g * 64) as *const _));
        for (row, p) in acc.iter_mut().zip(rp) {
            let a = _mm512_set1_epi32(p.add(off).cast::<i32>().read_unaligned());
            for (s, &bw) in row.iter_mut().zip(&bv) {
                *s = _mm512_dpbusd_epi32(*s, a, bw);
            }
        }
    }
    for v in 0..NV {
        let valid = cols.saturating_sub(v * QNR).min(QNR);
        if valid == 0 {
            break;
        }
        let mask: __mmask16 = if valid == QNR { 0xFFFF } else { ((1u32 << valid) - 1) as __mmask16 };
        for p in 0..MR / G {
            if p >= nout {
                break;
            }
            let mut m = acc[p * G][v];
            for j in 1..G {
                m = _mm512_max_epi32(m, acc[p * G + j][v]);
            }
            _mm512_mask_storeu_epi32(c.add(p * ldc + v * QNR), mask, m);
        }
    }
}
