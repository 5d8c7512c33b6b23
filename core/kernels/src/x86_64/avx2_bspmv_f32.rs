//! `avx2_bspmv_f32`: block-sparse batch-1 Dense (`bsparse.rs`) with AVX2 + FMA: a kept `1 × bw`
//! block is bw/8 ymm (or one xmm at bw = 4) of weights FMAd into the same outputs in memory:
//! load, FMA with the input broadcast, store. Blocks of one row touch distinct outputs, so
//! their FMAs are independent.

use crate::bsparse::{each_block, for_each_nonzero};
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; otherwise as [`crate::bsparse::BspmvFn`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_bspmv_f32(bw: usize, k: usize, x: *const f32, live: *const u64, ptr: *const u32, col: *const u32, val: *const f32, acc: *mut f32) {
    let x = std::slice::from_raw_parts(x, k);
    match bw {
        16 => for_each_nonzero(x, live, |i, xv| {
            let xb = _mm256_set1_ps(xv);
            each_block(*ptr.add(i) as usize, *ptr.add(i + 1) as usize, |b| {
                let (a, w) = (acc.add(*col.add(b) as usize), val.add(b * 16));
                _mm256_storeu_ps(a, _mm256_fmadd_ps(xb, _mm256_loadu_ps(w), _mm256_loadu_ps(a)));
                _mm256_storeu_ps(a.add(8), _mm256_fmadd_ps(xb, _mm256_loadu_ps(w.add(8)), _mm256_loadu_ps(a.add(8))));
            });
        }),
        8 => for_each_nonzero(x, live, |i, xv| {
            let xb = _mm256_set1_ps(xv);
            each_block(*ptr.add(i) as usize, *ptr.add(i + 1) as usize, |b| {
                let (a, w) = (acc.add(*col.add(b) as usize), val.add(b * 8));
                _mm256_storeu_ps(a, _mm256_fmadd_ps(xb, _mm256_loadu_ps(w), _mm256_loadu_ps(a)));
            });
        }),
        _ => for_each_nonzero(x, live, |i, xv| {
            let xb = _mm_set1_ps(xv);
            each_block(*ptr.add(i) as usize, *ptr.add(i + 1) as usize, |b| {
                let (a, w) = (acc.add(*col.add(b) as usize), val.add(b * 4));
                _mm_storeu_ps(a, _mm_fmadd_ps(xb, _mm_loadu_ps(w), _mm_loadu_ps(a)));
            });
        }),
    }
}
