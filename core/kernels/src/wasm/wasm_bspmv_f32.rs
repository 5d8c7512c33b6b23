//! `wasm_bspmv_f32`: block-sparse batch-1 Dense (`bsparse.rs`) with simd128: a kept `1 × bw`
//! block is bw/4 v128 of weights multiply-added ([`madd`]) into its outputs in memory.

use crate::bsparse::{each_block, for_each_nonzero};
use crate::wasm::madd;
use core::arch::wasm32::*;

/// # Safety
/// As [`crate::bsparse::BspmvFn`].
pub(crate) unsafe fn wasm_bspmv_f32(bw: usize, k: usize, x: *const f32, live: *const u64, ptr: *const u32, col: *const u32, val: *const f32, acc: *mut f32) {
    match bw {
        16 => run::<4>(k, x, live, ptr, col, val, acc),
        8 => run::<2>(k, x, live, ptr, col, val, acc),
        _ => run::<1>(k, x, live, ptr, col, val, acc),
    }
}

/// `V` vectors (4 floats each) per block.
#[inline(always)]
unsafe fn run<const V: usize>(k: usize, x: *const f32, live: *const u64, ptr: *const u32, col: *const u32, val: *const f32, acc: *mut f32) {
    for_each_nonzero(std::slice::from_raw_parts(x, k), live, |i, xv| {
        let xb = f32x4_splat(xv);
        each_block(*ptr.add(i) as usize, *ptr.add(i + 1) as usize, |b| {
            let (a, w) = (acc.add(*col.add(b) as usize) as *mut v128, val.add(b * 4 * V) as *const v128);
            for v in 0..V {
                v128_store(a.add(v), madd(xb, v128_load(w.add(v)), v128_load(a.add(v))));
            }
        });
    });
}
