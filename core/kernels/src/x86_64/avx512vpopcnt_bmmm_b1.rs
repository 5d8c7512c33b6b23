//! `avx512vpopcnt_bmmm_b1_8x8`: AVX-512 VPOPCNTDQ binary kernel. One B panel word (8 columns ×
//! 64 bits) is one zmm; per row, the A word is broadcast (`vpbroadcastq`), XORed with it,
//! counted with `vpopcntq` and added to that row's 8 × u64 accumulator: 512 ±1 products per
//! `vpopcntq`. 8 rows = 8 accumulators + the B word, well inside 32 registers.

use std::arch::x86_64::*;

use crate::bgemm::BNR;

pub(crate) const MR: usize = 8;

/// # Safety
/// As [`crate::bgemm::BmmmFn`]; the CPU has AVX-512F and VPOPCNTDQ (checked by the set).
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn avx512vpopcnt_bmmm_b1_8x8(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, rows: usize, cols: usize) {
    // One monomorphized loop per row count, so the row loop unrolls with no per-row test.
    match rows {
        1 => tile::<1>(words, a, lda, b, k, c, ldc, cols),
        2 => tile::<2>(words, a, lda, b, k, c, ldc, cols),
        3 => tile::<3>(words, a, lda, b, k, c, ldc, cols),
        4 => tile::<4>(words, a, lda, b, k, c, ldc, cols),
        5 => tile::<5>(words, a, lda, b, k, c, ldc, cols),
        6 => tile::<6>(words, a, lda, b, k, c, ldc, cols),
        7 => tile::<7>(words, a, lda, b, k, c, ldc, cols),
        _ => tile::<8>(words, a, lda, b, k, c, ldc, cols),
    }
}

/// Per row, the 8 columns' mismatch counts (u64 lanes) over `words` words.
#[inline]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
pub(crate) unsafe fn mismatches<const R: usize>(words: usize, a: *const u64, lda: usize, b: *const u64) -> [__m512i; R] {
    let mut acc = [_mm512_setzero_si512(); R];
    for w in 0..words {
        let bv = _mm512_loadu_si512(b.add(w * BNR) as *const _);
        for (r, s) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi64(*a.add(r * lda + w) as i64);
            *s = _mm512_add_epi64(*s, _mm512_popcnt_epi64(_mm512_xor_si512(av, bv)));
        }
    }
    acc
}

#[target_feature(enable = "avx512f,avx512vpopcntdq")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, cols: usize) {
    let acc = mismatches::<R>(words, a, lda, b);
    let kv = _mm512_set1_epi64(i64::from(k));
    for (r, s) in acc.iter().enumerate() {
        // k − 2·d fits i32 (k <= MAX_BK), so the narrowing `vpmovqd` is exact.
        let dot = _mm512_cvtepi64_epi32(_mm512_sub_epi64(kv, _mm512_slli_epi64::<1>(*s)));
        if cols == BNR {
            _mm256_storeu_si256(c.add(r * ldc) as *mut __m256i, dot);
        } else {
            let mut t = [0i32; BNR];
            _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, dot);
            std::ptr::copy_nonoverlapping(t.as_ptr(), c.add(r * ldc), cols);
        }
    }
}
