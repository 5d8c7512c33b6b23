//! `avx512_bspmv_f32`: block-sparse batch-1 Dense (`bsparse.rs`) with AVX-512F: a kept `1 × 16`
//! block is one zmm of weights FMAd into its 16 outputs in memory (load, FMA, store). Both the
//! weights (`BlockW::val`) and the accumulator (the plan's scratch) are 64-byte aligned, so each
//! is one cache line: with the accumulator misaligned the first layer of the block-pruned MLP
//! took 0.99 against 0.58 µs per digit (`sparse_sets`, same run conditions). Narrower blocks
//! (8, 4) are one ymm/xmm: the AVX2 kernel, which this set's CPUs also run.

use crate::bsparse::{each_block, for_each_nonzero};
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; otherwise as [`crate::bsparse::BspmvFn`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn avx512_bspmv_f32(bw: usize, k: usize, x: *const f32, live: *const u64, ptr: *const u32, col: *const u32, val: *const f32, acc: *mut f32) {
    if bw != 16 {
        return crate::x86_64::avx2_bspmv_f32::avx2_bspmv_f32(bw, k, x, live, ptr, col, val, acc);
    }
    for_each_nonzero(std::slice::from_raw_parts(x, k), live, |i, xv| {
        let xb = _mm512_set1_ps(xv);
        each_block(*ptr.add(i) as usize, *ptr.add(i + 1) as usize, |b| {
            let (a, w) = (acc.add(*col.add(b) as usize), val.add(b * 16));
            _mm512_storeu_ps(a, _mm512_fmadd_ps(xb, _mm512_loadu_ps(w), _mm512_loadu_ps(a)));
        });
    });
}
