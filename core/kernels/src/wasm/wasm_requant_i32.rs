//! `wasm_qepilogue_i32`: the requantization epilogue (`kernels::quant`, the spec) in simd128,
//! 16 columns (four i32x4) at a time. simd128 has no per-lane shift, which the portable body
//! needs twice (LLVM scalarized it, and the epilogue cost more than the int8 GEMM in V8), so
//! both shifts become multiplies with a uniform shift, giving the same integers:
//!
//! * left shift by l: `x · 2^l` (`i32x4.mul`), after the saturation compares;
//! * `srdhm(x, mult) = (x·mult + 2^30) >> 31` (i64 lanes: `i64x2.extmul_*_i32x4_s`, a
//!   uniform 64-bit shift; see `QEpi`);
//! * `rounding_rshift(h, r) = (h·2^(30−r) + 2^29 − [h < 0]) >> 30`: for r = 0 the added
//!   `2^29 − [h<0]` is below 2^30 and vanishes; for 1 ≤ r ≤ 30 it is `(h + 2^(r−1) − δ) / 2^r`
//!   with δ = 2^(r−30) in (0, 1] for negative h, and flooring `n − δ` equals flooring `n − 1`
//!   for an integer n, i.e. ties away from zero exactly as the spec. r = 31 (a multiplier
//!   below 2^−31) has no `2^(30−r)`: such an epilogue takes the portable body.
//!
//! Both 64-bit shifts are logical: the result fits i32, so bits 31..62 (30..61) are the same
//! as an arithmetic shift's. Tested against the scalar spec in `core/tests/kernels_qparity.rs`
//! built for wasm32 (QUANT.md has the command).

use crate::quant::{qepilogue_body, qepilogue_cols, QElem, QEpi};
use core::arch::wasm32::*;

/// Where the 16 results of a chunk go: f32 grid values or u8 codes.
pub(crate) trait WasmStore: QElem {
    /// # Safety
    /// `out` valid for 16 writes.
    unsafe fn store16(q: [v128; 4], zp: i32, scale: f32, out: *mut Self);
}

impl WasmStore for f32 {
    #[inline(always)]
    unsafe fn store16(q: [v128; 4], zp: i32, scale: f32, out: *mut f32) {
        let (zp, sc) = (i32x4_splat(zp), f32x4_splat(scale));
        for (i, v) in q.into_iter().enumerate() {
            // (q − zp) as f32 · scale: the conversion is exact (|q − zp| ≤ 255), the multiply IEEE.
            v128_store(out.add(4 * i) as *mut v128, f32x4_mul(f32x4_convert_i32x4(i32x4_sub(v, zp)), sc));
        }
    }
}

impl WasmStore for u8 {
    #[inline(always)]
    unsafe fn store16(q: [v128; 4], _zp: i32, _scale: f32, out: *mut u8) {
        // q is already clamped to 0..=255: the saturating narrows are exact.
        let lo = u16x8_narrow_i32x4(q[0], q[1]);
        let hi = u16x8_narrow_i32x4(q[2], q[3]);
        v128_store(out as *mut v128, u8x16_narrow_i16x8(lo, hi));
    }
}

/// `a + b` per lane, saturating (i32x4 has no saturating add): wrap, then where both operands
/// have one sign and the sum the other, the bound of that sign. `max_v`: `i32::MAX` per lane.
#[inline(always)]
fn add_sat(a: v128, b: v128, max_v: v128) -> v128 {
    let s = i32x4_add(a, b);
    let overflow = i32x4_shr(v128_and(v128_xor(a, s), v128_xor(b, s)), 31);
    // a's sign picks the bound: MAX for a ≥ 0 (MIN xor −1), MIN for a < 0.
    let bound = v128_xor(max_v, i32x4_shr(a, 31));
    v128_bitselect(bound, s, overflow)
}

/// Lanes 0 and 2 of `a` and of `b` (the low halves of four i64 lanes).
#[inline(always)]
fn low32(a: v128, b: v128) -> v128 {
    i32x4_shuffle::<0, 2, 4, 6>(a, b)
}

/// # Safety
/// As `quant::QEpiFn`: slices hold `rows` rows of `e.n()` at their strides (checked by
/// `KernelSet::qepilogue`).
pub(crate) unsafe fn wasm_qepilogue_i32<T: WasmStore>(e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [T], ldy: usize) {
    let Some((lanes, zp, lo, scale)) = e.requant_lanes() else {
        return qepilogue_body(e, c, ldc, rows, y, ldy);
    };
    // No column shifts left (every multiplier below 1, as for MNIST's convs and dense layers):
    // the saturating left shift is the identity (bounds i32::MAX / i32::MIN, times 1), so that
    // loop leaves out its multiply, two compares and two selects, the same integers. In
    // Chromium 148 on the Xeon this epilogue was 18 % of the int7 CNN's wasm time and
    // `i32x4.mul` is two uops there (core/runtime/QUANT.md, "The int7 CNN in Chromium on the
    // Xeon", has the profile). Codes only (the convs' and hidden layers' outputs): the f32 form
    // keeps one loop, to keep the module small (each instantiation is about 0.9 KB gzip). The
    // scan over the columns' shifts is per call, n compares beside n requantized lanes per row.
    if core::mem::size_of::<T>() == 1 && lanes[4].iter().all(|&p| p == 1) {
        requant_rows::<T, false>(e, lanes, zp, lo, scale, c, ldc, rows, y, ldy)
    } else {
        requant_rows::<T, true>(e, lanes, zp, lo, scale, c, ldc, rows, y, ldy)
    }
}

/// The vector loop of [`wasm_qepilogue_i32`]; `LSHIFT` false leaves out the left shift (the
/// caller checked that every column's is 0).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn requant_rows<T: WasmStore, const LSHIFT: bool>(
    e: &QEpi,
    [bias, mult, sat_hi, sat_lo, pow2l, pow2r]: [&[i32]; 6],
    zp: i32,
    lo: i32,
    scale: f32,
    c: &[i32],
    ldc: usize,
    rows: usize,
    y: &mut [T],
    ldy: usize,
) {
    let n = e.n();
    let full = n / 16 * 16;
    let ld = |p: &[i32], j: usize| v128_load(p.as_ptr().add(j) as *const v128);
    // Hidden from LLVM, else V8 builds each constant again at every use in the loop
    // (`Quant16`).
    let (max_v, min_v, half30, half29, hi_clamp) =
        core::hint::black_box((i32x4_splat(i32::MAX), i32x4_splat(i32::MIN), i64x2_splat(1 << 30), i64x2_splat(1 << 29), i32x4_splat(255)));
    let (lo_v, zp_v, zp_room) = core::hint::black_box((i32x4_splat(lo), i32x4_splat(zp), i32x4_splat(i32::MAX - zp)));
    for r in 0..rows {
        let acc = &c[r * ldc..r * ldc + n];
        let out = &mut y[r * ldy..r * ldy + n];
        for j0 in (0..full).step_by(16) {
            let mut q = [i32x4_splat(0); 4];
            for (i, qv) in q.iter_mut().enumerate() {
                let j = j0 + 4 * i;
                let mut x = add_sat(ld(acc, j), ld(bias, j), max_v);
                if LSHIFT {
                    // Saturating left shift: the bounds first, then x · 2^l.
                    let shifted = i32x4_mul(x, ld(pow2l, j));
                    x = v128_bitselect(max_v, v128_bitselect(min_v, shifted, i32x4_lt(x, ld(sat_lo, j))), i32x4_gt(x, ld(sat_hi, j)));
                }
                // srdhm in i64 lanes.
                let m = ld(mult, j);
                let p0 = u64x2_shr(i64x2_add(i64x2_extmul_low_i32x4(x, m), half30), 31);
                let p1 = u64x2_shr(i64x2_add(i64x2_extmul_high_i32x4(x, m), half30), 31);
                let h = low32(p0, p1);
                // Rounding right shift as a multiply by 2^(30 − r) and a uniform shift by 30.
                let (pr, neg) = (ld(pow2r, j), i32x4_shr(h, 31));
                let q0 = i64x2_add(i64x2_extmul_low_i32x4(h, pr), i64x2_add(half29, i64x2_extend_low_i32x4(neg)));
                let q1 = i64x2_add(i64x2_extmul_high_i32x4(h, pr), i64x2_add(half29, i64x2_extend_high_i32x4(neg)));
                let z = low32(u64x2_shr(q0, 30), u64x2_shr(q1, 30));
                // z + zp saturating (zp >= 0), then the clamp to [lo, 255].
                let z = i32x4_add(i32x4_min(z, zp_room), zp_v);
                *qv = i32x4_min(i32x4_max(z, lo_v), hi_clamp);
            }
            T::store16(q, zp, scale, out.as_mut_ptr().add(j0));
        }
        for j in full..n {
            qepilogue_cols::<T, 1>(e, j, &acc[j..j + 1], &mut out[j..j + 1]);
        }
    }
}

/// `QParams::quantize` on 16 f32 at a time, into their 16 u8 codes: IEEE division, NaN → 0
/// (then zp), clamp to ±512, round half to even with the 1.5·2^23 trick, `+ zp`, and the clamp
/// to 0..=255. One type for every quantize kernel (`wasm_quantize_f32` here,
/// `wasm_quantize_dot7_f32`), so their codes cannot drift apart.
///
/// The constants are made once per call and passed through `black_box`: as constants, LLVM
/// emits a `v128.const` at each use inside the loop and V8 (Chromium 148, x64) builds every one
/// there again (a 64-bit immediate, a move and a shuffle: 3 instructions, 6 constants per 4
/// values); as values it cannot see, they stay in registers (wasm/DESIGN.md, "What V8 makes of
/// the 7-bit path").
#[derive(Clone, Copy)]
pub(crate) struct Quant16 {
    sc: v128,
    lim: v128,
    nlim: v128,
    magic: v128,
    /// `zp − bits(1.5·2^23)`: the integer rounded, plus zp, in one add.
    bias: v128,
}

impl Quant16 {
    #[inline(always)]
    pub(crate) fn new(p: crate::quant::QParams) -> Self {
        const MAGIC: f32 = 12_582_912.0;
        core::hint::black_box(Quant16 {
            sc: f32x4_splat(p.scale),
            lim: f32x4_splat(512.0),
            nlim: f32x4_splat(-512.0),
            magic: f32x4_splat(MAGIC),
            bias: i32x4_splat(p.zero_point.wrapping_sub(MAGIC.to_bits() as i32)),
        })
    }

    /// The codes of `v[0]`, `v[1]`, `v[2]`, `v[3]` (4 f32 each), in order.
    #[inline(always)]
    pub(crate) fn codes(&self, v: [v128; 4]) -> v128 {
        let one = |v: v128| {
            let t = f32x4_div(v, self.sc);
            // NaN → +0 (its lanes' bits cleared).
            let t = v128_and(t, f32x4_eq(t, t));
            // pmax/pmin keep the first operand unless the second is larger/smaller: with NaN
            // gone this is `clamp(-512, 512)`.
            let t = f32x4_pmin(f32x4_pmax(t, self.nlim), self.lim);
            // |t| ≤ 512, so t + 1.5·2^23 rounds (half to even) to the float 1.5·2^23 + r, whose
            // bits are bits(1.5·2^23) + r in the binade [2^23, 2^24) where the step is 1: the
            // integer r, exactly what `(t + m) − m` then a conversion gave, in one add.
            i32x4_add(f32x4_add(t, self.magic), self.bias)
        };
        // −512 + zp..=512 + zp (zp in 0..=255): i32 → u16 clamps the negatives to 0 and keeps
        // the rest (≤ 767), u16 read as i16 → u8 clamps to 255.
        u8x16_narrow_i16x8(u16x8_narrow_i32x4(one(v[0]), one(v[1])), u16x8_narrow_i32x4(one(v[2]), one(v[3])))
    }
}

/// `wasm_quantize_f32`: `quant::quantize_slice` in simd128, 16 values at a time
/// ([`Quant16`]; LLVM's vectorization of the portable loop cost about as much as the
/// int8 GEMM in V8).
///
/// # Safety
/// As `quant::QQuantFn` (`x` and `q` of one length, checked by `KernelSet::quantize`).
pub(crate) unsafe fn wasm_quantize_f32(p: crate::quant::QParams, x: &[f32], q: &mut [u8]) {
    let n = x.len().min(q.len());
    let full = n / 16 * 16;
    let k = Quant16::new(p);
    for i in (0..full).step_by(16) {
        let ld = |j: usize| v128_load(x.as_ptr().add(i + j) as *const v128);
        v128_store(q.as_mut_ptr().add(i) as *mut v128, k.codes([ld(0), ld(4), ld(8), ld(12)]));
    }
    for i in full..n {
        q[i] = p.quantize(x[i]);
    }
}
