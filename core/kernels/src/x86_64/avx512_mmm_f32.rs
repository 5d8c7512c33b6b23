//! `avx512_mmm_f32_12x32` / `avx512_mmm_f32_24x16`: the AVX-512F GEMM micro-kernels, and
//! their indirect-conv twins (one generic tile body, instantiated twice).
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
//! Why a 24×16 sibling: an op with at most 16 output columns (the CNN's first conv, 16
//! channels; a 10-class head) would waste half of every 32-wide FMA. 24 rows × one vector = 24
//! accumulators + 1 B + 1 broadcast = 26 registers; per k step 24 FMAs for 1 load + 24
//! broadcasts (folded into the FMAs as `{1to16}` operands). 24 also divides the 24×24 = 576
//! pixels of that conv. `KernelSet::for_width` picks it per op at pack time, for `n <= 32`
//! (measured: it also wins on the 32-channel conv, see there). The conv twin's 24 row
//! pointers do not all fit in the 16 general registers, so 14 are reloaded from the stack each
//! k step (L1 hits, on the load port the zmm loads leave free), except when the windows are
//! adjacent (one output row of a 1-channel stride-1 conv): then one base pointer serves all
//! rows (`adjacent`).
//!
//! Edges use AVX-512 masks (`_mm512_mask_loadu_ps` / `_mm512_mask_storeu_ps`): one epilogue
//! for full and partial tiles, and masked-off lanes are never touched in memory.

use crate::Tile;
use std::arch::x86_64::*;

pub(crate) const MR: usize = 12;
pub(crate) const NR: usize = 32;
/// The narrow sibling's tile.
pub(crate) const MR_NARROW: usize = 24;
pub(crate) const NR_NARROW: usize = 16;

/// # Safety
/// The CPU must support AVX-512F; MR rows of `k` values at `a + r*rsa`, `b` valid for
/// `k*NR` values; `tile` as documented on [`Tile`].
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_mmm_f32_12x32(k: usize, a: *const f32, rsa: usize, b: *const f32, tile: &Tile) {
    tile_body::<MR, 2>(k, strided(a, rsa), |p| p, b, tile)
}

/// Indirect convolution: A element `(r, p)` is `rows[r][offs[p]]` (one base pointer per output
/// pixel, one offset per (ky, kx, c) tap), so no im2col copy is made.
///
/// # Safety
/// The CPU must support AVX-512F; `rows` holds MR pointers each valid at every `offs[..k]`;
/// `b` valid for `k*NR` values; `tile` as documented on [`Tile`].
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_conv_f32_12x32(k: usize, rows: *const *const f32, offs: *const u32, b: *const f32, tile: &Tile) {
    let rows = pointers::<MR>(rows);
    if adjacent(&rows) {
        return tile_body::<MR, 2>(k, strided(rows[0], 1), |p| *offs.add(p) as usize, b, tile);
    }
    tile_body::<MR, 2>(k, rows, |p| *offs.add(p) as usize, b, tile)
}

/// # Safety
/// As [`avx512_mmm_f32_12x32`] with MR = 24, NR = 16.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_mmm_f32_24x16(k: usize, a: *const f32, rsa: usize, b: *const f32, tile: &Tile) {
    tile_body::<MR_NARROW, 1>(k, strided(a, rsa), |p| p, b, tile)
}

/// # Safety
/// As [`avx512_conv_f32_12x32`] with MR = 24, NR = 16.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_conv_f32_24x16(k: usize, rows: *const *const f32, offs: *const u32, b: *const f32, tile: &Tile) {
    let rows = pointers::<MR_NARROW>(rows);
    if adjacent(&rows) {
        return tile_body::<MR_NARROW, 1>(k, strided(rows[0], 1), |p| *offs.add(p) as usize, b, tile);
    }
    tile_body::<MR_NARROW, 1>(k, rows, |p| *offs.add(p) as usize, b, tile)
}

/// Rows of the Winograd GEMM tile: one image's 16 tiles of a 12×12 → 8×8 convolution, so the
/// per-tile-element GEMMs (`winograd.rs`) waste no rows (24 rows would be a third padding).
pub(crate) const MR_WINO: usize = 16;

/// # Safety
/// As [`avx512_mmm_f32_12x32`] with MR = 16, NR = 16.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_mmm_f32_16x16(k: usize, a: *const f32, rsa: usize, b: *const f32, tile: &Tile) {
    tile_body::<MR_WINO, 1>(k, strided(a, rsa), |p| p, b, tile)
}

/// True when row r's window starts exactly r floats after row 0's: the pixels of one output
/// row of a 1-channel, stride-1 convolution (MNIST's first layer, any grayscale input), whose
/// 24-pixel rows fill a 24-row tile. The tile body then gets `strided(rows[0], 1)`, and after
/// inlining every A broadcast is `[base + off·4 + 4r]` with `4r` a constant displacement: one
/// base register instead of 24 pointers, 14 of which the general body reloads from the stack
/// every k step (40 loads per 24 FMAs, against 26). The addresses read are the same.
#[inline(always)]
fn adjacent<const M: usize>(rows: &[*const f32; M]) -> bool {
    (1..M).all(|r| rows[r] == rows[0].wrapping_add(r))
}

#[inline(always)]
unsafe fn strided<const M: usize>(a: *const f32, rsa: usize) -> [*const f32; M] {
    let mut rows = [a; M];
    for (r, row) in rows.iter_mut().enumerate() {
        *row = a.add(r * rsa);
    }
    rows
}

#[inline(always)]
unsafe fn pointers<const M: usize>(rows: *const *const f32) -> [*const f32; M] {
    let mut r = [*rows; M];
    for (i, row) in r.iter_mut().enumerate() {
        *row = *rows.add(i);
    }
    r
}

/// The shared tile body, `M` rows × `V` 16-lane vectors: A element `(r, p)` at
/// `rows[r] + off(p)`, B packed with `16 * V` values per k step.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_body<const M: usize, const V: usize>(
    k: usize,
    rows: [*const f32; M],
    off: impl Fn(usize) -> usize,
    b: *const f32,
    tile: &Tile,
) {
    // Fixed-size arrays indexed by constants after full unrolling: LLVM keeps every
    // accumulator in a zmm register (checked in the disassembly: no stack traffic in the k loop).
    let mut acc = [[_mm512_setzero_ps(); V]; M];
    let mut bp = b;
    for p in 0..k {
        let p = off(p);
        let mut bv = [_mm512_setzero_ps(); V];
        for (v, b) in bv.iter_mut().enumerate() {
            *b = _mm512_loadu_ps(bp.add(16 * v));
        }
        for r in 0..M {
            let x = _mm512_set1_ps(*rows[r].add(p));
            for v in 0..V {
                acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
            }
        }
        bp = bp.add(16 * V);
    }
    // Column masks: all ones for a full tile, the first `cols` lanes otherwise.
    let bits = if tile.cols >= 32 { u32::MAX } else { (1u32 << tile.cols) - 1 };
    let mut mask = [0 as __mmask16; V];
    for (v, m) in mask.iter_mut().enumerate() {
        *m = (bits >> (16 * v)) as __mmask16;
    }
    let zero = _mm512_setzero_ps();
    let mut bias = [zero; V];
    if !tile.bias.is_null() {
        for v in 0..V {
            bias[v] = _mm512_maskz_loadu_ps(mask[v], tile.bias.add(16 * v));
        }
    }
    for (r, accr) in acc.into_iter().enumerate().take(tile.rows) {
        let crow = tile.c.add(r * tile.ldc);
        for v in 0..V {
            let mut x = accr[v];
            if tile.accumulate {
                x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], crow.add(16 * v)));
            }
            x = _mm512_add_ps(x, bias[v]);
            if tile.clamp {
                x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(tile.lo)), _mm512_set1_ps(tile.hi));
            }
            _mm512_mask_storeu_ps(crow.add(16 * v), mask[v], x);
        }
    }
}
