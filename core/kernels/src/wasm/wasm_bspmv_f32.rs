//! `wasm_bspmv_f32`: block-sparse batch-1 Dense (`bsparse.rs`) with simd128: a kept `1 × bw`
//! block is bw/4 v128 of weights multiply-added ([`madd`]) into its outputs in memory. One copy
//! for every width, the vectors of a block in a loop (the package's size budget: a copy per
//! width cost about 1 KB gzipped).

use crate::bsparse::{each_block, for_each_nonzero};
use crate::wasm::madd;
use core::arch::wasm32::*;

/// # Safety
/// As [`crate::bsparse::BspmvFn`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_bspmv_f32(bw: usize, k: usize, x: *const f32, live: *const u64, ptr: *const u32, col: *const u32, val: *const f32, acc: *mut f32) {
    let v = bw / 4;
    for_each_nonzero(std::slice::from_raw_parts(x, k), live, |i, xv| {
        let xb = f32x4_splat(xv);
        each_block(*ptr.add(i) as usize, *ptr.add(i + 1) as usize, |b| {
            let (a, w) = (acc.add(*col.add(b) as usize) as *mut v128, val.add(b * bw) as *const v128);
            for q in 0..v {
                v128_store(a.add(q), madd(xb, v128_load(w.add(q)), v128_load(a.add(q))));
            }
        });
    });
}
