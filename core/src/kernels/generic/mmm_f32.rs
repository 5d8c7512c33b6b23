//! `generic_mmm_f32_4x8`: the reference GEMM micro-kernel.
//!
//! 4×8 keeps the 32 accumulators in eight 128-bit registers when LLVM vectorizes the inner
//! loop for a 128-bit baseline (SSE2, scalar wasm), with room left for A and B values.

use crate::kernels::{store_tile_scalar, Tile};

pub(crate) const MR: usize = 4;
pub(crate) const NR: usize = 8;

/// # Safety
/// `a` valid for `k*MR`, `b` for `k*NR` values; `tile` as documented on [`Tile`].
pub(crate) unsafe fn generic_mmm_f32_4x8(k: usize, a: *const f32, b: *const f32, tile: &Tile) {
    let a = std::slice::from_raw_parts(a, k * MR);
    let b = std::slice::from_raw_parts(b, k * NR);
    let mut acc = [[0.0f32; NR]; MR];
    for (av, bv) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for r in 0..MR {
            let ar = av[r];
            for j in 0..NR {
                acc[r][j] += ar * bv[j];
            }
        }
    }
    store_tile_scalar(acc.as_flattened(), NR, tile);
}
