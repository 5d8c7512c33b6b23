//! The Winograd transforms (`kernels::winograd`) for AVX2 + FMA and AVX-512F.
//!
//! AVX2: the generic Rust body over 16-channel arrays, inlined into a `#[target_feature]`
//! function so LLVM vectorizes it with ymm registers.
//!
//! AVX-512: written with intrinsics for the common case (a tile inside the image, channels a
//! multiple of 16), one zmm per 16 channels, loaded straight from the HWC input and stored
//! straight to `U` (or from `M` to the output). The generic body compiled for AVX-512 spent
//! most of its time outside the arithmetic: copying into its local arrays (bounds checks, a
//! `memcpy` call, a zero fill per border test) and back (KERNELS.md, "Winograd at batch
//! 1024"). The arithmetic is the generic body's, term for term and in the same order (`bt6`,
//! `at6`: no FMA contraction), so the results are bit-identical to it; tiles at the border and
//! other channel counts take the generic body, one tile at a time.

use crate::winograd::{input_body, output_body, InJob, OutJob, N, NN, WINO_M};
use core::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_wino_in_f32(j: &InJob, u: &mut [f32]) {
    input_body(j, u)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_wino_out_f32(j: &OutJob, m: &[f32], dst: &mut [f32]) {
    output_body(j, m, dst)
}

/// `winograd::bt6` on 16 lanes: the same operations in the same order.
#[inline]
#[target_feature(enable = "avx512f")]
fn bt6z(d: [__m512; N]) -> [__m512; N] {
    let [d0, d1, d2, d3, d4, d5] = d;
    let (s12, s34) = (_mm512_add_ps(d1, d2), _mm512_add_ps(d3, d4));
    let (m21, m34) = (_mm512_sub_ps(d2, d1), _mm512_sub_ps(d3, d4));
    let (m31, m42) = (_mm512_sub_ps(d3, d1), _mm512_sub_ps(d4, d2));
    let (two, four, five) = (_mm512_set1_ps(2.0), _mm512_set1_ps(4.0), _mm512_set1_ps(5.0));
    let m31x2 = _mm512_mul_ps(two, m31);
    [
        _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, d0), _mm512_mul_ps(five, d2)), d4),
        _mm512_sub_ps(_mm512_mul_ps(four, s12), s34),
        _mm512_add_ps(_mm512_mul_ps(four, m21), m34),
        _mm512_add_ps(m31x2, m42),
        _mm512_sub_ps(m42, m31x2),
        _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, d1), _mm512_mul_ps(five, d3)), d5),
    ]
}

/// `winograd::at6` on 16 lanes: the same operations in the same order.
#[inline]
#[target_feature(enable = "avx512f")]
fn at6z(m: [__m512; N]) -> [__m512; WINO_M] {
    let [m0, m1, m2, m3, m4, m5] = m;
    let two = _mm512_set1_ps(2.0);
    [
        _mm512_add_ps(_mm512_add_ps(m0, _mm512_add_ps(m1, m2)), _mm512_add_ps(m3, m4)),
        _mm512_add_ps(_mm512_add_ps(_mm512_sub_ps(m1, m2), _mm512_mul_ps(two, _mm512_sub_ps(m3, m4))), m5),
    ]
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_wino_in_f32(j: &InJob, u: &mut [f32]) {
    let (h, w, c) = (j.h, j.w, j.c);
    if c % 16 != 0 {
        return input_body(j, u);
    }
    assert!(u.len() >= j.nt * NN * c, "wino_in: u too short");
    for t in 0..j.nt {
        let tile = j.t0 + t;
        let (ty, tx) = (tile / j.tw, tile % j.tw);
        // Top-left input pixel of the tile (unpadded coordinates), when the whole 6×6 tile
        // lies inside the input.
        let inside = (ty * WINO_M)
            .checked_sub(j.pt)
            .filter(|&y| y + N <= h)
            .zip((tx * WINO_M).checked_sub(j.pl).filter(|&x| x + N <= w));
        let Some((y0, x0)) = inside else {
            input_body(&InJob { t0: tile, nt: 1, ..*j }, &mut u[t * NN * c..(t + 1) * NN * c]);
            continue;
        };
        let at = (y0 * w + x0) * c;
        assert!(at + ((N - 1) * w + N - 1) * c + c <= j.src.len(), "wino_in: tile outside the input");
        for c0 in (0..c).step_by(16) {
            // SAFETY: every load is at `at + (i·w + k)·c + c0 + 0..16` with i, k < N and
            // c0 + 16 <= c, inside the assertion above; every store at
            // `(t·NN + ξ)·c + c0 + 0..16` with ξ < NN, inside `u` (asserted above).
            unsafe {
                let p = j.src.as_ptr().add(at + c0);
                let mut cols = [[_mm512_setzero_ps(); N]; N];
                for k in 0..N {
                    let r = bt6z(std::array::from_fn(|i| _mm512_loadu_ps(p.add((i * w + k) * c))));
                    for i in 0..N {
                        cols[i][k] = r[i];
                    }
                }
                let q = u.as_mut_ptr().add(t * NN * c + c0);
                for (i, col) in cols.iter().enumerate() {
                    let r = bt6z(*col);
                    for (k, v) in r.iter().enumerate() {
                        _mm512_storeu_ps(q.add((i * N + k) * c), *v);
                    }
                }
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_wino_out_f32(j: &OutJob, m: &[f32], dst: &mut [f32]) {
    let oc = j.oc;
    if oc % 16 != 0 {
        return output_body(j, m, dst);
    }
    assert!(m.len() >= j.nt * NN * oc && j.bias.len() >= oc, "wino_out: m or bias too short");
    let (lo, hi) = (_mm512_set1_ps(j.lo), _mm512_set1_ps(j.hi));
    for t in 0..j.nt {
        let tile = j.t0 + t;
        let (ty, tx) = (tile / j.tw, tile % j.tw);
        let (oy, ox) = (ty * WINO_M, tx * WINO_M);
        if oy + WINO_M > j.oh || ox + WINO_M > j.ow {
            output_body(&OutJob { t0: tile, nt: 1, ..*j }, &m[t * NN * oc..(t + 1) * NN * oc], dst);
            continue;
        }
        let at = (oy * j.ow + ox) * oc;
        assert!(at + (j.ow + 1) * oc + oc <= dst.len(), "wino_out: tile outside the output");
        for c0 in (0..oc).step_by(16) {
            // SAFETY: loads at `(t·NN + ξ)·oc + c0 + 0..16` (ξ < NN, c0 + 16 <= oc) and the
            // bias at `c0 + 0..16`, inside the assertion at the top; stores at
            // `at + (a·ow + b)·oc + c0 + 0..16` (a, b < 2), inside the one above.
            unsafe {
                let p = m.as_ptr().add(t * NN * oc + c0);
                let mut half = [[_mm512_setzero_ps(); N]; WINO_M];
                for k in 0..N {
                    let r = at6z(std::array::from_fn(|i| _mm512_loadu_ps(p.add((i * N + k) * oc))));
                    half[0][k] = r[0];
                    half[1][k] = r[1];
                }
                let bias = _mm512_loadu_ps(j.bias.as_ptr().add(c0));
                let q = dst.as_mut_ptr().add(at + c0);
                for (a, row) in half.iter().enumerate() {
                    let r = at6z(*row);
                    for (b, v) in r.iter().enumerate() {
                        let mut v = _mm512_add_ps(*v, bias);
                        if j.clamp {
                            // `v.max(lo).min(hi)`: a NaN v gives lo, as there (vmaxps returns
                            // its second operand when either is NaN).
                            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
                        }
                        _mm512_storeu_ps(q.add((a * j.ow + b) * oc), v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand(seed: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    /// The intrinsic transforms give the generic body's bits, inside and at the border
    /// (padding, odd sizes), for channel counts that take the fast path (16, 32) and those
    /// that do not (8, 17).
    #[test]
    fn avx512_transforms_are_the_generic_bits() {
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        let mut seed = 7u64;
        for &(h, w, c, pt, pl) in &[(12, 12, 16, 0, 0), (13, 11, 32, 1, 2), (9, 14, 16, 2, 0), (12, 12, 8, 0, 0), (10, 10, 17, 1, 1)] {
            let src = rand(&mut seed, h * w * c);
            let (oh, ow) = (h + 2 * pt - 4, w + 2 * pl - 4);
            let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
            let nt = th * tw;
            let job = InJob { src: &src, h, w, c, pt, pl, tw, t0: 0, nt };
            let (mut a, mut b) = (vec![f32::NAN; nt * NN * c], vec![f32::NAN; nt * NN * c]);
            input_body(&job, &mut a);
            // SAFETY: avx512f detected above.
            unsafe { avx512_wino_in_f32(&job, &mut b) };
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "input transform {h}×{w}×{c}");
            for clamp in [false, true] {
                let oc = c;
                let mut mm = rand(&mut seed, nt * NN * oc);
                mm[3] = f32::NAN;
                let bias = rand(&mut seed, oc);
                let job = OutJob { oh, ow, oc, tw, t0: 0, nt, bias: &bias, clamp, lo: 0.0, hi: 6.0 };
                let (mut a, mut b) = (vec![1.5f32; oh * ow * oc], vec![1.5f32; oh * ow * oc]);
                output_body(&job, &mm, &mut a);
                // SAFETY: as above.
                unsafe { avx512_wino_out_f32(&job, &mm, &mut b) };
                assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "output transform {oh}×{ow}×{oc} clamp {clamp}");
            }
        }
    }
}
