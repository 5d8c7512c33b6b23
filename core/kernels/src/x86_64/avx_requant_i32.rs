//! The requantization epilogue and the activation quantizer (`kernels::quant`) compiled for
//! AVX2 and for AVX-512: the same Rust body (`qepilogue_body`, `quantize_slice`), inlined into
//! a `#[target_feature]` function so LLVM vectorizes it with that instruction set's variable
//! shifts, `vpmuldq` and masks. Integer operations and IEEE f32 operations only, so every
//! build produces the same bits as the scalar reference (`quant::epilogue_row`). The
//! quantizers are the FMA forms (`quant::quantize_slice_fma`: a multiply and two exact fused
//! corrections instead of `vdivps`, the division's bytes); every set that uses these wrappers
//! has FMA (`KernelSet::avx2_fma`, `avx512`).

use crate::quant::{fake_quantize_slice_fma, qepilogue_body, quantize_slice_fma, QElem, QEpi, QParams};

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_qepilogue_i32<T: QElem>(e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [T], ldy: usize) {
    qepilogue_body(e, c, ldc, rows, y, ldy)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_quantize_f32(p: QParams, x: &[f32], q: &mut [u8]) {
    // The finiteness flag is unused here, so LLVM drops its lanes.
    quantize_slice_fma(p, x, q);
}

/// [`avx2_quantize_f32`] telling whether every `x` was finite (`KernelSet::quantize_checked`).
///
/// # Safety
/// As [`avx2_quantize_f32`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_quantize_checked_f32(p: QParams, x: &[f32], q: &mut [u8]) -> bool {
    quantize_slice_fma(p, x, q)
}

/// # Safety
/// The CPU must support AVX-512F, BW, DQ and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn avx512_qepilogue_i32<T: QElem>(e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [T], ldy: usize) {
    qepilogue_body(e, c, ldc, rows, y, ldy)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_fake_quantize_f32(p: QParams, y: &mut [f32]) {
    fake_quantize_slice_fma(p, y)
}

/// # Safety
/// The CPU must support AVX-512F, BW, DQ, VL and FMA.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
pub(crate) unsafe fn avx512_fake_quantize_f32(p: QParams, y: &mut [f32]) {
    fake_quantize_slice_fma(p, y)
}
