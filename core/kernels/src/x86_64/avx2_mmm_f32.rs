//! `avx2_mmm_f32_6x16`: the AVX2 + FMA GEMM micro-kernel.
//!
//! Why 6×16: x86_64 has 16 ymm registers. A 6×16 tile needs 12 accumulators (6 rows × two
//! 8-lane vectors), plus 2 registers for the B row and 1 for the broadcast A value: 15 of 16.
//! Per k step it issues 12 FMAs for 2 vector loads + 6 broadcasts, enough independent FMAs
//! (12 ≥ 2 ports × 4-cycle latency) to keep both FMA ports busy. 16 columns also match the
//! 16 channels of the CNN's first convolution and divide 32, 64, 128 exactly.

use crate::{store_tile_scalar, Tile};
use std::arch::x86_64::*;

pub(crate) const MR: usize = 6;
pub(crate) const NR: usize = 16;

/// # Safety
/// The CPU must support AVX2 and FMA; MR rows of `k` values at `a + r*rsa`, `b` valid for
/// `k*NR` values; `tile` as documented on [`Tile`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_mmm_f32_6x16(k: usize, a: *const f32, rsa: usize, b: *const f32, tile: &Tile) {
    let rows = [a, a.add(rsa), a.add(2 * rsa), a.add(3 * rsa), a.add(4 * rsa), a.add(5 * rsa)];
    tile_6x16(k, rows, |p| p, b, tile)
}

/// Indirect convolution: A element `(r, p)` is `rows[r][offs[p]]` (one base pointer per output
/// pixel, one offset per (ky, kx, c) tap), so no im2col copy is made.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `rows` holds MR pointers each valid at every `offs[..k]`;
/// `b` valid for `k*NR` values; `tile` as documented on [`Tile`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_conv_f32_6x16(k: usize, rows: *const *const f32, offs: *const u32, b: *const f32, tile: &Tile) {
    let rows = [*rows, *rows.add(1), *rows.add(2), *rows.add(3), *rows.add(4), *rows.add(5)];
    tile_6x16(k, rows, |p| *offs.add(p) as usize, b, tile)
}

/// The shared tile body: A element `(r, p)` at `rows[r] + off(p)`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_6x16(k: usize, rows: [*const f32; MR], off: impl Fn(usize) -> usize, b: *const f32, tile: &Tile) {
    let mut c00 = _mm256_setzero_ps();
    let mut c01 = _mm256_setzero_ps();
    let mut c10 = _mm256_setzero_ps();
    let mut c11 = _mm256_setzero_ps();
    let mut c20 = _mm256_setzero_ps();
    let mut c21 = _mm256_setzero_ps();
    let mut c30 = _mm256_setzero_ps();
    let mut c31 = _mm256_setzero_ps();
    let mut c40 = _mm256_setzero_ps();
    let mut c41 = _mm256_setzero_ps();
    let mut c50 = _mm256_setzero_ps();
    let mut c51 = _mm256_setzero_ps();
    // Six row pointers: A is read where it lies (activation rows, input pixels), one
    // broadcast per row per k step.
    let [a0, a1, a2, a3, a4, a5] = rows;
    let mut bp = b;
    for p in 0..k {
        let p = off(p);
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        let x = _mm256_broadcast_ss(&*a0.add(p));
        c00 = _mm256_fmadd_ps(x, b0, c00);
        c01 = _mm256_fmadd_ps(x, b1, c01);
        let x = _mm256_broadcast_ss(&*a1.add(p));
        c10 = _mm256_fmadd_ps(x, b0, c10);
        c11 = _mm256_fmadd_ps(x, b1, c11);
        let x = _mm256_broadcast_ss(&*a2.add(p));
        c20 = _mm256_fmadd_ps(x, b0, c20);
        c21 = _mm256_fmadd_ps(x, b1, c21);
        let x = _mm256_broadcast_ss(&*a3.add(p));
        c30 = _mm256_fmadd_ps(x, b0, c30);
        c31 = _mm256_fmadd_ps(x, b1, c31);
        let x = _mm256_broadcast_ss(&*a4.add(p));
        c40 = _mm256_fmadd_ps(x, b0, c40);
        c41 = _mm256_fmadd_ps(x, b1, c41);
        let x = _mm256_broadcast_ss(&*a5.add(p));
        c50 = _mm256_fmadd_ps(x, b0, c50);
        c51 = _mm256_fmadd_ps(x, b1, c51);
        bp = bp.add(NR);
    }
    let acc = [[c00, c01], [c10, c11], [c20, c21], [c30, c31], [c40, c41], [c50, c51]];
    if tile.rows == MR && tile.cols == NR {
        let zero = _mm256_setzero_ps();
        let (bias0, bias1) = if tile.bias.is_null() {
            (zero, zero)
        } else {
            (_mm256_loadu_ps(tile.bias), _mm256_loadu_ps(tile.bias.add(8)))
        };
        for (r, [mut v0, mut v1]) in acc.into_iter().enumerate() {
            let crow = tile.c.add(r * tile.ldc);
            if tile.accumulate {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(crow));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(crow.add(8)));
            }
            v0 = _mm256_add_ps(v0, bias0);
            v1 = _mm256_add_ps(v1, bias1);
            if tile.clamp {
                let (lo, hi) = (_mm256_set1_ps(tile.lo), _mm256_set1_ps(tile.hi));
                v0 = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
                v1 = _mm256_min_ps(_mm256_max_ps(v1, lo), hi);
            }
            _mm256_storeu_ps(crow, v0);
            _mm256_storeu_ps(crow.add(8), v1);
        }
    } else {
        // Edge tile: spill the registers, let the shared scalar epilogue write the valid part.
        let mut tmp = [0.0f32; MR * NR];
        for (r, [v0, v1]) in acc.into_iter().enumerate() {
            _mm256_storeu_ps(tmp.as_mut_ptr().add(r * NR), v0);
            _mm256_storeu_ps(tmp.as_mut_ptr().add(r * NR + 8), v1);
        }
        store_tile_scalar(&tmp, NR, tile);
    }
}
