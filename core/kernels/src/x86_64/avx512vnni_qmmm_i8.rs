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
#[allow(clippy::too_many_arguments)]
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
    if rows == 1 {
        return one_row(words, a, ws, b, c, cols);
    }
    let mut acc = [_mm512_setzero_si512(); MR];
    for g in 0..words {
        let bv = _mm512_loadu_si512(b.add(g * 64) as *const _);
        let ap = a.add(g * ws);
        for (r, s) in acc.iter_mut().enumerate() {
            *s = _mm512_dpbusd_epi32(*s, _mm512_set1_epi32(ap.add(r * rs).read_unaligned()), bv);
        }
    }
    store(&acc, c, ldc, rows, cols);
}

/// The tile's rows `..rows`, columns `..cols` to `c` at stride `ldc`.
#[inline(always)]
unsafe fn store(acc: &[__m512i; MR], c: *mut i32, ldc: usize, rows: usize, cols: usize) {
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

/// The words `g < words` at which at least one of the 12 rows `a + r·rs` (i32 words, read in
/// place) is nonzero, ascending, into `out`; returns how many. A word that is zero in every row
/// adds nothing to any sum of the tile, so [`avx512vnni_qmmmskip_i8_12x16`] over this list
/// gives the full tile's exact sums. Quantized MNIST pixels are zero in about 40 % of the words
/// of 12 digits (the border and the strokes' gaps), so the skip saves that share of
/// `vpdpbusd`s, which is what the tile is bound by (QUANT.md, "Zero words").
///
/// # Safety
/// The CPU must support AVX-512F; rows `r < 12` readable for `words` i32 words at `a + r·rs`;
/// `out` writable for `words` rounded up to 16 u32 (each 16-word step stores a whole vector).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_nonzero_words_12(a: *const i32, rs: usize, words: usize, out: *mut u32) -> usize {
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut n = 0;
    let mut g = 0;
    while g < words {
        // Masked loads past the last word never touch memory.
        let m: __mmask16 = if words - g >= 16 { 0xFFFF } else { ((1u32 << (words - g)) - 1) as __mmask16 };
        let mut v = _mm512_setzero_si512();
        for r in 0..MR {
            v = _mm512_or_si512(v, _mm512_maskz_loadu_epi32(m, a.add(r * rs + g)));
        }
        let nz = _mm512_test_epi32_mask(v, v);
        // The register form of the compress, then a plain store: `vpcompressd` to memory is
        // microcoded and slow on Zen 4.
        let idx = _mm512_add_epi32(lane, _mm512_set1_epi32(g as i32));
        _mm512_storeu_si512(out.add(n) as *mut _, _mm512_maskz_compress_epi32(nz, idx));
        n += nz.count_ones() as usize;
        g += 16;
    }
    n
}

/// The 12×16 tile over the listed words only (`list[..len]`, from [`avx512_nonzero_words_12`]):
/// A rows read in place (`a + g + r·rs`, i32 words), B word `g` at `b + 64·g`. Exact i32
/// sums: the same result as [`avx512vnni_qmmm_i8_12x16`] when every word left out is zero in
/// all 12 rows.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 VNNI; every listed `g` below the panel's words;
/// all 12 rows readable (whatever `rows`); `b`, `c` as for [`crate::qgemm::QmmmFn`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn avx512vnni_qmmmskip_i8_12x16(
    list: *const u32,
    len: usize,
    a: *const i32,
    rs: usize,
    b: *const u8,
    c: *mut i32,
    ldc: usize,
    rows: usize,
    cols: usize,
) {
    let mut acc = [_mm512_setzero_si512(); MR];
    for i in 0..len {
        let g = *list.add(i) as usize;
        let bv = _mm512_loadu_si512(b.add(g * 64) as *const _);
        let ap = a.add(g);
        for (r, s) in acc.iter_mut().enumerate() {
            *s = _mm512_dpbusd_epi32(*s, _mm512_set1_epi32(ap.add(r * rs).read_unaligned()), bv);
        }
    }
    store(&acc, c, ldc, rows, cols);
}

/// A single row (batch 1, the last row of a batch): four accumulators over interleaved k-quads,
/// so four `vpdpbusd` chains are in flight instead of one, and no other row is read or computed
/// (the 12-row tile would do 12× the work). Exact i32 sums, so the same result as the tile.
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn one_row(words: usize, a: *const i32, ws: usize, b: *const u8, c: *mut i32, cols: usize) {
    let mut acc = [_mm512_setzero_si512(); 4];
    let mut g = 0;
    while g + 4 <= words {
        for (i, s) in acc.iter_mut().enumerate() {
            let bv = _mm512_loadu_si512(b.add((g + i) * 64) as *const _);
            *s = _mm512_dpbusd_epi32(*s, _mm512_set1_epi32(a.add((g + i) * ws).read_unaligned()), bv);
        }
        g += 4;
    }
    while g < words {
        let bv = _mm512_loadu_si512(b.add(g * 64) as *const _);
        acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_set1_epi32(a.add(g * ws).read_unaligned()), bv);
        g += 1;
    }
    let sum = _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
    let mask: __mmask16 = if cols == QNR { 0xFFFF } else { ((1u32 << cols) - 1) as __mmask16 };
    _mm512_mask_storeu_epi32(c, mask, sum);
}

/// The 12×16 tile on gathered rows (`qgemm.rs`, [`crate::qgemm::QmmmGatherFn`]): row `r`'s
/// word `g` is the 4 bytes at `rows[r] + offs[g]`, broadcast straight from a convolution's
/// input, so the conv needs neither an im2col copy nor a packed A panel. Exact i32 sums, so
/// the same result as the packed tile on the same words.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 VNNI; pointers as [`crate::qgemm::QmmmGatherFn`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn avx512vnni_qmmm_gather_i8_12x16(
    words: usize,
    rows: *const *const u8,
    offs: *const u32,
    b: *const u8,
    c: *mut i32,
    ldc: usize,
    nrows: usize,
    cols: usize,
) {
    let rp: [*const u8; MR] = std::array::from_fn(|r| *rows.add(r));
    let mut acc = [_mm512_setzero_si512(); MR];
    for g in 0..words {
        let bv = _mm512_loadu_si512(b.add(g * 64) as *const _);
        let off = *offs.add(g) as usize;
        for (s, p) in acc.iter_mut().zip(rp) {
            *s = _mm512_dpbusd_epi32(*s, _mm512_set1_epi32(p.add(off).cast::<i32>().read_unaligned()), bv);
        }
    }
    let mask: __mmask16 = if cols == QNR { 0xFFFF } else { ((1u32 << cols) - 1) as __mmask16 };
    for (r, s) in acc.iter().enumerate().take(nrows) {
        _mm512_mask_storeu_epi32(c.add(r * ldc), mask, *s);
    }
}
