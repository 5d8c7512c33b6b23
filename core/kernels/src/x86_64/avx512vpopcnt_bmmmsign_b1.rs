//! `avx512vpopcnt_bmmmsign_b1_8x8`: the `vpopcntq` tile of `avx512vpopcnt_bmmm_b1_8x8` whose
//! products become the next binary layer's input bits (`KernelSet::bgemm_sign`): per row, the
//! 8 dot products `k − 2·d` (u64 lanes) are compared with the rule's `lo` and `hi` (two
//! `vpcmpq` into one mask register), and the 8-bit mask is the output byte, stored as is. The
//! generic path builds the same byte from an i32 tile with eight scalar compares (`bgemm.rs`),
//! which cost half as much as the products themselves on the binary-input MLP.

use std::arch::x86_64::*;

use super::avx512vpopcnt_bmmm_b1::mismatches;

/// # Safety
/// As [`crate::bgemm::BmmmSignFn`]; the CPU has AVX-512F and VPOPCNTDQ (checked by the set).
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn avx512vpopcnt_bmmmsign_b1_8x8(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, lo: *const i32, hi: *const i32, out: *mut u8, ldo: usize, rows: usize) {
    match rows {
        1 => tile::<1>(words, a, lda, b, k, lo, hi, out, ldo),
        2 => tile::<2>(words, a, lda, b, k, lo, hi, out, ldo),
        3 => tile::<3>(words, a, lda, b, k, lo, hi, out, ldo),
        4 => tile::<4>(words, a, lda, b, k, lo, hi, out, ldo),
        5 => tile::<5>(words, a, lda, b, k, lo, hi, out, ldo),
        6 => tile::<6>(words, a, lda, b, k, lo, hi, out, ldo),
        7 => tile::<7>(words, a, lda, b, k, lo, hi, out, ldo),
        _ => tile::<8>(words, a, lda, b, k, lo, hi, out, ldo),
    }
}

#[target_feature(enable = "avx512f,avx512vpopcntdq")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, lo: *const i32, hi: *const i32, out: *mut u8, ldo: usize) {
    let acc = mismatches::<R>(words, a, lda, b);
    let kv = _mm512_set1_epi64(i64::from(k));
    let lov = _mm512_cvtepi32_epi64(_mm256_loadu_si256(lo as *const __m256i));
    let hiv = _mm512_cvtepi32_epi64(_mm256_loadu_si256(hi as *const __m256i));
    for (r, s) in acc.iter().enumerate() {
        let dot = _mm512_sub_epi64(kv, _mm512_slli_epi64::<1>(*s));
        let m = _mm512_cmpge_epi64_mask(dot, lov) & _mm512_cmple_epi64_mask(dot, hiv);
        *out.add(r * ldo) = m;
    }
}
