//! `generic_mmm_f32_4x8`: the reference GEMM micro-kernel.
//!
//! 4×8 keeps the 32 accumulators in eight 128-bit registers when LLVM vectorizes the inner
//! loop for a 128-bit baseline (SSE2, scalar wasm), with room left for A and B values.

use crate::{store_tile_scalar, Tile};

pub(crate) const MR: usize = 4;
pub(crate) const NR: usize = 8;

/// # Safety
/// MR rows of `k` values at `a + r*rsa`, `b` valid for `k*NR` values; `tile` as documented on
/// [`Tile`].
pub(crate) unsafe fn generic_mmm_f32_4x8(k: usize, a: *const f32, rsa: usize, b: *const f32, tile: &Tile) {
    tile_4x8(k, std::array::from_fn(|r| a.add(r * rsa)), |p| p, b, tile)
}

/// Indirect convolution: A element `(r, p)` is `rows[r][offs[p]]`.
///
/// # Safety
/// `rows` holds MR pointers each valid at every `offs[..k]`; `b` valid for `k*NR` values.
pub(crate) unsafe fn generic_conv_f32_4x8(k: usize, rows: *const *const f32, offs: *const u32, b: *const f32, tile: &Tile) {
    tile_4x8(k, std::array::from_fn(|r| *rows.add(r)), |p| *offs.add(p) as usize, b, tile)
}

#[inline(always)]
unsafe fn tile_4x8(k: usize, rows: [*const f32; MR], off: impl Fn(usize) -> usize, b: *const f32, tile: &Tile) {
    let b = std::slice::from_raw_parts(b, k * NR);
    let mut acc = [[0.0f32; NR]; MR];
    for (p, bv) in b.chunks_exact(NR).enumerate() {
        let o = off(p);
        for r in 0..MR {
            let ar = *rows[r].add(o);
            for j in 0..NR {
                acc[r][j] += ar * bv[j];
            }
        }
    }
    store_tile_scalar(acc.as_flattened(), NR, tile);
}
