//! The Winograd transforms (`kernels::winograd`) compiled for AVX2 + FMA and for AVX-512F: the
//! same Rust body over 16-channel arrays, inlined into a `#[target_feature]` function so LLVM
//! vectorizes it with ymm or zmm registers instead of the SSE2 baseline.

use crate::winograd::{input_body, output_body, InJob, OutJob};

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

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_wino_in_f32(j: &InJob, u: &mut [f32]) {
    input_body(j, u)
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_wino_out_f32(j: &OutJob, m: &[f32], dst: &mut [f32]) {
    output_body(j, m, dst)
}
