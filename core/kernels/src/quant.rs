//! Integer quantization arithmetic, specified once (the spec is `core/runtime/QUANT.md`).
//!
//! Every backend that runs an int8 step calls these functions (or, later, a WGSL copy tested
//! against them): quantizing an activation, requantizing an int32 accumulator with a
//! fixed-point multiplier, and the step epilogues. The integer GEMM kernels only ever produce
//! exact int32 sums, so these functions alone decide every output bit: an int8 model is
//! bit-identical on every kernel set.
//!
//! Rounding rules:
//! * quantize: `q = clamp(round_half_even(x / scale) + zp, 0, 255)`, computed as f32 division
//!   (IEEE, so identical on every host); NaN quantizes to `zp`.
//! * requantize (gemmlowp / TFLite `MultiplyByQuantizedMultiplier`): the real multiplier
//!   `m = mult · 2^(shift − 31)` with `mult` in `[2^30, 2^31)`; `x · m` is computed as
//!   `rounding_rshift(srdhm(x · 2^max(shift, 0), mult), max(−shift, 0))` (the left shift
//!   saturates), where `srdhm` is gemmlowp's: `(a·b + nudge) / 2^31` truncated toward zero with
//!   `nudge = 2^30` for `a·b >= 0` and `1 − 2^30` otherwise, i.e. ties round toward +∞
//!   (1.5 → 2, −1.5 → −1, −0.5 → 0), and its one overflow (`MIN · MIN`) saturates; and
//!   `rounding_rshift` rounds ties away from zero (2.5 → 3, −2.5 → −3). The two roundings
//!   are TFLite's exactly, double rounding included: the result can differ by 1 from
//!   `round(x · m)` (tested against exact rationals below).

/// Largest inner dimension of an integer product. With activations in 0..=255 and weights in
/// −127..=127, `k · 255 · 127 < 2^30`, so an accumulator never overflows i32 (see QUANT.md).
pub const MAX_QK: usize = 32_768;

/// A real multiplier `m ≈ mult · 2^(shift − 31)` in fixed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    /// Q31 mantissa in `[2^30, 2^31)`, or 0 for a multiplier below `2^-32`.
    pub mult: i32,
    /// Power of two, in `-31..=30`.
    pub shift: i32,
}

impl Requant {
    /// The fixed-point form of `m` (> 0, finite, below 2^30), as TFLite's `QuantizeMultiplier`:
    /// `m = q · 2^e` with `q` in `[0.5, 1)`, `mult = round(q · 2^31)` (ties away from zero).
    /// `None` for `m` not positive, not finite or `>= 2^30`.
    pub fn from_real(m: f64) -> Option<Requant> {
        if !(m.is_finite() && m > 0.0 && m < (1u64 << 30) as f64) {
            return None;
        }
        // frexp without libm: scale into [0.5, 1) by powers of two (exact in binary).
        let (mut q, mut e) = (m, 0i32);
        while q >= 1.0 {
            q /= 2.0;
            e += 1;
        }
        while q < 0.5 {
            q *= 2.0;
            e -= 1;
        }
        let mut mult = (q * (1u64 << 31) as f64).round() as i64;
        if mult == 1i64 << 31 {
            mult /= 2;
            e += 1;
        }
        if e < -31 {
            // Below 2^-32: every |x| < 2^31 maps to 0 (or ±1 at most); say 0 exactly.
            return Some(Requant { mult: 0, shift: 0 });
        }
        Some(Requant { mult: mult as i32, shift: e })
    }

    /// `x · m`, rounded as the module docs say.
    #[inline(always)]
    pub fn apply(self, x: i32) -> i32 {
        let left = self.shift.max(0) as u32;
        let right = (-self.shift).max(0);
        let xs = (i64::from(x) << left).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        rounding_rshift(srdhm(xs, self.mult), right)
    }
}

/// Saturating rounding doubling high multiply (gemmlowp `SaturatingRoundingDoublingHighMul`):
/// `round(a · b / 2^31)` with ties toward +∞ (gemmlowp's nudge); `MIN · MIN` gives `MAX`.
#[inline(always)]
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge = if ab >= 0 { 1i64 << 30 } else { 1 - (1i64 << 30) };
    // i64 division truncates toward zero, as C's does in gemmlowp.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `round(x / 2^exp)`, ties away from zero (gemmlowp `RoundingDivideByPOT`); `exp` in 0..=31.
#[inline(always)]
pub fn rounding_rshift(x: i32, exp: i32) -> i32 {
    let exp = exp.clamp(0, 31);
    let mask = ((1i64 << exp) - 1) as i32;
    let rem = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exp) + i32::from(rem > threshold)
}

/// An activation's quantization: `real = scale · (q − zero_point)`, `q` in 0..=255.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl QParams {
    /// `clamp(round_half_even(x / scale) + zp, 0, 255)`; NaN gives `zp`.
    #[inline(always)]
    pub fn quantize(self, x: f32) -> u8 {
        self.code(x / self.scale)
    }

    /// [`QParams::quantize`] with the division replaced by a multiply and two exact FMA
    /// corrections, giving the same byte for every `x` when `inv` is
    /// [`QParams::fma_reciprocal`]'s (why, QUANT.md, "Quantizing by multiplication"): `q0 =
    /// x · inv` is within 2 ulps of `x / scale`; `q1 = q0 + (x − q0 · scale) · inv` is within
    /// one (faithful); Markstein's step from a faithful `q1` with `inv = RN(1/scale)` gives
    /// `RN(x / scale)`, the division's bits. Where `|q0| > 2^20` (±∞ included) the clamp
    /// decides, so `q0` itself is used. Only for hosts where `mul_add` is one fused
    /// instruction (the x86_64 AVX2 and AVX-512 builds): never in wasm, whose relaxed madd may
    /// be unfused, nor where `mul_add` is a libm call.
    #[inline(always)]
    pub fn quantize_fma(self, x: f32, inv: f32) -> u8 {
        let s = self.scale;
        let q0 = x * inv;
        let q1 = (-q0).mul_add(s, x).mul_add(inv, q0);
        let q2 = (-q1).mul_add(s, x).mul_add(inv, q1);
        // `<=` is false for NaN: q0 stays NaN and quantizes to zp below, as the division's would.
        let t = if q0.abs() <= 1_048_576.0 { q2 } else { q0 };
        self.code(t)
    }

    /// `RN(1 / scale)` when `scale` lies in `[2^-64, 2^64]`, where the argument of
    /// [`QParams::quantize_fma`] holds (no product, residual or correction under- or
    /// overflows while the quotient can still round to a code); `None` elsewhere (use the
    /// division).
    pub fn fma_reciprocal(self) -> Option<f32> {
        const LO: f32 = 5.421_011e-20; // 2^-64
        const HI: f32 = 1.844_674_4e19; // 2^64
        (self.scale >= LO && self.scale <= HI).then(|| 1.0 / self.scale)
    }

    /// The code of a quotient `t = RN(x / scale)` (NaN → zp), shared by both quantizers.
    #[inline(always)]
    fn code(self, t: f32) -> u8 {
        // Clamp first (NaN → 0), then round half to even with the 1.5 · 2^23 trick: for
        // |t| <= 2^22 adding and subtracting it leaves t rounded to an integer by the IEEE
        // default mode (nearest, ties to even), the same on every host. `round_ties_even` is a
        // libm call on baseline x86_64 (no SSE4.1) and cost more than the whole int8 product.
        const MAGIC: f32 = 12_582_912.0;
        let t = if t.is_nan() { 0.0 } else { t.clamp(-512.0, 512.0) };
        let r = (t + MAGIC) - MAGIC;
        // SAFETY: r is an integer in −512..=512 (clamped above, NaN replaced), so the
        // conversion is exact. The checked `as` cast would test for NaN and overflow lane by
        // lane, which kept LLVM from vectorizing the quantizers (`KernelSet::quantize`).
        let r: i32 = unsafe { r.to_int_unchecked() };
        (r + self.zero_point).clamp(0, 255) as u8
    }

    /// `scale · (q − zp)`.
    #[inline(always)]
    pub fn dequantize(self, q: i32) -> f32 {
        (q - self.zero_point) as f32 * self.scale
    }
}

/// Quantizes `x` into `q` (same length). Inlined into the per-ISA builds
/// (`KernelSet::quantize`), where it vectorizes: every step is an IEEE f32 operation or a
/// select, so every build gives the same bytes.
#[inline(always)]
pub fn quantize_slice(p: QParams, x: &[f32], q: &mut [u8]) {
    for (d, &v) in q.iter_mut().zip(x) {
        *d = p.quantize(v);
    }
}

/// [`quantize_slice`] on a host with fused multiply-add ([`QParams::quantize_fma`] where
/// [`QParams::fma_reciprocal`] allows it: the same bytes), also telling whether every `x` was
/// finite: the one pass over the floats checks them on the way (an input scan of its own cost
/// as much as the quantizer), as the 7-bit wasm path does (`qgemm_quantize_dot7`).
#[inline(always)]
pub fn quantize_slice_fma(p: QParams, x: &[f32], q: &mut [u8]) -> bool {
    // Exponent all ones: ±∞ or NaN. An OR over the lanes vectorizes; `all` would stop early.
    const EXP: u32 = 0x7f80_0000;
    let mut bad = 0u32;
    match p.fma_reciprocal() {
        Some(inv) => {
            for (d, &v) in q.iter_mut().zip(x) {
                bad |= u32::from(v.to_bits() & EXP == EXP);
                *d = p.quantize_fma(v, inv);
            }
        }
        None => {
            for (d, &v) in q.iter_mut().zip(x) {
                bad |= u32::from(v.to_bits() & EXP == EXP);
                *d = p.quantize(v);
            }
        }
    }
    bad == 0
}

/// [`fake_quantize_slice`] on a host with fused multiply-add, as [`quantize_slice_fma`].
#[inline(always)]
pub fn fake_quantize_slice_fma(p: QParams, y: &mut [f32]) {
    match p.fma_reciprocal() {
        Some(inv) => {
            for v in y.iter_mut() {
                *v = p.dequantize(i32::from(p.quantize_fma(*v, inv)));
            }
        }
        None => fake_quantize_slice(p, y),
    }
}

/// `y[i] = p.dequantize(p.quantize(y[i]))`: puts `y` on the grid (a `Quantize` step that did
/// not fuse). Inlined into the per-ISA builds (`KernelSet::fake_quantize`), as above.
#[inline(always)]
pub fn fake_quantize_slice(p: QParams, y: &mut [f32]) {
    for v in y.iter_mut() {
        *v = p.dequantize(i32::from(p.quantize(*v)));
    }
}

/// How an integer step turns its int32 sums (bias included) into f32 outputs.
#[derive(Clone, Debug, PartialEq)]
pub enum QOut {
    /// Requantize to the output's u8 grid (`mult[c]`, per output column), clamp to
    /// `[lo, 255]` (`lo = zp` fuses a ReLU), and write the dequantized value.
    Requant { out: QParams, mult: Vec<Requant>, lo: i32 },
    /// Write `(acc + bias) · scale[c]` as f32, then ReLU when `relu` (a step whose output is
    /// not quantized: the logits).
    Dequant { scale: Vec<f32>, relu: bool },
}

/// Epilogue of one output row: `acc[c] + bias[c]` (summed in i64, saturated to i32) through
/// `out` into `y`. `acc`, `bias` and `y` have the same length.
pub fn epilogue_row(acc: &[i32], bias: &[i32], out: &QOut, y: &mut [f32]) {
    let sum = |a: i32, b: i32| (i64::from(a) + i64::from(b)).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    match out {
        QOut::Requant { out, mult, lo } => {
            for (((d, &a), &b), m) in y.iter_mut().zip(acc).zip(bias).zip(mult) {
                let q = m.apply(sum(a, b)).saturating_add(out.zero_point).clamp(*lo, 255);
                *d = out.dequantize(q);
            }
        }
        QOut::Dequant { scale, relu } => {
            for (((d, &a), &b), &s) in y.iter_mut().zip(acc).zip(bias).zip(scale) {
                let v = sum(a, b) as f32 * s;
                *d = if *relu { v.max(0.0) } else { v };
            }
        }
    }
}

/// An integer step's epilogue as the vectorized loop takes it: per output column, the integer
/// bias and the requantization split into plain lane operations (built once at plan build from
/// the lowered bias and [`QOut`]). It computes exactly what [`epilogue_row`] computes, bit for
/// bit (tested against it on edge values in this file and in `core/tests/kernels_qparity.rs`),
/// with no i64 division, no branch and no per-lane struct, so LLVM vectorizes it for each
/// instruction set it is compiled for (`KernelSet::qepilogue`):
///
/// * `acc + bias` saturating in i32 (same as the i64 sum clamped to i32);
/// * the saturating left shift as two compares against `i32::MAX >> l` / `i32::MIN >> l`;
/// * `srdhm(x, mult) = (x·mult + 2^30) >> 31`: gemmlowp's nudge and truncating division fold
///   into one floor (for `x·mult < 0`, `trunc((p + 1 − 2^30) / 2^31) = floor((p + 2^30) /
///   2^31)`); its one overflow, `MIN · MIN`, cannot happen because `mult` is never `MIN`;
/// * the rounding right shift with a per-column mask.
#[derive(Clone, Debug)]
pub struct QEpi {
    n: usize,
    bias: Vec<i32>,
    kind: QEpiKind,
}

#[derive(Clone, Debug)]
enum QEpiKind {
    Requant {
        mult: Vec<i32>,
        lshift: Vec<u32>,
        sat_hi: Vec<i32>,
        sat_lo: Vec<i32>,
        rshift: Vec<u32>,
        rmask: Vec<i32>,
        /// `2^lshift` and `2^(30 − rshift)` (0 when rshift is 31): the shifts as multiplies,
        /// for simd128, which has no per-lane shift (`wasm/wasm_requant_i32.rs`; unread elsewhere).
        #[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
        pow2l: Vec<i32>,
        #[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
        pow2r: Vec<i32>,
        zp: i32,
        lo: i32,
        scale: f32,
    },
    Dequant {
        scale: Vec<f32>,
        relu: bool,
    },
}

impl QEpi {
    /// The vector form of `(bias, out)`. Panics when the per-column lengths differ (the
    /// lowering builds them together).
    pub fn new(bias: &[i32], out: &QOut) -> QEpi {
        let n = bias.len();
        let kind = match out {
            QOut::Requant { out, mult, lo } => {
                assert_eq!(mult.len(), n, "QEpi: one multiplier per column");
                let l = |m: &Requant| m.shift.max(0) as u32;
                let r = |m: &Requant| (-m.shift).clamp(0, 31) as u32;
                QEpiKind::Requant {
                    mult: mult.iter().map(|m| m.mult).collect(),
                    lshift: mult.iter().map(l).collect(),
                    sat_hi: mult.iter().map(|m| i32::MAX >> l(m)).collect(),
                    sat_lo: mult.iter().map(|m| i32::MIN >> l(m)).collect(),
                    rshift: mult.iter().map(r).collect(),
                    rmask: mult.iter().map(|m| ((1i64 << r(m)) - 1) as i32).collect(),
                    pow2l: mult.iter().map(|m| 1i32 << l(m)).collect(),
                    pow2r: mult.iter().map(|m| if r(m) <= 30 { 1i32 << (30 - r(m)) } else { 0 }).collect(),
                    zp: out.zero_point,
                    lo: *lo,
                    scale: out.scale,
                }
            }
            QOut::Dequant { scale, relu } => {
                assert_eq!(scale.len(), n, "QEpi: one scale per column");
                QEpiKind::Dequant { scale: scale.clone(), relu: *relu }
            }
        };
        QEpi { n, bias: bias.to_vec(), kind }
    }

    /// Output columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The per-column lanes of a requantizing epilogue whose right shifts are all at most 30
    /// (what the simd128 form computes): bias, mult, saturation bounds, `2^l`, `2^(30 − r)`,
    /// and zp, lo, scale. `None` otherwise.
    #[allow(clippy::type_complexity)]
    #[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
    pub(crate) fn requant_lanes(&self) -> Option<([&[i32]; 6], i32, i32, f32)> {
        match &self.kind {
            QEpiKind::Requant { mult, sat_hi, sat_lo, rshift, pow2l, pow2r, zp, lo, scale, .. } if rshift.iter().all(|&r| r <= 30) => {
                Some(([&self.bias, mult, sat_hi, sat_lo, pow2l, pow2r], *zp, *lo, *scale))
            }
            _ => None,
        }
    }

    /// The per-column lanes of a requantizing epilogue as the scalar loop takes them (bias,
    /// mult, sat_hi, sat_lo, rmask; lshift, rshift) and zp, lo: for the AVX-512 u8 epilogue
    /// (`x86_64/avx512_requant_u8.rs`). `None` for a dequantizing step.
    #[allow(clippy::type_complexity)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn requant_cols(&self) -> Option<([&[i32]; 5], [&[u32]; 2], i32, i32)> {
        match &self.kind {
            QEpiKind::Requant { mult, lshift, sat_hi, sat_lo, rshift, rmask, zp, lo, .. } => {
                Some(([&self.bias, mult, sat_hi, sat_lo, rmask], [lshift, rshift], *zp, *lo))
            }
            QEpiKind::Dequant { .. } => None,
        }
    }

    /// The requantized u8 codes instead of f32, when the step requantizes: the value the f32
    /// output dequantizes. `None` for a dequantizing step.
    pub fn out_params(&self) -> Option<QParams> {
        match &self.kind {
            QEpiKind::Requant { zp, scale, .. } => Some(QParams { scale: *scale, zero_point: *zp }),
            QEpiKind::Dequant { .. } => None,
        }
    }
}

/// The epilogue loop, written once; `KernelSet::qepilogue` calls it through wrappers compiled
/// for each instruction set (`#[target_feature]`), so it is vectorized there. `rows` rows of
/// `n` sums at stride `ldc` into `y` at stride `ldy`. Columns go 16 at a time (a fixed trip
/// count LLVM turns into whole vectors: one zmm, two ymm, four v128), then one by one: a
/// plain loop over n = 16 or 32 columns ran entirely in the scalar remainder of LLVM's
/// 64-wide unrolled vector loop.
#[inline(always)]
pub(crate) fn qepilogue_body<T: QElem>(e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [T], ldy: usize) {
    const W: usize = 16;
    let n = e.n;
    // One or two vectors of columns (the int8 CNN's 16- and 32-channel convs, whose rows are
    // one pooled pixel each): with the column blocks fixed, the per-column constants (bias,
    // multiplier, shifts, bounds) are loop-invariant and stay in registers across the rows;
    // the general loop below reloads them and re-slices eight arrays per row, which cost more
    // than the arithmetic on 16-value rows (the epilogue was a third of the int8 CNN).
    // x86_64 only: the wasm builds keep one copy of the loop (module size).
    if cfg!(target_arch = "x86_64") && (n == W || n == 2 * W) && rows > 0 {
        assert!(c.len() >= (rows - 1) * ldc + n && y.len() >= (rows - 1) * ldy + n);
        for r in 0..rows {
            let (acc, out) = (&c[r * ldc..r * ldc + n], &mut y[r * ldy..r * ldy + n]);
            qepilogue_cols::<T, W>(e, 0, &acc[..W], &mut out[..W]);
            if n == 2 * W {
                qepilogue_cols::<T, W>(e, W, &acc[W..], &mut out[W..]);
            }
        }
        return;
    }
    let full = n / W * W;
    for r in 0..rows {
        let acc = &c[r * ldc..r * ldc + n];
        let out = &mut y[r * ldy..r * ldy + n];
        for j0 in (0..full).step_by(W) {
            qepilogue_cols::<T, W>(e, j0, &acc[j0..j0 + W], &mut out[j0..j0 + W]);
        }
        for j in full..n {
            qepilogue_cols::<T, 1>(e, j, &acc[j..j + 1], &mut out[j..j + 1]);
        }
    }
}

/// Columns `j0..j0 + W` of one row (see [`QEpi`] for why each line equals the scalar spec).
#[inline(always)]
pub(crate) fn qepilogue_cols<T: QElem, const W: usize>(e: &QEpi, j0: usize, acc: &[i32], out: &mut [T]) {
    let (acc, out) = (&acc[..W], &mut out[..W]);
    let bias = &e.bias[j0..j0 + W];
    match &e.kind {
        QEpiKind::Requant { mult, lshift, sat_hi, sat_lo, rshift, rmask, zp, lo, scale, .. } => {
            let (mult, lshift) = (&mult[j0..j0 + W], &lshift[j0..j0 + W]);
            let (sat_hi, sat_lo) = (&sat_hi[j0..j0 + W], &sat_lo[j0..j0 + W]);
            let (rshift, rmask) = (&rshift[j0..j0 + W], &rmask[j0..j0 + W]);
            let (zp, lo, scale) = (*zp, *lo, *scale);
            for j in 0..W {
                let x = acc[j].saturating_add(bias[j]);
                let x = if x > sat_hi[j] {
                    i32::MAX
                } else if x < sat_lo[j] {
                    i32::MIN
                } else {
                    x << lshift[j]
                };
                let p = i64::from(x) * i64::from(mult[j]) + (1i64 << 30);
                // Bits 31..62 of p: a logical shift gives the same low 32 bits as an
                // arithmetic one, and AVX2 has only the logical 64-bit shift.
                let h = ((p as u64) >> 31) as i32;
                let thr = (rmask[j] >> 1) + i32::from(h < 0);
                let z = (h >> rshift[j]) + i32::from((h & rmask[j]) > thr);
                let q = z.saturating_add(zp).clamp(lo, 255);
                out[j] = T::requantized(q, zp, scale);
            }
        }
        QEpiKind::Dequant { scale, relu } => {
            let scale = &scale[j0..j0 + W];
            for j in 0..W {
                let v = acc[j].saturating_add(bias[j]) as f32 * scale[j];
                out[j] = T::dequantized(if *relu { v.max(0.0) } else { v });
            }
        }
    }
}

/// What an integer step writes: f32 on the grid (`scale · (q − zp)`, the value every other
/// kernel reads) or the u8 code `q` itself, when every reader of the value is an integer step
/// on the same grid or a max pool (the executor decides, `exec.rs`): then the next step skips
/// quantizing, and the bits are the same because on-grid values quantize back to exactly `q`.
pub trait QElem: Copy {
    fn requantized(q: i32, zp: i32, scale: f32) -> Self;
    /// A dequantizing step's output; u8 never takes one (`KernelSet::qepilogue` checks).
    fn dequantized(v: f32) -> Self;
}

impl QElem for f32 {
    #[inline(always)]
    fn requantized(q: i32, zp: i32, scale: f32) -> f32 {
        (q - zp) as f32 * scale
    }
    #[inline(always)]
    fn dequantized(v: f32) -> f32 {
        v
    }
}

impl QElem for u8 {
    #[inline(always)]
    fn requantized(q: i32, _zp: i32, _scale: f32) -> u8 {
        q as u8
    }
    #[inline(always)]
    fn dequantized(_v: f32) -> u8 {
        0
    }
}

/// `KernelSet::qepilogue`'s pointer type: [`qepilogue_body`] compiled for one instruction set.
/// Safety: the set's CPU features are present (holding the set proves it).
pub(crate) type QEpiFn<T> = unsafe fn(e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [T], ldy: usize);
/// `KernelSet::quantize`'s pointer type: [`quantize_slice`] compiled for one instruction set.
pub(crate) type QQuantFn = unsafe fn(p: QParams, x: &[f32], q: &mut [u8]);
/// `KernelSet::quantize_checked`'s pointer type: [`quantize_slice_fma`] for one instruction set
/// with FMA; `true` when every `x` was finite.
pub(crate) type QQuantCheckFn = unsafe fn(p: QParams, x: &[f32], q: &mut [u8]) -> bool;
/// `KernelSet::fake_quantize`'s pointer type: [`fake_quantize_slice`] for one instruction set.
pub(crate) type QFakeFn = unsafe fn(p: QParams, y: &mut [f32]);

/// The portable build of the epilogue (vectorized for the target's baseline, e.g. simd128).
pub(crate) unsafe fn generic_qepilogue<T: QElem>(e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [T], ldy: usize) {
    qepilogue_body(e, c, ldc, rows, y, ldy)
}

/// The portable build of [`fake_quantize_slice`].
pub(crate) unsafe fn generic_fake_quantize(p: QParams, y: &mut [f32]) {
    fake_quantize_slice(p, y)
}

/// The portable build of [`quantize_slice`].
pub(crate) unsafe fn generic_quantize(p: QParams, x: &[f32], q: &mut [u8]) {
    quantize_slice(p, x, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srdhm_hand_cases() {
        // 2^30 · 2^30 / 2^31 = 2^29 exactly.
        assert_eq!(srdhm(1 << 30, 1 << 30), 1 << 29);
        // 3 · 2^30 / 2^31 = 1.5 → 2; −1.5 → −1 (gemmlowp's ties toward +∞).
        assert_eq!(srdhm(3, 1 << 30), 2);
        assert_eq!(srdhm(-3, 1 << 30), -1);
        // 0.5 → 1; −0.5 → 0; −2.5 → −2; non-ties round to nearest: −0.75 · 2 = −1.5·… .
        assert_eq!(srdhm(1, 1 << 30), 1);
        assert_eq!(srdhm(-1, 1 << 30), 0);
        assert_eq!(srdhm(-5, 1 << 30), -2);
        assert_eq!(srdhm(-7, 3 << 29), -5); // −5.25 → −5
        assert_eq!(srdhm(-7, 3 << 28), -3); // −2.625 → −3
        assert_eq!(srdhm(7, 3 << 28), 3); // 2.625 → 3
        // The saturating case.
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(srdhm(i32::MIN, i32::MAX), -i32::MAX);
    }

    #[test]
    fn rounding_rshift_hand_cases() {
        assert_eq!(rounding_rshift(5, 1), 3); // 2.5 → 3
        assert_eq!(rounding_rshift(-5, 1), -3); // −2.5 → −3
        assert_eq!(rounding_rshift(7, 2), 2); // 1.75 → 2
        assert_eq!(rounding_rshift(-7, 2), -2);
        assert_eq!(rounding_rshift(6, 2), 2); // 1.5 → 2
        assert_eq!(rounding_rshift(-6, 2), -2); // −1.5 → −2
        assert_eq!(rounding_rshift(5, 2), 1); // 1.25 → 1
        assert_eq!(rounding_rshift(i32::MAX, 31), 1); // 0.99… → 1
        assert_eq!(rounding_rshift(i32::MIN, 31), -1); // −1 exactly
        assert_eq!(rounding_rshift(12345, 0), 12345);
    }

    #[test]
    fn multipliers_hand_cases() {
        // 0.5 = 2^30 · 2^(0 − 31).
        assert_eq!(Requant::from_real(0.5), Some(Requant { mult: 1 << 30, shift: 0 }));
        // 0.75 = 0.75 · 2^0: mult = 0.75 · 2^31.
        assert_eq!(Requant::from_real(0.75), Some(Requant { mult: 3 << 29, shift: 0 }));
        // 3.0 = 0.75 · 2^2.
        assert_eq!(Requant::from_real(3.0), Some(Requant { mult: 3 << 29, shift: 2 }));
        // 2^-10 = 0.5 · 2^-9.
        assert_eq!(Requant::from_real(1.0 / 1024.0), Some(Requant { mult: 1 << 30, shift: -9 }));
        // Rounds up to 2^31 → renormalised.
        assert_eq!(Requant::from_real(1.0 - 1e-12), Some(Requant { mult: 1 << 30, shift: 1 }));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9] {
            assert_eq!(Requant::from_real(bad), None, "{bad}");
        }
        assert_eq!(Requant::from_real(1e-12), Some(Requant { mult: 0, shift: 0 }));
    }

    #[test]
    fn apply_hand_cases() {
        let half = Requant::from_real(0.5).unwrap();
        // Ties at shift 0 are srdhm's: 1.5 → 2, −1.5 → −1, 0.5 → 1, −0.5 → 0.
        assert_eq!(half.apply(3), 2);
        assert_eq!(half.apply(-3), -1);
        assert_eq!(half.apply(1), 1);
        assert_eq!(half.apply(-1), 0);
        // A large right shift: 2^-10 · 1536 = 1.5 → 2, · −1536 → −2 (ties away), · 1534 → 1.
        let r = Requant::from_real(1.0 / 1024.0).unwrap();
        assert_eq!(r.apply(1536), 2);
        assert_eq!(r.apply(-1536), -2);
        assert_eq!(r.apply(1534), 1);
        // Double rounding, as TFLite: 1535 / 1024 = 1.499 but srdhm first gives 767.5 → 768,
        // and 768 / 512 = 1.5 → 2.
        assert_eq!(r.apply(1535), 2);
        // 0.75 · 1000 = 750 exactly; 3 · 1000 = 3000 (left shift).
        assert_eq!(Requant::from_real(0.75).unwrap().apply(1000), 750);
        assert_eq!(Requant::from_real(3.0).unwrap().apply(1000), 3000);
        // A left shift that overflows saturates instead of wrapping: 4 = 0.5 · 2^3, so
        // MAX · 2^3 saturates to MAX, then · 0.5 → 2^30.
        assert_eq!(Requant::from_real(4.0).unwrap().apply(i32::MAX), 1 << 30);
        assert_eq!(Requant::from_real(4.0).unwrap().apply(-1 << 29), i32::MIN / 2);
        // A typical layer multiplier, against exact rational rounding in i128.
        let m = 0.000_123_456_7f64;
        let r = Requant::from_real(m).unwrap();
        for x in [-1_000_000_007i32, -123_457, -8101, -1, 0, 1, 8101, 123_457, 1_000_000_007] {
            let exact = (x as f64) * (r.mult as f64) * 2f64.powi(r.shift - 31);
            let want = exact.abs().round().copysign(exact) as i32; // ties away, |exact| < 2^53
            assert_eq!(r.apply(x), want, "x = {x}");
        }
    }

    #[test]
    fn quantize_hand_cases() {
        let p = QParams { scale: 0.5, zero_point: 10 };
        assert_eq!(p.quantize(0.0), 10);
        assert_eq!(p.quantize(0.25), 10); // 0.5 → 0 (half to even)
        assert_eq!(p.quantize(0.75), 12); // 1.5 → 2
        assert_eq!(p.quantize(-0.75), 8); // −1.5 → −2
        assert_eq!(p.quantize(-100.0), 0);
        assert_eq!(p.quantize(1e30), 255);
        assert_eq!(p.quantize(f32::NEG_INFINITY), 0);
        assert_eq!(p.quantize(f32::NAN), 10);
        // Ties to even at every half step, against the library rounding.
        let p1 = QParams { scale: 1.0, zero_point: 128 };
        for i in -300..300 {
            let x = i as f32 * 0.5;
            assert_eq!(i32::from(p1.quantize(x)), (x.round_ties_even() as i32 + 128).clamp(0, 255), "{x}");
        }
        assert_eq!(p.dequantize(12), 1.0);
        // Values on the grid round-trip exactly.
        let p = QParams { scale: 0.013_7, zero_point: 3 };
        for q in 0..=255 {
            assert_eq!(i32::from(p.quantize(p.dequantize(q))), q);
        }
    }

    #[test]
    fn epilogue_hand_cases() {
        let out = QParams { scale: 0.25, zero_point: 4 };
        let half = Requant::from_real(0.5).unwrap();
        let e = QOut::Requant { out, mult: vec![half; 3], lo: 4 };
        let mut y = [0.0; 3];
        // (10 + 1)·0.5 = 5.5 → 6, + 4 = 10 → 0.25·6; (−20 + 0)·0.5 = −10 → −6 → ReLU lo 4 → 0.
        epilogue_row(&[10, -20, 1000], &[1, 0, 0], &e, &mut y);
        assert_eq!(y, [1.5, 0.0, 0.25 * 251.0]);
        let d = QOut::Dequant { scale: vec![0.5, 2.0], relu: false };
        let mut y = [0.0; 2];
        epilogue_row(&[3, -3], &[1, 0], &d, &mut y);
        assert_eq!(y, [2.0, -6.0]);
    }
}
