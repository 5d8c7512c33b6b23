//! `avx512_mmm_f32_12x32`: the AVX-512F GEMM micro-kernel, and its indirect-conv twin.
//!
//! Why 12×32: AVX-512 has 32 zmm registers of 16 floats. A 12×32 tile keeps 24 accumulators
//! (12 rows × two 16-lane vectors), plus 2 registers for the B row and 1 for the broadcast A
//! value: 27 of 32, with room left so LLVM never spills in the loop. Per k step it issues 24
//! FMAs for 2 vector loads + 12 broadcasts (which fold into the FMA as `{1to16}` memory
//! operands). 24 independent FMAs cover 2 ports × 4-cycle latency three times over, and the
//! 14 loads per 12 FMA cycles stay under the 2 loads/cycle the load ports sustain.
//! A 14×32 tile (31 registers) would leave none spare; 8×32 issues 16 FMAs per 10 loads, i.e.
//! more A traffic per flop. 12 rows also divide the CNN's 24×24 = 576 conv pixels exactly.
//!
//! Edges use AVX-512 masks (`_mm512_mask_loadu_ps` / `_mm512_mask_storeu_ps`): one epilogue
//! for full and partial tiles, and masked-off lanes are never touched in memory.

use crate::kernels::Tile;
use std::arch::x86_64::*;

pub(crate) const MR: usize = 12;
pub(crate) const NR: usize = 32;

/// # Safety
/// The CPU must support AVX-512F; MR rows of `k` values at `a + r*rsa`, `b` valid for
/// `k*NR` values; `tile` as documented on [`Tile`].
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_mmm_f32_12x32(k: usize, a: *const f32, rsa: usize, b: *const f32, tile: &Tile) {
    let mut rows = [a; MR];
    for (r, row) in rows.iter_mut().enumerate() {
        *row = a.add(r * rsa);
    }
    tile_12x32(k, rows, |p| p, b, tile)
}

/// Indirect convolution: A element `(r, p)` is `rows[r][offs[p]]` (one base pointer per output
/// pixel, one offset per (ky, kx, c) tap), so no im2col copy is made.
///
/// # Safety
/// The CPU must support AVX-512F; `rows` holds MR pointers each valid at every `offs[..k]`;
/// `b` valid for `k*NR` values; `tile` as documented on [`Tile`].
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_conv_f32_12x32(k: usize, rows: *const *const f32, offs: *const u32, b: *const f32, tile: &Tile) {
    let mut r = [*rows; MR];
    for (i, row) in r.iter_mut().enumerate() {
        *row = *rows.add(i);
    }
    tile_12x32(k, r, |p| *offs.add(p) as usize, b, tile)
}

/// The shared tile body: A element `(r, p)` at `rows[r] + off(p)`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_12x32(k: usize, rows: [*const f32; MR], off: impl Fn(usize) -> usize, b: *const f32, tile: &Tile) {
    // Fixed-size arrays indexed by constants after full unrolling: LLVM keeps all 24 in zmm
    // registers (checked in the disassembly: no stack traffic in the k loop).
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let mut bp = b;
    for p in 0..k {
        let p = off(p);
        let b0 = _mm512_loadu_ps(bp);
        let b1 = _mm512_loadu_ps(bp.add(16));
        for r in 0..MR {
            let x = _mm512_set1_ps(*rows[r].add(p));
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
        }
        bp = bp.add(NR);
    }
    // Column masks: all ones for a full tile, the first `cols` lanes otherwise.
    let bits = if tile.cols >= NR { u32::MAX } else { (1u32 << tile.cols) - 1 };
    let (m0, m1) = (bits as __mmask16, (bits >> 16) as __mmask16);
    let zero = _mm512_setzero_ps();
    let (bias0, bias1) = if tile.bias.is_null() {
        (zero, zero)
    } else {
        (_mm512_maskz_loadu_ps(m0, tile.bias), _mm512_maskz_loadu_ps(m1, tile.bias.add(16)))
    };
    for (r, [mut v0, mut v1]) in acc.into_iter().enumerate().take(tile.rows) {
        let crow = tile.c.add(r * tile.ldc);
        if tile.accumulate {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, crow));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, crow.add(16)));
        }
        v0 = _mm512_add_ps(v0, bias0);
        v1 = _mm512_add_ps(v1, bias1);
        if tile.relu {
            v0 = _mm512_max_ps(v0, zero);
            v1 = _mm512_max_ps(v1, zero);
        }
        _mm512_mask_storeu_ps(crow, m0, v0);
        _mm512_mask_storeu_ps(crow.add(16), m1, v1);
    }
}
