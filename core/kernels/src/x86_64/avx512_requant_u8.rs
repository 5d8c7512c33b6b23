//! `avx512_qepilogue_u8`: the requantizing epilogue (`quant::QEpi`) into u8 codes, written with
//! AVX-512 intrinsics. The same Rust body compiled for AVX-512 (`avx_requant_i32.rs`) was a
//! fifth of the int8 CNN's time at batch 1024 (`perf`, QUANT.md "Speed"): about 45 instructions
//! per 16 values, its 64-bit products as two sign extensions and two `vpmullq` (three uops
//! each). Here the products are two `vpmuldq` (even and odd lanes) and a blend, the per-column
//! constants stay in registers across rows when the row is one or two vectors (the CNN's 16-
//! and 32-channel convs), the saturating left shift is skipped for column blocks that do not
//! shift left (every column of the shipped models), and the final `sat_add(z, zp).clamp(lo,
//! 255)` is one min and one max before the add (valid when `0 <= zp <= 255` and `lo <= 255`, as every model's are; other
//! parameters take the portable body).
//!
//! Each line computes what `quant::qepilogue_cols` computes, in the same integer steps, so the
//! codes are the same bits (`core/tests/kernels_qparity.rs`,
//! `vector_epilogue_matches_the_scalar_specification`, compares them with the scalar
//! specification on edge values).

use crate::quant::{qepilogue_body, QEpi};
use std::arch::x86_64::*;

/// Per-column constants of 16 columns (`j0..j0 + 16`, masked past `n`).
#[derive(Clone, Copy)]
struct Cols {
    bias: __m512i,
    mult: __m512i,
    mult_odd: __m512i,
    sat_hi: __m512i,
    sat_lo: __m512i,
    rmask: __m512i,
    rhalf: __m512i,
    lshift: __m512i,
    rshift: __m512i,
    /// `255 − zp` and `lo − zp`: the clamp before the zero point is added.
    top: __m512i,
    bottom: __m512i,
    zp: __m512i,
    store: __mmask16,
    /// No column of the block shifts left (multipliers below 1, as in the shipped models):
    /// then `sat_hi` is `i32::MAX`, `sat_lo` `i32::MIN` and the shift 0, so the saturating
    /// left shift is the identity and is skipped.
    no_lshift: bool,
}

#[inline(always)]
unsafe fn cols(e: &QEpi, j0: usize) -> Cols {
    let ([bias, mult, sat_hi, sat_lo, rmask], [lshift, rshift], zp, lo) = e.requant_cols().expect("requantizing");
    let w = (e.n() - j0).min(16);
    let no_lshift = lshift[j0..j0 + w].iter().all(|&l| l == 0);
    let m: __mmask16 = if w == 16 { 0xFFFF } else { ((1u32 << w) - 1) as __mmask16 };
    let ld = |v: &[i32]| _mm512_maskz_loadu_epi32(m, v[j0..].as_ptr());
    let ldu = |v: &[u32]| _mm512_maskz_loadu_epi32(m, v[j0..].as_ptr() as *const i32);
    let mult = ld(mult);
    let rmask = ld(rmask);
    Cols {
        bias: ld(bias),
        mult,
        mult_odd: _mm512_srli_epi64::<32>(mult),
        sat_hi: ld(sat_hi),
        sat_lo: ld(sat_lo),
        rmask,
        rhalf: _mm512_srai_epi32::<1>(rmask),
        lshift: ldu(lshift),
        rshift: ldu(rshift),
        top: _mm512_set1_epi32(255 - zp),
        bottom: _mm512_set1_epi32(lo - zp),
        zp: _mm512_set1_epi32(zp),
        store: m,
        no_lshift,
    }
}

/// 16 sums (`acc`, masked to the columns) to 16 codes stored at `out`; `LSHIFT` false only
/// when `k.no_lshift`.
#[inline(always)]
unsafe fn requant16<const LSHIFT: bool>(k: &Cols, acc: *const i32, out: *mut u8) {
    let a = _mm512_maskz_loadu_epi32(k.store, acc);
    let one = _mm512_set1_epi32(1);
    // acc + bias saturating: overflow iff both operands' signs differ from the sum's; the
    // saturated value is MAX for a non-negative acc, MIN for a negative one.
    let s = _mm512_add_epi32(a, k.bias);
    // (a ^ s) & (bias ^ s): ternary-logic truth table 0x42 over (a, bias, s): bits 1 (a 0, bias 0, s 1) and 6 (1, 1, 0).
    let ovf = _mm512_movepi32_mask(_mm512_ternarylogic_epi32::<0x42>(a, k.bias, s));
    let x = _mm512_mask_mov_epi32(s, ovf, _mm512_xor_si512(_mm512_srai_epi32::<31>(a), _mm512_set1_epi32(i32::MAX)));
    // The saturating left shift.
    let x = if LSHIFT {
        let hi = _mm512_cmpgt_epi32_mask(x, k.sat_hi);
        let lo = _mm512_cmplt_epi32_mask(x, k.sat_lo);
        let x = _mm512_sllv_epi32(x, k.lshift);
        let x = _mm512_mask_mov_epi32(x, hi, _mm512_set1_epi32(i32::MAX));
        _mm512_mask_mov_epi32(x, lo, _mm512_set1_epi32(i32::MIN))
    } else {
        x
    };
    // h = bits 31..62 of x·mult + 2^30, even lanes and odd lanes apart.
    let nudge = _mm512_set1_epi64(1 << 30);
    let pe = _mm512_add_epi64(_mm512_mul_epi32(x, k.mult), nudge);
    let po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64::<32>(x), k.mult_odd), nudge);
    let h = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64::<31>(pe), _mm512_slli_epi64::<1>(po));
    // The rounding right shift: up when the dropped bits exceed half (or equal it, h < 0).
    let neg = _mm512_movepi32_mask(h);
    let thr = _mm512_mask_add_epi32(k.rhalf, neg, k.rhalf, one);
    let z = _mm512_srav_epi32(h, k.rshift);
    let up = _mm512_cmpgt_epi32_mask(_mm512_and_si512(h, k.rmask), thr);
    let z = _mm512_mask_add_epi32(z, up, z, one);
    // sat_add(z, zp).clamp(lo, 255) = clamp(z, lo − zp, 255 − zp) + zp for 0 <= zp <= 255.
    let q = _mm512_add_epi32(_mm512_max_epi32(_mm512_min_epi32(z, k.top), k.bottom), k.zp);
    _mm512_mask_cvtepi32_storeu_epi8(out as *mut _, k.store, q);
}

/// `rows` rows of `n` sums at stride `ldc` into codes at stride `ldy`.
///
/// # Safety
/// AVX-512F, BW, DQ and VL; `c` holds `(rows − 1)·ldc + n` sums and `y` `(rows − 1)·ldy + n`
/// codes (the caller checked).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn avx512_qepilogue_u8(e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [u8], ldy: usize) {
    let n = e.n();
    let plain = e.requant_cols().is_some_and(|(_, _, zp, lo)| (0..=255).contains(&zp) && lo <= 255 && lo >= -(1 << 30));
    if !plain || rows == 0 || n == 0 {
        return qepilogue_body(e, c, ldc, rows, y, ldy);
    }
    assert!(c.len() >= (rows - 1) * ldc + n && y.len() >= (rows - 1) * ldy + n);
    let (cp, yp) = (c.as_ptr(), y.as_mut_ptr());
    if n <= 32 {
        // One or two column blocks: their constants loaded once for all rows.
        let k0 = cols(e, 0);
        let k1 = if n > 16 { Some(cols(e, 16)) } else { None };
        if k0.no_lshift && k1.as_ref().is_none_or(|k| k.no_lshift) {
            for r in 0..rows {
                requant16::<false>(&k0, cp.add(r * ldc), yp.add(r * ldy));
                if let Some(k1) = &k1 {
                    requant16::<false>(k1, cp.add(r * ldc + 16), yp.add(r * ldy + 16));
                }
            }
        } else {
            for r in 0..rows {
                requant16::<true>(&k0, cp.add(r * ldc), yp.add(r * ldy));
                if let Some(k1) = &k1 {
                    requant16::<true>(k1, cp.add(r * ldc + 16), yp.add(r * ldy + 16));
                }
            }
        }
        return;
    }
    for j0 in (0..n).step_by(16) {
        let k = cols(e, j0);
        for r in 0..rows {
            if k.no_lshift {
                requant16::<false>(&k, cp.add(r * ldc + j0), yp.add(r * ldy + j0));
            } else {
                requant16::<true>(&k, cp.add(r * ldc + j0), yp.add(r * ldy + j0));
            }
        }
    }
}
