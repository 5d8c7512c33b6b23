//! wasm `simd128` kernels, compiled only with `-C target-feature=+simd128`: a wasm module either
//! validates with its SIMD instructions or does not load at all, so there is nothing to detect
//! at run time (hosts pick the SIMD or the scalar build with `WebAssembly.validate`).
//! Multiply-adds go through [`madd`]: a fused `f32x4.relaxed_madd` in the relaxed-SIMD build
//! (`+relaxed-simd`, the one browsers with relaxed SIMD load), `mul` then `add` in the plain
//! simd128 build (Node 20 rejects relaxed SIMD unless flagged).

pub(crate) mod wasm_bepilogue_i32;
pub(crate) mod wasm_bmmm_b1;
pub(crate) mod wasm_bmmmsign_b1;
pub(crate) mod wasm_bpack_f32;
pub(crate) mod wasm_gemv_f32;
pub(crate) mod wasm_maxpool_f32;
pub(crate) mod wasm_mmm_f32;
pub(crate) mod wasm_qmmm_i8;
#[cfg(target_feature = "relaxed-simd")]
pub(crate) mod wasm_qpack_i7;
pub(crate) mod wasm_qpack_pair_u8;
#[cfg(target_feature = "relaxed-simd")]
pub(crate) mod wasm_quantize_dot7_f32;
#[cfg(target_feature = "relaxed-simd")]
pub(crate) mod wasm_relaxed_qmmm_i7;
pub(crate) mod wasm_requant_i32;
pub(crate) mod wasm_spmm_f32;

use core::arch::wasm32::v128;

/// `a × b + c` per lane. In the relaxed-SIMD build the engine may fuse it (V8 on x86-64 with FMA
/// emits one `vfmadd`, one rounding); otherwise two rounded operations. The two builds may thus
/// differ in the last bits, which the parity suites' tolerances (1e-5 on probabilities) allow.
#[inline(always)]
pub(crate) fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        core::arch::wasm32::f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        core::arch::wasm32::f32x4_add(core::arch::wasm32::f32x4_mul(a, b), c)
    }
}
