//! The requantization epilogue and the activation quantizer (`kernels::quant`) compiled for
//! AVX2 and for AVX-512: the same Rust body (`qepilogue_body`, `quantize_slice`), inlined into
//! a `#[target_feature]` function so LLVM vectorizes it with that instruction set's variable
//! shifts, `vpmuldq` and masks. Integer operations and IEEE f32 operations only, so every
//! build produces the same bits as the scalar reference (`quant::epilogue_row`).

use crate::quant::{fake_quantize_slice, qepilogue_body, quantize_slice, QElem, QEpi, QParams};

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_qepilogue_i32<T: QElem>(e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [T], ldy: usize) {
    qepilogue_body(e, c, ldc, rows, y, ldy)
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_quantize_f32(p: QParams, x: &[f32], q: &mut [u8]) {
    quantize_slice(p, x, q)
}

/// # Safety
/// The CPU must support AVX-512F, BW, DQ and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn avx512_qepilogue_i32<T: QElem>(e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [T], ldy: usize) {
    qepilogue_body(e, c, ldc, rows, y, ldy)
}

/// # Safety
/// The CPU must support AVX-512F, BW, DQ and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn avx512_quantize_f32(p: QParams, x: &[f32], q: &mut [u8]) {
    quantize_slice(p, x, q)
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_fake_quantize_f32(p: QParams, y: &mut [f32]) {
    fake_quantize_slice(p, y)
}

/// # Safety
/// The CPU must support AVX-512F, BW, DQ and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn avx512_fake_quantize_f32(p: QParams, y: &mut [f32]) {
    fake_quantize_slice(p, y)
}
